"""MOTChallenge sequence folders (MOT16 / MOT17 / MOT20 layout, and SFU-HW / TVD / HiEve as
users convert them): frames, frame rate and ground-truth tracks as COCO instances."""

from __future__ import annotations

import configparser
import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from vcm.assets import MissingAssetError, expand_path
from vcm.data.base import select
from vcm.data.video import (
    check_count,
    check_positive,
    check_same_size,
    frame_coco_id,
    memory_coco,
    pick,
)
from vcm.io import load_image
from vcm.types import Clip, Sample

# MOT17 / MOT20 class id -> COCO category id. Classes without a COCO counterpart (6 non-motorized
# vehicle, 9-11 occluders, 12 reflection) cannot be kept.
MOT_TO_COCO = {1: 1, 2: 1, 3: 3, 4: 2, 5: 4, 7: 1, 8: 1, 13: 1}
COCO_NAMES = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle"}
GT_COLUMNS = "frame, id, x, y, w, h, flag, class, visibility"


@dataclass(frozen=True)
class SeqInfo:
    """A sequence's ``seqinfo.ini`` (``[Sequence]`` section); frames are ``image_dir/000001<ext>``..."""

    folder: Path
    image_dir: Path
    ext: str
    fps: float
    length: int
    width: int
    height: int

    def frame_path(self, frame: int) -> Path:
        """Image of 1-based ``frame``."""
        return self.image_dir / f"{frame:06d}{self.ext}"


def read_seqinfo(folder: Path) -> SeqInfo:
    """Parse ``folder/seqinfo.ini``; a missing or bad key raises naming the file and the key."""
    path = folder / "seqinfo.ini"
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text())
        sec = parser["Sequence"]
    except (configparser.Error, KeyError, UnicodeDecodeError, OSError) as e:
        raise ValueError(f"{path}: not a valid seqinfo.ini with a [Sequence] section "
                         f"({type(e).__name__}: {e})") from e
    ext = sec.get("imExt", ".jpg")
    return SeqInfo(folder, folder / sec.get("imDir", "img1"), ext if ext.startswith(".") else "." + ext,
                   ini_number(sec, "frameRate", float, path), ini_number(sec, "seqLength", int, path),
                   ini_number(sec, "imWidth", int, path), ini_number(sec, "imHeight", int, path))


def ini_number(sec: configparser.SectionProxy, key: str, cast: type[int | float], path: Path) -> Any:
    """A positive number from ``seqinfo.ini``; raises naming the file and the key."""
    raw = sec.get(key)
    try:
        value = cast(raw)
        check_positive(key, value, allow_none=False)
    except (TypeError, ValueError) as e:
        want = "a positive integer" if cast is int else "a positive number"
        raise ValueError(f"{path}: {key} = {raw!r} is missing or not {want}") from e
    return value


def check_frames_exist(info: SeqInfo) -> None:
    """Every frame 1..seqLength must be on disk (the first missing one is named)."""
    present = set(os.listdir(info.image_dir)) if info.image_dir.is_dir() else set()
    for frame in range(1, info.length + 1):
        if info.frame_path(frame).name not in present:
            raise ValueError(f"{info.frame_path(frame)}: missing frame {frame} "
                             f"(seqinfo.ini seqLength is {info.length})")


def parse_gt_line(line: str, where: str, length: int) -> tuple[int, int, list[float], int, int, float]:
    """(frame, track id, [x, y, w, h], flag, class, visibility) of one ``gt.txt`` line."""
    fields = line.split(",")
    try:
        if len(fields) < 9:
            raise ValueError(f"{len(fields)} columns, need 9")
        values = [float(v) for v in fields[:9]]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("a value is not finite")
    except ValueError as e:
        raise ValueError(f"{where}: malformed gt line ({e}; columns: {GT_COLUMNS}): {line.strip()!r}") from e
    frame, track, x, y, w, h, flag, cls, vis = values
    if any(v != int(v) for v in (frame, track, flag, cls)) or w < 0 or h < 0:
        raise ValueError(f"{where}: malformed gt line (frame, id, flag, class must be integers, "
                         f"w, h >= 0): {line.strip()!r}")
    if not 1 <= frame <= length:
        raise ValueError(f"{where}: frame {frame:g} is not in 1..{length} (seqinfo.ini seqLength)")
    return int(frame), int(track), [x, y, w, h], int(flag), int(cls), vis


