"""EMIC model: (D)PISA transforms + a hyperprior entropy model on the visible latent tokens.

    x, unit grid --Analysis--> y (B, V, M) --h_a (PISA + Linear)--> z (B, Cz, V)
    z --EntropyBottleneck--> z_hat --h_s (Linear + PISA)--> means, scales (B, M, V)
    y --GaussianConditional(means, scales)--> y_hat --Synthesis--> visible MUs

The hyper path keeps one token per visible MU (no spatial down-sampling; brief section 3.4(a)),
so no 2x2 latent group ever mixes visible and masked units. A ChARM slice model is a planned
refinement [G]. Entropy coding is compressai's (rANS); rate is over visible tokens only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import nn

from vcm.codecs.emic.tokens import Tokens, pad_to_unit
from vcm.codecs.emic.transform import Analysis, Stage, Synthesis


@dataclass(frozen=True)
class EmicConfig:
    """Architecture; the defaults are the paper-size model (widths are our guess [G])."""

    dims: tuple[int, ...] = (128, 192, 256, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    heads: tuple[int, ...] = (4, 6, 8, 10)
    hyper_channels: int = 64
    hyper_depth: int = 1
    unit: int = 16
    patch: int = 2

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EmicConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class EmicModel(CompressionModel):
    """Mask-before-encode codec network; inputs are (B, 3, H, W) in [0, 1] and a unit grid."""

    def __init__(self, cfg: EmicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        arch = {"dims": cfg.dims, "depths": cfg.depths, "heads": cfg.heads, "unit": cfg.unit, "patch": cfg.patch}
        m, cz, hh = cfg.dims[-1], cfg.hyper_channels, cfg.heads[-1]
        self.g_a, self.g_s = Analysis(**arch), Synthesis(**arch)
        self.h_a_blocks, self.h_a_out = Stage(m, cfg.hyper_depth, hh), nn.Linear(m, cz)
        self.h_s_in, self.h_s_blocks = nn.Linear(cz, m), Stage(m, cfg.hyper_depth, hh)
        self.h_s_out = nn.Linear(m, 2 * m)
        self.entropy_bottleneck = EntropyBottleneck(cz)
        self.gaussian_conditional = GaussianConditional(None)

    def _hyper_analysis(self, y: Tokens) -> torch.Tensor:
        return self.h_a_out(self.h_a_blocks(y).x[:, :, 0]).transpose(1, 2)  # (B, Cz, V)

    def _hyper_synthesis(self, z_hat: torch.Tensor, like: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.h_s_blocks(like.with_x(self.h_s_in(z_hat.transpose(1, 2))[:, :, None])).x[:, :, 0]
        means, scales = self.h_s_out(h).transpose(1, 2).chunk(2, dim=1)  # (B, M, V) each
        return means, scales

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> dict[str, Any]:
        """Training pass with additive-noise quantisation; likelihoods over visible tokens."""
        h, w = x.shape[-2:]
        y = self.g_a(x, grid)
        z = self._hyper_analysis(y)
        z_hat, z_lik = self.entropy_bottleneck(z)
        means, scales = self._hyper_synthesis(z_hat, y)
        y_hat, y_lik = self.gaussian_conditional(y.x[:, :, 0].transpose(1, 2), scales, means=means)
        x_hat = self.g_s(y.with_x(y_hat.transpose(1, 2)[:, :, None]), h, w)
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}, "pad": y.pad}

    @torch.no_grad()
    def compress(self, x: torch.Tensor, grid: torch.Tensor) -> dict[str, Any]:
        """One image (B = 1) with at least one visible unit -> z and y strings."""
        y = self.g_a(x, grid)
        z = self._hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-1:])
        means, scales = self._hyper_synthesis(z_hat, y)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y.x[:, :, 0].transpose(1, 2), indexes, means=means)
        return {"strings": [z_strings[0], y_strings[0]], "visible": y.x.shape[1]}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Rebuild positions from the unit grid, decode z then y, synthesise the visible MUs."""
        from vcm.codecs.emic.tokens import visible_units

        xy, pad = visible_units(grid)
        v = xy.shape[1]
        like = Tokens(torch.zeros(1, v, 1, self.cfg.dims[-1], device=grid.device), xy, pad, 1)
        z_hat = self.entropy_bottleneck.decompress([strings[0]], (v,))
        means, scales = self._hyper_synthesis(z_hat, like)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_hat = self.gaussian_conditional.decompress([strings[1]], indexes, means=means)
        return self.g_s(like.with_x(y_hat.transpose(1, 2)[:, :, None]), height, width)


def prepare_input(image_u8: torch.Tensor, unit: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H', W') in [0, 1], padded to multiples of ``unit``."""
    x = image_u8.permute(2, 0, 1)[None].float().div(255)
    return pad_to_unit(x, unit)
