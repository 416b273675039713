"""GIT-SSIC analysis / synthesis transforms (brief 2.2): patch (un)embedding + GI Swin stages.

Every operation stays inside a group when the group map is constant on 16x16-pixel cells:
PatchEmbed is a 2x2 stride-2 conv, PatchUnEmbed a 1x1 conv + PixelShuffle(2), LayerNorm and
MLP act per token, and attention is masked to the group (:mod:`.attention`). Tokens added to
pad a stage to a multiple of the window get their own label, so they join no group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vcm.codecs.gitssic.attention import (
    GroupWindowAttention,
    allowed_pairs,
    window_partition,
    window_reverse,
)

LATENT = 16  # pixels per latent cell: four stride-2 stages


class GroupBlock(nn.Module):
    """Swin block (pre-norm attention + MLP); odd blocks use shifted windows."""

    def __init__(self, dim: int, heads: int, ws: int, shift: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = GroupWindowAttention(dim, heads, ws)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) with H, W multiples of the window; labels: int (B, H, W)."""
        h, w = x.shape[1:3]
        shift = self.shift if min(h, w) > self.ws else 0
        t = self.norm1(x)
        if shift:
            t, labels = t.roll((-shift, -shift), (1, 2)), labels.roll((-shift, -shift), (1, 2))
        t = self.attn(window_partition(t, self.ws), allowed_pairs(labels, self.ws, shift))
        t = window_reverse(t, self.ws, h, w)
        if shift:
            t = t.roll((shift, shift), (1, 2))
        x = x + t
        return x + self.mlp(self.norm2(x))


class GroupLayer(nn.Module):
    """``depth`` GI Swin blocks on (B, C, H, W); the latent group map is resized to the stage."""

    def __init__(self, dim: int, depth: int, heads: int, ws: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.ws = ws
        self.blocks = nn.ModuleList(GroupBlock(dim, heads, ws, (i % 2) * (ws // 2), mlp_ratio) for i in range(depth))

    def forward(self, x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); groups: int (B, H/f, W/f) at latent resolution, f = H / groups height."""
        h, w = x.shape[-2:]
        f = h // groups.shape[1]
        labels = groups.repeat_interleave(f, 1).repeat_interleave(f, 2)
        ph, pw = -h % self.ws, -w % self.ws
        t = F.pad(x.permute(0, 2, 3, 1), (0, 0, 0, pw, 0, ph))
        labels = F.pad(labels, (0, pw, 0, ph), value=int(groups.max()) + 1)  # padding: a label of its own
        for blk in self.blocks:
            t = blk(t, labels)
        return t[:, :h, :w].permute(0, 3, 1, 2)


class Analysis(nn.Module):
    """x (B, 3, H, W), H and W multiples of 16 -> y (B, M, H/16, W/16)."""

    def __init__(self, dims: tuple[int, ...], depths: tuple[int, ...], heads: tuple[int, ...], ws: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        ins = (3, *dims[:-1])
        self.embeds = nn.ModuleList(nn.Conv2d(i, o, 2, 2) for i, o in zip(ins, dims))
        self.layers = nn.ModuleList(GroupLayer(d, n, hd, ws, mlp_ratio) for d, n, hd in zip(dims, depths, heads))

    def forward(self, x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        for embed, layer in zip(self.embeds, self.layers):
            x = layer(embed(x), groups)
        return x


class Synthesis(nn.Module):
    """y_hat (B, M, h, w) -> x_hat (B, 3, 16h, 16w); mirrors :class:`Analysis`."""

    def __init__(self, dims: tuple[int, ...], depths: tuple[int, ...], heads: tuple[int, ...], ws: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        rd, outs = dims[::-1], (*dims[::-1][1:], 3)
        self.layers = nn.ModuleList(GroupLayer(d, n, hd, ws, mlp_ratio)
                                    for d, n, hd in zip(rd, depths[::-1], heads[::-1]))
        self.unembeds = nn.ModuleList(nn.Sequential(nn.Conv2d(i, 4 * o, 1), nn.PixelShuffle(2))
                                      for i, o in zip(rd, outs))

    def forward(self, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        for layer, unembed in zip(self.layers, self.unembeds):
            y = unembed(layer(y, groups))
        return y
