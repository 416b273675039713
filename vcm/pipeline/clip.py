"""Evaluate the graph on a clip: one record per point for the whole sequence.

Mask and task nodes run frame by frame, as on images. A codec with ``encode_clip`` (a
:class:`~vcm.codecs.base.SequenceCodec`: inter prediction) codes the whole clip into one
bitstream and decodes every frame from those bytes alone; any other codec runs frame by frame
(the all-intra case). Trackers then run over the clip's per-frame predictions.

A clip record holds the clip's bytes and rates (``kbps`` = bytes x 8 x fps / 1000 / frames, and
bpp over all frames' pixels), fidelity as the mean over frames, every head's predictions with
the frame's image id, and per tracker the tracked boxes per frame.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from vcm.metrics.quality import PSNR_CAP
from vcm.pipeline.plan import Choice, Point
from vcm.pipeline.worker import REFERENCE, Record, SampleWorker, Unit
from vcm.types import Bitstream, Clip

FIDELITY = ("psnr", "psnr_in", "psnr_out", "msssim", "lpips", "visible_fraction")


class ClipWorker:
    """Callable on (clip id, pending points, reference pending?) -> one record per point."""

    def __init__(self, frames: SampleWorker, trackers: tuple[Choice, ...] = ()) -> None:
        self.fw, self.trackers = frames, trackers

    def __call__(self, unit: Unit) -> Iterator[Record]:
        clip_id, points, reference = unit
        t = time.perf_counter()
        clip: Clip = self.fw.dataset.load(clip_id)
        load = {"load": time.perf_counter() - t}
        memos: list[dict[Any, Any]] = [{} for _ in clip.frames]
        if reference:
            frames = [next(self.fw.records(f, [], True, m, {})) for f, m in zip(clip.frames, memos)]
            yield clip_id, REFERENCE, self._reference(clip, [r for _, _, r in frames], load)
            load = {}
        whole = [p for p in points if self._clip_codec(p) is not None]
        for point in whole:
            rec = self._coded_clip(clip, point, memos)
            rec["timings"].update(load)
            load = {}
            yield clip_id, point.key, rec
        per_frame = [p for p in points if p not in whole]
        if per_frame:
            for key, rec in self._frame_by_frame(clip, per_frame, memos, load):
                yield clip_id, key, rec

    def _clip_codec(self, point: Point) -> Any:
        """The point's codec if it codes whole clips, else None."""
        enc = self.fw.graph.by_kind("encode")[0]
        codec = self.fw.components.get("encode", point.choice(enc.component))
        return codec if callable(getattr(codec, "encode_clip", None)) else None

    def _coded_clip(self, clip: Clip, point: Point, memos: list[dict[Any, Any]]) -> dict[str, Any]:
        """Code the clip in one bitstream, decode it from the bytes, score each decoded frame."""
        enc, dec = self.fw.graph.by_kind("encode")[0], self.fw.graph.by_kind("decode")[0]
        inputs = [self.fw.node_values(f, point, m, until=enc.name)[0] for f, m in zip(clip.frames, memos)]
        masks = [v[enc.inputs["mask"]] for v in inputs] if "mask" in enc.inputs and self._uses_mask(point) else None
        t = time.perf_counter()
        bs: Bitstream = self._clip_codec(point).encode_clip(frames=[f.image for f in clip.frames], masks=masks, fps=clip.fps)
        t_enc, t = time.perf_counter() - t, time.perf_counter()
        decoded = self.fw.components.get("decode", point.choice(dec.component)).decode_clip(bs.data)
        t_dec = time.perf_counter() - t
        if len(decoded) != len(clip.frames):
            raise RuntimeError(f"{point.series} decoded {len(decoded)} frames of a {len(clip.frames)}-frame clip")
        recs = []
        for f, m, d in zip(clip.frames, memos, decoded):
            recs.append(self.fw.evaluate(f, point, m, given={enc.name: bs, dec.name: d}))
            _evict(m, (enc.name, dec.name))
        rec = self._tracked(clip, merge(clip, recs, _parts(bs), point), recs)
        rec["timings"].update({enc.name: t_enc, dec.name: t_dec})
        return rec

    def _uses_mask(self, point: Point) -> bool:
        codec = self._clip_codec(point)
        return bool(getattr(codec, "uses_mask", True))

    def _frame_by_frame(self, clip: Clip, points: list[Point], memos: list[dict[Any, Any]],
                        load: dict[str, float]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Per-frame codecs: every frame coded alone; frames outer, so a frame's memo goes early."""
        per_point: dict[str, list[dict[str, Any]]] = {p.key: [] for p in points}
        for i, frame in enumerate(clip.frames):
            for key, rec in ((k, r) for _, k, r in self.fw.records(frame, points, False, memos[i], {})):
                per_point[key].append(rec)
            memos[i] = {}
        for point in points:
            recs = per_point[point.key]
            parts = {k: sum(r["bytes"][k] for r in recs) for k in ("header", "side", "payload", "total")}
            rec = self._tracked(clip, merge(clip, recs, parts, point), recs)
            rec["timings"].update(load)
            load = {}
            yield point.key, rec

    def _reference(self, clip: Clip, frames: list[dict[str, Any]], load: dict[str, float]) -> dict[str, Any]:
        rec = _clip_fields(clip)
        rec["predictions"] = _predictions(clip, frames)
        rec["timings"] = {**_sum_timings(frames), **load}
        rec["complexity"] = _costs(frames)
        return self._tracked(clip, rec, frames)

    def _tracked(self, clip: Clip, rec: dict[str, Any], frames: list[dict[str, Any]]) -> dict[str, Any]:
        """``rec`` with ``tracks``: per tracker and head, the tracked boxes of each frame (each
        with ``track_id``), timed as stage ``track:<tracker>``."""
        rec["tracks"] = {}
        for choice in self.trackers:
            tracker, t = self.fw.components.get("track", choice), time.perf_counter()
            rec["tracks"][choice.label] = {label: tracker([f["predictions"][label]["instances"] for f in frames], clip.fps)
                                           for label in frames[0]["predictions"] if _has_boxes(frames, label)}
            rec["timings"][f"track:{choice.label}"] = time.perf_counter() - t
        return rec


def _has_boxes(frames: list[dict[str, Any]], label: str) -> bool:
    return frames[0]["predictions"][label].get("semantic") is None


def _evict(memo: dict[Any, Any], nodes: tuple[str, ...]) -> None:
    """Drop a point's coded and decoded frame (and anything fed by them) from a frame's memo."""
    for key in [k for k in memo if _mentions(k, nodes)]:
        del memo[key]


def _mentions(key: Any, nodes: tuple[str, ...]) -> bool:
    """Whether a memo key is, or was computed from, one of ``nodes``' outputs."""
    if not isinstance(key, tuple) or not key:
        return False
    return key[0] in nodes or key[0] == "given" or any(_mentions(k, nodes) for k in key[1:])


def _parts(bs: Bitstream) -> dict[str, int]:
    return {"header": bs.header_bytes, "side": bs.side_bytes, "payload": bs.payload_bytes, "total": len(bs.data)}


def _clip_fields(clip: Clip) -> dict[str, Any]:
    h, w = clip.size
    return {"height": h, "width": w, "frames": len(clip.frames), "fps": clip.fps, "duration": clip.duration,
            "group": clip.group, "coco_id": None, "frame_ids": [f.coco_id for f in clip.frames]}


def _predictions(clip: Clip, frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Every head's instances over the clip, each tagged with its frame's image id."""
    out = {}
    for label in frames[0]["predictions"]:
        inst = [{**d, "image_id": f.coco_id} for f, r in zip(clip.frames, frames)
                for d in r["predictions"][label]["instances"]]
        out[label] = {"instances": inst, "semantic": None}
    return out


def merge(clip: Clip, frames: list[dict[str, Any]], parts: dict[str, int], point: Point) -> dict[str, Any]:
    """A clip's record from its frames' records and its bytes (``parts``: header, side, payload,
    total): rates over the clip, fidelity averaged over frames (PSNR capped at PSNR_CAP)."""
    rec = _clip_fields(clip)
    pixels, n = rec["height"] * rec["width"] * len(clip.frames), len(clip.frames)
    rec.update({"bytes": parts, "kbps": 8 * parts["total"] * clip.fps / 1000 / n,
                **{f"bpp{s}": 8 * parts[k] / pixels for s, k in
                   (("", "total"), ("_payload", "payload"), ("_side", "side"), ("_header", "header"))}})
    for k in FIDELITY:
        vals = [min(float(r[k]), PSNR_CAP) if k.startswith("psnr") else float(r[k]) for r in frames if r.get(k) is not None]
        rec[k] = float(np.mean(vals)) if vals else None
    rec["predictions"] = _predictions(clip, frames)
    rec["timings"] = _sum_timings(frames)
    rec["complexity"] = _costs(frames)
    rec["decoded_md5"] = [r.get("decoded_md5") for r in frames]  # one per frame, display order
    rec.update(series=point.series, point=point.point, sweep=dict(point.sweep))
    return rec


def _costs(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """The stage costs counted on any of the clip's frames (all frames have one size)."""
    return {k: v for r in frames for k, v in r.get("complexity", {}).items()}


def _sum_timings(frames: list[dict[str, Any]]) -> dict[str, float | None]:
    """Seconds per stage over the clip (None where no frame computed it)."""
    stages = dict.fromkeys(k for r in frames for k in r.get("timings", {}))
    out: dict[str, float | None] = {}
    for k in stages:
        vals = [r["timings"][k] for r in frames if r.get("timings", {}).get(k) is not None]
        out[k] = float(sum(vals)) if vals else None
    return out
