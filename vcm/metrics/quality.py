"""Pixel fidelity: PSNR over the image and inside / outside a mask (8-bit peak); MS-SSIM."""

from __future__ import annotations

import math

import numpy as np

PSNR_CAP = 100.0  # dB used for lossless images when averaging PSNR over images


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float | None:
    """PSNR in dB between uint8 images over the pixels where ``where`` is True (all if None).

    None when the region is empty; ``inf`` when identical.
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    if where is not None:
        if where.shape != a.shape[:2]:
            raise ValueError(f"mask size {where.shape} does not match image size {a.shape[:2]}")
        diff = diff[where]
    if diff.size == 0:
        return None
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


MSSSIM_MIN_SIDE = 161  # 5 scales of pytorch_msssim's 11-px window need a side > (11 - 1) * 2**4


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM (pytorch_msssim, 5 scales, window 11, sigma 1.5) of uint8 RGB images, in [0, 1];
    None when the image is too small for 5 scales."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < MSSSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    ta, tb = (torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() for x in (a, b))
    return float(_ms_ssim(ta, tb, data_range=255.0))
