"""SegPIC's side of ``vcm train``: masks as privileged information.

    loss = bpp (y, z and both prototype levels) + lambda * 255^2 * MSE

Each crop comes with a segment map (its mask's instances, the rest one background segment;
COCO ground truth by default, as COCO panoptic is not available here: a written deviation).
``prototypes: grid`` trains with the inference-time 4x4 grid prototypes instead (the paper's
central ablation: same network, no masks).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vcm.codecs.segpic.model import SegpicConfig, SegpicModel
from vcm.config import from_dict
from vcm.train.base import RDResult, bits_per_pixel

PROTOTYPES = ("masks", "grid")


class SegpicLearned:
    """The :class:`vcm.train.LearnedCodec` adapter for SegPIC (registered as ``segpic``).
    ``prototypes`` (``masks`` or ``grid``) rides in the codec params next to the architecture."""

    unit = 16
    segments = True  # the crop sampler hands segment maps, not unit grids

    def __init__(self) -> None:
        self.prototypes = "masks"

    def build(self, params: Mapping[str, Any]) -> SegpicModel:
        params = dict(params)
        self.prototypes = params.pop("prototypes", "masks")
        if self.prototypes not in PROTOTYPES:
            raise ValueError(f"prototypes must be one of {PROTOTYPES}, got {self.prototypes!r}")
        return SegpicModel(from_dict(SegpicConfig, params, "codec"))

    def rd_loss(self, net: nn.Module, x: torch.Tensor, seg: torch.Tensor, lmbda: float) -> RDResult:
        """x (B, 3, H, W) in [0, 1], H and W multiples of 64; seg long (B, H, W) segment ids."""
        if x.shape[-1] % 64 or x.shape[-2] % 64:
            raise ValueError(f"SegPIC trains on crops that are multiples of 64 px, got {tuple(x.shape[-2:])}")
        out = net(x, seg if self.prototypes == "masks" else None)
        b, _, h, w = x.shape
        bpp = bits_per_pixel(out["likelihoods"], b, h, w)
        mse = F.mse_loss(out["x_hat"], x)
        return RDResult(bpp + lmbda * 255**2 * mse, bpp, mse.detach())

    def save(self, model: nn.Module, path: Path, half: bool, **extra: Any) -> Path:
        from vcm.codecs.segpic.codec import save_segpic_checkpoint

        assert isinstance(model, SegpicModel)
        return save_segpic_checkpoint(model, path, half=half, **extra)
