"""Masks from a detectron2 instance segmenter (Mask R-CNN): union of confident instances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vcm.masks.base import instances_mask
from vcm.tasks.detectron2 import Detectron2Instances
from vcm.types import DEFAULT_UNIT, Mask, check_image


class Detectron2Mask:
    """Foreground = union of Mask R-CNN instances scoring >= ``score_threshold``; ids in ``labels``.

    Args:
        checkpoint: weights file; ``null`` builds random weights (tests only).
        config: model-zoo config name or YAML path (default Mask R-CNN R50-FPN 3x).
        score_threshold: minimum instance score kept in the mask.
        category_ids: keep only these COCO category ids (None: all).
        overrides: extra dotted detectron2 config keys.
        dilate: grow the union by this many pixels. unit: mask-unit size of the coded grid.
    """

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, checkpoint: str | None, config: str | None = None, score_threshold: float = 0.5,
                 category_ids: list[int] | None = None, overrides: dict[str, Any] | None = None,
                 dilate: int = 0, unit: int = DEFAULT_UNIT, device: Any = None) -> None:
        self.head = Detectron2Instances(checkpoint=checkpoint, config=config, score_threshold=score_threshold,
                                        overrides=overrides, device=device)
        self.score_threshold, self.dilate, self.unit = score_threshold, dilate, unit
        self.category_ids = set(category_ids) if category_ids else None

    def __call__(self, *, image: np.ndarray, **_: Any) -> Mask:
        h, w = check_image(image).shape[:2]
        instances = [r for r in self.head(image=image).instances if "segmentation" in r]
        return instances_mask(instances, h, w, score_threshold=self.score_threshold,
                              category_ids=self.category_ids, dilate_px=self.dilate, unit=self.unit)
