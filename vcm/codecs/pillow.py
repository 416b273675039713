"""JPEG, WebP and AVIF through Pillow, in full-frame or masked mode (``precision``: the unit grid
or the exact pixel mask, see :class:`vcm.codecs.base.FrameCodec`)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from vcm.codecs.base import CANVAS_BYTES_PER_PIXEL, FrameCodec
from vcm.codecs.container import BitstreamError
from vcm.io.image import to_rgb8


# Decode peak, B/px (benchmarks/decode_memory.py style, 1024 and 2048 px noise, 2026-12-05): JPEG 10.2 / 10.3,
# WebP 19.0 / 19.0, AVIF 11.6 / 12.2, PNG 9.4 / 9.9 (Pillow alone); + 1 B/px for a masked-mode pixel mask
PEAK = {"JPEG": 11.5, "WEBP": 20.0, "AVIF": 13.5, "PNG": 11.0}


class PillowCoder:
    """One Pillow format at one quality (0-100). ``options`` go to ``Image.save``."""

    def __init__(self, name: str, pil_format: str, quality: int, **options: object) -> None:
        if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
            raise ValueError(f"{name} quality must be an integer in [0, 100], got {quality!r}")
        self.name, self.pil_format, self.quality, self.options = name, pil_format, quality, options
        self.bytes_per_pixel = PEAK.get(pil_format, CANVAS_BYTES_PER_PIXEL)

    def encode_canvas(self, image: np.ndarray) -> list[bytes]:
        buf = io.BytesIO()
        Image.fromarray(image, "RGB").save(buf, self.pil_format, quality=self.quality, **self.options)
        return [buf.getvalue()]

    def decode_canvas(self, sections: tuple[bytes, ...], height: int, width: int) -> np.ndarray:
        if len(sections) != 1:
            raise BitstreamError(f"{self.name} bitstream must have 1 payload section, has {len(sections)}")
        try:
            with Image.open(io.BytesIO(sections[0])) as im:
                if im.format != self.pil_format:  # Image.open reads any format: a WebP must not pass as a JPEG
                    raise BitstreamError(f"{self.name} payload is a {im.format} image")
                if im.size != (width, height):  # before the pixels are decoded: the header may lie
                    raise BitstreamError(f"{self.name} payload is a {im.size[1]}x{im.size[0]} image, the header "
                                         f"announces {height}x{width}")
                im.load()
                return to_rgb8(im)
        except (OSError, RuntimeError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
            raise BitstreamError(f"{self.name} payload cannot be decoded: {type(e).__name__}: {e}") from e


def jpeg(*, quality: int = 75, mode: str = "full", fill: str = "blur", fill_value: int = 128,
         blur_sigma: float = 16.0, subsampling: int = 2, scale: float = 1.0, precision: str = "unit") -> FrameCodec:
    """Baseline JPEG (libjpeg via Pillow); ``subsampling`` 0=4:4:4, 1=4:2:2, 2=4:2:0."""
    coder = PillowCoder("jpeg", "JPEG", quality, subsampling=subsampling, optimize=True)
    return FrameCodec(coder, mode=mode, fill=fill, fill_value=fill_value, blur_sigma=blur_sigma, scale=scale,
                      precision=precision)


def webp(*, quality: int = 75, mode: str = "full", fill: str = "blur", fill_value: int = 128,
         blur_sigma: float = 16.0, method: int = 4, scale: float = 1.0, precision: str = "unit") -> FrameCodec:
    """Lossy WebP (libwebp); ``method`` 0-6 trades speed for size."""
    coder = PillowCoder("webp", "WEBP", quality, method=method)
    return FrameCodec(coder, mode=mode, fill=fill, fill_value=fill_value, blur_sigma=blur_sigma, scale=scale,
                      precision=precision)


def avif(*, quality: int = 75, mode: str = "full", fill: str = "blur", fill_value: int = 128,
         blur_sigma: float = 16.0, speed: int = 6, scale: float = 1.0, precision: str = "unit") -> FrameCodec:
    """AVIF (libavif/aom via Pillow); ``speed`` 0-10; ``scale`` < 1 codes a downsampled canvas."""
    coder = PillowCoder("avif", "AVIF", quality, speed=speed)
    return FrameCodec(coder, mode=mode, fill=fill, fill_value=fill_value, blur_sigma=blur_sigma, scale=scale,
                      precision=precision)
