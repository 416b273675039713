"""GIT-SSIC's side of ``vcm train``: random group maps, the rate-distortion loss, checkpoints.

    loss = bpp + lambda * 255^2 * MSE over the whole image   (GIT-SSIC codes every pixel)
    bpp  = -sum(log2 likelihoods of y and of every group's z) / (B * H * W)

The batch's keep-masks are not used: each image gets a random group map (brief 2.4: 32-px
seeds grown into 2-3 cell boxes, connected components; half of the maps empty, i.e. one
group), so one model serves structured and plain coding.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vcm.codecs.gitssic.groups import random_groups
from vcm.codecs.gitssic.model import GitSsicConfig, GitSsicModel
from vcm.codecs.gitssic.transform import LATENT
from vcm.config import from_dict
from vcm.train.base import RDResult, bits_per_pixel


def random_group_batch(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """int (b, h, w) random group maps, drawn from torch's (seeded) generator."""
    rng = np.random.default_rng(int(torch.randint(2**62, ())))
    return torch.from_numpy(np.stack([random_groups(h, w, rng) for _ in range(b)])).long().to(device)


def rd_loss(net: nn.Module, x: torch.Tensor, lmbda: float) -> RDResult:
    """x: (B, 3, H, W) in [0, 1], H and W multiples of 16; ``net`` a GitSsicModel (or DDP of one)."""
    b, _, h, w = x.shape
    out = net(x, random_group_batch(b, h // LATENT, w // LATENT, x.device))
    bpp = bits_per_pixel(out["likelihoods"], b, h, w)
    err = torch.mean((out["x_hat"] - x) ** 2)
    return RDResult(bpp + lmbda * 255**2 * err, bpp, err)


class GitSsicLearned:
    """The :class:`vcm.train.LearnedCodec` adapter for GIT-SSIC (registered as ``gitssic``)."""

    unit = LATENT

    def build(self, params: Mapping[str, Any]) -> GitSsicModel:
        return GitSsicModel(from_dict(GitSsicConfig, params, "codec"))

    def rd_loss(self, net: nn.Module, x: torch.Tensor, grid: torch.Tensor, lmbda: float) -> RDResult:
        return rd_loss(net, x, lmbda)

    def save(self, model: nn.Module, path: Path, half: bool, **extra: Any) -> Path:
        from vcm.codecs.gitssic.codec import save_gitssic_checkpoint

        assert isinstance(model, GitSsicModel)
        return save_gitssic_checkpoint(model, path, half=half, **extra)
