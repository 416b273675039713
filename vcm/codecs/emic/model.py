"""EMIC model: (D)PISA transforms + a hyperprior entropy model on the visible latent tokens.

    x, unit grid --Analysis--> y (B, V, M) --h_a (PISA, pool, Linear)--> z (B, Cz, G)
    z --EntropyBottleneck--> z_hat --h_s (Linear, unpool, PISA)--> means, scales (B, M, V)
    y --GaussianConditional(means, scales)--> y_hat --Synthesis--> visible MUs

``hyper_pool`` = p chooses the hyper-latent grid (brief section 3.4): p = 1 keeps one z token
per visible MU (option (a)); p = 2 pools the visible MUs of each 2x2 MU cell into one z token
by their mean (option (b): masked units contribute nothing, and the cells follow from the unit
map, so the decoder knows them). With one z per MU, z cost 28-36 % of the tiny models' rate;
p = 2 sends a quarter of the tokens. The synthesis side gives each MU its cell's features plus
a learned embedding of its place in the cell. With ``slices`` > 0 the shared ChARM
(:class:`vcm.codecs.entropy.ChARM` with one per-token MLP per slice predicting both mean and
scale, no LRP; our choice [G]) codes y in slices, each conditioned on the hyper parameters and
the slices decoded before it, all in one rANS string. Entropy coding is compressai's (rANS);
the rate counts visible tokens only (batch padding is excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import nn

from vcm.codecs.checkpoint import ArchConfig
from vcm.codecs.entropy import ChARM, build_indexes, token_mlp
from vcm.codecs.entropy.bottleneck import decompress_exact
from vcm.codecs.emic.tokens import (
    Tokens,
    UnitGroups,
    group_units,
    pad_to_unit,
    pool_groups,
    unpool_groups,
)
from vcm.codecs.emic.transform import Analysis, Stage, Synthesis


@dataclass(frozen=True)
class EmicConfig(ArchConfig):
    """Architecture; the defaults are the paper-size model (widths are our guess [G])."""

    dims: tuple[int, ...] = (128, 192, 256, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    heads: tuple[int, ...] = (4, 6, 8, 10)
    hyper_channels: int = 64
    hyper_depth: int = 1
    unit: int = 16
    patch: int = 2
    slices: int = 0  # ChARM channel slices of y; 0 = plain hyperprior
    hyper_pool: int = 2  # z token per p x p MU cell; 1 = one per MU
    mu_window: int = 16  # cross-MU attention window in MUs (0 = global); see attention.py [G]


class EmicModel(CompressionModel):
    """Mask-before-encode codec network; inputs are (B, 3, H, W) in [0, 1] and a unit grid."""

    def __init__(self, cfg: EmicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        arch = {"dims": cfg.dims, "depths": cfg.depths, "heads": cfg.heads, "unit": cfg.unit, "patch": cfg.patch,
                "window": cfg.mu_window}
        m, cz, hh, win = cfg.dims[-1], cfg.hyper_channels, cfg.heads[-1], cfg.mu_window
        if cfg.hyper_pool < 1:
            raise ValueError(f"hyper_pool must be >= 1, got {cfg.hyper_pool}")
        self.g_a, self.g_s = Analysis(**arch), Synthesis(**arch)
        self.h_a_blocks, self.h_a_out = Stage(m, cfg.hyper_depth, hh, win), nn.Linear(m, cz)
        self.h_s_in, self.h_s_blocks = nn.Linear(cz, m), Stage(m, cfg.hyper_depth, hh, win)
        self.h_s_place = nn.Embedding(cfg.hyper_pool**2, m) if cfg.hyper_pool > 1 else None
        self.h_s_out = nn.Linear(m, 2 * m)
        self.entropy_bottleneck = EntropyBottleneck(cz)
        self.gaussian_conditional = GaussianConditional(None)
        self.charm = ChARM(m, cfg.slices, m, token_mlp(m), lrp=False, joint=True) if cfg.slices else None

    def _groups(self, t: Tokens) -> UnitGroups:
        return group_units(t.mu_xy, t.pad, self.cfg.hyper_pool)

    def _hyper_analysis(self, y: Tokens, groups: UnitGroups) -> torch.Tensor:
        """y tokens (B, V, 1, M) -> z (B, Cz, G)."""
        h = self.h_a_blocks(y).x[:, :, 0]
        if self.h_s_place is not None:
            h = pool_groups(h, y.pad, groups)
        return self.h_a_out(h).transpose(1, 2)

    def _hyper_synthesis(self, z_hat: torch.Tensor, like: Tokens, groups: UnitGroups) -> torch.Tensor:
        """z_hat (B, Cz, G) -> hyper parameters (B, 2M, V): means then scales."""
        h = self.h_s_in(z_hat.transpose(1, 2))
        if self.h_s_place is not None:
            p = self.cfg.hyper_pool
            h = unpool_groups(h, groups) + self.h_s_place(like.mu_xy[..., 0] % p + p * (like.mu_xy[..., 1] % p))
        h = self.h_s_blocks(like.with_x(h[:, :, None])).x[:, :, 0]
        return self.h_s_out(h).transpose(1, 2)

    def _z_pad(self, y: Tokens, groups: UnitGroups) -> torch.Tensor:
        return groups.pad if self.h_s_place is not None else y.pad

    def _code_y(self, y: torch.Tensor, hyper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: y (B, M, V) -> (y_hat, likelihoods); the ChARM's y_hat is rounded (STE)."""
        means, scales = hyper.chunk(2, dim=1)
        if self.charm is None:
            return self.gaussian_conditional(y, scales, means=means)
        return self.charm(y, means, scales, self.gaussian_conditional)

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> dict[str, Any]:
        """Training pass: noisy latents for the rate, likelihoods over visible tokens only.

        Without slices the synthesis sees the noisy y; with slices it sees y rounded around the
        predicted mean (straight-through), as the context of later slices does at decode time.
        """
        h, w = x.shape[-2:]
        y = self.g_a(x, grid)
        groups = self._groups(y)
        z = self._hyper_analysis(y, groups)
        z_hat, z_lik = self.entropy_bottleneck(z)
        hyper = self._hyper_synthesis(z_hat, y, groups)
        y_hat, y_lik = self._code_y(y.x[:, :, 0].transpose(1, 2), hyper)
        x_hat = self.g_s(y.with_x(y_hat.transpose(1, 2)[:, :, None]), h, w)
        keep, keep_z = ~y.pad[:, None], ~self._z_pad(y, groups)[:, None]  # padding tokens cost nothing
        liks = {"y": y_lik.where(keep, 1.0), "z": z_lik.where(keep_z, 1.0)}
        return {"x_hat": x_hat, "likelihoods": liks, "pad": y.pad}

    @torch.no_grad()
    def compress(self, x: torch.Tensor, grid: torch.Tensor) -> dict[str, Any]:
        """One image (B = 1) with at least one visible unit -> [z string, y string]."""
        y = self.g_a(x, grid)
        groups = self._groups(y)
        z = self._hyper_analysis(y, groups)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-1:])
        means, scales = self._hyper_synthesis(z_hat, y, groups).chunk(2, dim=1)
        y_t = y.x[:, :, 0].transpose(1, 2)
        gc = self.gaussian_conditional
        if self.charm is None:
            y_string = gc.compress(y_t, build_indexes(gc, scales), means)[0]
        else:
            y_string, _ = self.charm.compress(y_t, means, scales, gc)
        return {"strings": [z_strings[0], y_string], "visible": y.x.shape[1]}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Rebuild positions from the unit grid, decode z then y, synthesise the visible MUs."""
        from vcm.codecs.emic.tokens import visible_units

        xy, pad = visible_units(grid)
        v = xy.shape[1]
        like = Tokens(torch.zeros(1, v, 1, self.cfg.dims[-1], device=grid.device), xy, pad, 1)
        if len(strings) != 2:
            raise ValueError(f"expected 2 strings (z, y), got {len(strings)}")
        groups = self._groups(like)
        z_hat = decompress_exact(self.entropy_bottleneck, strings[0], (int(self._z_pad(like, groups).shape[1]),))
        means, scales = self._hyper_synthesis(z_hat, like, groups).chunk(2, dim=1)
        gc = self.gaussian_conditional
        if self.charm is None:
            y_hat = gc.decompress([strings[1]], build_indexes(gc, scales), means=means)
        else:
            y_hat = self.charm.decompress(strings[1], means, scales, gc)
        return self.g_s(like.with_x(y_hat.transpose(1, 2)[:, :, None]), height, width)


def prepare_input(image_u8: torch.Tensor, unit: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H', W') in [0, 1], padded to multiples of ``unit``."""
    x = image_u8.permute(2, 0, 1)[None].float().div(255)
    return pad_to_unit(x, unit)
