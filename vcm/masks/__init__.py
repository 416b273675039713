"""Mask generators: image (+ annotations / another mask) -> :class:`vcm.types.Mask`."""

from vcm.masks.base import MASKS, MaskGenerator

MASKS.register_lazy("none", "vcm.masks.basic:FullMask")
MASKS.register_lazy("gt", "vcm.masks.basic:GroundTruthMask")
MASKS.register_lazy("random", "vcm.masks.basic:RandomPatchMask")
MASKS.register_lazy("damask", "vcm.masks.damask:DAMask")
MASKS.register_lazy("yolo_seg", "vcm.masks.yolo:YoloSegMask", extra="tflite")
MASKS.register_lazy("sam", "vcm.masks.sam:SamMask", extra="sam")
MASKS.register_lazy("maskrcnn", "vcm.masks.detectron2:Detectron2Mask")  # detectron2: from source

__all__ = ["MASKS", "MaskGenerator"]
