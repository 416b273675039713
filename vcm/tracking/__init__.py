"""Trackers: a clip's per-frame detections -> the same detections linked by track ids."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from vcm.registry import Registry


@runtime_checkable
class Tracker(Protocol):
    """One call tracks one clip: ``frames`` holds each frame's COCO result dicts (``bbox`` xywh
    in pixels, ``score``, ``category_id``); returns, per frame, the detections the tracker
    confirmed, each with an int ``track_id`` (ids are unique within the clip)."""

    def __call__(self, frames: list[list[dict[str, Any]]], fps: float) -> list[list[dict[str, Any]]]: ...


TRACKERS: Registry[Tracker] = Registry("tracker")
TRACKERS.register_lazy("bytetrack", "vcm.tracking.bytetrack:ByteTrack", extra="video")

__all__ = ["TRACKERS", "Tracker"]
