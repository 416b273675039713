"""Task head protocol, registry, and the TFLite / letterbox helpers the pretrained heads share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import cv2
import numpy as np

from vcm._optional import require
from vcm.assets import expand_path, require_file
from vcm.registry import Registry
from vcm.types import Prediction

# COCO category ids in the 80-class order used by YOLO models (the sorted official ids).
COCO80_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
              27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
              52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
              78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


@runtime_checkable
class TaskHead(Protocol):
    """Runs a vision model on one uint8 (H, W, 3) RGB image.

    ``task_kind`` selects the scoring: ``instances`` (COCO bbox + segm AP), ``keypoints``
    (COCO keypoint AP) or ``semantic`` (mIoU).
    """

    task_kind: ClassVar[str]
    input_ports: ClassVar[Mapping[str, str]]
    optional_ports: ClassVar[frozenset[str]]

    def __call__(self, *, image: np.ndarray) -> Prediction: ...


TASKS: Registry[TaskHead] = Registry("task")


@dataclass(frozen=True)
class Letterbox:
    """Geometry of a centred letterbox of an (h, w) image into a size x size square."""

    scale: float
    left: int
    top: int
    new_w: int
    new_h: int

    @classmethod
    def fit(cls, h: int, w: int, size: int) -> Letterbox:
        r = min(size / h, size / w)
        nw, nh = int(round(w * r)), int(round(h * r))
        dw, dh = (size - nw) / 2, (size - nh) / 2
        return cls(r, int(round(dw - 0.1)), int(round(dh - 0.1)), nw, nh)

    def apply(self, image: np.ndarray, size: int, pad: int = 114) -> np.ndarray:
        """Resize (bilinear) and pad; returns uint8 (size, size, 3)."""
        out = np.full((size, size, 3), pad, np.uint8)
        resized = cv2.resize(image, (self.new_w, self.new_h), interpolation=cv2.INTER_LINEAR)
        out[self.top:self.top + self.new_h, self.left:self.left + self.new_w] = resized
        return out

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) letterbox coordinates back to image pixels."""
        return (xy - np.array([self.left, self.top])) / self.scale

    def crop(self, planes: np.ndarray) -> np.ndarray:
        """Cut the image area out of (..., size, size) planes."""
        return planes[..., self.top:self.top + self.new_h, self.left:self.left + self.new_w]


class TFLiteModel:
    """A TFLite model run with ai-edge-litert on CPU."""

    def __init__(self, path: str | Path, what: str, num_threads: int | None = None) -> None:
        litert = require("ai_edge_litert.interpreter")
        model = require_file(expand_path(str(path)), f"{what} model file (is VCM_ASSETS set?)")
        if num_threads is None:  # follow torch's setting, which an executor sets per worker
            import torch

            num_threads = torch.get_num_threads()
        self.path = str(model)
        self.interpreter = litert.Interpreter(model_path=self.path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()

    @property
    def input_size(self) -> int:
        return int(self.input["shape"][1])

    def network_cost(self) -> tuple[int, int, str]:
        """(MACs of one call, weights read, counter): see :func:`vcm.metrics.complexity.tflite_cost`."""
        from vcm.metrics.complexity import tflite_cost

        return tflite_cost(self.path)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Run on a float32 (1, S, S, 3) batch; returns the outputs in declared order."""
        self.interpreter.set_tensor(self.input["index"], x.astype(np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(o["index"]) for o in self.outputs]

    def letterboxed(self, image: np.ndarray, divisor: float, offset: float = 0.0) -> tuple[list[np.ndarray], Letterbox]:
        """Letterbox uint8 (H, W, 3) to the input size, map pixels to ``p / divisor + offset``, run."""
        lb = Letterbox.fit(image.shape[0], image.shape[1], self.input_size)
        x = lb.apply(image, self.input_size)[None].astype(np.float32) / divisor + offset
        return self(x), lb


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    return np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, top: int) -> np.ndarray:
    """Class-wise NMS (torchvision); indices of kept boxes, best first, at most ``top``."""
    import torch
    from torchvision.ops import batched_nms

    keep = batched_nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(),
                       torch.from_numpy(classes).long(), iou)
    return keep[:top].numpy()


def coco_box(xyxy: np.ndarray, h: int, w: int) -> list[float]:
    """Clip an xyxy box to the image and return COCO [x, y, w, h]."""
    x0, y0 = np.clip(xyxy[0], 0, w), np.clip(xyxy[1], 0, h)
    x1, y1 = np.clip(xyxy[2], 0, w), np.clip(xyxy[3], 0, h)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def default_model(folder: str, file: str) -> str:
    return f"${{VCM_ASSETS}}/models/{folder}/{file}"




def boxes_from(source: Any, category_ids: frozenset[int] = frozenset({1})) -> np.ndarray:
    """XYXY pixel boxes, float32 (N, 4), from a ``boxes`` port: ground-truth COCO annotations (the
    non-crowd ones of ``category_ids``) or a mask's instances (labels, else connected parts)."""
    from vcm.masks.base import instance_boxes
    from vcm.types import Mask

    if isinstance(source, Mask):
        boxes = instance_boxes(source)
    elif isinstance(source, list):
        boxes = [np.array([x, y, x + w, y + h], np.float32) for a in source
                 if a["category_id"] in category_ids and not a.get("iscrowd", 0)
                 for x, y, w, h in [a["bbox"]]]
    elif source is None:
        raise ValueError("this head needs boxes, but its boxes input is empty (dataset without annotations?)")
    else:
        raise TypeError(f"boxes must come from annotations or a mask, got {type(source).__name__}")
    return np.stack(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32)
