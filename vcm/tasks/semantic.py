"""Semantic segmentation heads scored by mIoU: any TFLite or torch model that outputs class scores.

The model's classes are tied to COCO categories by a :class:`LabelSpace`, so ground-truth class maps
come from the COCO instance annotations. ``voc`` is built in (the DeepLabV3 asset; torchvision's
COCO-trained segmentation weights use the same 21 classes):

====================  ==============================================================
VOC index: class      COCO category id
====================  ==============================================================
1 aeroplane 5         2 bicycle 2        3 bird 16        4 boat 9        5 bottle 44
6 bus 6               7 car 3            8 cat 17         9 chair 62      10 cow 21
11 diningtable 67     12 dog 18          13 horse 19      14 motorbike 4  15 person 1
16 pottedplant 64     17 sheep 20        18 sofa 63       19 train 7      20 tvmonitor 72
====================  ==============================================================

Pixels of other COCO objects and of crowd regions are ignored; the rest is background (0).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from vcm.assets import expand_path, require_file
from vcm.masks.base import annotation_mask
from vcm.metrics.segmentation import IGNORE
from vcm.tasks.base import TFLiteModel, default_model
from vcm.types import Prediction, check_image

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
COCO_TO_VOC = {5: 1, 2: 2, 16: 3, 9: 4, 44: 5, 6: 6, 3: 7, 17: 8, 62: 9, 21: 10, 67: 11, 18: 12,
               19: 13, 4: 14, 1: 15, 64: 16, 20: 17, 63: 18, 7: 19, 72: 20}


@dataclass(frozen=True)
class LabelSpace:
    """A model's class names (index 0 = background) and the COCO category id -> class index map."""

    classes: tuple[str, ...]
    coco_to_class: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.coco_to_class.items() if not 0 < v < len(self.classes)}
        if bad:
            raise ValueError(f"coco_map has class indices outside 1..{len(self.classes) - 1}: {bad}")

    @classmethod
    def of(cls, classes: str | list[str], coco_map: Mapping[int, int] | None) -> LabelSpace:
        """A preset name (``voc``) or explicit class names with their COCO map."""
        if isinstance(classes, str):
            if classes != "voc":
                raise ValueError(f"unknown label space {classes!r} (presets: voc); or give a list of names")
            return cls(VOC_CLASSES, dict(coco_map or COCO_TO_VOC))
        if not coco_map:
            raise ValueError("explicit classes need coco_map: {COCO category id: class index}")
        return cls(tuple(classes), {int(k): int(v) for k, v in coco_map.items()})

    def ground_truth(self, annotations: list[dict[str, Any]], h: int, w: int) -> np.ndarray:
        """uint8 (h, w) class map: mapped instances painted large-to-small, unmapped objects and
        crowd regions ``IGNORE``, the rest background (0)."""
        out = np.zeros((h, w), np.uint8)
        for ann in sorted(annotations, key=lambda a: -a.get("area", 0)):
            cls = self.coco_to_class.get(ann["category_id"])
            out[annotation_mask(ann, h, w)] = IGNORE if cls is None or ann.get("iscrowd", 0) else cls
        return out


