"""The MAE pieces of MCM: patches, fixed 2-D sin-cos positions, the ViT encoder over visible
patches only, and the decoder that rebuilds every patch with learned mask tokens.

Blocks are torch's pre-norm ``nn.TransformerEncoderLayer`` (MAE's block: LN -> MHSA -> LN ->
MLP with GELU, qkv bias, LayerNorm eps 1e-6). Shapes: images (B, 3, H, W) with H, W multiples of
the patch p; patches (B, L, 3 p^2) in raster order, L = (H/p) (W/p); visible ids (B, V) index L.

Positions: computed sin-cos for any grid (``table=0``, vcm's legacy layout) or, as in MCM, a
stored ``table`` x ``table`` grid of embeddings (buffer ``pos``; MCM initialises it with sin-cos
but its training loads MAE's 14 x 14 table bicubically resized to 16 x 16, so a trained file's
table is not sin-cos). A smaller grid uses the table's top-left corner, as sin-cos would.
"""

from __future__ import annotations

import torch
from torch import nn


def sincos_2d(dim: int, gh: int, gw: int, device: torch.device | None = None) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos embedding (gh*gw, dim): half the channels code the row, half the column."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a dim divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64, device=device) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")

    def one(pos: torch.Tensor) -> torch.Tensor:
        out = pos.reshape(-1, 1).double() * omega
        return torch.cat([out.sin(), out.cos()], 1)

    return torch.cat([one(cols), one(rows)], 1).float()  # MAE: width coordinate first


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, L, p*p*3), raster order, each patch (p, p, 3) flattened."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, p: int, gh: int, gw: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, gh*gw, p*p*3) -> (B, 3, gh*p, gw*p)."""
    b = patches.shape[0]
    return patches.reshape(b, gh, gw, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(b, 3, gh * p, gw * p)


class Positions(nn.Module):
    """Position embeddings (gh*gw, dim) of a gh x gw patch grid; see the module docstring."""

    def __init__(self, dim: int, table: int = 0) -> None:
        super().__init__()
        self.dim, self.table = dim, table
        if table:
            self.register_buffer("pos", sincos_2d(dim, table, table))

    def forward(self, gh: int, gw: int, device: torch.device) -> torch.Tensor:
        if not self.table:
            return sincos_2d(self.dim, gh, gw, device)
        if gh > self.table or gw > self.table:
            raise ValueError(f"the model has position embeddings for {self.table} x {self.table} patches, "
                             f"the image (tile) has {gh} x {gw}: code it in smaller tiles")
        return self.pos.reshape(self.table, self.table, self.dim)[:gh, :gw].reshape(gh * gw, self.dim)


def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float) -> nn.ModuleList:
    return nn.ModuleList(
        nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu",
                                   layer_norm_eps=1e-6, batch_first=True, norm_first=True)
        for _ in range(depth))


def gather_tokens(t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(B, L, C) at ids (B, V) -> (B, V, C)."""
    return t.gather(1, ids[..., None].expand(-1, -1, t.shape[-1]))


class Encoder(nn.Module):
    """Patch embedding + ViT on the visible patches only (MAE encoder with a cls token)."""

    def __init__(self, patch: int, dim: int, depth: int, heads: int, mlp_ratio: float, table: int = 0) -> None:
        super().__init__()
        self.patch, self.dim = patch, dim
        self.positions = Positions(dim, table)
        self.embed = nn.Linear(3 * patch * patch, dim)  # = Conv2d(3, dim, p, stride p) on each patch
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = _blocks(dim, depth, heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.normal_(self.cls, std=0.02)

    def forward(self, x: torch.Tensor, ids: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 3, H, W), ids (B, V) visible patches, pad (B, V) True on padding -> (B, V, dim)."""
        gh, gw = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        pos = self.positions(gh, gw, x.device)[ids]
        patches = gather_tokens(patchify(x, self.patch), ids)  # only V patches are embedded
        t = torch.cat([self.cls.expand(len(x), -1, -1), self.embed(patches) + pos], 1)
        mask = None if pad is None or not pad.any() else torch.cat([pad.new_zeros(len(x), 1), pad], 1)
        for blk in self.blocks:
            t = blk(t, src_key_padding_mask=mask)
        return self.norm(t)[:, 1:]


class Decoder(nn.Module):
    """MAE decoder: visible tokens + learned mask tokens at the other places -> every patch."""

    def __init__(self, patch: int, in_dim: int, dim: int, depth: int, heads: int, mlp_ratio: float,
                 table: int = 0) -> None:
        super().__init__()
        self.patch, self.dim = patch, dim
        self.positions = Positions(dim, table)
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = _blocks(dim, depth, heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, patch * patch * 3)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: torch.Tensor, ids: torch.Tensor, pad: torch.Tensor | None, gh: int, gw: int) -> torch.Tensor:
        """tokens (B, V, in_dim) at ids (B, V) -> image (B, 3, gh*p, gw*p)."""
        b, n = tokens.shape[0], gh * gw
        safe = ids if pad is None else ids.masked_fill(pad, n)  # padding goes to a dropped slot n
        t = self.embed(tokens)
        seen = torch.zeros(b, n + 1, dtype=torch.bool, device=t.device).scatter(1, safe, True)[:, :n]
        placed = t.new_zeros(b, n + 1, self.dim).scatter(1, safe[..., None].expand(-1, -1, self.dim), t)[:, :n]
        full = torch.where(seen[..., None], placed, self.mask_token.to(t.dtype))
        full = full + self.positions(gh, gw, t.device)
        for blk in self.blocks:
            full = blk(full)
        return unpatchify(self.pred(self.norm(full)), self.patch, gh, gw)
