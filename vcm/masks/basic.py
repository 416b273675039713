"""Simple mask generators: full frame, ground-truth COCO instances, random units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from vcm.masks.base import annotation_mask, dilate, sample_rng, visible_count
from vcm.types import DEFAULT_UNIT, Mask, check_image


class FullMask:
    """Keep everything (the "no mask" case)."""

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    covers_all: ClassVar[bool] = True  # a masked codec under this mask codes the full frame

    def __init__(self, *, unit: int = DEFAULT_UNIT) -> None:
        self.unit = unit

    def __call__(self, *, image: np.ndarray, **_: Any) -> Mask:
        return Mask.full(*check_image(image).shape[:2], self.unit)


class GroundTruthMask:
    """Union of the image's COCO instance masks (instance ids kept in ``labels``).

    Args:
        category_ids: keep only these COCO category ids (None: all).
        dilate: grow the union by this many pixels.
        include_crowd: also take ``iscrowd`` regions.
        unit: mask-unit size of the coded grid.
    """

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "annotations": "annotations"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, category_ids: list[int] | None = None, dilate: int = 0,
                 include_crowd: bool = True, unit: int = DEFAULT_UNIT) -> None:
        self.category_ids = set(category_ids) if category_ids else None
        self.dilate, self.include_crowd, self.unit = dilate, include_crowd, unit

    def __call__(self, *, image: np.ndarray, annotations: list[dict[str, Any]] | None = None,
                 **_: Any) -> Mask:
        h, w = check_image(image).shape[:2]
        if annotations is None:
            raise ValueError("ground-truth mask needs annotations; this dataset has none")
        union, labels = np.zeros((h, w), bool), np.zeros((h, w), np.int32)
        for ann in annotations:
            if self.category_ids is not None and ann["category_id"] not in self.category_ids:
                continue
            if ann.get("iscrowd", 0) and not self.include_crowd:
                continue
            inst = annotation_mask(ann, h, w)
            union |= inst
            labels[inst] = labels.max() + 1  # later instances win where they overlap
        return Mask.from_pixels(dilate(union, self.dilate), self.unit, labels)


class RandomPatchMask:
    """Keep a seeded random ``visible_ratio`` of the mask units (MAE-style)."""

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "sample_id": "sample_id"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, visible_ratio: float = 0.5, seed: int = 0, unit: int = DEFAULT_UNIT) -> None:
        visible_count(1, visible_ratio)  # validates the ratio
        self.visible_ratio, self.seed, self.unit = visible_ratio, seed, unit

    def __call__(self, *, image: np.ndarray, sample_id: str = "", **_: Any) -> Mask:
        h, w = check_image(image).shape[:2]
        gh, gw = Mask.grid_shape(h, w, self.unit)
        keep = sample_rng(self.seed, sample_id).permutation(gh * gw)[: visible_count(gh * gw, self.visible_ratio)]
        grid = np.zeros(gh * gw, bool)
        grid[keep] = True
        return replace(Mask.from_grid(grid.reshape(gh, gw), h, w, self.unit), order=keep.astype(np.int64))
