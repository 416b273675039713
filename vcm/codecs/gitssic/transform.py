"""GIT-SSIC analysis / synthesis transforms (brief 2.2): patch (un)embedding + GI Swin stages.

Every operation stays inside a group when the group map is constant on 16x16-pixel cells:
PatchEmbed is a 2x2 stride-2 conv, PatchUnEmbed a 1x1 conv + PixelShuffle(2), LayerNorm and
MLP act per token, and attention is masked to the group (:mod:`.attention`). Tokens added to
pad a stage to a multiple of the window are zeros inside each block with the edge's label
(official code), or, in vcm's layout, carried through the stage with a label of their own.
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
    """Swin block (pre-norm attention + MLP); odd blocks use shifted windows.

    ``always_shift``: shift also when a stage fits one window (the official code; standard Swin,
    and vcm's layout, do not); ``combine``: how shifted-window labels join region and group
    (:func:`.attention.allowed_pairs`).
    """

    def __init__(self, dim: int, heads: int, ws: int, shift: int, mlp_ratio: float = 4.0,
                 always_shift: bool = False, combine: str = "product") -> None:
        super().__init__()
        self.ws, self.shift, self.always_shift, self.combine = ws, shift, always_shift, combine
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = GroupWindowAttention(dim, heads, ws)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C); labels: int (B, Hp, Wp), Hp and Wp multiples of the window. Where the
        labels are larger, the normalised tokens are zero-padded for attention only (official)."""
        (h, w), (hp, wp) = x.shape[1:3], labels.shape[1:]
        shift = self.shift if self.always_shift or min(hp, wp) > self.ws else 0
        t = F.pad(self.norm1(x), (0, 0, 0, wp - w, 0, hp - h))
        if shift:
            t, labels = t.roll((-shift, -shift), (1, 2)), labels.roll((-shift, -shift), (1, 2))
        t = self.attn(window_partition(t, self.ws), allowed_pairs(labels, self.ws, shift, self.combine))
        t = window_reverse(t, self.ws, hp, wp)
        if shift:
            t = t.roll((shift, shift), (1, 2))
        x = x + t[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class GroupLayer(nn.Module):
    """``depth`` GI Swin blocks on (B, C, H, W); the latent group map is resized to the stage.

    ``layout`` (see :class:`.model.GitSsicConfig`): ``vcm`` pads the stage once, padding tokens
    with a label of their own; ``official`` and ``released`` pad zeros inside each block and
    always shift; ``official`` repeats each latent cell's id over its tokens (padding takes the
    edge's id), ``released`` resizes the map to the padded stage (nearest), as the released code.
    """

    def __init__(self, dim: int, depth: int, heads: int, ws: int, mlp_ratio: float = 4.0,
                 layout: str = "vcm") -> None:
        super().__init__()
        self.ws, self.layout = ws, layout
        legacy = layout == "vcm"
        self.blocks = nn.ModuleList(GroupBlock(dim, heads, ws, (i % 2) * (ws // 2), mlp_ratio, not legacy,
                                               "sum" if layout == "released" else "product") for i in range(depth))

    def _labels(self, groups: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """int (B, Hp, Wp) token labels of a stage of (h, w) tokens from latent ids (B, h', w')."""
        ph, pw = -h % self.ws, -w % self.ws
        if self.layout == "released":
            return F.interpolate(groups[:, None].float(), (h + ph, w + pw), mode="nearest")[:, 0].long()
        f = h // groups.shape[1]
        labels = groups.repeat_interleave(f, 1).repeat_interleave(f, 2)
        if self.layout == "vcm":
            return F.pad(labels, (0, pw, 0, ph), value=int(groups.max()) + 1)  # padding: a label of its own
        return F.pad(labels[:, None].float(), (0, pw, 0, ph), mode="replicate")[:, 0].long()

    def forward(self, x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); groups: int (B, H/f, W/f) at latent resolution, f = H / groups height."""
        h, w = x.shape[-2:]
        labels = self._labels(groups, h, w)
        t = x.permute(0, 2, 3, 1)
        if self.layout == "vcm":
            t = F.pad(t, (0, 0, 0, labels.shape[2] - w, 0, labels.shape[1] - h))
        for blk in self.blocks:
            t = blk(t, labels)
        return t[:, :h, :w].permute(0, 3, 1, 2)


class Analysis(nn.Module):
    """x (B, 3, H, W), H and W multiples of 16 -> y (B, M, H/16, W/16)."""

    def __init__(self, dims: tuple[int, ...], depths: tuple[int, ...], heads: tuple[int, ...], ws: int,
                 mlp_ratio: float = 4.0, layout: str = "vcm") -> None:
        super().__init__()
        ins = (3, *dims[:-1])
        self.embeds = nn.ModuleList(nn.Conv2d(i, o, 2, 2) for i, o in zip(ins, dims))
        self.layers = nn.ModuleList(GroupLayer(d, n, hd, ws, mlp_ratio, layout)
                                    for d, n, hd in zip(dims, depths, heads))

    def forward(self, x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        for embed, layer in zip(self.embeds, self.layers):
            x = layer(embed(x), groups)
        return x


class Synthesis(nn.Module):
    """y_hat (B, M, h, w) -> x_hat (B, 3, 16h, 16w); mirrors :class:`Analysis`."""

    def __init__(self, dims: tuple[int, ...], depths: tuple[int, ...], heads: tuple[int, ...], ws: int,
                 mlp_ratio: float = 4.0, layout: str = "vcm") -> None:
        super().__init__()
        rd, outs = dims[::-1], (*dims[::-1][1:], 3)
        self.layers = nn.ModuleList(GroupLayer(d, n, hd, ws, mlp_ratio, layout)
                                    for d, n, hd in zip(rd, depths[::-1], heads[::-1]))
        self.unembeds = nn.ModuleList(nn.Sequential(nn.Conv2d(i, 4 * o, 1), nn.PixelShuffle(2))
                                      for i, o in zip(rd, outs))

    def forward(self, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        for layer, unembed in zip(self.layers, self.unembeds):
            y = unembed(layer(y, groups))
        return y
