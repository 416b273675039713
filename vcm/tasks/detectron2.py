"""detectron2 task heads: Mask R-CNN (boxes + masks) and Keypoint R-CNN (person keypoints).

Any detectron2 YAML config works (model-zoo name or file) with a checkpoint path; predictions go
through detectron2's own ``instances_to_coco_json`` and are scored by the common COCO evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vcm.integrations.detectron2 import Predictor, build_config, category_map, coco_results
from vcm.types import Prediction

MASK_RCNN = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
KEYPOINT_RCNN = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"


class Detectron2Instances:
    """A detectron2 detector / instance segmenter (Mask R-CNN by default) as a task head.

    Args:
        checkpoint: weights file; ``null`` builds random weights (tests only).
        config: model-zoo config name or YAML path.
        score_threshold: ``ROI_HEADS.SCORE_THRESH_TEST`` (0.05 as detectron2 evaluates).
        overrides: extra dotted config keys, e.g. ``{INPUT.MIN_SIZE_TEST: 512}``.
        category_ids: dataset category id of each class (default: COCO's 80, or person).
    """

    task_kind: ClassVar[str] = "instances"
    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()
    default_config: ClassVar[str] = MASK_RCNN

    def __init__(self, *, checkpoint: str | None, config: str | None = None, score_threshold: float = 0.05,
                 overrides: dict[str, Any] | None = None, category_ids: list[int] | None = None,
                 device: Any = None) -> None:
        cfg = build_config(config or self.default_config, checkpoint=checkpoint,
                           score_threshold=score_threshold, overrides=overrides, device=device)
        self.category_ids = category_map(cfg, category_ids)
        self.predictor = Predictor(cfg)

    def __call__(self, *, image: np.ndarray, **_: Any) -> Prediction:
        return Prediction(instances=coco_results(self.predictor(image), self.category_ids))


class Detectron2Keypoints(Detectron2Instances):
    """Keypoint R-CNN (COCO 17 person keypoints) as a task head; same arguments."""

    task_kind: ClassVar[str] = "keypoints"
    default_config: ClassVar[str] = KEYPOINT_RCNN
