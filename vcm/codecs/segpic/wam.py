"""SegPIC's window-attention module (WAM; STF's ``Win_noShift_Attention``, brief 4.2)::

    out = x + ResUnit^u(x) * sigmoid(1x1(ResUnit^u(WinAttn(x))))      u = 3 in the paper
    ResUnit(x) = GELU(x + 1x1_{N/2 -> N}(GELU(3x3(GELU(1x1_{N -> N/2}(x))))))

WinAttn is a Swin block (pre-norm window attention with relative-position bias + MLP), shifted
windows when ``shift`` > 0: GIT-SSIC's block with every token in one group.
"""

from __future__ import annotations

import torch
from torch import nn

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


class WAM(nn.Module):
    """x (B, N, h, w), h and w multiples of ``window`` -> same shape; ``units`` ResUnits per
    branch (3 in the paper)."""

    def __init__(self, n: int, heads: int, window: int, shift: int, units: int = 3) -> None:
        super().__init__()
        self.attn = GroupBlock(n, heads, window, shift)
        self.trunk = nn.Sequential(*(ResUnit(n) for _ in range(units)))
        self.gate = nn.Sequential(*(ResUnit(n) for _ in range(units)), nn.Conv2d(n, n, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.permute(0, 2, 3, 1)
        a = self.attn(t, torch.zeros(t.shape[:3], dtype=torch.long, device=x.device)).permute(0, 3, 1, 2)
        return x + self.trunk(x) * torch.sigmoid(self.gate(a))
