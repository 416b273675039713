"""Mask generator protocol and registry."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import cv2
import numpy as np

from vcm.registry import Registry
from vcm.types import DEFAULT_UNIT, Mask


@runtime_checkable
class MaskGenerator(Protocol):
    """Produces a keep-mask for one image.

    ``input_ports`` maps each keyword of ``__call__`` to its port type (``image``,
    ``annotations``, ``mask``, ``sample_id``); ``optional_ports`` may be left unwired.
    """

    input_ports: ClassVar[Mapping[str, str]]
    optional_ports: ClassVar[frozenset[str]]

    def __call__(self, *, image: np.ndarray, **inputs: Any) -> Mask: ...


MASKS: Registry[MaskGenerator] = Registry("mask")


def dilate(pixels: np.ndarray, radius: int) -> np.ndarray:
    """Dilate a bool (H, W) mask by ``radius`` pixels (elliptic structuring element)."""
    if radius <= 0:
        return pixels
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(pixels.astype(np.uint8), kernel).astype(bool)


def annotation_mask(ann: Mapping[str, Any], height: int, width: int) -> np.ndarray:
    """Decode one COCO annotation's segmentation (polygons, RLE or compressed RLE) to bool (H, W)."""
    from pycocotools import mask as mask_utils

    seg = ann["segmentation"]
    if isinstance(seg, list) or isinstance(seg.get("counts"), list):
        seg = mask_utils.frPyObjects(seg, height, width)
    if isinstance(seg, list):
        seg = mask_utils.merge(seg)
    return mask_utils.decode(seg).astype(bool)


def sample_rng(seed: int, sample_id: str) -> np.random.Generator:
    """A generator seeded by (seed, sample id): the same mask for the same image in every run."""
    return np.random.default_rng([seed, zlib.crc32(sample_id.encode())])


def visible_count(total: int, ratio: float) -> int:
    """Number of units kept for a visible ``ratio`` in [0, 1]."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"visible_ratio must be in [0, 1], got {ratio}")
    return int(round(total * ratio))


def instances_mask(instances: list[dict[str, Any]], height: int, width: int, *, score_threshold: float,
                   category_ids: set[int] | None = None, dilate_px: int = 0,
                   unit: int = DEFAULT_UNIT) -> Mask:
    """Keep-mask from COCO result dicts (RLE ``segmentation``): the union of the instances scoring
    >= ``score_threshold`` (of ``category_ids``, if given), instance ids 1..K in ``labels``."""
    from pycocotools import mask as mask_utils

    union, labels = np.zeros((height, width), bool), np.zeros((height, width), np.int32)
    for inst in instances:
        if inst["score"] < score_threshold:
            continue
        if category_ids is not None and inst["category_id"] not in category_ids:
            continue
        px = mask_utils.decode(inst["segmentation"]).astype(bool)
        union |= px
        labels[px] = labels.max() + 1  # later instances win where they overlap
    return Mask.from_pixels(dilate(union, dilate_px), unit, labels)


def instance_boxes(mask: Mask) -> list[np.ndarray]:
    """XYXY pixel boxes (float32 (4,)) of the instances of ``mask`` (labels, else components)."""
    labels = mask.labels
    if labels is None or not (labels > 0).any():
        _, labels = cv2.connectedComponents(mask.pixels.astype(np.uint8), connectivity=8)
    boxes = []
    for k in np.unique(labels[labels > 0]):
        ys, xs = np.nonzero(labels == k)
        boxes.append(np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32))
    return boxes