class SemanticHead:
    """A class-score model as a semantic head: uint8 (H, W, 3) RGB -> (H, W) class map.

    Args:
        model: a ``.tflite`` file (letterboxed to its square input) or a TorchScript file.
        factory: instead of ``model``, a torch module factory ``"package.module:function"``
            called with ``factory_args``; ``weights`` is its state dict (loaded on CPU).
        classes: ``voc`` or a list of class names; coco_map: COCO id -> class index (see module doc).
        input_range: TFLite input scaling [lo, hi] for pixels 0..255.
        mean, std: torch input normalisation (0..255 units); max_size: torch input's long side.
    """

    task_kind: ClassVar[str] = "semantic"
    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, model: str | None = None, factory: str | None = None,
                 factory_args: dict[str, Any] | None = None, weights: str | None = None,
                 classes: str | list[str] = "voc", coco_map: dict[int, int] | None = None,
                 input_range: tuple[float, float] = (0.0, 1.0),
                 mean: tuple[float, float, float] = (123.675, 116.28, 103.53),
                 std: tuple[float, float, float] = (58.395, 57.12, 57.375), max_size: int = 520,
                 num_threads: int | None = None, device: Any = None) -> None:
        self.label_space = LabelSpace.of(classes, coco_map)
        if (model is None) == (factory is None):
            raise ValueError("give exactly one of model (a .tflite / TorchScript file) or factory")
        self.tflite = model is not None and model.endswith(".tflite")
        self.device = device or "cpu"
        self.mean, self.std, self.max_size = np.asarray(mean), np.asarray(std), max_size
        lo, hi = input_range
        self.divisor, self.offset = 255.0 / (hi - lo), lo
        if self.tflite:
            self.net: Any = TFLiteModel(str(model), "semantic segmentation", num_threads)
        else:
            self.net = _torch_model(model, factory, factory_args or {}, weights).to(self.device)

    @classmethod
    def label_space_of(cls, params: Mapping[str, Any]) -> LabelSpace:
        """The label space a head built with ``params`` uses (for scoring, without building it)."""
        return LabelSpace.of(params.get("classes", "voc"), params.get("coco_map"))

    def __call__(self, *, image: np.ndarray, **_: Any) -> Prediction:
        check_image(image)
        labels = self._tflite(image) if self.tflite else self._torch(image)
        if labels.max(initial=0) >= len(self.label_space.classes):
            raise ValueError(f"model predicts class {labels.max()} but the label space has "
                             f"{len(self.label_space.classes)} classes")
        return Prediction(semantic=labels)

    def _tflite(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        outputs, lb = self.net.letterboxed(image, self.divisor, self.offset)
        labels = lb.crop(outputs[0][0].argmax(-1).astype(np.uint8))
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)

    def _torch(self, image: np.ndarray) -> np.ndarray:
        """Resize (long side ``max_size``), normalise, run; logits upsampled to (H, W), argmax."""
        import torch
        import torch.nn.functional as F

        h, w = image.shape[:2]
        r = self.max_size / max(h, w)
        x = cv2.resize(image, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_LINEAR)
        x = (x.astype(np.float32) - self.mean) / self.std
        t = torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1)[None].to(self.device)
        with torch.inference_mode():
            out = self.net(t)
        logits = out["out"] if isinstance(out, Mapping) else out
        logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
        return logits[0].argmax(0).to(torch.uint8).cpu().numpy()


def _torch_model(model: str | None, factory: str | None, args: dict[str, Any], weights: str | None) -> Any:
    import torch

    if model is not None:
        return torch.jit.load(str(require_file(expand_path(model), "TorchScript model")), map_location="cpu").eval()
    module, _, attr = str(factory).partition(":")
    if not attr:
        raise ValueError(f"factory must be 'package.module:function', got {factory!r}")
    net = getattr(importlib.import_module(module), attr)(**args)
    if weights is not None:
        state = torch.load(Path(require_file(expand_path(weights), "model weights")), map_location="cpu",
                           weights_only=True)
        state = state.get("state_dict", state.get("model", state))
        net.load_state_dict(state)
    return net.eval()


class DeepLabV3(SemanticHead):
    """The assets' DeepLabV3-MobileNetV2 (Pascal VOC, 257x257 TFLite, input in [-1, 1])."""

    def __init__(self, *, model: str = default_model("deeplabv3-mnv2-voc", "deeplabv3_257_mv_gpu.tflite"),
                 num_threads: int | None = None) -> None:
        super().__init__(model=model, classes="voc", input_range=(-1.0, 1.0), num_threads=num_threads)

    @classmethod
    def label_space_of(cls, params: Mapping[str, Any]) -> LabelSpace:
        return LabelSpace.of("voc", None)
