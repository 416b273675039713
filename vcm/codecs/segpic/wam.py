"""SegPIC's window-attention module (WAM; STF's ``Win_noShift_Attention``, brief 4.2)::

    out = x + ResUnit^u(x) * sigmoid(1x1(ResUnit^u(Attn(x))))      u = 3 in the paper
    ResUnit(x) = GELU(x + 1x1_{N/2 -> N}(GELU(3x3(GELU(1x1_{N -> N/2}(x))))))

Attn, as released (``official``): x + W-MSA(x), window attention with relative-position bias on
windows cyclically shifted by ``shift`` (also when the map is one window), no LayerNorm, no MLP.
vcm's first layout: a Swin block (pre-norm attention + MLP, GIT-SSIC's block with every token in
one group), not shifted when the map fits one window.
"""

from __future__ import annotations

import torch
from torch import nn

from vcm.codecs.gitssic.attention import GroupWindowAttention, allowed_pairs, window_partition, window_reverse
from vcm.codecs.gitssic.transform import GroupBlock


class ResUnit(nn.Module):
    """Bottleneck residual unit on (B, N, h, w)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(n, n // 2, 1), nn.GELU(), nn.Conv2d(n // 2, n // 2, 3, padding=1),
                                 nn.GELU(), nn.Conv2d(n // 2, n, 1))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.net(x))


class WindowMSA(nn.Module):
    """x + W-MSA(x) on (B, C, h, w), h and w multiples of ``window``; shifted windows are masked
    to their Swin regions."""

    def __init__(self, n: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.attn = GroupWindowAttention(n, heads, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        s, ws = self.shift, self.window
        t = x.permute(0, 2, 3, 1)
        if s:
            t = t.roll((-s, -s), (1, 2))
        allowed = allowed_pairs(torch.zeros(b, h, w, dtype=torch.long, device=x.device), ws, s)
        t = window_reverse(self.attn(window_partition(t, ws), allowed), ws, h, w)
        if s:
            t = t.roll((s, s), (1, 2))
        return x + t.permute(0, 3, 1, 2)


class WAM(nn.Module):
    """x (B, N, h, w), h and w multiples of ``window`` -> same shape; ``units`` ResUnits per
    branch (3 in the paper); ``official``: the released attention (see the module docstring)."""

    def __init__(self, n: int, heads: int, window: int, shift: int, units: int = 3, official: bool = False) -> None:
        super().__init__()
        self.official = official
        self.attn = WindowMSA(n, heads, window, shift) if official else GroupBlock(n, heads, window, shift)
        self.trunk = nn.Sequential(*(ResUnit(n) for _ in range(units)))
        self.gate = nn.Sequential(*(ResUnit(n) for _ in range(units)), nn.Conv2d(n, n, 1))

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        if self.official:
            return self.attn(x)
        t = x.permute(0, 2, 3, 1)
        return self.attn(t, torch.zeros(t.shape[:3], dtype=torch.long, device=x.device)).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.trunk(x) * torch.sigmoid(self.gate(self._attend(x)))
