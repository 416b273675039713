"""CompressAI zoo architectures trained by ``vcm train`` (same-budget baselines for the seeds).

    codec: {type: compressai, arch: mbt2018-mean, n: 64, m: 96}
    loss = bpp (y and z) + lambda * 255^2 * MSE          (compressai's RateDistortionLoss)

The checkpoint is the model's state dict (float16 when ``half_weights``) with the entropy
coder's tables left empty (the loader rebuilds them: :func:`vcm.codecs.checkpoint.update_tables`):
the file the ``compressai`` codec reads with its ``checkpoint`` argument (N and M come from the
weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vcm.codecs.checkpoint import TABLES
from vcm.train.base import RDResult, bits_per_pixel


class ZooLearned:
    """The :class:`vcm.train.LearnedCodec` adapter for compressai zoo architectures (``compressai``)."""

    unit = 64  # total down-sampling of every zoo model: crops are multiples of it

    def build(self, params: Mapping[str, Any]) -> nn.Module:
        from compressai.zoo.image import model_architectures

        params = dict(params)
        arch = params.pop("arch", "mbt2018-mean")
        if arch not in model_architectures:
            raise ValueError(f"unknown compressai architecture {arch!r}; known: {', '.join(model_architectures)}")
        unknown = set(params) - {"n", "m"}
        if unknown:
            raise ValueError(f"unknown compressai codec params {sorted(unknown)}; known: arch, n, m")
        sizes = {k.upper(): int(v) for k, v in params.items()}
        return model_architectures[arch](**sizes)  # type: ignore[no-any-return]

    def rd_loss(self, net: nn.Module, x: torch.Tensor, grid: torch.Tensor, lmbda: float) -> RDResult:
        """x (B, 3, H, W) in [0, 1]; ``grid`` is unused (the whole crop is coded)."""
        out = net(x)
        b, _, h, w = x.shape
        bpp = bits_per_pixel(out["likelihoods"], b, h, w)
        mse = F.mse_loss(out["x_hat"], x)
        return RDResult(bpp + lmbda * 255**2 * mse, bpp, mse.detach())

    def save(self, model: nn.Module, path: Path, half: bool, **extra: Any) -> Path:
        state = {k: v.new_empty(0) if k.endswith(TABLES) else v.half() if half and v.is_floating_point() else v
                 for k, v in model.state_dict().items()}
        torch.save({"state_dict": state, **extra}, path)
        return Path(path)
