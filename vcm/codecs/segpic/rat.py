"""SegPIC's building blocks (brief 4.3, the released code's form): the Region-Adaptive Transform,
the Scale Affine Layer blocks, and prototype pooling per segment (training) or per grid cell
(inference, no mask).

RAT on F (B, C, h, w) with P_exp (B, Cp, h, w), the prototype of each pixel's region::

    F1 = CTL(F) = 1x1(LReLU(1x1(F)))                               channel transform layers
    K  = DKG([F1, P_exp]) = GConv_{C k^2, 3x3, groups C}(LReLU(3x3(LReLU(1x1(cat)))))
    O(c, x) = sum_j K(c, j, x) F1(c, x + d_j)                      DPSConv: a k x k kernel per pixel
                                                                     and channel (F.unfold + einsum)
    O  = CAG(O) * O,  CAG = sigmoid(1x1(LReLU(1x1(GAP(O)))))        channel attention, C -> C / r -> C
    RAT(F) = 1x1(O) + F
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import nn

EPS = 5e-4  # SegPIC's mask_pool2d denominator term


class RegionAdaptiveTransform(nn.Module):
    """RAT; ``proto`` channels of P_exp, ``k`` the DPSConv kernel, CAG reduction ``r`` (1 as
    released; vcm's first layout guessed 4)."""

    def __init__(self, channels: int, proto: int, k: int = 3, r: int = 4) -> None:
        super().__init__()
        c, self.k, mid = channels, k, max(1, channels // r)
        act = nn.LeakyReLU(0.1)
        self.ctl = nn.Sequential(nn.Conv2d(c, c, 1), act, nn.Conv2d(c, c, 1))
        self.dkg = nn.Sequential(nn.Conv2d(c + proto, c, 1), act, nn.Conv2d(c, c, 3, padding=1), act,
                                 nn.Conv2d(c, c * k * k, 3, padding=1, groups=c))
        self.cag = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, mid, 1), act, nn.Conv2d(mid, c, 1), nn.Sigmoid())
        self.out = nn.Conv2d(c, c, 1)

    def dpsconv(self, f1: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """Per-pixel depthwise conv: f1 (B, C, h, w), kernels (B, C*k*k, h, w) -> (B, C, h, w)."""
        b, c, h, w = f1.shape
        k2 = self.k * self.k
        patches = F.unfold(f1, self.k, padding=self.k // 2).view(b, c, k2, h, w)
        return torch.einsum("bcjhw,bcjhw->bchw", kernels.view(b, c, k2, h, w), patches)

    def forward(self, x: torch.Tensor, proto: torch.Tensor) -> torch.Tensor:
        """x (B, C, h, w), proto (B, Cp, h, w) -> (B, C, h, w)."""
        f1 = self.ctl(x)
        o = self.dpsconv(f1, self.dkg(torch.cat([f1, proto], 1)))
        return self.out(self.cag(o) * o) + x


class _Affine(nn.Module):
    """[s, b] = split(1x1(GELU(1x1(F)))); F * (1 + s) + b (the released per-pixel SAL)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.GELU(), nn.Conv2d(channels, 2 * channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, b = self.net(x).chunk(2, 1)
        return x * (1 + s) + b


class DownSAL(nn.Module):
    """Conv 5x5 stride 2 -> GDN -> SAL: (B, cin, H, W) -> (B, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv, self.gdn, self.sal = nn.Conv2d(cin, cout, 5, 2, 2), GDN(cout), _Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sal(self.gdn(self.conv(x)))


class UpSAL(nn.Module):
    """SAL -> ConvTranspose 5x5 stride 2 -> GDN (not inverse, as released): (B, cin, h, w) -> (B, cout, 2h, 2w)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sal, self.conv, self.gdn = _Affine(cin), nn.ConvTranspose2d(cin, cout, 5, 2, 2, 1), GDN(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gdn(self.conv(self.sal(x)))


def mask_pool(f: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
    """Mean feature per segment: f (B, C, h, w), seg long (B, h, w) in [0, n) -> (B, n, C);
    sum / (count + 5e-4), vectorised with ``scatter_add`` (empty segments give 0)."""
    b, c = f.shape[:2]
    idx = seg.reshape(b, 1, -1)
    sums = f.new_zeros(b, c, n).scatter_add(2, idx.expand(-1, c, -1), f.reshape(b, c, -1))
    counts = f.new_zeros(b, 1, n).scatter_add(2, idx, torch.ones_like(idx, dtype=f.dtype))
    return (sums / (counts + EPS)).transpose(1, 2)


def mask_expand(protos: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """Each pixel's prototype: protos (B, n, C), seg (B, h, w) -> (B, C, h, w)."""
    b, _, c = protos.shape
    idx = seg.reshape(b, -1, 1).expand(-1, -1, c)
    return protos.gather(1, idx).transpose(1, 2).reshape(b, c, *seg.shape[-2:])


def grid_pool(f: torch.Tensor, g: int = 4) -> torch.Tensor:
    """Inference prototypes without a mask: the g x g grid means, (B, C, g, g)."""
    return F.adaptive_avg_pool2d(f, g)


def grid_expand(protos: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, C, g, g) -> (B, C, h, w), nearest: each pixel gets its grid cell's prototype."""
    return F.interpolate(protos, size=(h, w), mode="nearest")
