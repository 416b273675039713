"""COCO AP (bbox, segm, keypoints) through pycocotools' COCOeval, plus pseudo ground truth."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np

IOU_TYPES = {"instances": ("segm", "bbox"), "keypoints": ("keypoints",)}
_PREFIX = {"segm": "segm", "bbox": "bbox", "keypoints": "kp"}


def coco_ap(gt: Any, results: list[dict[str, Any]], img_ids: list[int], iou_type: str,
            cat_ids: tuple[int, ...] | None = None) -> dict[str, float]:
    """AP, AP50, AP75 for ``results`` (COCO result dicts with image_id) on ``img_ids``, over
    ``cat_ids`` (None: all categories; keypoints: person).

    Keys are prefixed by the IoU type, e.g. ``segm_AP``. No detections give AP 0.
    """
    p = _PREFIX[iou_type]
    ev = _evaluated(gt, results, img_ids, iou_type, cat_ids)
    if ev is None:
        return {f"{p}_AP": 0.0, f"{p}_AP50": 0.0, f"{p}_AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    s = [max(float(v), 0.0) for v in ev.stats[:3]]  # COCOeval uses -1 for "no ground truth"
    return {f"{p}_AP": s[0], f"{p}_AP50": s[1], f"{p}_AP75": s[2]}


def coco_ap_bootstrap(gt: Any, results: list[dict[str, Any]], img_ids: list[int], iou_type: str,
                      draws: np.ndarray, cat_ids: tuple[int, ...] | None = None) -> np.ndarray:
    """AP (IoU .50:.95, all areas, 100 detections: COCOeval's stats[0]) on each image resample:
    ``draws`` (B, n) indices into ``sorted(img_ids)``, repeats allowed -> (B,). COCOeval matches
    each image once; each resample re-accumulates those per-image matches."""
    ev = _evaluated(gt, results, img_ids, iou_type, cat_ids)
    if ev is None:
        return np.zeros(len(draws))
    n_img, n_area = len(ev._paramsEval.imgIds), len(ev._paramsEval.areaRng)
    per_cat = [ev.evalImgs[k * n_area * n_img:k * n_area * n_img + n_img] for k in range(len(ev._paramsEval.catIds))]
    for prm in (ev.params, ev._paramsEval):
        prm.areaRng, prm.areaRngLbl, prm.maxDets = prm.areaRng[:1], prm.areaRngLbl[:1], [prm.maxDets[-1]]
    out = np.empty(len(draws))
    for b, idx in enumerate(draws):
        ev.evalImgs = [imgs[i] for imgs in per_cat for i in idx]
        ev.params.imgIds = ev._paramsEval.imgIds = list(range(len(idx)))
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
        prec = ev.eval["precision"][..., 0, 0]
        out[b] = float(prec[prec > -1].mean()) if (prec > -1).any() else 0.0
    return out


def _evaluated(gt: Any, results: list[dict[str, Any]], img_ids: list[int], iou_type: str,
               cat_ids: tuple[int, ...] | None) -> Any:
    """A COCOeval after ``evaluate()`` (per-image matching), or None without detections."""
    from pycocotools.cocoeval import COCOeval

    res = [_for_type(r, iou_type) for r in results]
    if not res:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(res)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.imgIds = sorted(img_ids)
        if iou_type == "keypoints":
            ev.params.catIds = [1]
        elif cat_ids:
            ev.params.catIds = sorted(cat_ids)
        ev.evaluate()
    return ev


def _for_type(r: dict[str, Any], iou_type: str) -> dict[str, Any]:
    """Keep the fields ``loadRes`` should see: segm areas come from the masks, not the boxes."""
    r = copy.deepcopy(r)
    if iou_type == "segm":
        r.pop("bbox", None)
        r.pop("keypoints", None)
    elif iou_type == "bbox":
        r.pop("segmentation", None)
        r.pop("keypoints", None)
    return r


def pseudo_ground_truth(reference: dict[int, list[dict[str, Any]]], sizes: dict[int, tuple[int, int]],
                        kind: str, min_score: float) -> Any:
    """A COCO object whose annotations are the reference predictions scoring >= ``min_score``."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    images, anns, cats = [], [], set()
    for img_id, preds in sorted(reference.items()):
        h, w = sizes[img_id]
        images.append({"id": img_id, "height": h, "width": w})
        for r in preds:
            if r["score"] < min_score:
                continue
            a = {"id": len(anns) + 1, "image_id": img_id, "category_id": r["category_id"],
                 "bbox": r["bbox"], "iscrowd": 0, "area": float(r["bbox"][2] * r["bbox"][3])}
            if "segmentation" in r:
                a["segmentation"] = r["segmentation"]
                a["area"] = float(mask_utils.area(r["segmentation"]))
            if "keypoints" in r:
                a["keypoints"] = r["keypoints"]
                a["num_keypoints"] = int(np.sum(np.asarray(r["keypoints"])[2::3] > 0))
            anns.append(a)
            cats.add(r["category_id"])
    if not anns:
        raise ValueError(f"pseudo ground truth is empty: no reference prediction scores >= {min_score}; "
                         "lower eval.pseudo_gt_min_score or use images with objects")
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": c, "name": str(c)} for c in sorted(cats | {1})]}
    if kind == "keypoints":
        gt.dataset["categories"] = [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(17)],
                                     "skeleton": []}]
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def iou_types(gt: Any, kind: str) -> tuple[str, ...]:
    """COCOeval's IoU types for a head's kind, without ``segm`` when the ground truth has boxes
    only (MOTChallenge: no masks to score against)."""
    anns = gt.dataset.get("annotations", [])
    boxes_only = bool(anns) and not any("segmentation" in a for a in anns)
    return tuple(t for t in IOU_TYPES[kind] if not (t == "segm" and boxes_only))
