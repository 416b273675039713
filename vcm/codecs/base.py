"""Codec protocol, the full/masked frame wrapper for codecs that code whole canvases."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import cv2
import numpy as np

from vcm.codecs.container import BitstreamError, Container, check_budget, check_model, pack, unpack
from vcm.masks.sideinfo import (
    PIXELS,
    SideInfoError,
    decode_grid,
    decode_pixels,
    encode_grid,
    encode_pixels,
)
from vcm.registry import Registry
from vcm.types import DEFAULT_UNIT, Bitstream, Decoded, Mask, check_image


@runtime_checkable
class Codec(Protocol):
    """Encodes an image (and its mask) to bytes and decodes those bytes alone.

    ``input_ports`` names what ``encode`` takes (``image``, and ``mask`` if the codec uses it).
    """

    input_ports: ClassVar[Mapping[str, str]]
    optional_ports: ClassVar[frozenset[str]]

    def encode(self, *, image: np.ndarray, mask: Mask | None = None) -> Bitstream: ...

    def decode(self, data: bytes) -> Decoded: ...


@runtime_checkable
class SequenceCodec(Protocol):
    """A codec that codes a whole clip at once (inter prediction): ``encode_clip`` takes every
    frame (uint8 (H, W, 3), one size) and, for codecs with a mask input, each frame's mask; the
    decoder gets only the bytes and returns exactly as many frames, each of the size given.

    A codec without these methods runs frame by frame on a clip (the all-intra case).
    """

    def encode_clip(self, *, frames: list[np.ndarray], masks: list[Mask] | None = None,
                    fps: float = 25.0) -> Bitstream: ...

    def decode_clip(self, data: bytes) -> list[Decoded]: ...


CODECS: Registry[Codec] = Registry("codec")


CANVAS_BYTES_PER_PIXEL = 20.0  # the largest decode peak measured of vcm's canvas coders (WebP), B/px


class CanvasCoder(Protocol):
    """A codec back-end that codes a whole uint8 (H, W, 3) canvas into byte sections. It may
    say ``bytes_per_pixel``, its decoder's measured peak memory per pixel (the decode budget);
    :data:`CANVAS_BYTES_PER_PIXEL` where it does not."""

    name: str

    def encode_canvas(self, image: np.ndarray) -> list[bytes]: ...

    def decode_canvas(self, sections: tuple[bytes, ...], height: int, width: int) -> np.ndarray: ...


FILLS = ("constant", "blur", "mean")


def fill_background(image: np.ndarray, keep: np.ndarray, fill: str, value: int = 128,
                    blur_sigma: float = 16.0) -> np.ndarray:
    """Replace pixels where ``keep`` is False: a constant grey, a heavy blur, or the image mean."""
    out = image.copy()
    bg = ~keep
    if fill == "constant":
        out[bg] = value
    elif fill == "mean":
        out[bg] = np.round(image.reshape(-1, 3).mean(0)).astype(np.uint8)
    elif fill == "blur":
        out[bg] = cv2.GaussianBlur(image, (0, 0), blur_sigma)[bg]
    else:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    return out


class FrameCodec:
    """Wraps a :class:`CanvasCoder` in the vcm container, in one of two modes.

    - ``full``: the whole frame is coded; no mask is sent.
    - ``masked``: the classical mask baseline. Units outside the mask are filled (``fill``)
      before encoding, the codec still codes the whole canvas, and the unit grid is sent as
      side information.

    ``precision`` (masked mode): ``unit`` fills and sends the 16-px unit grid; ``pixel`` fills
    outside the exact pixel mask and sends that mask losslessly (lossless WebP, counted as side
    information), the strongest classical masked anchor.

    ``scale`` < 1 codes a canvas downsampled by that factor (OpenCV area resampling) and
    upsamples the decoded canvas back (bicubic): how standard codecs reach extremely low rates.
    """

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "mask": "mask"}
    optional_ports: ClassVar[frozenset[str]] = frozenset({"mask"})

    def __init__(self, coder: CanvasCoder, *, mode: str = "full", fill: str = "blur",
                 fill_value: int = 128, blur_sigma: float = 16.0, scale: float = 1.0, precision: str = "unit") -> None:
        if mode not in ("full", "masked"):
            raise ValueError(f"mode must be 'full' or 'masked', got {mode!r}")
        if precision not in ("unit", "pixel"):
            raise ValueError(f"precision must be 'unit' or 'pixel', got {precision!r}")
        self.precision = precision
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        self.coder, self.mode, self.fill = coder, mode, fill
        self.fill_value, self.blur_sigma, self.scale = fill_value, blur_sigma, scale

    def _coded_size(self, height: int, width: int) -> tuple[int, int]:
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))

    @property
    def uses_mask(self) -> bool:
        return self.mode == "masked"

    @staticmethod
    def ignored_inputs(params: Mapping[str, Any]) -> frozenset[str]:
        """Input ports the codec built with ``params`` does not read: full frame ignores the mask."""
        return frozenset({"mask"}) if params.get("mode", "full") == "full" else frozenset()

    @staticmethod
    def full_frame_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """The params of the full-frame codec that codes what this one codes under a full mask
        (the masked mode's fill settings then change nothing)."""
        drop = ("fill", "fill_value", "blur_sigma", "precision")
        return {k: v for k, v in params.items() if k not in drop} | {"mode": "full"}

    def masked(self, image: np.ndarray, mask: Mask | None) -> tuple[np.ndarray, bytes]:
        """The canvas to code and the side info to send: in masked mode, ``image`` filled
        outside the mask and the mask's record; else ``image`` unchanged and no side info."""
        if self.mode != "masked":
            return image, b""
        if mask is None:
            raise ValueError("masked mode needs a mask input")
        mask.check_fits(image)
        exact = self.precision == "pixel"
        keep = mask.pixels if exact else mask.coded_pixels()
        image = fill_background(image, keep, self.fill, self.fill_value, self.blur_sigma)
        return image, encode_pixels(mask.pixels) if exact else encode_grid(mask.grid)

    def encode(self, *, image: np.ndarray, mask: Mask | None = None) -> Bitstream:
        h, w = check_image(image).shape[:2]
        unit = mask.unit if mask is not None else DEFAULT_UNIT
        image, side = self.masked(image, mask)
        if self.scale < 1:
            ch, cw = self._coded_size(h, w)
            image = cv2.resize(image, (cw, ch), interpolation=cv2.INTER_AREA)
        sections = self.coder.encode_canvas(np.ascontiguousarray(image))
        model = getattr(self.coder, "fingerprint", b"")  # learned canvas coders name their weights
        return pack(Container(self.coder.name, h, w, unit, self.mode == "masked", side, tuple(sections), model))

    def decode(self, data: bytes) -> Decoded:
        c = unpack(data, expect_codec=self.coder.name)
        check_model(c, getattr(self.coder, "fingerprint", b""), getattr(self.coder, "source", "its weights"))
        check_budget(c.codec, c.height, c.width, getattr(self.coder, "bytes_per_pixel", CANVAS_BYTES_PER_PIXEL))
        ch, cw = self._coded_size(c.height, c.width)
        image = self.coder.decode_canvas(c.sections, ch, cw)  # checks the payload's size first: before the mask
        if image.shape != (ch, cw, 3):
            raise BitstreamError(f"decoded size {image.shape} differs from the coded {ch}x{cw}")
        mask = _side_mask(c) if c.has_mask else None
        if (ch, cw) != (c.height, c.width):
            image = cv2.resize(image, (c.width, c.height), interpolation=cv2.INTER_CUBIC)
        return Decoded(image, mask)


def _side_mask(c: Container) -> Mask:
    return side_mask(c.side, c.height, c.width, c.unit)


def side_mask(side: bytes, height: int, width: int, unit: int) -> Mask:
    """The mask a masked-mode record sends: a unit grid, or an exact pixel mask (format 5)."""
    try:
        if side[:1] == bytes([PIXELS]):
            return dataclasses.replace(Mask.from_pixels(decode_pixels(side, height, width), unit), exact=True)
        return Mask.from_grid(decode_grid(side, *Mask.grid_shape(height, width, unit)), height, width, unit)
    except SideInfoError as e:
        raise BitstreamError(str(e)) from e


def frame_params(**kwargs: Any) -> dict[str, Any]:
    """Split mode/fill keyword arguments for :class:`FrameCodec`."""
    return {k: kwargs[k] for k in ("mode", "fill", "fill_value", "blur_sigma", "scale", "precision") if k in kwargs}
