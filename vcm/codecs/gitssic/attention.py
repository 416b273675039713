"""Group-restricted Swin window attention (GI Swin-Block, brief section 2.3).

Tokens attend only to tokens of the same group inside their (shifted) window. In shifted
windows the Swin region labels and the group ids are combined as ``region * G + group`` (G =
number of group ids), which cannot collide; the released code adds them (``combine="sum"``,
the ``released`` layout only), which can let two groups meet (brief 2.3 caveat).
"""

from __future__ import annotations

import torch
from torch import nn


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws*ws, C); H and W multiples of ``ws``."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.reshape(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shift_regions(h: int, w: int, ws: int, shift: int, device: torch.device | None = None) -> torch.Tensor:
    """Swin's region ids (H, W) for a cyclic shift: tokens wrapped around get their own regions."""
    img = torch.zeros(h, w, dtype=torch.long, device=device)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, hs in enumerate(cuts):
        for j, wsl in enumerate(cuts):
            img[hs, wsl] = 3 * i + j
    return img


def allowed_pairs(groups: torch.Tensor, ws: int, shift: int, combine: str = "product") -> torch.Tensor:
    """Which token pairs may attend: bool (B * nW, ws*ws, ws*ws) from int group ids (B, H, W).

    ``groups`` is already rolled by ``-shift`` when ``shift`` > 0 (as the tokens are); shifted
    labels are ``region * G + group`` (``product``) or the released code's ``region + group``.
    """
    labels = groups.long()
    if shift:
        span = int(labels.max()) + 1 if combine == "product" else 1
        labels = shift_regions(*labels.shape[1:], ws, shift, labels.device) * span + labels
    win = window_partition(labels[..., None], ws)[..., 0]  # (B*nW, N)
    return win[:, :, None] == win[:, None, :]


class GroupWindowAttention(nn.Module):
    """Window attention with Swin's relative-position bias, restricted by ``allowed`` pairs.

    x: (B*nW, N, C) with N = ws*ws; allowed: bool (B*nW, N, N). Every token may attend to itself,
    so no row is empty.
    """

    def __init__(self, dim: int, heads: int, ws: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.ws = heads, ws
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("rel_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1], persistent=False)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.rel_bias[self.rel_index].permute(2, 0, 1)[None]  # (1, heads, N, N)
        bias = bias.masked_fill(~allowed[:, None], float("-inf"))
        attn = torch.softmax((q * (c // self.heads) ** -0.5) @ k.transpose(-1, -2) + bias, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))
