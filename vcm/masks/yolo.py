"""Masks from the pretrained YOLOv8n-seg model: union of confident instance masks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vcm.masks.base import instances_mask
from vcm.tasks.base import default_model
from vcm.tasks.yolo import YoloSeg
from vcm.types import DEFAULT_UNIT, Mask, check_image


class YoloSegMask:
    """Foreground = union of YOLOv8n-seg instances scoring >= ``score_threshold`` (ids in ``labels``).

    Args:
        model: TFLite file (default: the assets' YOLOv8n-seg).
        score_threshold: minimum instance score kept in the mask.
        category_ids: keep only these COCO category ids (None: all).
        dilate: grow the union by this many pixels.
        unit: mask-unit size of the coded grid.
    """

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, model: str = default_model("yolov8n-seg", "yolov8n-seg_int8.tflite"),
                 score_threshold: float = 0.25, category_ids: list[int] | None = None, dilate: int = 0,
                 unit: int = DEFAULT_UNIT) -> None:
        self.head = YoloSeg(model=model, score_threshold=min(score_threshold, 0.01))
        self.score_threshold, self.dilate, self.unit = score_threshold, dilate, unit
        self.category_ids = set(category_ids) if category_ids else None

    def __call__(self, *, image: np.ndarray, **_: Any) -> Mask:
        h, w = check_image(image).shape[:2]
        return instances_mask(self.head(image=image).instances, h, w, score_threshold=self.score_threshold,
                              category_ids=self.category_ids, dilate_px=self.dilate, unit=self.unit)
