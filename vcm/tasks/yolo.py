"""Pretrained YOLOv8n-seg (instances) and YOLO11n-pose (keypoints) heads, TFLite on CPU.

Pre/post-processing follows the assets README so the heads reproduce its reference AP:
centred letterbox to 640 (bilinear, pad 114, RGB/255); class-wise NMS at IoU 0.6.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import cv2
import numpy as np

from vcm.tasks.base import (
    COCO80_IDS,
    Letterbox,
    TFLiteModel,
    coco_box,
    default_model,
    nms,
    xywh_to_xyxy,
)
from vcm.types import Prediction, check_image


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


class YoloSeg:
    """YOLOv8n-seg instance segmentation (COCO 80 classes).

    Args:
        model: TFLite file (default: the assets' int8 export).
        score_threshold: minimum class score kept (0.01 for AP scoring).
        iou: class-wise NMS IoU threshold.
        max_det: detections kept per image.
        num_threads: TFLite CPU threads (default: torch's thread count, which executors set per worker).
    """

    task_kind: ClassVar[str] = "instances"
    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, model: str = default_model("yolov8n-seg", "yolov8n-seg_int8.tflite"),
                 score_threshold: float = 0.01, iou: float = 0.6, max_det: int = 100,
                 num_threads: int | None = None) -> None:
        self.net = TFLiteModel(model, "YOLOv8n-seg", num_threads)
        self.score_threshold, self.iou, self.max_det = score_threshold, iou, max_det

    def __call__(self, *, image: np.ndarray) -> Prediction:
        h, w = check_image(image).shape[:2]
        size = self.net.input_size
        (out, proto), lb = self.net.letterboxed(image, 255.0)
        pred = out[0].T  # (8400, 116)
        scores_all = pred[:, 4:84]
        cls = scores_all.argmax(1)
        score = scores_all[np.arange(len(cls)), cls]
        sel = score > self.score_threshold
        boxes = xywh_to_xyxy(pred[sel, :4] * size)
        keep = nms(boxes, score[sel], cls[sel], self.iou, self.max_det)
        boxes, score, cls, coef = boxes[keep], score[sel][keep], cls[sel][keep], pred[sel, 84:][keep]
        masks = self._masks(coef, proto[0], boxes, lb, size, h, w)
        instances = []
        for i in range(len(keep)):
            xyxy = np.concatenate([lb.to_image(boxes[i, :2]), lb.to_image(boxes[i, 2:])])
            instances.append({"category_id": COCO80_IDS[int(cls[i])], "score": float(score[i]),
                              "bbox": coco_box(xyxy, h, w), "segmentation": _rle(masks[i])})
        return Prediction(instances=instances)

    @staticmethod
    def _masks(coef: np.ndarray, proto: np.ndarray, boxes: np.ndarray, lb: Letterbox, size: int,
               h: int, w: int) -> np.ndarray:
        """Instance masks, bool (n, h, w): sigmoid(coef @ proto), up to 640, > 0.5, box crop."""
        import torch
        import torch.nn.functional as F

        if len(coef) == 0:
            return np.zeros((0, h, w), bool)
        ph, pw, c = proto.shape
        logits = (coef @ proto.reshape(-1, c).T).reshape(-1, ph, pw)
        up = F.interpolate(torch.from_numpy(logits)[None], size=(size, size), mode="bilinear",
                           align_corners=False)[0].sigmoid().numpy() > 0.5
        ys, xs = np.arange(size)[:, None], np.arange(size)[None, :]
        out = np.zeros((len(coef), h, w), bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            m = up[i] & (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            m = lb.crop(m).astype(np.uint8)
            out[i] = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        return out


class YoloPose:
    """YOLO11n-pose person keypoints (COCO 17).

    Args:
        model: TFLite file (default: the assets' int8 export).
        score_threshold: minimum person score kept.
        iou: NMS IoU threshold.
        max_det: people kept per image.
        num_threads: TFLite CPU threads (default: torch's thread count, which executors set per worker).
    """

    task_kind: ClassVar[str] = "keypoints"
    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, model: str = default_model("yolo11n-pose", "yolo11n-pose_int8.tflite"),
                 score_threshold: float = 0.05, iou: float = 0.6, max_det: int = 20,
                 num_threads: int | None = None) -> None:
        self.net = TFLiteModel(model, "YOLO11n-pose", num_threads)
        self.score_threshold, self.iou, self.max_det = score_threshold, iou, max_det

    def __call__(self, *, image: np.ndarray) -> Prediction:
        h, w = check_image(image).shape[:2]
        size = self.net.input_size
        outputs, lb = self.net.letterboxed(image, 255.0)
        pred = outputs[0][0].T  # (8400, 56)
        sel = pred[:, 4] > self.score_threshold
        pred = pred[sel]
        boxes = xywh_to_xyxy(pred[:, :4] * size)
        keep = nms(boxes, pred[:, 4], np.zeros(len(pred), np.int64), self.iou, self.max_det)
        instances = []
        for i in keep:
            kp = pred[i, 5:].reshape(17, 3)
            xy = lb.to_image(kp[:, :2] * size)
            xyxy = np.concatenate([lb.to_image(boxes[i, :2]), lb.to_image(boxes[i, 2:])])
            flat = np.concatenate([xy, np.ones((17, 1))], axis=1).reshape(-1)
            instances.append({"category_id": 1, "score": float(pred[i, 4]),
                              "bbox": coco_box(xyxy, h, w), "keypoints": [float(v) for v in flat]})
        return Prediction(instances=instances)
