"""Pixel fidelity: PSNR over the image and inside / outside a mask (8-bit peak)."""

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
