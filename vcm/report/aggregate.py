"""Aggregate a run's records per (series, point): mean rate/quality and dataset-level accuracy."""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from vcm.metrics.coco import coco_ap, iou_types, pseudo_ground_truth
from vcm.metrics.quality import PSNR_CAP
from vcm.metrics.segmentation import confusion, miou
from vcm.pipeline.graph import component_class
from vcm.pipeline.executor import make_executor
from vcm.pipeline.runner import Experiment, WorkerSpec, enter, prepare, worker_spec
from vcm.pipeline.store import ResultStore
from vcm.pipeline.worker import REFERENCE, decode_semantic
from vcm.report import bootstrap as boot
from vcm.report import complexity as cx
from vcm.tasks import TASKS

SCORE_VERSION = 1  # bump when scoring changes: cached scores of older runs are then recomputed
RATE_KEYS = ("bpp", "bpp_payload", "bpp_side", "bpp_header", "visible_fraction")
QUALITY_KEYS = ("psnr", "psnr_in", "psnr_out", "msssim", "lpips")  # lpips: lower is better
TRACK_KEYS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")  # trackeval, in [0, 1] (IDSW: a count)


@dataclass
class Row:
    """One rate point (or the uncompressed reference, or a published point) with its means and task scores."""

    series: str
    point: str
    images: int
    values: dict[str, float | None] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)  # bootstrap: metric -> (B,) values
    source: str = ""  # a published point (report.references): where it comes from; "" when measured
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> kMAC/px, params (complexity.py)


def primary_metric(kind: str) -> str:
    return {"instances": "segm_AP", "keypoints": "kp_AP", "semantic": "mIoU"}[kind]


def task_kinds(exp: Experiment) -> dict[str, str]:
    return {t.label: component_class(TASKS.get(t.type)).task_kind for t in exp.plan.tasks}


def aggregate(exp: Experiment, store: ResultStore, progress: bool = False) -> list[Row]:
    """Rows for the reference and for every planned point with at least one image done; task
    scores (COCOeval, mIoU) are cached in ``store`` per point and image set."""
    wanted = {p.key: p for p in exp.plan.points}
    ids = set(exp.dataset.ids())
    by_point: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    costs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sid, key, rec in store.records():
        if sid in ids and (key in wanted or key == REFERENCE):
            by_point[key][sid] = rec
            cx.collect(costs, rec)
    reference = by_point.get(REFERENCE, {})
    scorer = TaskScorer(exp, reference, store)
    prescore(exp, scorer, {k: v for k, v in by_point.items() if k in wanted or k == REFERENCE}, progress)
    n_boot, n_img = exp.config.report.bootstrap, len(ids)
    idx = boot.draws(n_img, n_boot) if n_boot else None
    rows = [Row("reference", "uncompressed", len(reference),
                {**scorer.score(reference, REFERENCE), **class_scores(scorer, reference, REFERENCE), **_timings(reference)},
                costs=cx.point_costs(exp.graph, exp.plan, None, costs))]
    for key, point in tqdm(wanted.items(), desc="scoring", unit="point", disable=not progress, leave=False):
        recs = by_point.get(key)
        if recs:
            values: dict[str, float | None] = {k: _mean([r.get(k) for r in recs.values()], k.startswith("psnr"))
                                               for k in RATE_KEYS + QUALITY_KEYS}
            values.update(bpp_values(recs, exp.config.report.bpp))
            values.update(kbps_values(recs))
            values.update(_timings(recs))
            values.update(scorer.score(recs, key))
            values.update(class_scores(scorer, recs, key))
            samples = boot.point_samples(recs, idx, exp.config.report.bpp, scorer, key) \
                if idx is not None and len(recs) == n_img and not is_clip(recs) else {}
            for k, v in samples.items():
                values[f"{k}_lo"], values[f"{k}_hi"] = boot.interval(v)
            rows.append(Row(point.series, point.point, len(recs), values, samples,
                            costs=cx.point_costs(exp.graph, exp.plan, point, costs)))
    return rows


