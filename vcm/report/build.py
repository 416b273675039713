"""``vcm report RUN_DIR``: rebuild the experiment from the run's saved config and report it."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vcm.config import ComponentSpec, ExperimentConfig, load_config
from vcm.device import resolve_device
from vcm.pipeline.plan import auto_label
from vcm.pipeline.runner import CONFIG_NAME, STORE_NAME, is_sequence, prepare
from vcm.pipeline.store import ResultStore
from vcm.report.aggregate import aggregate
from vcm.report.bdrate import FITS, METHODS
from vcm.report.gallery import gallery
from vcm.report.published import reference_rows
from vcm.report.references import check_series
from vcm.report.render import rate_key, write_report


@contextmanager
def run_cwd(store: ResultStore) -> Iterator[None]:
    """Work in the folder the run was made from, with its ``VCM_ASSETS`` when none is set now
    (relative weights and asset paths resolve as they did), so ``vcm report`` works anywhere."""
    cwd, here = store.meta("cwd"), os.getcwd()
    env = json.loads(store.meta("env") or "{}")
    added = [k for k, v in env.items() if v is not None and k not in os.environ]
    os.environ.update({k: env[k] for k in added})
    os.chdir(cwd if cwd and Path(cwd).is_dir() else here)
    try:
        yield
    finally:
        os.chdir(here)
        for k in added:
            os.environ.pop(k, None)


def open_run(run_dir: str | Path) -> tuple[ExperimentConfig, ResultStore]:
    run_dir = Path(run_dir).resolve()
    cfg_path, db = run_dir / CONFIG_NAME, run_dir / STORE_NAME
    if not cfg_path.is_file() or not db.is_file():
        raise FileNotFoundError(f"{run_dir} is not a vcm run folder (needs {CONFIG_NAME} and {STORE_NAME})")
    return load_config(cfg_path), ResultStore(db)


def make_report(run_dir: str | Path, anchor: str | None = None, method: str | None = None,
                progress: bool = False, fit: str | None = None) -> dict[str, Path]:
    """Aggregate ``run_dir`` and write ``run_dir/report``; returns the written files. Task scores
    come from the run store's cache when already computed (a new anchor or method costs no
    COCOeval pass)."""
    run_dir = Path(run_dir).resolve()
    signature = _signature(run_dir, anchor, method, fit)
    (run_dir / "report" / SIGNATURE).unlink(missing_ok=True)  # a failed rebuild is never "current"
    cfg, store = open_run(run_dir)
    try:
        with run_cwd(store):
            pipeline = store.meta("pipeline")
            if pipeline and Path(pipeline).is_file():
                cfg = dataclasses.replace(cfg, pipeline=pipeline)
            exp = prepare(cfg, base_dir=Path.cwd())
            series = exp.plan.series()
            anchor = exp.plan.resolve(anchor or cfg.report.anchor or series[0])
            check_series(cfg.report.references, series, anchor)
            method, fit = method or cfg.report.bd_method, fit or cfg.report.bd_fit
            if fit not in FITS:
                raise ValueError(f"BD fit must be one of {', '.join(FITS)}, got {fit!r}")
            if method not in METHODS:
                raise ValueError(f"BD interpolation must be one of {', '.join(METHODS)}, got {method!r}")
            t = time.perf_counter()
            rows = aggregate(exp, store, progress)
            published, left_out = reference_rows(cfg.report.references, rows, rate_key(rows))
            if anchor in left_out:
                raise ValueError(f"anchor {anchor!r} is a published reference this run cannot be compared with: "
                                 f"{left_out[anchor]}")
            rows += published
            clips = is_sequence(exp.dataset)  # no gallery: an inter codec's frame cannot be re-coded alone
            shots = [] if clips else gallery(exp, _report_dir(run_dir), cfg.report.gallery, resolve_device(cfg.device))
    finally:
        store.close()
    unit = "clips, rates in kbps over all clips' duration" if clips else "images"
    info = {"config": cfg.name, "dataset": f"{cfg.dataset.type} ({len(exp.dataset.ids())} {unit})",
            "tasks": ", ".join(t.label for t in exp.plan.tasks) or "none (image quality only)",
            "scoring": (f"pseudo-GT (uncompressed predictions scoring >= {cfg.eval.pseudo_gt_min_score})"
                        if cfg.eval.pseudo_gt else "ground truth"),
            "categories scored": "all" if not cfg.eval.category_ids else ", ".join(map(str, cfg.eval.category_ids)),
            "excluded combinations": json.dumps([dict(e) for e in cfg.exclude]) if cfg.exclude else "none",
            "BD interpolation": method,
            "BD curve fit": FIT_TEXT[fit],
            "bpp": "pooled: all bytes x 8 / all pixels (MPEG)" if cfg.report.bpp == "pooled"
                   else "mean of the images' bpp (bytes x 8 / pixels, header and side info included)",
            "same computation, reported once": "; ".join(f"{a} = {b}" for a, b in exp.plan.aliases) or "none",
            "fidelity": _fidelity(cfg.eval.msssim, cfg.eval.lpips),
            "published references": ", ".join(f"{r.series} ({r.metric})" for r in cfg.report.references) or "none",
            "stage times (ms_*)": "mean ms per image where the stage ran for that point; an output reused "
                                  "from another point of the image (a shared mask, an identical decode) is not counted",
            "aggregation time (s)": round(time.perf_counter() - t, 1)}
    prov = run_dir / "provenance.json"
    context = {"tasks": {t.label: t.type for t in exp.plan.tasks},
               "grid": {k: [dataclasses.asdict(s) | {"label": auto_label(s)} for s in specs] for k, specs in cfg.grid.items()},
               "provenance": json.loads(prov.read_text()) if prov.is_file() else {},
               "cautions": cautions(cfg.grid), "gallery": shots,
               "references": cfg.report.references, "left_out": left_out, "complexity": cfg.eval.complexity,
               "fit": fit}
    files = write_report(rows, run_dir / "report", f"vcm report: {cfg.name}", anchor, method, info, context)
    (run_dir / "report" / SIGNATURE).write_text(signature)
    return files


def _report_dir(run_dir: Path) -> Path:
    (run_dir / "report").mkdir(parents=True, exist_ok=True)
    return run_dir / "report"


SIGNATURE = ".inputs"  # what the report was made from: a cached `vcm run` with the same skips it


def _signature(run_dir: Path, anchor: str | None = None, method: str | None = None, fit: str | None = None) -> str:
    """The config, the record count and the anchor / method / fit asked for (None: the config's)."""
    _, store = open_run(run_dir)
    try:
        n = store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    finally:
        store.close()
    prov = run_dir / "provenance.json"  # rewritten by every vcm run: a new vcm version invalidates
    made_by = prov.read_text() if prov.is_file() else ""
    return f"{(run_dir / CONFIG_NAME).read_text()}\n{made_by}\nitems={n}\nanchor={anchor}\nmethod={method}\nfit={fit}\n"


def report_is_current(run_dir: str | Path) -> bool:
    """True when ``run_dir/report`` was written from this config and this many records, with the
    config's own anchor and method."""
    run_dir = Path(run_dir).resolve()
    sig = run_dir / "report" / SIGNATURE
    current = sig.is_file() and (run_dir / "report" / "report.html").is_file()
    return current and sig.read_text() == _signature(run_dir)


FIT_TEXT = {"envelope": "envelope: a non-monotonic curve keeps the points above every lower-rate point",
            "curve_fit": "curve_fit: a non-monotonic curve's metric is replaced by MPEG's monotonic cubic fit in "
                         "log-rate (non-decreasing, concave; Wang et al., PCS 2024); bd_rate_envelope / "
                         "bd_rate_curve_fit in the BD details give both"}
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
