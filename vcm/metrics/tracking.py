"""Multi-object tracking scores through trackeval: HOTA (DetA, AssA), CLEAR (MOTA, IDSW), IDF1.

Boxes are COCO-style dicts (``bbox`` xywh in pixels, ``track_id``), one list per frame; the
similarity is box IoU (trackeval's own), matched at ``iou_threshold`` for CLEAR and Identity, and
over IoU thresholds 0.05 ... 0.95 for HOTA, as trackeval does. Ground truth marked ``iscrowd: 1``
(MOTChallenge's ignore flag) is an ignore region: predictions lying mostly inside one (IoA >= 0.5)
are dropped before scoring, so they count neither as hits nor as false positives.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from vcm._optional import require

Frames = list[list[dict[str, Any]]]
SUMMARY = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW")  # trackeval's field names


def track_scores(sequences: list[tuple[Frames, Frames]], iou_threshold: float = 0.5) -> dict[str, float]:
    """Scores over all ``(ground truth, predicted)`` sequences (trackeval combines them, each
    sequence keeping its own ids). HOTA, DetA, AssA (means over HOTA's IoU thresholds), MOTA,
    MOTP, IDF1 in [0, 1] (MOTA can be negative); IDSW, ``gt_dets`` and ``gt_ids`` are counts."""
    te = require("trackeval")
    with contextlib.redirect_stdout(io.StringIO()):  # trackeval prints its configs
        metrics = [te.metrics.HOTA(), te.metrics.CLEAR({"THRESHOLD": iou_threshold, "PRINT_CONFIG": False}),
                   te.metrics.Identity({"THRESHOLD": iou_threshold, "PRINT_CONFIG": False})]
    data = [sequence_data(gt, pred) for gt, pred in sequences]
    res = {}
    for m in metrics:
        res.update(m.combine_sequences({str(i): m.eval_sequence(d) for i, d in enumerate(data)}))
    out = {k: float(np.mean(res[k])) for k in SUMMARY}  # HOTA's fields: one value per IoU threshold
    out["gt_dets"] = float(sum(d["num_gt_dets"] for d in data))
    out["gt_ids"] = float(sum(d["num_gt_ids"] for d in data))
    return out


def sequence_data(gt: Frames, pred: Frames) -> dict[str, Any]:
    """One sequence in the form trackeval's metrics read: ids renumbered 0..K-1, and per frame the
    IoU of every ground-truth box with every predicted one."""
    from trackeval.datasets._base_dataset import _BaseDataset

    if len(gt) != len(pred):
        raise ValueError(f"ground truth has {len(gt)} frames, predictions {len(pred)}")
    gt, pred = zip(*(_without_ignored(g, p) for g, p in zip(gt, pred))) if gt else ((), ())
    gid, pid = _renumber(gt), _renumber(pred)
    data: dict[str, Any] = {"num_timesteps": len(gt), "gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for g, p in zip(gt, pred):
        data["gt_ids"].append(np.array([gid[d["track_id"]] for d in g], int))
        data["tracker_ids"].append(np.array([pid[d["track_id"]] for d in p], int))
        data["similarity_scores"].append(_BaseDataset._calculate_box_ious(_boxes(g), _boxes(p)))
    data.update(num_gt_ids=len(gid), num_tracker_ids=len(pid), num_gt_dets=sum(len(g) for g in gt),
                num_tracker_dets=sum(len(p) for p in pred))
    return data


def _without_ignored(gt: list[dict[str, Any]], pred: list[dict[str, Any]]
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Drop ignore regions from the ground truth and the predictions mostly inside them."""
    from trackeval.datasets._base_dataset import _BaseDataset

    crowd = [d for d in gt if d.get("iscrowd")]
    if crowd and pred:
        ioa = _BaseDataset._calculate_box_ious(_boxes(pred), _boxes(crowd), do_ioa=True)
        pred = [d for d, a in zip(pred, ioa.max(1)) if a < 0.5]
    return [d for d in gt if not d.get("iscrowd")], pred


def _renumber(frames: Any) -> dict[Any, int]:
    ids: dict[Any, int] = {}
    for f in frames:
        for d in f:
            ids.setdefault(d["track_id"], len(ids))
    return ids


def _boxes(dets: list[dict[str, Any]]) -> np.ndarray:
    return np.array([d["bbox"] for d in dets], float).reshape(-1, 4)
