"""Sequence datasets: video files (PyAV) and kwcoco video JSON. MOTChallenge folders: vcm.data.mot.

Every sequence loads eagerly: :meth:`load` returns a :class:`~vcm.types.Clip` holding all its
frames in memory (uint8 RGB), so cap long clips with ``max_frames``.
"""

from __future__ import annotations

import contextlib
import glob
import io
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vcm._optional import require
from vcm.assets import MissingAssetError, expand_path, require_file
from vcm.data.base import select
from vcm.io import load_image
from vcm.types import Clip, Sample

FRAME_ID_STRIDE = 1_000_000  # frame coco_id = clip index * FRAME_ID_STRIDE + frame index + 1


def frame_coco_id(clip_index: int, frame_index: int) -> int:
    """Dataset-wide image id of a frame (0-based ``frame_index`` within clip ``clip_index``)."""
    if not 0 <= frame_index < FRAME_ID_STRIDE - 1:
        raise ValueError(f"frame index {frame_index} is out of range (at most {FRAME_ID_STRIDE - 2})")
    return clip_index * FRAME_ID_STRIDE + frame_index + 1


def check_positive(what: str, value: float | None, allow_none: bool = True) -> None:
    """Raise ValueError unless ``value`` is a positive number (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")


def check_count(what: str, value: int | None) -> None:
    """Raise ValueError unless ``value`` is None or a positive integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def pick(available: list[str], wanted: list[str] | None, what: str, where: object) -> list[str]:
    """The ``wanted`` names (all when None), in ``available``'s order; unknown names raise."""
    if wanted is None:
        return list(available)
    missing = [w for w in wanted if w not in available]
    if missing:
        raise ValueError(f"{what} not in {where}: {', '.join(map(str, missing))} "
                         f"(available: {', '.join(available)})")
    return [a for a in available if a in set(wanted)]


def check_same_size(frames: list[Sample], where: object) -> None:
    """All frames of a clip must share one (H, W)."""
    if not frames:
        raise ValueError(f"{where}: no frames")
    size = frames[0].image.shape[:2]
    for f in frames:
        if f.image.shape[:2] != size:
            raise ValueError(f"{where}: frame {f.id} is {f.image.shape[0]}x{f.image.shape[1]}, "
                             f"the first frame is {size[0]}x{size[1]} (every frame must have one size)")


def memory_coco(dataset: dict[str, Any]) -> Any:
    """A pycocotools COCO built from an in-memory dataset dict (no file written)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def find_videos(path: str | list[str]) -> list[Path]:
    """Files named by a path, a glob or a list of them (``${VAR}``, ``~``, ``pkg://`` expanded)."""
    patterns = [path] if isinstance(path, str) else list(path)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"path must be a file, a glob or a non-empty list of them, got {path!r}")
    files: list[Path] = []
    for pattern in map(expand_path, patterns):
        if glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            if not found:
                raise MissingAssetError(f"no video files match {pattern}")
            files += found
        else:
            files.append(require_file(pattern, "video file"))
    return files


def unique_stems(files: list[Path]) -> list[str]:
    """File stems as sequence ids; a repeated stem gets ``-2``, ``-3``... in order."""
    out: list[str] = []
    for f in files:
        name, n = f.stem, 1
        while name in out:
            n += 1
            name = f"{f.stem}-{n}"
        out.append(name)
    return out


def probe_video(path: Path) -> tuple[int, float]:
    """(frame count, fps) of the first video stream, from the container without decoding
    (packets are counted when the container does not store the count)."""
    av = require("av")
    try:
        with av.open(str(path)) as container:
            stream = video_stream(container, path)
            rate = stream.average_rate or stream.guessed_rate
            count = stream.frames or sum(1 for p in container.demux(stream) if p.size)
    except av.FFmpegError as e:
        raise ValueError(f"cannot read video {path}: {e}") from e
    if not rate or rate <= 0:
        raise ValueError(f"video {path} states no frame rate")
    return int(count), float(rate)


def video_stream(container: Any, path: Path) -> Any:
    """The first video stream of an open PyAV container."""
    if not container.streams.video:
        raise ValueError(f"{path} has no video stream")
    return container.streams.video[0]


def decode_video(path: Path, wanted: range) -> list[tuple[int, np.ndarray]]:
    """(frame index, uint8 (H, W, 3) RGB) for the frame indices in ``wanted``, decoded with PyAV;
    raises if the file is corrupt, ends early, or changes frame size."""
    av = require("av")
    out: list[tuple[int, np.ndarray]] = []
    try:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video_stream(container, path))):
                if i > wanted[-1]:
                    break
                if i in wanted:
                    out.append((i, frame.to_ndarray(format="rgb24")))
    except av.FFmpegError as e:
        raise ValueError(f"cannot decode video {path}: {e}") from e
    if len(out) < len(wanted):
        raise ValueError(f"video {path} ended after {len(out)} of the {len(wanted)} frames expected "
                         f"(frames {wanted.start}..{wanted[-1]}): truncated or corrupt")
    return out


