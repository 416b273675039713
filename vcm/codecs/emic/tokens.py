"""MU-major token sets: only visible mask units (MUs) exist, each a dense s x s token block.

Masks are unit-aligned (mask unit = 16 px by default), so a 2x2 merge never mixes visible and
masked content: merging is a reshape inside each MU, and the MU coordinates never change.
Batches with different visible counts are padded with ``pad`` = True units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from vcm.codecs.emic.attention import BiasCache


@dataclass(frozen=True)
class Tokens:
    """x: (B, V, s*s, C) tokens; mu_xy: (B, V, 2) MU grid coords (x, y); pad: (B, V) bool.

    ``biases`` caches the attention's position biases of these coordinates: every token set
    made by :meth:`with_x` shares it (same coordinates); a new set of coordinates needs a new
    ``Tokens``.
    """

    x: torch.Tensor
    mu_xy: torch.Tensor
    pad: torch.Tensor
    side: int
    biases: BiasCache = field(default_factory=BiasCache, compare=False, repr=False)

    def with_x(self, x: torch.Tensor, side: int | None = None) -> Tokens:
        return replace(self, x=x, side=self.side if side is None else side)


def au_coords(side: int, device: torch.device | None = None) -> torch.Tensor:
    """(side*side, 2) coordinates (x, y) of the attention units inside an MU, row-major."""
    ys, xs = torch.meshgrid(torch.arange(side, device=device), torch.arange(side, device=device), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)


def visible_units(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MU coords (B, V, 2) of True cells of bool (B, gh, gw), padded; and the pad mask (B, V)."""
    b = grid.shape[0]
    lists = [g.nonzero()[:, [1, 0]] for g in grid]  # (n_i, 2) as (x, y), row-major order
    v = max([len(t) for t in lists] + [1])
    xy = torch.zeros(b, v, 2, dtype=torch.long, device=grid.device)
    pad = torch.ones(b, v, dtype=torch.bool, device=grid.device)
    for i, t in enumerate(lists):
        xy[i, : len(t)], pad[i, : len(t)] = t, False
    return xy, pad


def patchify(image: torch.Tensor, grid: torch.Tensor, unit: int, patch: int) -> Tokens:
    """Gather visible MUs of (B, 3, H, W) into tokens of ``patch`` x ``patch`` pixels.

    H, W must be multiples of ``unit``; returns x of shape (B, V, (unit/patch)^2, 3*patch*patch).
    """
    b, c, h, w = image.shape
    if h % unit or w % unit or grid.shape[1:] != (h // unit, w // unit):
        raise ValueError(f"image {h}x{w} and grid {tuple(grid.shape[1:])} do not fit unit {unit}")
    xy, pad = visible_units(grid)
    s = unit // patch
    units = image.reshape(b, c, h // unit, unit, w // unit, unit).permute(0, 2, 4, 1, 3, 5)
    crops = units[torch.arange(b)[:, None], xy[..., 1], xy[..., 0]]  # (B, V, C, unit, unit)
    crops = crops * (~pad)[..., None, None, None]
    tok = crops.reshape(b, -1, c, s, patch, s, patch).permute(0, 1, 3, 5, 2, 4, 6)
    return Tokens(tok.reshape(b, xy.shape[1], s * s, c * patch * patch), xy, pad, s)


def unpatchify(t: Tokens, height: int, width: int, unit: int, channels: int = 3) -> torch.Tensor:
    """Scatter token patches back to a zero canvas (B, channels, height, width)."""
    b, v, _, _ = t.x.shape
    s, patch = t.side, unit // t.side
    crops = t.x.reshape(b, v, s, s, channels, patch, patch).permute(0, 1, 4, 2, 5, 3, 6)
    crops = crops.reshape(b, v, channels, unit, unit) * (~t.pad)[..., None, None, None]
    canvas = t.x.new_zeros(b, height // unit, width // unit, channels, unit, unit)
    bi = torch.arange(b, device=t.x.device)[:, None].expand(b, v)[~t.pad]
    canvas[bi, t.mu_xy[..., 1][~t.pad], t.mu_xy[..., 0][~t.pad]] = crops[~t.pad]
    return canvas.permute(0, 3, 1, 4, 2, 5).reshape(b, channels, height, width)


def merge2x2(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, V, s*s, C) -> (B, V, (s/2)^2, 4C): concatenate each 2x2 group inside an MU."""
    b, v, _, c = x.shape
    x = x.reshape(b, v, side // 2, 2, side // 2, 2, c).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, v, (side // 2) ** 2, 4 * c)


def split2x2(x: torch.Tensor, side: int) -> torch.Tensor:
    """Inverse of :func:`merge2x2`: (B, V, s*s, 4C) -> (B, V, (2s)^2, C)."""
    b, v, _, c4 = x.shape
    x = x.reshape(b, v, side, side, 2, 2, c4 // 4).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, v, 4 * side * side, c4 // 4)


def pad_to_unit(image: torch.Tensor, unit: int) -> torch.Tensor:
    """Replicate-pad (B, C, H, W) on the bottom/right to multiples of ``unit``."""
    h, w = image.shape[-2:]
    return F.pad(image, (0, -w % unit, 0, -h % unit), mode="replicate")


@dataclass(frozen=True)
class UnitGroups:
    """Visible MUs grouped into p x p MU cells (the hyper-latent's grid, brief 3.4 option (b)).

    assign: (B, V) group index of each MU (0 for padding); xy: (B, G, 2) group coords;
    pad: (B, G) True for padding groups; count: (B, G) visible MUs per group (>= 1).
    """

    assign: torch.Tensor
    xy: torch.Tensor
    pad: torch.Tensor
    count: torch.Tensor


def group_units(mu_xy: torch.Tensor, pad: torch.Tensor, p: int) -> UnitGroups:
    """Groups of the visible MUs (B, V, 2) / pad (B, V); identical at encoder and decoder."""
    b, v = pad.shape
    assign = torch.zeros(b, v, dtype=torch.long, device=pad.device)
    per = []
    for i in range(b):
        uniq, inv = torch.unique(torch.div(mu_xy[i][~pad[i]], p, rounding_mode="floor"), dim=0,
                                 return_inverse=True)
        assign[i, ~pad[i]] = inv
        per.append(uniq)
    g = max([len(u) for u in per] + [1])
    xy = torch.zeros(b, g, 2, dtype=torch.long, device=pad.device)
    gpad = torch.ones(b, g, dtype=torch.bool, device=pad.device)
    for i, u in enumerate(per):
        xy[i, : len(u)], gpad[i, : len(u)] = u, False
    count = torch.zeros(b, g, device=pad.device).scatter_add_(1, assign, (~pad).float()).clamp_min(1)
    return UnitGroups(assign, xy, gpad, count)


def pool_groups(x: torch.Tensor, pad: torch.Tensor, groups: UnitGroups) -> torch.Tensor:
    """Mean of the visible MUs' features per group: (B, V, C) -> (B, G, C)."""
    b, _, c = x.shape
    summed = x.new_zeros(b, groups.xy.shape[1], c)
    summed.scatter_add_(1, groups.assign[..., None].expand(-1, -1, c), x * (~pad)[..., None])
    return summed / groups.count[..., None]


def unpool_groups(g: torch.Tensor, groups: UnitGroups) -> torch.Tensor:
    """Each MU takes its group's features: (B, G, C) -> (B, V, C)."""
    return torch.gather(g, 1, groups.assign[..., None].expand(-1, -1, g.shape[-1]))