@dataclass(frozen=True)
class ScoreSpec:
    """Rebuilds a run's scorer in a worker (it pickles): calling it gives the function that scores
    one ``(point key, records)`` unit."""

    worker: WorkerSpec
    reference: dict[str, dict[str, Any]]

    def __call__(self) -> Callable[[tuple[str, dict[str, Any]]], list[dict[str, float | None]]]:
        enter(self.worker.cwd, self.worker.env)
        scorer = TaskScorer(prepare(self.worker.config), self.reference)
        return lambda unit: [scorer.score(unit[1])]


def prescore(exp: Experiment, scorer: TaskScorer, by_point: dict[str, dict[str, Any]], progress: bool) -> None:
    """Score the points not in the store's cache on the run's executor (COCOeval per point in
    parallel), caching each result; the in-process executor scores them as rows are built."""
    todo = [(k, recs) for k, recs in by_point.items() if scorer.store and scorer.store.score(scorer.cache_key(recs, k)) is None]
    if exp.config.executor.type == "inprocess" or len(todo) < 2 or not scorer.kinds or scorer.store is None:
        return
    work = make_executor(exp.config.executor).imap(ScoreSpec(worker_spec(exp), scorer.reference), todo)
    for (key, recs), (scores,) in tqdm(work, total=len(todo), desc="scoring", unit="point", disable=not progress):
        scorer.store.put_score(scorer.cache_key(recs, key), scores)


def bpp_values(recs: dict[str, dict[str, Any]], convention: str) -> dict[str, float | None]:
    """``bpp_mean`` (mean of the images' bpp), ``bpp_pooled`` (all bits over all pixels, MPEG's
    convention) and ``bpp``, the one ``convention`` picks for curves and BD values."""
    mean = _mean([r.get("bpp") for r in recs.values()])
    pixels = sum(r["height"] * r["width"] * r.get("frames", 1) for r in recs.values())
    pooled = 8 * sum(r["bytes"]["total"] for r in recs.values()) / pixels if pixels else None
    return {"bpp": pooled if convention == "pooled" else mean, "bpp_mean": mean, "bpp_pooled": pooled}


def class_scores(scorer: TaskScorer, recs: dict[str, dict[str, Any]], key: str) -> dict[str, float | None]:
    """Task scores per sequence class (``segm_AP[C]``, ``HOTA[C]``, ...) when the clips name two
    or more classes, as MPEG reports per class beside ``kbps[C]``."""
    groups = sorted({r["group"] for r in recs.values() if r.get("group")})
    if len(groups) < 2:
        return {}
    out: dict[str, float | None] = {}
    for g in groups:
        sub = {sid: r for sid, r in recs.items() if r.get("group") == g}
        out.update({f"{k}[{g}]": v for k, v in scorer.score(sub, f"{key}[{g}]").items()})
    return out


def is_clip(recs: dict[str, dict[str, Any]]) -> bool:
    """Whether the records are whole clips (a video dataset)."""
    return any("frames" in r for r in recs.values())