class VideoDataset:
    """Video files read with PyAV, one clip per file; no annotations.

    Frames are uint8 RGB, loaded eagerly (a clip holds all its frames in memory). A frame's
    ``coco_id`` is ``file index * 1_000_000 + frame index + 1`` (file index in the expanded
    ``path`` list, frame index in the file), stable under ``limit``, ``start`` and ``stride``.

    Args:
        path: a video file, a glob, or a list of them; ``${VCM_ASSETS}``, ``~`` and
            ``pkg://package/path`` (a file inside an installed package) are expanded.
        max_frames: keep at most this many frames per clip.
        start: first frame index read (0-based).
        stride: keep every ``stride``-th frame from ``start`` (the fps reported stays the file's).
        limit: keep at most this many clips.
    """

    scope: ClassVar[str] = "sequence"
    ports: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(self, *, path: str | list[str], max_frames: int | None = None, start: int = 0,
                 stride: int = 1, limit: int | None = None) -> None:
        for what, value in (("max_frames", max_frames), ("stride", stride), ("limit", limit)):
            check_count(what, value)
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be a frame index >= 0, got {start!r}")
        self.max_frames, self.start, self.stride = max_frames, start, stride
        files = find_videos(path)
        self._files = dict(zip(unique_stems(files), files))
        self._index = {name: i for i, name in enumerate(self._files)}
        self._ids = select(list(self._files), limit, None)
        self._probed: dict[str, tuple[int, float]] = {}

    def ids(self) -> list[str]:
        return list(self._ids)

    def _probe(self, seq_id: str) -> tuple[int, float]:
        if seq_id not in self._files:
            raise KeyError(f"unknown video sequence {seq_id!r} (have: {', '.join(self._files)})")
        if seq_id not in self._probed:
            self._probed[seq_id] = probe_video(self._files[seq_id])
        return self._probed[seq_id]

    def _window(self, seq_id: str) -> range:
        """Frame indices of the file that the clip holds."""
        frames = range(self.start, self._probe(seq_id)[0], self.stride)
        return frames if self.max_frames is None else frames[: self.max_frames]

    def frame_count(self, seq_id: str) -> int:
        return len(self._window(seq_id))

    def fps(self, seq_id: str) -> float:
        return self._probe(seq_id)[1]

    def load(self, seq_id: str) -> Clip:
        wanted = self._window(seq_id)
        path, index = self._files[seq_id], self._index[seq_id]
        if not wanted:
            raise ValueError(f"video {path} has {self._probe(seq_id)[0]} frames, none from {self.start}")
        frames = [Sample(f"{seq_id}/{i:06d}", image, frame_coco_id(index, i), None, str(path))
                  for i, image in decode_video(path, wanted)]
        check_same_size(frames, path)
        return Clip(seq_id, frames, self.fps(seq_id))

    def coco_gt(self, kind: str) -> Any:
        return None


