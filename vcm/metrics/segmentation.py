"""Semantic segmentation scoring: a confusion matrix accumulated over images, then IoU."""

from __future__ import annotations

import numpy as np

IGNORE = 255


def confusion(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (C, C) counts, rows = ground truth; ``IGNORE`` pixels are skipped."""
    if gt.shape != pred.shape:
        raise ValueError(f"class maps differ in size: {gt.shape} vs {pred.shape}")
    keep = gt != IGNORE
    idx = gt[keep].astype(np.int64) * num_classes + np.minimum(pred[keep], num_classes - 1)
    return np.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def miou(conf: np.ndarray, names: tuple[str, ...] | None = None) -> dict[str, float]:
    """Mean IoU over classes present in ground truth or prediction, plus per-class IoU."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    out = {"mIoU": float(np.nanmean(iou)) if present.any() else 0.0}
    if names:
        out.update({f"IoU_{n}": float(v) for n, v in zip(names, iou) if not np.isnan(v)})
    return out
