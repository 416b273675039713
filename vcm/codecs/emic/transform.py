"""EMIC analysis / synthesis transforms: hierarchical (D)PISA transformers on visible MUs.

    visible MUs --patchify(2px)--> Linear --[stage 1: s=8]--merge--[s=4]--merge--[s=2]--merge--[s=1]--> y (B, V, M)
    y --[s=1]--split--[s=2]--split--[s=4]--split--[s=8]--> Linear --unpatchify--> visible MUs

Stages with s > 1 use DPISA (across MUs, then inside each MU); the last (s = 1) is full PISA.
Depths 2/2/6/2 and widths 128..320 are the paper-size config; tests use tiny widths.
"""

from __future__ import annotations

import torch
from torch import nn

from vcm.codecs.emic.attention import decay_log_gammas, dpisa
from vcm.codecs.emic.tokens import Tokens, au_coords, merge2x2, patchify, split2x2, unpatchify


class EmicBlock(nn.Module):
    """Pre-norm transformer block: x + DPISA(LN x); x + MLP(LN x). Tokens (B, V, s*s, C)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.register_buffer("log_gamma", decay_log_gammas(heads), persistent=False)

    def forward(self, t: Tokens) -> Tokens:
        x = t.x
        b, v, a, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, v, a, 3, self.heads, c // self.heads)
        q, k, val = qkv.permute(3, 0, 4, 1, 2, 5)  # each (B, H, V, A, d)
        att = dpisa(q, k, val, t.mu_xy, au_coords(t.side, x.device), self.log_gamma, t.pad)
        x = x + self.proj(att.permute(0, 2, 3, 1, 4).reshape(b, v, a, c))
        x = x + self.mlp(self.norm2(x))
        return t.with_x(x)


class Stage(nn.Sequential):
    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__(*[EmicBlock(dim, heads) for _ in range(depth)])


class Analysis(nn.Module):
    """Image (B, 3, H, W) + unit grid (B, H/unit, W/unit) -> latent tokens y (B, V, dims[-1])."""

    def __init__(self, dims: tuple[int, ...] = (128, 192, 256, 320), depths: tuple[int, ...] = (2, 2, 6, 2),
                 heads: tuple[int, ...] = (4, 6, 8, 10), unit: int = 16, patch: int = 2) -> None:
        super().__init__()
        if unit // patch != 2 ** (len(dims) - 1):
            raise ValueError(f"unit/patch must be 2^(stages-1): {unit}/{patch} with {len(dims)} stages")
        self.unit, self.patch = unit, patch
        self.embed = nn.Linear(3 * patch * patch, dims[0])
        self.stages = nn.ModuleList(Stage(d, n, h) for d, n, h in zip(dims, depths, heads))
        self.merges = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(4 * a), nn.Linear(4 * a, b)) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, image: torch.Tensor, grid: torch.Tensor) -> Tokens:
        t = patchify(image, grid, self.unit, self.patch)
        t = t.with_x(self.embed(t.x))
        for i, stage in enumerate(self.stages):
            t = stage(t)
            if i < len(self.merges):
                t = t.with_x(self.merges[i](merge2x2(t.x, t.side)), t.side // 2)
        return t  # side 1: (B, V, 1, M)


class Synthesis(nn.Module):
    """Latent tokens (B, V, 1, M) -> reconstructed visible MUs on a zero canvas (B, 3, H, W)."""

    def __init__(self, dims: tuple[int, ...] = (128, 192, 256, 320), depths: tuple[int, ...] = (2, 2, 6, 2),
                 heads: tuple[int, ...] = (4, 6, 8, 10), unit: int = 16, patch: int = 2) -> None:
        super().__init__()
        self.unit, self.patch = unit, patch
        rd, rn, rh = dims[::-1], depths[::-1], heads[::-1]
        self.stages = nn.ModuleList(Stage(d, n, h) for d, n, h in zip(rd, rn, rh))
        self.splits = nn.ModuleList(nn.Linear(a, 4 * b) for a, b in zip(rd[:-1], rd[1:]))
        self.unembed = nn.Linear(dims[0], 3 * patch * patch)

    def forward(self, t: Tokens, height: int, width: int) -> torch.Tensor:
        for i, stage in enumerate(self.stages):
            t = stage(t)
            if i < len(self.splits):
                t = t.with_x(split2x2(self.splits[i](t.x), t.side), t.side * 2)
        return unpatchify(t.with_x(self.unembed(t.x)), height, width, self.unit)
