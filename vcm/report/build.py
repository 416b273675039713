"""``vcm report RUN_DIR``: rebuild the experiment from the run's saved config and report it."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from vcm.config import ComponentSpec, load_config
from vcm.pipeline.runner import CONFIG_NAME, STORE_NAME, prepare
from vcm.pipeline.store import ResultStore
from vcm.report.aggregate import aggregate
from vcm.report.render import write_report


def make_report(run_dir: str | Path, anchor: str | None = None) -> dict[str, Path]:
    """Aggregate ``run_dir`` and write ``run_dir/report``; returns the written files."""
    run_dir = Path(run_dir)
    cfg_path, db = run_dir / CONFIG_NAME, run_dir / STORE_NAME
    if not cfg_path.is_file() or not db.is_file():
        raise FileNotFoundError(f"{run_dir} is not a vcm run folder (needs {CONFIG_NAME} and {STORE_NAME})")
    cfg = load_config(cfg_path)
    exp = prepare(cfg, base_dir=Path.cwd())
    series = exp.plan.series()
    anchor = anchor or cfg.report.anchor or series[0]
    if anchor not in series:
        raise ValueError(f"anchor {anchor!r} is not a series of this run; series: {', '.join(series)}")
    t = time.perf_counter()
    store = ResultStore(db)
    try:
        rows = aggregate(exp, store)
    finally:
        store.close()
    info = {"config": cfg.name, "dataset": f"{cfg.dataset.type} ({len(exp.dataset.ids())} images)",
            "tasks": ", ".join(t.label for t in exp.plan.tasks),
            "scoring": "pseudo-GT (uncompressed predictions)" if cfg.eval.pseudo_gt else "ground truth",
            "BD interpolation": cfg.report.bd_method,
            "fidelity": _fidelity(cfg.eval.msssim, cfg.eval.lpips),
            "aggregation time (s)": round(time.perf_counter() - t, 1)}
    prov = run_dir / "provenance.json"
    context = {"tasks": {t.label: t.type for t in exp.plan.tasks},
               "grid": {k: [dataclasses.asdict(s) for s in specs] for k, specs in cfg.grid.items()},
               "provenance": json.loads(prov.read_text()) if prov.is_file() else {},
               "cautions": cautions(cfg.grid)}
    return write_report(rows, run_dir / "report", f"vcm report: {cfg.name}", anchor, cfg.report.bd_method, info,
                        context)


ORACLES = {"gt": "ground-truth annotations", "coco_gt": "ground-truth annotations"}


def cautions(grid: dict[str, list[ComponentSpec]]) -> list[str]:
    """Warnings a reader must see first: masks drawn from ground truth are oracles."""
    out = []
    for key, specs in grid.items():
        for spec in specs:
            if spec.type in ORACLES:
                out.append(f"{key} '{spec.label or spec.type}' comes from {ORACLES[spec.type]}: an oracle no "
                           "deployed encoder has; series using it are upper bounds, not deployable results.")
    return out


def _fidelity(msssim: bool, lpips: str | None) -> str:
    """What the report's image-fidelity columns hold, and what is missing for want of weights."""
    have = ["PSNR"] + (["MS-SSIM"] if msssim else []) + ([f"LPIPS (AlexNet from {lpips})"] if lpips else [])
    missing = ([] if lpips else ["LPIPS (set eval.lpips to a local torchvision AlexNet state dict)"]) + \
        ["FID (Inception weights, and thousands of images)"]
    return ", ".join(have) + "; needs weights, not computed: " + ", ".join(missing)
