"""mmpose top-down pose head: person boxes (ground truth or a detector node) -> COCO keypoints.

Any config shipped with mmpose works (RTMPose, HRNet, ...), named relative to mmpose's bundled
``configs/`` folder or given as a file, plus a checkpoint path. Instance scores follow mmpose's
COCO evaluation: box score x mean keypoint score over keypoints above ``keypoint_score_threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vcm._optional import require
from vcm.assets import expand_path
from vcm.tasks.base import boxes_from, coco_box
from vcm.types import Prediction, check_image

RTMPOSE_T = "body_2d_keypoint/rtmpose/coco/rtmpose-t_8xb256-420e_coco-256x192.py"


def config_path(config: str) -> str:
    """A config file, or a name relative to the configs that ship inside mmpose (``.mim/configs``)."""
    path = expand_path(config)
    if Path(path).is_file():
        return path
    mmpose = require("mmpose")
    bundled = Path(mmpose.__file__).parent / ".mim" / "configs" / config
    if not bundled.is_file():
        raise FileNotFoundError(f"mmpose config {config!r} is neither a file nor a config bundled with "
                                f"mmpose (looked for {bundled})")
    return str(bundled)


class MMPoseTopDown:
    """Top-down 2-D pose estimation with mmpose (COCO 17 keypoints), one run per person box.

    Args:
        checkpoint: weights file (``.pth`` from mmpose's model zoo); ``null`` = random weights (tests).
        config: mmpose config (default RTMPose-t, COCO 256x192).
        keypoint_score_threshold: keypoints above it count in the instance score.
        category_ids: categories of ground-truth boxes used as persons.

    Inputs: ``image`` and ``boxes`` (wire ``annotations`` for ground-truth boxes, or a mask node
    such as ``yolo_seg`` / ``maskrcnn`` with ``category_ids: [1]`` for detected ones).
    """

    task_kind: ClassVar[str] = "keypoints"
    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "boxes": "boxes"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, checkpoint: str | None, config: str = RTMPOSE_T, keypoint_score_threshold: float = 0.2,
                 category_ids: list[int] | None = None, device: Any = None) -> None:
        apis = require("mmpose.apis")
        if checkpoint is not None:
            checkpoint = expand_path(checkpoint)
            if not Path(checkpoint).is_file():
                raise FileNotFoundError(f"mmpose checkpoint not found: {checkpoint} (mmpose's model zoo: "
                                        "https://mmpose.readthedocs.io/en/latest/model_zoo.html)")
        self.model = apis.init_model(config_path(config), checkpoint=checkpoint, device=str(device or "cpu"))
        self.threshold = keypoint_score_threshold
        self.category_ids = frozenset(category_ids or [1])

    def __call__(self, *, image: np.ndarray, boxes: Any, **_: Any) -> Prediction:
        apis = require("mmpose.apis")
        h, w = check_image(image).shape[:2]
        xyxy = boxes_from(boxes, self.category_ids)
        if len(xyxy) == 0:
            return Prediction()
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # mmpose's pipelines take BGR like mmcv
        samples = apis.inference_topdown(self.model, bgr, xyxy, bbox_format="xyxy")
        return Prediction(instances=[self._instance(s.pred_instances, box, h, w) for s, box in zip(samples, xyxy)])

    def _instance(self, pred: Any, box: np.ndarray, h: int, w: int) -> dict[str, Any]:
        xy = np.asarray(pred.keypoints[0], np.float64)  # (17, 2) image pixels
        scores = np.asarray(pred.keypoint_scores[0], np.float64)  # (17,)
        good = scores > self.threshold
        score = float(scores[good].mean()) if good.any() else 0.0
        flat = np.concatenate([xy, scores[:, None]], axis=1).reshape(-1)
        return {"category_id": 1, "score": score, "bbox": coco_box(box, h, w),
                "keypoints": [float(v) for v in flat]}
