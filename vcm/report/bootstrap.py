"""95 % confidence intervals from an image bootstrap (``report.bootstrap: B`` resamples).

The same B resamples of the images (with repeats, fixed seed) serve every rate point, so a
BD value's interval comes from recomputing both curves on each resample. Rates and fidelity are
means over the resampled images; COCO AP re-accumulates COCOeval's per-image matches
(:func:`vcm.metrics.coco.coco_ap_bootstrap`), cached in the run store like the scores.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from vcm.metrics.coco import coco_ap_bootstrap, iou_types
from vcm.metrics.quality import PSNR_CAP

SCORE_VERSION = 1  # as vcm.report.aggregate.SCORE_VERSION

SEED = 0
FIDELITY = ("psnr", "psnr_in", "msssim")
_PREFIX = {"segm": "segm", "bbox": "bbox", "keypoints": "kp"}


def draws(n: int, b: int, seed: int = SEED) -> np.ndarray:
    """(b, n) image indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, (b, n))


def point_samples(recs: dict[str, dict[str, Any]], idx: np.ndarray, convention: str, scorer: Any,
                  point_key: str) -> dict[str, np.ndarray]:
    """Per-resample values of one point (records for every image, ``idx`` over sorted ids)."""
    sids = sorted(recs)
    bits = np.array([8 * recs[s]["bytes"]["total"] for s in sids], float)
    px = np.array([recs[s]["height"] * recs[s]["width"] for s in sids], float)
    out = {"bpp": bits[idx].sum(1) / px[idx].sum(1) if convention == "pooled" else (bits / px)[idx].mean(1)}
    for k in FIDELITY:
        vals = [recs[s].get(k) for s in sids]
        if all(v is not None for v in vals):
            out[k] = np.minimum(np.asarray(vals, float), PSNR_CAP if k.startswith("psnr") else np.inf)[idx].mean(1)
    out.update(task_samples(recs, sids, idx, scorer, point_key))
    return out


def task_samples(recs: dict[str, dict[str, Any]], sids: list[str], idx: np.ndarray, scorer: Any,
                 point_key: str) -> dict[str, np.ndarray]:
    """AP per resample for each COCO task head (cached in the store when ``point_key`` is set)."""
    ev = scorer.exp.config.eval
    key = hashlib.sha1(json.dumps(["boot", SCORE_VERSION, point_key, sids, idx.shape, SEED, scorer.kinds,
                                   [t.ident for t in scorer.exp.plan.tasks], ev.category_ids, ev.pseudo_gt,
                                   ev.pseudo_gt_min_score, sorted(scorer.reference) if ev.pseudo_gt else None]
                                  ).encode()).hexdigest()
    cached = scorer.store.score(key) if scorer.store and point_key else None
    if cached is not None:
        return {k: np.asarray(v) for k, v in cached.items()}
    out: dict[str, np.ndarray] = {}
    for label, kind in scorer.kinds.items():
        if kind == "semantic":
            continue
        prefix = f"{label}:" if len(scorer.kinds) > 1 else ""
        img = [scorer._ids[s] if scorer.pseudo else recs[s]["coco_id"] for s in sids]
        pos = np.argsort(np.argsort(img))  # each sid's index in sorted(img)
        results = [{**r, "image_id": i} for s, i in zip(sids, img) for r in recs[s]["predictions"][label]["instances"]]
        for iou in iou_types(scorer._coco_gt(label, kind), kind):
            out[f"{prefix}{_PREFIX[iou]}_AP"] = coco_ap_bootstrap(
                scorer._coco_gt(label, kind), results, img, iou, pos[idx], ev.category_ids)
    if scorer.store and point_key:
        scorer.store.put_score(key, {k: v.tolist() for k, v in out.items()})
    return out


def interval(samples: np.ndarray) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles."""
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return float(lo), float(hi)


def bd_interval(anchor: list[Any], test: list[Any], metric: str, method: str,
                fit: str = "envelope") -> tuple[float, float] | None:
    """95 % interval of BD-rate over the resamples (rows of the two series with ``samples``);
    None without samples or when fewer than 80 % of the resamples give a value."""
    from vcm.report.bdrate import Curve, bd_rate, metric_bounds

    rows = anchor + test
    if not rows or not all("bpp" in r.samples and metric in r.samples for r in rows):
        return None
    n = len(rows[0].samples["bpp"])
    vals = []
    for b in range(n):
        a, t = (Curve(tuple(r.samples["bpp"][b] for r in rs), tuple(r.samples[metric][b] for r in rs)) for rs in (anchor, test))
        v = bd_rate(a, t, method, all_methods=False, fit=fit, bounds=metric_bounds(metric)).value
        if v is not None:
            vals.append(v)
    return interval(np.asarray(vals)) if len(vals) >= 0.8 * n else None
