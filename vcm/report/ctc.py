"""``vcm export RUN_DIR --format ctc``: the rate points in MPEG's common-test-conditions layout.

One row per rate point per sequence class (``class`` = the clips' group, or ``all`` for an image
set or a clip set without classes), then per (series, point) the ``average`` row MPEG's sheets
report: the unweighted mean of the classes' rates and metrics. Each row carries the rate (kbps
for clips, bpp for images), every task metric, PSNR, the networks' kMAC/pixel, the encode /
decode ms, and ``decoded_md5``: an MD5 over the point's per-image (per-frame) decoded-pixel MD5s,
which two sites compare to check they decoded the same pixels.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vcm.metrics.quality import PSNR_CAP
from vcm.report.aggregate import Row, finite
from vcm.report.render import metric_keys, rate_key

AVERAGE = "average"


def point_digest(hashes: dict[str, Any]) -> str | None:
    """MD5 over 'sample_id:md5' lines (per-frame MD5s joined by spaces), in sample order; None
    when a record has no hash (made by a vcm without decode hashes)."""
    if not hashes or any(h is None or (isinstance(h, list) and None in h) for h in hashes.values()):
        return None
    lines = [f"{sid}:{' '.join(h) if isinstance(h, list) else h}" for sid, h in sorted(hashes.items())]
    return hashlib.md5("\n".join(lines).encode()).hexdigest()


def class_stats(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per class (``all``: every record) of one point's records: mean PSNR and the decode digest."""
    groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for sid, r in records.items():
        groups["all"][sid] = r
        if r.get("group"):
            groups[r["group"]][sid] = r
    return {g: {"psnr": _mean_psnr(rs), "decoded_md5": point_digest({s: r.get("decoded_md5") for s, r in rs.items()})}
            for g, rs in groups.items()}


def _mean_psnr(records: dict[str, dict[str, Any]]) -> float | None:
    vals = [min(float(r["psnr"]), PSNR_CAP) for r in records.values() if r.get("psnr") is not None]
    return float(np.mean(vals)) if vals else None


def ctc_rows(rows: list[Row], stats: dict[tuple[str, str], dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The CTC table of measured ``rows`` (``stats``: (series, point) -> :func:`class_stats`)."""
    axis, metrics = rate_key(rows), [m for m in metric_keys(rows) if "[" not in m]
    out = []
    for r in (r for r in rows if r.series != "reference" and not r.source):
        classes = sorted({k[len(axis) + 1:-1] for k in r.values if k.startswith(f"{axis}[")})
        per_class = [_class_row(r, c, axis, metrics, stats.get((r.series, r.point), {}).get(c, {})) for c in classes or ["all"]]
        out += per_class + ([_average(per_class)] if len(per_class) > 1 else [])
    return out


def _class_row(r: Row, cls: str, axis: str, metrics: list[str], stats: dict[str, Any]) -> dict[str, Any]:
    tag = "" if cls == "all" else f"[{cls}]"
    row: dict[str, Any] = {"class": cls, "series": r.series, "point": r.point, "images": r.images,
                           axis: r.values.get(axis + tag)}
    row.update({m: r.values.get(m + tag) for m in metrics})
    row["psnr"] = stats.get("psnr")
    row.update({f"kmac_px_{c['kind']}": c.get("kmac_px") for c in r.costs.values() if c["kind"] in ("encode", "decode")})
    row.update({k: round(v, 2) for k, v in r.values.items() if k.startswith("ms_") and finite(v)})
    row["decoded_md5"] = stats.get("decoded_md5")
    return row


def _average(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The classes' unweighted mean of every number (MPEG's class average); the digests stay in
    the class rows."""
    out: dict[str, Any] = {"class": AVERAGE, "series": rows[0]["series"], "point": rows[0]["point"],
                           "images": sum(r["images"] for r in rows)}
    for k in rows[0]:
        vals = [r.get(k) for r in rows]
        if k not in out and all(isinstance(v, (int, float)) and finite(v) for v in vals):
            out[k] = float(np.mean(vals))
    return out


def write_ctc(path: Path, records: list[dict[str, Any]]) -> None:
    cols = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(records)
