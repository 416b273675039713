"""The convolutional hyperprior transforms shared by MCM and SegPIC (brief 4.2 / 5.3).

    h_a: five 3x3 convs M -> w0 -> ... -> w4 = Cz, strides 1, 1, 2, 1, 2, GELU between
    h_s: 3x3 Cz -> w3, subpel x2 -> w2, 3x3 -> w1, subpel x2 -> M, 3x3 -> M, GELU between
    h_s with ``square_first`` (SegPIC's released layout): 3x3 Cz -> Cz, subpel x2 -> w3,
         3x3 -> w2, subpel x2 -> w1, 3x3 -> M
"""

from __future__ import annotations

from compressai.layers import subpel_conv3x3
from compressai.models.utils import conv
from torch import nn


def hyper_analysis(m: int, widths: tuple[int, ...]) -> nn.Sequential:
    """y (B, M, h, w) -> z (B, widths[-1], ceil(h/4), ceil(w/4))."""
    if len(widths) != 5:
        raise ValueError(f"the hyper transforms need 5 widths, got {len(widths)}")
    layers: list[nn.Module] = []
    for a, b, s in zip((m, *widths[:-1]), widths, (1, 1, 2, 1, 2)):
        layers += [conv(a, b, 3, s), nn.GELU()]
    return nn.Sequential(*layers[:-1])


def hyper_synthesis(m: int, widths: tuple[int, ...], square_first: bool = False) -> nn.Sequential:
    """z_hat (B, Cz, h', w') -> (B, M, 4h', 4w'); crop to y's size. With ``square_first`` the
    widths step up one layer later (the first conv keeps Cz, the last maps w1 -> M)."""
    cz, mid = widths[-1], widths[1:4][::-1]
    c = (cz, cz, *mid, m) if square_first else (cz, *mid, m, m)
    return nn.Sequential(conv(c[0], c[1], 3, 1), nn.GELU(), subpel_conv3x3(c[1], c[2], 2), nn.GELU(),
                         conv(c[2], c[3], 3, 1), nn.GELU(), subpel_conv3x3(c[3], c[4], 2), nn.GELU(),
                         conv(c[4], c[5], 3, 1))
