"""EMIC's side of ``vcm train``: build the network, its rate-distortion loss, its checkpoint.

    loss = bpp + lambda * 255^2 * MSE over visible pixels
    bpp  = -sum(log2 likelihoods of y and z) / (H * W)   # full image area, so rates compare
                                                          # with full-frame codecs
The entropy bottleneck's quantiles are trained separately with compressai's ``aux_loss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vcm.codecs.emic.model import EmicConfig, EmicModel
from vcm.config import from_dict
from vcm.train.base import RDResult, bits_per_pixel, visible_mse


def rd_loss(net: nn.Module, x: torch.Tensor, grid: torch.Tensor, lmbda: float) -> RDResult:
    """x: (B, 3, H, W) in [0, 1], H and W multiples of the unit; grid: bool (B, H/unit, W/unit).

    ``net`` is an :class:`EmicModel` or a DistributedDataParallel wrapper of one.
    """
    out = net(x, grid)
    b, _, h, w = x.shape
    bpp = bits_per_pixel(out["likelihoods"], b, h, w)
    err = visible_mse(out["x_hat"], x, grid)
    return RDResult(bpp + lmbda * 255**2 * err, bpp, err)


class EmicLearned:
    """The :class:`vcm.train.LearnedCodec` adapter for EMIC (registered as ``emic``)."""

    unit = EmicConfig.unit

    def build(self, params: Mapping[str, Any]) -> EmicModel:
        cfg = from_dict(EmicConfig, params, "codec")
        self.unit = cfg.unit
        return EmicModel(cfg)

    def rd_loss(self, net: nn.Module, x: torch.Tensor, grid: torch.Tensor, lmbda: float) -> RDResult:
        return rd_loss(net, x, grid, lmbda)

    def save(self, model: nn.Module, path: Path, half: bool, **extra: Any) -> Path:
        from vcm.codecs.emic.codec import save_emic_checkpoint

        assert isinstance(model, EmicModel)
        return save_emic_checkpoint(model, path, half=half, **extra)