def read_gt(path: Path, length: int, classes: set[int]) -> dict[int, list[dict[str, Any]]]:
    """Annotations (without ids) of the kept ``classes`` per 1-based frame, from ``gt.txt``."""
    out: dict[int, list[dict[str, Any]]] = {}
    seen: set[tuple[int, int]] = set()
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e})") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        frame, track, box, flag, cls, vis = parse_gt_line(line, f"{path}:{n}", length)
        if (frame, track) in seen:
            raise ValueError(f"{path}:{n}: track {track} appears twice in frame {frame}")
        seen.add((frame, track))
        if cls in classes:
            out.setdefault(frame, []).append(gt_annotation(box, track, cls, flag, vis))
    return out


def gt_annotation(box: list[float], track: int, cls: int, flag: int, vis: float) -> dict[str, Any]:
    """A COCO instance for one MOT box; flag 0 (ignore) becomes ``iscrowd`` 1."""
    return {"bbox": box, "area": box[2] * box[3], "iscrowd": int(flag == 0),
            "category_id": MOT_TO_COCO[cls], "track_id": track, "mot_class": cls, "visibility": vis}


class MotDataset:
    """MOTChallenge layout: ``root/<SEQ>/seqinfo.ini``, ``root/<SEQ>/<imDir>/000001<imExt>``...,
    optional ``root/<SEQ>/gt/gt.txt`` (``frame, id, x, y, w, h, flag, class, visibility``, 1-based
    frames). One clip per sequence folder, its id the folder name; frames load eagerly into memory.

    ``seqinfo.ini`` wins over the files on disk (frame count, size, rate). Ground truth becomes COCO
    instances: bbox xywh in pixels, ``track_id`` = the MOT id (unique within its sequence), entries
    flagged 0 get ``iscrowd`` 1 (COCOeval ignores detections matched to them). MOT classes map to
    COCO categories: 1 pedestrian, 2 person on vehicle, 7 static person, 8 distractor, 13 crowd ->
    1 person; 3 car -> 3 car; 4 bicycle -> 2 bicycle; 5 motorbike -> 4 motorcycle. Entries of
    classes not in ``classes`` are dropped. A frame's ``coco_id`` is ``sequence index * 1_000_000 +
    frame number`` (index among all sequences of ``root``, sorted).

    Args:
        root: folder of sequence folders (``${VCM_ASSETS}`` expanded).
        sequences: keep these sequence folders (default: all with a ``seqinfo.ini``).
        max_frames: keep the first this many frames of each sequence.
        classes: MOT class ids kept as annotations (default ``[1]``, pedestrians).
        group: class of every sequence (rates are averaged per class), or
        groups: ``{sequence: class}``; sequences it leaves out get ``group``.
        limit: keep at most this many sequences.
    """

    scope: ClassVar[str] = "sequence"
    ports: ClassVar[frozenset[str]] = frozenset({"image", "annotations"})

    def __init__(self, *, root: str, sequences: list[str] | None = None,
                 max_frames: int | None = None, classes: list[int] | None = None,
                 group: str | None = None, groups: dict[str, str] | None = None,
                 limit: int | None = None) -> None:
        check_count("max_frames", max_frames)
        check_count("limit", limit)
        self.root, self.max_frames = Path(expand_path(root)), max_frames
        self.classes = check_classes([1] if classes is None else classes)
        if not self.root.is_dir():
            raise MissingAssetError(f"MOT folder not found: {self.root}")
        every = sorted(p.name for p in self.root.iterdir() if (p / "seqinfo.ini").is_file())
        if not every:
            raise MissingAssetError(f"no sequence folders with a seqinfo.ini in {self.root}")
        self._index = {name: i for i, name in enumerate(every)}
        self._ids = select(pick(every, sequences, "sequences", self.root), limit, None)
        self._info = {name: read_seqinfo(self.root / name) for name in self._ids}
        for info in self._info.values():
            check_frames_exist(info)
        self._groups = {name: group for name in every} | pick_groups(groups, every, self.root)

    def ids(self) -> list[str]:
        return list(self._ids)

    def frame_count(self, seq_id: str) -> int:
        return len(self._frames(seq_id))

    def fps(self, seq_id: str) -> float:
        return self._info[seq_id].fps

    def _frames(self, seq_id: str) -> range:
        """1-based frame numbers the clip holds."""
        return range(1, self._info[seq_id].length + 1)[: self.max_frames]

    def load(self, seq_id: str) -> Clip:
        info = self._info[seq_id]
        frames = [self._load_frame(seq_id, info, n) for n in self._frames(seq_id)]
        check_same_size(frames, info.folder)
        return Clip(seq_id, frames, info.fps, self._groups[seq_id])

    def _load_frame(self, seq_id: str, info: SeqInfo, frame: int) -> Sample:
        path = info.frame_path(frame)
        image = load_image(path)
        if image.shape[:2] != (info.height, info.width):
            raise ValueError(f"{path}: size {image.shape[0]}x{image.shape[1]} differs from seqinfo.ini "
                             f"imHeight x imWidth {info.height}x{info.width}")
        coco_id = frame_coco_id(self._index[seq_id], frame - 1)
        by_image = self._gt["by_image"]
        anns = [dict(a) for a in by_image[coco_id]] if coco_id in by_image else None
        return Sample(f"{seq_id}/{frame:06d}", image, coco_id, anns, str(path))

    def coco_gt(self, kind: str) -> Any:
        gt = self._gt
        if kind != "instances" or not gt["by_image"]:
            return None
        if gt["missing"]:
            raise ValueError(f"{self.root}: sequences {gt['missing']} have no gt/gt.txt; select only "
                             "sequences with ground truth")
        # copies: COCOeval writes into the annotation dicts it is given
        return memory_coco({"images": gt["images"], "annotations": [dict(a) for a in gt["annotations"]],
                            "categories": gt["categories"]})

    @cached_property
    def _gt(self) -> dict[str, Any]:
        """COCO dataset dict over the selected frames, plus ``by_image`` (annotations of the
        frames of sequences with a ``gt/gt.txt``) and ``missing`` (sequences without one)."""
        with_gt = [n for n in self._ids if (self.root / n / "gt" / "gt.txt").is_file()]
        images, by_image = [], {}
        for name in self._ids:
            images += self._images(name)
        for name in with_gt:
            by_image |= self._annotations(name)
        anns = [a for img in images for a in by_image.get(img["id"], [])]
        for n, ann in enumerate(anns, 1):
            ann["id"] = n
        cats = [{"id": c, "name": COCO_NAMES[c]} for c in sorted({MOT_TO_COCO[k] for k in self.classes})]
        return {"images": images, "annotations": anns, "categories": cats, "by_image": by_image,
                "missing": [n for n in self._ids if n not in with_gt]}

    def _images(self, seq_id: str) -> list[dict[str, Any]]:
        info = self._info[seq_id]
        return [{"id": frame_coco_id(self._index[seq_id], n - 1), "file_name": str(info.frame_path(n)),
                 "width": info.width, "height": info.height} for n in self._frames(seq_id)]

    def _annotations(self, seq_id: str) -> dict[int, list[dict[str, Any]]]:
        """Kept annotations of the clip's frames by frame coco_id, each with its ``image_id``."""
        info = self._info[seq_id]
        per_frame = read_gt(self.root / seq_id / "gt" / "gt.txt", info.length, self.classes)
        out = {}
        for n in self._frames(seq_id):
            coco_id = frame_coco_id(self._index[seq_id], n - 1)
            out[coco_id] = [a | {"image_id": coco_id} for a in per_frame.get(n, [])]
        return out


def check_classes(classes: list[int]) -> set[int]:
    """MOT class ids that have a COCO category; others raise."""
    bad = [c for c in classes if c not in MOT_TO_COCO]
    if bad or not classes:
        raise ValueError(f"classes {bad or classes!r}: MOT class ids with a COCO category are "
                         f"{sorted(MOT_TO_COCO)}")
    return set(classes)


def pick_groups(groups: dict[str, str] | None, sequences: list[str], root: Path) -> dict[str, str]:
    """The ``groups`` map, checked against the sequences of ``root``."""
    groups = groups or {}
    pick(sequences, list(groups), "groups keys", root)
    return {k: str(v) for k, v in groups.items()}
