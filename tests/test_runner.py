"""The runner writes one row per item, skips finished rows, and survives kill -9."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from vcm.config import load_config
from vcm.pipeline.runner import prepare, run
from vcm.pipeline.store import ResultStore

from .conftest import tiny_config

TOTAL = 3 * (4 + 1)  # 3 images x (4 distinct points + the uncompressed reference): the grid's
# none/jpeg-full, gt/jpeg-full and none/jpeg-masked are one computation (series jpeg-full)


def _config(tmp_path: Path, coco_root: str, name: str) -> Path:
    cfg = tiny_config(tmp_path / name, coco_root)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _records(run_dir: Path) -> dict:
    store = ResultStore(run_dir / "results.sqlite")
    out = {}
    for sid, key, rec in store.records():
        rec.pop("timings", None)
        out[(sid, key)] = rec
    store.close()
    return out


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(str(db), timeout=5) as c:
            return int(c.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _start_and_kill(cfg: Path, db: Path, at_least: int) -> int:
    """Run ``vcm run`` in a subprocess and SIGKILL it once ``at_least`` rows exist."""
    proc = subprocess.Popen([sys.executable, "-m", "vcm.cli", "run", str(cfg), "--no-report", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 120
    while _count(db) < at_least and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return _count(db)


def test_records_rate_quality_and_predictions(tmp_path: Path, coco_root: str) -> None:
    exp = prepare(load_config(_config(tmp_path, coco_root, "a")))
    summary = run(exp, progress=False)
    assert summary.computed == TOTAL and summary.skipped == 0
    recs = _records(summary.run_dir)
    assert len(recs) == TOTAL
    for (_sid, key), r in recs.items():
        if key == "@reference":
            continue
        px = r["height"] * r["width"]
        assert r["bpp"] == 8 * r["bytes"]["total"] / px
        assert r["bytes"]["total"] == r["bytes"]["header"] + r["bytes"]["side"] + r["bytes"]["payload"]
        assert (r["bytes"]["side"] > 0) == r["series"].endswith("masked")
        assert r["predictions"]["seg"]["instances"]
    again = run(prepare(load_config(_config(tmp_path, coco_root, "a"))), progress=False)
    assert again.computed == 0 and again.skipped == TOTAL


def test_kill_9_then_resume_gives_the_uninterrupted_results(tmp_path: Path, coco_root: str) -> None:
    clean = run(prepare(load_config(_config(tmp_path, coco_root, "clean"))), progress=False)
    cfg = _config(tmp_path, coco_root, "killed")
    db = tmp_path / "killed" / "run" / "results.sqlite"
    first = _start_and_kill(cfg, db, at_least=3)
    second = _start_and_kill(cfg, db, at_least=first + 5)
    assert 0 < first < second < TOTAL, (first, second)
    resumed = run(prepare(load_config(cfg)), progress=False)
    assert resumed.computed == TOTAL - second
    assert _records(resumed.run_dir) == _records(clean.run_dir)


def test_pipeline_without_a_task_head_reports_fidelity(tmp_path: Path, assets: Path) -> None:
    """Rate-distortion only (mask_codec.yaml on Kodak): no reference record, PSNR and MS-SSIM
    per image, a report with their BD-rates."""
    from vcm.config import parse_experiment
    from vcm.report.build import make_report

    cfg = parse_experiment({
        "name": "rd", "pipeline": str(Path(__file__).resolve().parents[1] / "pipelines" / "mask_codec.yaml"),
        "dataset": {"type": "folder", "root": str(assets / "data" / "kodak"), "limit": 2},
        "grid": {"mask": [{"type": "none"}],
                 "codec": [{"type": "jpeg", "sweep": {"quality": [10, 30, 60]}},
                           {"type": "webp", "sweep": {"quality": [10, 30, 60]}}]},
        "eval": {"msssim": True}, "output_dir": str(tmp_path / "rd"), "report": {"anchor": "jpeg"}})
    summary = run(prepare(cfg), progress=False)
    recs = _records(summary.run_dir)
    assert summary.computed == 2 * 6 and all(k != "@reference" for _, k in recs)
    assert all(0 < r["msssim"] < 1 and r["psnr"] > 20 for r in recs.values())
    report = make_report(summary.run_dir)["md"].read_text()
    assert "msssim" in report and "needs weights" in report


def test_stage_timings_count_only_work_done(tmp_path: Path, coco_root: str) -> None:
    """A stage output reused from an earlier point of the image (the gt mask for every quality,
    a task head on an identical decode) is recorded as None, never as a copy of the first time."""
    t = time.perf_counter()
    summary = run(prepare(load_config(_config(tmp_path, coco_root, "t"))), progress=False)
    wall = time.perf_counter() - t
    store = ResultStore(summary.run_dir / "results.sqlite")
    recs = list(store.records())
    store.close()
    for sid in {s for s, _, _ in recs}:
        timings = [r["timings"] for s, k, r in recs if s == sid]
        assert sum("load" in tm for tm in timings) == 1  # the image is read once per unit
        gt = [r["timings"]["mask"] for s, k, r in recs if s == sid and k.startswith("gt/")]
        assert len(gt) == 2 and sum(x is not None for x in gt) == 1  # q20 computed it, q60 reused it
        assert all(r["timings"]["encode"] is not None for s, k, r in recs if s == sid and k != "@reference")
    total = sum(v for _, _, r in recs for v in r["timings"].values() if v is not None)
    assert 0 < total < wall
