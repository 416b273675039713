"""EMIC analysis / synthesis transforms: hierarchical (D)PISA transformers on visible MUs.

    visible MUs --patchify(2px)--> Linear --[stage 1: s=8]--merge--[s=4]--merge--[s=2]--merge--[s=1]--> y (B, V, M)
    y --[s=1]--split--[s=2]--split--[s=4]--split--[s=8]--> Linear --unpatchify--> visible MUs

Stages with s > 1 use DPISA (across MUs, then inside each MU); the last (s = 1) is full PISA.
Depths 2/2/6/2 and widths 128..320 are the paper-size config; tests use tiny widths.
"""

from __future__ import annotations

import torch
from torch import nn

from vcm.codecs.emic.attention import cross_mu, decay_log_gammas, dpisa, within_mu
from vcm.codecs.emic.tokens import Tokens, au_coords, merge2x2, patchify, split2x2, unpatchify

LEAN_ELEMENTS = 2**24  # inference on token tensors larger than this (elements) runs block-wise


class EmicBlock(nn.Module):
    """Pre-norm transformer block: x + DPISA(LN x); x + MLP(LN x). Tokens (B, V, s*s, C).

    Without gradients and on large inputs (more than ``LEAN_ELEMENTS``) the block runs
    memory-lean: step 1 of DPISA over groups of attention-unit slots, then step 2, the
    projection and the MLP over groups of mask units, so no (V, A, 4C) or (V, A, 3C) tensor
    of the whole image exists (a 2048^2 image has 16k MUs). Same function, different order of
    evaluation; encoder and decoder take the same path because they see the same shapes.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, window: int = 0) -> None:
        super().__init__()
        self.window = window
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.register_buffer("log_gamma", decay_log_gammas(heads), persistent=False)

    def _qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, V, A, C) -> stacked q, k, v of shape (3, B, H, V, A, d)."""
        b, v, a, c = x.shape
        return self.qkv(self.norm1(x)).reshape(b, v, a, 3, self.heads, c // self.heads).permute(3, 0, 4, 1, 2, 5)

    def _out(self, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """Residual projection of the attention (B, H, V, A, d) and the MLP: -> (B, V, A, C)."""
        x = x + self.proj(att.permute(0, 2, 3, 1, 4).reshape(x.shape))
        return x + self.mlp(self.norm2(x))

    def forward(self, t: Tokens) -> Tokens:
        if not torch.is_grad_enabled() and t.x.numel() > LEAN_ELEMENTS:
            return t.with_x(self._forward_lean(t))
        q, k, val = self._qkv(t.x)
        att = dpisa(q, k, val, t.mu_xy, au_coords(t.side, t.x.device), self.log_gamma, t.pad, window=self.window,
                    cache=t.biases)
        return t.with_x(self._out(t.x, att))

    def _forward_lean(self, t: Tokens) -> torch.Tensor:
        x = t.x
        b, v, a, c = x.shape
        v1 = x.new_empty(b, self.heads, v, a, c // self.heads)
        slots = max(1, LEAN_ELEMENTS // (3 * b * v * c))
        for s in range(0, a, slots):  # step 1 (across MUs) per group of attention-unit slots
            q, k, val = self._qkv(x[:, :, s:s + slots])
            v1[:, :, :, s:s + slots] = cross_mu(q, k, val, t.mu_xy, self.log_gamma, t.pad, window=self.window,
                                                cache=t.biases)
        out, au = torch.empty_like(x), au_coords(t.side, x.device)
        units = max(1, LEAN_ELEMENTS // (4 * b * a * c))
        for s in range(0, v, units):  # step 2, projection and MLP per group of MUs
            q, k, _ = self._qkv(x[:, s:s + units])
            out[:, s:s + units] = self._out(x[:, s:s + units], within_mu(q, k, v1[:, :, s:s + units], au,
                                                                            self.log_gamma, t.biases))
        return out


class Stage(nn.Sequential):
    def __init__(self, dim: int, depth: int, heads: int, window: int = 0) -> None:
        super().__init__(*[EmicBlock(dim, heads, window=window) for _ in range(depth)])


class Analysis(nn.Module):
    """Image (B, 3, H, W) + unit grid (B, H/unit, W/unit) -> latent tokens y (B, V, dims[-1])."""

    def __init__(self, dims: tuple[int, ...] = (128, 192, 256, 320), depths: tuple[int, ...] = (2, 2, 6, 2),
                 heads: tuple[int, ...] = (4, 6, 8, 10), unit: int = 16, patch: int = 2, window: int = 0) -> None:
        super().__init__()
        if unit // patch != 2 ** (len(dims) - 1):
            raise ValueError(f"unit/patch must be 2^(stages-1): {unit}/{patch} with {len(dims)} stages")
        self.unit, self.patch = unit, patch
        self.embed = nn.Linear(3 * patch * patch, dims[0])
        self.stages = nn.ModuleList(Stage(d, n, h, window) for d, n, h in zip(dims, depths, heads))
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
                 heads: tuple[int, ...] = (4, 6, 8, 10), unit: int = 16, patch: int = 2, window: int = 0) -> None:
        super().__init__()
        self.unit, self.patch = unit, patch
        rd, rn, rh = dims[::-1], depths[::-1], heads[::-1]
        self.stages = nn.ModuleList(Stage(d, n, h, window) for d, n, h in zip(rd, rn, rh))
        self.splits = nn.ModuleList(nn.Linear(a, 4 * b) for a, b in zip(rd[:-1], rd[1:]))
        self.unembed = nn.Linear(dims[0], 3 * patch * patch)

    def forward(self, t: Tokens, height: int, width: int) -> torch.Tensor:
        for i, stage in enumerate(self.stages):
            t = stage(t)
            if i < len(self.splits):
                t = t.with_x(split2x2(self.splits[i](t.x), t.side), t.side * 2)
        return unpatchify(t.with_x(self.unembed(t.x)), height, width, self.unit)