def kbps_values(recs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """For clips: ``kbps``, all bits over all clips' duration (the duration-weighted mean of the
    clips' kbps), and ``kbps[<group>]`` per sequence class when the dataset names classes."""
    if not is_clip(recs):
        return {}
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for r in recs.values():
        groups[None].append(r)
        if r.get("group"):
            groups[r["group"]].append(r)
    return {"kbps" if g is None else f"kbps[{g}]": 8 * sum(r["bytes"]["total"] for r in rs) / 1000 / sum(r["duration"] for r in rs)
            for g, rs in groups.items()}


def _timings(recs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Mean per-stage time in milliseconds (``ms_encode``, ``ms_task:seg``, ...) over the images
    where the stage was computed for this point (a reused output, recorded as None, is not a cost)."""
    stages = dict.fromkeys(k for r in recs.values() for k in r.get("timings", {}))
    return {f"ms_{k}": _mean([1000 * r["timings"][k] for r in recs.values() if r.get("timings", {}).get(k) is not None])
            for k in stages}


def _mean(xs: list[Any], psnr: bool = False) -> float | None:
    """Mean of the non-None values; PSNR capped at PSNR_CAP (lossless images are infinite)."""
    vals = [min(float(x), PSNR_CAP) if psnr else float(x) for x in xs if x is not None]
    return float(np.mean(vals)) if vals else None


class TaskScorer:
    """Scores a set of per-image records against ground truth (or the reference: pseudo-GT)."""

    def __init__(self, exp: Experiment, reference: dict[str, dict[str, Any]], store: ResultStore | None = None) -> None:
        self.exp, self.reference, self.kinds, self.store = exp, reference, task_kinds(exp), store
        self.pseudo = exp.config.eval.pseudo_gt
        self._ids = {sid: i + 1 for i, sid in enumerate(sorted(reference))}  # pseudo-GT image ids
        self._gt: dict[tuple[str, str], Any] = {}

    def cache_key(self, recs: dict[str, dict[str, Any]], point_key: str) -> str:
        """What a point's scores depend on: the point, its images and the scoring settings."""
        ev = self.exp.config.eval
        blob = json.dumps([SCORE_VERSION, point_key, sorted(recs), [t.ident for t in self.exp.plan.tasks + self.exp.plan.trackers], self.kinds,
                           ev.category_ids, ev.pseudo_gt, ev.pseudo_gt_min_score,
                           sorted(self.reference) if ev.pseudo_gt else None], default=str)
        return hashlib.sha1(blob.encode()).hexdigest()

    def score(self, recs: dict[str, dict[str, Any]], point_key: str = "") -> dict[str, float | None]:
        """Task scores of one point's records, from the store's cache when the same point, images
        and scoring settings were scored before."""
        key = self.cache_key(recs, point_key)
        cached = self.store.score(key) if self.store and point_key else None
        if cached is not None:
            return cached
        out = self._score(recs)
        if self.store and point_key:
            self.store.put_score(key, out)
        return out

    def _score(self, recs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for label, kind in self.kinds.items():
            prefix = f"{label}:" if len(self.kinds) > 1 else ""
            scores = self._semantic(label, recs) if kind == "semantic" else self._coco(label, kind, recs)
            out.update({prefix + k: v for k, v in scores.items()})
        if self.exp.plan.trackers and is_clip(recs):
            out.update(self._tracking(recs))
        return out

    def _tracking(self, recs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
        """HOTA, MOTA, IDF1 ... of every tracker on every detecting head, against the dataset's
        track ids (or, with ``eval.pseudo_gt``, the same tracker on the uncompressed frames)."""
        from vcm.metrics.tracking import track_scores

        trackers, out = [t.label for t in self.exp.plan.trackers], {}
        for tr in trackers:
            for label in (lb for lb, kind in self.kinds.items() if kind != "semantic"):
                seqs = [(self._gt_tracks(tr, label, sid, rec), self._kept(rec["tracks"][tr][label]))
                        for sid, rec in recs.items() if label in rec.get("tracks", {}).get(tr, {})]
                prefix = (f"{label}:" if len(self.kinds) > 1 else "") + (f"{tr}/" if len(trackers) > 1 else "")
                scores = track_scores(seqs) if seqs else {}
                out.update({prefix + k: scores.get(k) for k in TRACK_KEYS if seqs})
        return out

    def _gt_tracks(self, tracker: str, label: str, sid: str, rec: dict[str, Any]) -> list[list[dict[str, Any]]]:
        """One clip's ground-truth boxes with track ids, one list per frame."""
        if self.pseudo:  # the tracker's own output on the uncompressed clip (its thresholds apply)
            return self._kept(self.reference[sid]["tracks"][tracker][label])
        coco = self.exp.dataset.coco_gt("instances")
        if coco is None:
            raise ValueError("dataset has no track annotations to score tracking; set eval.pseudo_gt: true")
        return self._kept([[a for a in coco.loadAnns(coco.getAnnIds(imgIds=[i])) if "track_id" in a]
                           for i in rec["frame_ids"]])

    def _kept(self, frames: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        """Each frame's boxes of the categories scored (``eval.category_ids``; all when unset)."""
        cats = self.exp.config.eval.category_ids
        return [[d for d in f if d["category_id"] in cats] for f in frames] if cats else frames

    def _coco(self, label: str, kind: str, recs: dict[str, dict[str, Any]]) -> dict[str, float]:
        gt = self._coco_gt(label, kind)
        results, img_ids = [], []
        for sid, rec in recs.items():
            if "frame_ids" in rec:  # a clip: every frame is an image, its predictions carry their id
                img_ids += rec["frame_ids"]
                results += rec["predictions"][label]["instances"]
                continue
            img_ids.append(self._ids[sid] if self.pseudo else rec["coco_id"])
            results += [{**r, "image_id": img_ids[-1]} for r in rec["predictions"][label]["instances"]]
        out: dict[str, float] = {}
        for iou_type in iou_types(gt, kind):
            out.update(coco_ap(gt, results, img_ids, iou_type, self.exp.config.eval.category_ids))
        return out

    def _coco_gt(self, label: str, kind: str) -> Any:
        if (label, kind) not in self._gt:
            if self.pseudo:
                preds, sizes = self._reference_frames(label)
                self._gt[(label, kind)] = pseudo_ground_truth(
                    preds, sizes, kind, self.exp.config.eval.pseudo_gt_min_score)
            else:
                gt = self.exp.dataset.coco_gt("keypoints" if kind == "keypoints" else "instances")
                if gt is None:
                    raise ValueError(f"dataset has no annotations to score {label!r}; set eval.pseudo_gt: true")
                self._gt[(label, kind)] = gt
        return self._gt[(label, kind)]

    def _reference_frames(self, label: str) -> tuple[dict[int, list[dict[str, Any]]], dict[int, tuple[int, int]]]:
        """The uncompressed predictions and size of every image (every frame, for clips)."""
        preds: dict[int, list[dict[str, Any]]] = {}
        sizes: dict[int, tuple[int, int]] = {}
        for s, r in self.reference.items():
            ids = r["frame_ids"] if "frame_ids" in r else [self._ids[s]]
            for i in ids:
                preds[i], sizes[i] = [], (r["height"], r["width"])
            for d in r["predictions"][label]["instances"]:
                preds[d.get("image_id", ids[0])].append(d)
        return preds, sizes

    def _semantic(self, label: str, recs: dict[str, dict[str, Any]]) -> dict[str, float]:
        choice = next(t for t in self.exp.plan.tasks if t.label == label)
        space = component_class(TASKS.get(choice.type)).label_space_of(choice.kwargs)
        n = len(space.classes)
        conf = np.zeros((n, n), np.int64)
        for sid, rec in recs.items():
            pred = decode_semantic(rec["predictions"][label]["semantic"])
            if self.pseudo:
                gt = decode_semantic(self.reference[sid]["predictions"][label]["semantic"])
            else:
                coco = self.exp.dataset.coco_gt("instances")
                if coco is None:
                    raise ValueError(f"dataset has no annotations to score {label!r}; set eval.pseudo_gt: true")
                anns = coco.loadAnns(coco.getAnnIds(imgIds=[rec["coco_id"]]))
                gt = space.ground_truth(anns, rec["height"], rec["width"])
            conf += confusion(gt, pred, n)
        return {k: v for k, v in miou(conf, space.classes).items() if k in ("mIoU", "IoU_person")}


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
