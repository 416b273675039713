"""ByteTrack (Zhang et al., ECCV 2022) through supervision's implementation: no weights, boxes only.

The ``trackers`` package (the same Roboflow code, split out later) needs numpy >= 2, which
compressai forbids, so vcm uses ``supervision.ByteTrack`` (supervision 0.30).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from vcm._optional import require


class ByteTrack:
    """Links a clip's detections into tracks.

    Args:
        track_thresh: detections at or above this score start and extend tracks (supervision's
            ``track_activation_threshold``); lower ones only extend tracks (ByteTrack's second
            association).
        match_thresh: IoU-based matching threshold (``minimum_matching_threshold``).
        track_buffer: frames a lost track is kept at 30 fps (``lost_track_buffer``; scaled by fps).
        min_frames: consecutive frames before a track counts (``minimum_consecutive_frames``).
        categories: COCO category ids to track (None: all).
        per_class: track each category on its own (ByteTrack itself ignores classes).
    """

    def __init__(self, *, track_thresh: float = 0.25, match_thresh: float = 0.8, track_buffer: int = 30,
                 min_frames: int = 1, categories: list[int] | None = None, per_class: bool = False) -> None:
        for name, v in (("track_thresh", track_thresh), ("match_thresh", match_thresh)):
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if track_buffer < 1 or min_frames < 1:
            raise ValueError("track_buffer and min_frames must be >= 1")
        self.sv = require("supervision")
        self.params = {"track_activation_threshold": track_thresh, "minimum_matching_threshold": match_thresh,
                       "lost_track_buffer": track_buffer, "minimum_consecutive_frames": min_frames}
        self.categories, self.per_class = set(categories) if categories else None, per_class

    def __call__(self, frames: list[list[dict[str, Any]]], fps: float) -> list[list[dict[str, Any]]]:
        kept = [[d for d in f if self.categories is None or d["category_id"] in self.categories] for f in frames]
        groups = sorted({d["category_id"] for f in kept for d in f}) if self.per_class else [None]
        out: list[list[dict[str, Any]]] = [[] for _ in frames]
        next_id = 1
        for cat in groups:
            part = [[d for d in f if cat is None or d["category_id"] == cat] for f in kept]
            tracked, next_id = self._track(part, fps, next_id)
            for t, dets in enumerate(tracked):
                out[t] += dets
        return out

    def _track(self, frames: list[list[dict[str, Any]]], fps: float, first_id: int
               ) -> tuple[list[list[dict[str, Any]]], int]:
        """One fresh tracker over ``frames``; ids renumbered from ``first_id`` in order of birth."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # sv.ByteTrack: moved to `trackers` upstream
            tracker = self.sv.ByteTrack(frame_rate=max(1, round(fps)), **self.params)
        ids: dict[int, int] = {}
        out = []
        for dets in frames:
            found = tracker.update_with_detections(self._detections(dets))
            frame = []
            for i, tid in zip(found.data.get("index", ()), found.tracker_id if len(found) else ()):
                ids.setdefault(int(tid), first_id + len(ids))
                frame.append({**dets[int(i)], "track_id": ids[int(tid)]})
            out.append(frame)
        return out, first_id + len(ids)

    def _detections(self, dets: list[dict[str, Any]]) -> Any:
        xywh = np.array([d["bbox"] for d in dets], float).reshape(-1, 4)
        return self.sv.Detections(xyxy=np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]],
                                  confidence=np.array([d["score"] for d in dets], float),
                                  class_id=np.array([d["category_id"] for d in dets], int),
                                  data={"index": np.arange(len(dets))})
