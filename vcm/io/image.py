"""Read any common image file into uint8 (H, W, 3) RGB, with documented conversions.

- grayscale (L, I;16, I, F) -> replicated to 3 channels
- 16-bit -> scaled to 8 bits (value * 255 / 65535, rounded)
- RGBA / LA / P with transparency -> alpha dropped (the colour channels are kept as stored)
- CMYK, YCbCr, P -> converted by Pillow to RGB
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageReadError(ValueError):
    """A file that is missing, empty, corrupt or not an image."""


def load_image(path: str | os.PathLike[str], exif: bool = False) -> np.ndarray:
    """Read ``path`` and return uint8 (H, W, 3) RGB, in stored pixel order, or turned upright by
    its EXIF orientation tag when ``exif`` (the way viewers show it)."""
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"image file not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            return to_rgb8(ImageOps.exif_transpose(im) if exif else im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageReadError(f"cannot read image {p}: {e}") from e


def to_rgb8(im: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any mode to uint8 (H, W, 3) RGB."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(arr * 255.0 / peak), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if im.mode != "RGB":
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
