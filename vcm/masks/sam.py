"""Segment Anything (SAM) masks: automatic mode, or box prompts from another mask node.

Automatic mode runs segment-anything's ``SamAutomaticMaskGenerator`` (a grid of point prompts,
quality thresholds, minimum region area). Box mode takes the instances of the ``prompts`` mask
node (its ``labels``, e.g. YOLOv8n-seg or ground truth; connected components when it has none),
turns each into a box and lets SAM refine it into a mask. Either way the instances are kept as
``labels`` (for per-instance codecs such as GIT-SSIC) and their union is the keep-mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vcm._optional import require
from vcm.assets import expand_path
from vcm.masks.base import dilate, instance_boxes
from vcm.types import DEFAULT_UNIT, Mask, check_image

URLS = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}
ARCH_KEYS = ("embed_dim", "depth", "heads", "global_attn")


def build_sam(checkpoint: str, model_type: str = "vit_b", arch: Mapping[str, Any] | None = None) -> Any:
    """A SAM model with weights from ``checkpoint`` (loaded on CPU).

    ``model_type`` is ``vit_b`` / ``vit_l`` / ``vit_h`` (official checkpoints), or ``custom`` with
    ``arch`` = {embed_dim, depth, heads, global_attn: [block indices]} for other image encoders.
    """
    import torch

    sam_builders = require("segment_anything.build_sam")  # the module (the package re-exports a function)

    path = expand_path(checkpoint)
    if not Path(path).is_file():
        url = URLS.get(model_type)
        hint = f"; download the official weights from {url}" if url else ""
        raise FileNotFoundError(f"SAM checkpoint not found: {path}{hint}")
    if model_type == "custom":
        if arch is None or set(arch) != set(ARCH_KEYS):
            raise ValueError(f"model_type 'custom' needs arch with keys {', '.join(ARCH_KEYS)}, got {arch}")
        model = sam_builders._build_sam(arch["embed_dim"], arch["depth"], arch["heads"], list(arch["global_attn"]))
    elif model_type in URLS:
        model = sam_builders.sam_model_registry[model_type]()
    else:
        raise ValueError(f"unknown SAM model_type {model_type!r} (vit_b, vit_l, vit_h, custom)")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


class SamMask:
    """SAM instance masks; union = keep-mask, instance ids in ``labels``.

    Args:
        checkpoint: SAM weights file; model_type / arch: see :func:`build_sam`.
        points_per_side, pred_iou_thresh, stability_score_thresh, min_mask_region_area,
            points_per_batch: segment-anything's automatic-mode parameters (no ``prompts`` input).
        max_instances: keep at most this many automatic masks, the best predicted IoU first.
        clip_to_box: in box mode, cut each mask to its prompt box.
        dilate: grow the union by this many pixels. unit: mask-unit size of the coded grid.
    """

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "prompts": "mask"}
    optional_ports: ClassVar[frozenset[str]] = frozenset({"prompts"})

    def __init__(self, *, checkpoint: str, model_type: str = "vit_b", arch: dict[str, Any] | None = None,
                 points_per_side: int = 32, pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95,
                 min_mask_region_area: int = 0, points_per_batch: int = 64, max_instances: int = 100,
                 clip_to_box: bool = False, dilate: int = 0, unit: int = DEFAULT_UNIT, device: Any = None) -> None:
        self.model = build_sam(checkpoint, model_type, arch).to(device or "cpu")
        self.auto = {"points_per_side": points_per_side, "pred_iou_thresh": pred_iou_thresh,
                     "stability_score_thresh": stability_score_thresh, "points_per_batch": points_per_batch,
                     "min_mask_region_area": min_mask_region_area}
        self.max_instances, self.clip_to_box, self.dilate, self.unit = max_instances, clip_to_box, dilate, unit

    def __call__(self, *, image: np.ndarray, prompts: Mask | None = None, **_: Any) -> Mask:
        check_image(image)
        if prompts is None:
            masks = self.automatic(image)
        else:
            prompts.check_fits(image)
            masks = self.from_boxes(image, instance_boxes(prompts))
        labels = np.zeros(image.shape[:2], np.int32)
        for k, m in enumerate(masks, 1):
            labels[m] = k  # later (smaller, or later-prompted) instances win where they overlap
        return Mask.from_pixels(dilate(labels > 0, self.dilate), self.unit, labels)

    def automatic(self, image: np.ndarray) -> list[np.ndarray]:
        """bool (H, W) masks from the point grid, largest first (so small ones stay on top)."""
        from segment_anything import SamAutomaticMaskGenerator

        out = SamAutomaticMaskGenerator(self.model, **self.auto).generate(image)
        out = sorted(out, key=lambda r: -r["predicted_iou"])[: self.max_instances]
        return [r["segmentation"] for r in sorted(out, key=lambda r: -r["area"])]

    def from_boxes(self, image: np.ndarray, boxes: list[np.ndarray]) -> list[np.ndarray]:
        """One bool (H, W) mask per XYXY box (single-mask output)."""
        if not boxes:
            return []
        from segment_anything import SamPredictor

        predictor = SamPredictor(self.model)
        predictor.set_image(image)
        masks = []
        for box in boxes:
            m = predictor.predict(box=box, multimask_output=False)[0][0].astype(bool)
            if self.clip_to_box:
                x0, y0, x1, y1 = box.astype(int)
                inside = np.zeros_like(m)
                inside[y0:y1, x0:x1] = True
                m &= inside
            masks.append(m)
        return masks
