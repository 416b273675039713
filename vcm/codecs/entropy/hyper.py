"""The convolutional hyperprior transforms shared by MCM and SegPIC (brief 4.2 / 5.3).

    h_a: five 3x3 convs M -> w0 -> ... -> w4 = Cz, strides 1, 1, 2, 1, 2, GELU between
    h_s: 3x3 Cz -> w3, subpel x2 -> w2, 3x3 -> w1, subpel x2 -> w0, 3x3 -> M, GELU between
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


def hyper_synthesis(m: int, widths: tuple[int, ...]) -> nn.Sequential:
    """z_hat (B, Cz, h', w') -> (B, M, 4h', 4w'); crop to y's size."""
    w = (m, *widths[1:])[::-1]
    return nn.Sequential(conv(w[0], w[1], 3, 1), nn.GELU(), subpel_conv3x3(w[1], w[2], 2), nn.GELU(),
                         conv(w[2], w[3], 3, 1), nn.GELU(), subpel_conv3x3(w[3], w[4], 2), nn.GELU(),
                         conv(w[4], w[4], 3, 1))
