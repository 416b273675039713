"""``vcm export RUN_DIR``: every per-image record of a run as one CSV row (predictions left out,
the decoded pixels' MD5 kept); ``--format ctc``: the rate points in MPEG's CTC layout (ctc.py)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from vcm.pipeline.runner import prepare
from vcm.pipeline.worker import REFERENCE
from vcm.report.build import open_run, run_cwd


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """The record's scalars, with per-stage timings as ``ms_<stage>`` (milliseconds; empty where the
    stage's output was reused from an earlier point of the image)."""
    out = {k: v for k, v in record.items() if isinstance(v, (int, float, str)) or v is None}
    if isinstance(record.get("decoded_md5"), list):  # a clip: one MD5 per frame, in display order
        out["decoded_md5"] = " ".join(map(str, record["decoded_md5"]))
    out.update({f"ms_{k}": None if v is None else round(1000 * v, 3) for k, v in record.get("timings", {}).items()})
    return out


def export_records(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, int]:
    """Write ``out`` (default ``RUN_DIR/records.csv``): sample_id, series, point, then the
    record's scalars; returns (path, rows)."""
    run_dir = Path(run_dir).resolve()
    cfg, store = open_run(run_dir)
    try:
        with run_cwd(store):
            points = {p.key: p for p in prepare(cfg, base_dir=Path.cwd()).plan.points}
        rows = []
        for sid, key, rec in store.records():
            p = points.get(key)
            if p is not None or key == REFERENCE:
                rows.append({"sample_id": sid, "series": p.series if p else "reference",
                             "point": p.point if p else "uncompressed", **flat(rec)})
    finally:
        store.close()
    path = Path(out) if out else run_dir / "records.csv"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path, len(rows)


def export_ctc(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, int]:
    """Write ``out`` (default ``RUN_DIR/ctc.csv``): one row per rate point per class, then class
    averages (:mod:`vcm.report.ctc`); task scores come from the store's cache when reported."""
    from vcm.report.aggregate import aggregate
    from vcm.report.ctc import class_stats, ctc_rows, write_ctc

    run_dir = Path(run_dir).resolve()
    cfg, store = open_run(run_dir)
    try:
        with run_cwd(store):
            exp = prepare(cfg, base_dir=Path.cwd())
            rows = aggregate(exp, store)
        points = {p.key: (p.series, p.point) for p in exp.plan.points}
        by_point: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for sid, key, rec in store.records():
            if key in points:
                by_point.setdefault(points[key], {})[sid] = rec
    finally:
        store.close()
    table = ctc_rows(rows, {k: class_stats(v) for k, v in by_point.items()})
    path = Path(out) if out else run_dir / "ctc.csv"
    write_ctc(path, table)
    return path, len(table)
