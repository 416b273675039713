"""Shared data types passed between pipeline nodes.

Conventions: an image is a ``numpy.uint8`` array of shape (H, W, 3), RGB. A mask is
``True`` where content is kept (visible, encoded, transmitted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_UNIT = 16  # mask-unit (patch) size in pixels


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate the canonical image form: uint8 array of shape (H, W, 3)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"{what} must be a uint8 numpy array, got {type(image).__name__}"
                        f"{'/' + str(image.dtype) if isinstance(image, np.ndarray) else ''}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} must have shape (H, W, 3), got {image.shape}")
    return image


@dataclass(frozen=True)
class Mask:
    """A keep-mask in two forms.

    Attributes:
        pixels: bool (H, W), the fine mask as produced by the generator.
        grid: bool (ceil(H/unit), ceil(W/unit)), the unit-level mask that is coded and transmitted.
        unit: mask-unit size in pixels.
        exact: whether the pixel form (not the grid) is what a codec codes and sends.
        labels: optional int32 (H, W) instance ids (0 = no instance, 1..K), for codecs that
            code instances as separate groups (GIT-SSIC).
        order: optional int64 (V,) flat grid ids of the kept units in the order a sampling
            generator drew them (DA-Mask, random), for codecs that send ids in that order (MCM).
    """

    pixels: np.ndarray
    grid: np.ndarray
    unit: int = DEFAULT_UNIT
    labels: np.ndarray | None = None
    order: np.ndarray | None = None
    exact: bool = False  # the pixel form is what is coded and sent (not the unit grid)

    @staticmethod
    def grid_shape(height: int, width: int, unit: int) -> tuple[int, int]:
        return -(-height // unit), -(-width // unit)

    @classmethod
    def from_pixels(cls, pixels: np.ndarray, unit: int = DEFAULT_UNIT, labels: np.ndarray | None = None) -> Mask:
        """Grid unit is kept if any of its pixels is kept (masks are dilated to units)."""
        pixels = np.asarray(pixels).astype(bool)
        if pixels.ndim != 2:
            raise ValueError(f"mask must be 2-D (H, W), got shape {pixels.shape}")
        if labels is not None and np.shape(labels) != pixels.shape:
            raise ValueError(f"instance labels {np.shape(labels)} do not match the mask {pixels.shape}")
        h, w = cls.grid_shape(*pixels.shape, unit)
        padded = np.zeros((h * unit, w * unit), bool)
        padded[: pixels.shape[0], : pixels.shape[1]] = pixels
        grid = padded.reshape(h, unit, w, unit).any(axis=(1, 3))
        return cls(pixels, grid, unit, None if labels is None else np.asarray(labels, np.int32))

    @classmethod
    def from_grid(cls, grid: np.ndarray, height: int, width: int, unit: int = DEFAULT_UNIT) -> Mask:
        """Build from a unit grid; the pixel form is the grid upsampled and cropped to (H, W)."""
        grid = np.asarray(grid).astype(bool)
        if grid.shape != cls.grid_shape(height, width, unit):
            raise ValueError(
                f"mask grid {grid.shape} does not fit a {height}x{width} image with unit {unit} "
                f"(expected {cls.grid_shape(height, width, unit)})"
            )
        return cls(upsample_grid(grid, height, width, unit), grid, unit)

    @classmethod
    def full(cls, height: int, width: int, unit: int = DEFAULT_UNIT) -> Mask:
        return cls.from_pixels(np.ones((height, width), bool), unit)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]

    def coded_pixels(self) -> np.ndarray:
        """The transmitted form at pixel resolution, bool (H, W): the grid upsampled, or the
        pixels themselves for an ``exact`` mask."""
        return self.pixels.copy() if self.exact else upsample_grid(self.grid, *self.shape, self.unit)

    @property
    def visible_fraction(self) -> float:
        """Fraction of mask units kept (of pixels, for an ``exact`` mask)."""
        kept = self.pixels if self.exact else self.grid
        return float(kept.mean()) if kept.size else 0.0

    def check_fits(self, image: np.ndarray) -> None:
        if self.shape != image.shape[:2]:
            raise ValueError(f"mask size {self.shape} does not match image size {image.shape[:2]}")


def upsample_grid(grid: np.ndarray, height: int, width: int, unit: int) -> np.ndarray:
    """Nearest upsampling of a unit grid to pixels, cropped to (height, width)."""
    return np.repeat(np.repeat(grid, unit, 0), unit, 1)[:height, :width]


@dataclass(frozen=True)
class Bitstream:
    """Encoded bytes with the size of each part (bytes), all inside ``data``."""

    data: bytes
    header_bytes: int
    side_bytes: int
    payload_bytes: int

    def __post_init__(self) -> None:
        if self.header_bytes + self.side_bytes + self.payload_bytes != len(self.data):
            raise ValueError("bitstream part sizes do not add up to its length")


@dataclass
class Decoded:
    """A decoder's output: the reconstructed image and the mask recovered from side info."""

    image: np.ndarray
    mask: Mask | None = None


@dataclass
class Prediction:
    """A task head's output for one image.

    Attributes:
        instances: COCO result dicts without ``image_id`` (bbox xywh in pixels, score,
            category_id, and ``segmentation`` RLE or ``keypoints`` as the task gives).
        semantic: int (H, W) class map, or None.
    """

    instances: list[dict[str, Any]] = field(default_factory=list)
    semantic: np.ndarray | None = None


@dataclass
class Sample:
    """One dataset item. ``annotations`` are COCO dicts (None for unlabeled data)."""

    id: str
    image: np.ndarray
    coco_id: int | None = None
    annotations: list[dict[str, Any]] | None = None
    path: str | None = None


@dataclass
class Clip:
    """A video sequence: its frames as :class:`Sample` s, in display order.

    Each frame's ``image`` is uint8 (H, W, 3) RGB, all of one size; ``coco_id`` is unique over
    the dataset (the image id COCOeval scores the frame under); ``annotations`` are COCO dicts,
    with ``track_id`` where the data has tracks. ``group`` is the sequence's class (e.g. SFU
    class C), over which rates are averaged weighted by duration.
    """

    id: str
    frames: list[Sample]
    fps: float
    group: str | None = None

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self.frames) / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every frame."""
        return self.frames[0].image.shape[0], self.frames[0].image.shape[1]