class KwcocoDataset:
    """Videos of a kwcoco file (COCO JSON with ``videos``, images with ``video_id`` and
    ``frame_index``, annotations with ``track_id``), read with kwcoco; one clip per video.

    Annotations are passed through ``conform(legacy=True)`` (pycocotools polygons, ``area``,
    ``iscrowd``). A frame's ``coco_id`` is its kwcoco image id. Frames load eagerly into memory.

    Args:
        path: a ``.kwcoco.json`` / ``.json`` file (``${VCM_ASSETS}`` expanded), or
        demo: a synthetic kwcoco demo key starting with ``vidshapes`` (e.g. ``vidshapes8``,
            ``vidshapes8-frames10-gsize256``), rendered on first use into kwcoco's user cache
            (``~/.cache/kwcoco``); no download.
        videos: keep these video names (default: all, in video id order).
        max_frames: keep the first this many frames of each video.
        fps: frame rate of videos whose entry states none (a video's own ``fps`` key wins).
        limit: keep at most this many videos.
    """

    scope: ClassVar[str] = "sequence"
    ports: ClassVar[frozenset[str]] = frozenset({"image", "annotations"})

    def __init__(self, *, path: str | None = None, demo: str | None = None,
                 videos: list[str] | None = None, max_frames: int | None = None, fps: float = 30.0,
                 limit: int | None = None) -> None:
        check_count("max_frames", max_frames)
        check_count("limit", limit)
        check_positive("fps", fps, allow_none=False)
        if (path is None) == (demo is None):
            raise ValueError("kwcoco dataset: give exactly one of path or demo")
        self.max_frames, self.default_fps = max_frames, float(fps)
        self.dset = read_kwcoco(path) if path is not None else demo_kwcoco(str(demo))
        self.where = path if path is not None else f"kwcoco demo {demo!r}"
        every = sorted(self.dset.dataset.get("videos", []), key=lambda v: v["id"])
        by_name = {v["name"]: v for v in every}
        if not by_name:
            raise ValueError(f"{self.where} has no videos")
        names = select(pick(list(by_name), videos, "videos", self.where), limit, None)
        self._videos = {n: by_name[n] for n in names}
        self._frames = {n: self._frame_ids(v) for n, v in self._videos.items()}

    def _frame_ids(self, video: dict[str, Any]) -> list[int]:
        """Image ids of a video's first ``max_frames`` frames, by frame index."""
        images = [self.dset.index.imgs[g] for g in self.dset.index.vidid_to_gids.get(video["id"], [])]
        bad = [im["id"] for im in images if not isinstance(im.get("frame_index"), int)]
        if bad or not images:
            raise ValueError(f"{self.where}: video {video['name']!r} has no frames, or frames "
                             f"without an integer frame_index (image ids {bad[:5]})")
        ordered = [im["id"] for im in sorted(images, key=lambda im: (im["frame_index"], im["id"]))]
        return ordered[: self.max_frames]

    def ids(self) -> list[str]:
        return list(self._videos)

    def frame_count(self, seq_id: str) -> int:
        return len(self._frames[seq_id])

    def fps(self, seq_id: str) -> float:
        video = self._videos[seq_id]
        rate = video.get("fps", video.get("frame_rate", self.default_fps))
        check_positive(f"{self.where}: video {seq_id!r} fps", rate, allow_none=False)
        return float(rate)

    def load(self, seq_id: str) -> Clip:
        frames = [self._load_frame(seq_id, gid) for gid in self._frames[seq_id]]
        check_same_size(frames, f"{self.where} video {seq_id!r}")
        return Clip(seq_id, frames, self.fps(seq_id))

    def _load_frame(self, seq_id: str, gid: int) -> Sample:
        info = self.dset.index.imgs[gid]
        try:
            path = Path(self.dset.get_image_fpath(gid))
        except Exception as e:  # kwcoco raises assorted errors for images without one file
            raise ValueError(f"{self.where}: image {gid} has no single RGB file "
                             f"({type(e).__name__}: {e})") from e
        image = load_image(path)
        if image.shape[:2] != (info.get("height", image.shape[0]), info.get("width", image.shape[1])):
            raise ValueError(f"{path}: size {image.shape[:2]} differs from its kwcoco entry "
                             f"({info.get('height')}, {info.get('width')})")
        anns = self._annotations(gid)
        return Sample(f"{seq_id}/{info['frame_index']:06d}", image, gid, anns, str(path))

    def _annotations(self, gid: int) -> list[dict[str, Any]]:
        return [dict(self.dset.index.anns[a]) for a in sorted(self.dset.index.gid_to_aids[gid])]

    def coco_gt(self, kind: str) -> Any:
        return self._instances if kind == "instances" else None

    @cached_property
    def _instances(self) -> Any:
        gids = [g for name in self._videos for g in self._frames[name]]
        keys = ("id", "file_name", "width", "height", "video_id", "frame_index")
        infos = [self.dset.index.imgs[g] for g in gids]
        images = [{k: info[k] for k in keys if k in info} for info in infos]
        anns = [a for g in gids for a in self._annotations(g)]
        cats = [dict(c) for c in self.dset.dataset.get("categories", [])]
        return memory_coco({"images": images, "annotations": anns, "categories": cats})


def read_kwcoco(path: str) -> Any:
    """A kwcoco dataset read from ``path`` and conformed for pycocotools."""
    kwcoco = require("kwcoco")
    file = require_file(expand_path(path), "kwcoco file")
    try:
        return kwcoco.CocoDataset(str(file)).conform(legacy=True)
    except (ValueError, KeyError, TypeError, AssertionError, AttributeError, OSError) as e:
        raise ValueError(f"kwcoco file {file} cannot be read: {type(e).__name__}: {e}") from e


def demo_kwcoco(key: str) -> Any:
    """kwcoco's synthetic ``vidshapes`` videos (cached by kwcoco), conformed for pycocotools."""
    if not key.startswith("vidshapes"):
        raise ValueError(f"kwcoco demo {key!r}: only the synthetic 'vidshapes...' demos are supported")
    kwcoco = require("kwcoco")
    try:
        return kwcoco.CocoDataset.demo(key, verbose=0).conform(legacy=True)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"kwcoco demo {key!r} cannot be built: {type(e).__name__}: {e}") from e
