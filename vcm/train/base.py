"""What a learned codec hands to the shared training loop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from vcm.registry import Registry


@dataclass
class RDResult:
    """Loss terms of one batch: ``loss = bpp + lambda * 255^2 * mse_visible``."""

    loss: torch.Tensor
    bpp: torch.Tensor          # bits over the full image area (masked-out pixels count as area)
    mse_visible: torch.Tensor  # mean squared error over the visible pixels, images in [0, 1]

    def detach(self) -> RDResult:
        return RDResult(self.loss.detach(), self.bpp.detach(), self.mse_visible.detach())


class LearnedCodec(Protocol):
    """Adapter between a codec network and :mod:`vcm.train.loop`.

    ``build`` makes the network from the config's ``codec`` params; ``rd_loss`` runs a batch
    ``x`` (B, 3, H, W) in [0, 1] with unit grids (B, H/unit, W/unit); ``save`` writes the
    checkpoint the registered codec of the same name loads.
    """

    unit: int

    def build(self, params: Mapping[str, Any]) -> nn.Module: ...

    def rd_loss(self, net: nn.Module, x: torch.Tensor, grid: torch.Tensor, lmbda: float) -> RDResult: ...

    def save(self, model: nn.Module, path: Path, half: bool, **extra: Any) -> Path: ...


def stages_of(learned: LearnedCodec) -> tuple[str, ...]:
    """Training objectives a codec offers: ``rd`` always; more through ``stages`` + ``stage_loss``."""
    return tuple(getattr(learned, "stages", ("rd",)))


def stage_loss(learned: LearnedCodec, stage: str, net: nn.Module, x: torch.Tensor, grid: torch.Tensor,
               lmbda: float) -> RDResult:
    """The loss of one batch for a rate point's ``stage``."""
    if stage == "rd":
        return learned.rd_loss(net, x, grid, lmbda)
    return learned.stage_loss(stage, net, x, grid, lmbda)  # type: ignore[attr-defined, no-any-return]


LEARNED: Registry[LearnedCodec] = Registry("learned codec")


def visible_mse(x_hat: torch.Tensor, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """MSE over the pixels of visible units; ``grid`` (B, h, w) bool, x (B, C, h*u, w*u)."""
    unit = x.shape[-1] // grid.shape[-1]
    keep = grid.repeat_interleave(unit, 1).repeat_interleave(unit, 2)[:, None].to(x.dtype)
    return ((x_hat - x) ** 2 * keep).sum() / (keep.sum().clamp(min=1) * x.shape[1])


def bits_per_pixel(likelihoods: Mapping[str, torch.Tensor], batch: int, height: int, width: int) -> torch.Tensor:
    """-sum log2 p over all latents / (B * H * W): the rate over the full image area."""
    bits = sum(-torch.log2(lik.clamp_min(1e-9)).sum() for lik in likelihoods.values())
    return bits / (batch * height * width)  # type: ignore[operator]
