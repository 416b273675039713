"""Pretrained DeepLabV3-MobileNetV2 (Pascal VOC, 21 classes) semantic head, TFLite on CPU."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import cv2
import numpy as np

from vcm.masks.base import annotation_mask
from vcm.metrics.segmentation import IGNORE
from vcm.tasks.base import TFLiteModel, default_model
from vcm.types import Prediction, check_image

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
# COCO category id -> VOC class index (the 20 VOC classes all exist in COCO).
COCO_TO_VOC = {5: 1, 2: 2, 16: 3, 9: 4, 44: 5, 6: 6, 3: 7, 17: 8, 62: 9, 21: 10, 67: 11, 18: 12,
               19: 13, 4: 14, 1: 15, 64: 16, 20: 17, 63: 18, 7: 19, 72: 20}


class DeepLabV3:
    """Semantic segmentation into VOC classes; the class map is at image resolution.

    Args:
        model: TFLite file (default: the assets' DeepLabV3 MobileNetV2 257x257).
        num_threads: TFLite CPU threads.
    """

    task_kind: ClassVar[str] = "semantic"
    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()
    classes: ClassVar[tuple[str, ...]] = VOC_CLASSES

    def __init__(self, *, model: str = default_model("deeplabv3-mnv2-voc", "deeplabv3_257_mv_gpu.tflite"),
                 num_threads: int = 2) -> None:
        self.net = TFLiteModel(model, "DeepLabV3", num_threads)

    def __call__(self, *, image: np.ndarray) -> Prediction:
        h, w = check_image(image).shape[:2]
        outputs, lb = self.net.letterboxed(image, 127.5, -1.0)
        labels = outputs[0][0].argmax(-1).astype(np.uint8)
        labels = lb.crop(labels)
        return Prediction(semantic=cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST))


def voc_ground_truth(annotations: list[dict[str, Any]], h: int, w: int) -> np.ndarray:
    """VOC class map from COCO instances: mapped classes painted large-to-small, other
    objects and crowd regions ``IGNORE``, the rest background (0)."""
    out = np.zeros((h, w), np.uint8)
    for ann in sorted(annotations, key=lambda a: -a.get("area", 0)):
        m = annotation_mask(ann, h, w)
        cls = COCO_TO_VOC.get(ann["category_id"])
        out[m] = IGNORE if cls is None or ann.get("iscrowd", 0) else cls
    return out
