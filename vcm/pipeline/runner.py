"""Run an experiment: build and check the graph, then sweep dataset x grid into the store."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vcm.config import ExperimentConfig, dump_config
from vcm.data import DATASETS
from vcm.device import resolve_device
from vcm.pipeline.claims import Heartbeat, claimed, new_owner
from vcm.pipeline.executor import make_executor
from vcm.pipeline.graph import FIXED_KINDS, Graph, GraphError
from vcm.pipeline.clip import ClipWorker
from vcm.pipeline.plan import Plan, make_plan
from vcm.pipeline.store import ResultStore, encode_record
from vcm.pipeline.worker import REFERENCE, Components, SampleWorker, Unit
from vcm.registry import import_plugins

STORE_NAME = "results.sqlite"
CONFIG_NAME = "config.yaml"


@dataclass
class Experiment:
    """A config with its graph, dataset and plan built and checked (no image touched yet)."""

    config: ExperimentConfig
    graph: Graph
    dataset: Any
    plan: Plan
    run_dir: Path
    pipeline: Path | None = None  # the template file the graph was read from


def prepare(cfg: ExperimentConfig, base_dir: Path | None = None) -> Experiment:
    """Load the pipeline template, build the dataset, validate wiring and parameters."""
    import_plugins(cfg.plugins)
    pipeline = Path(cfg.pipeline)
    if not pipeline.is_absolute() and base_dir is not None and not pipeline.exists():
        pipeline = base_dir / pipeline
    graph = Graph.load(pipeline)
    dataset = DATASETS.build(cfg.dataset.type, cfg.dataset.params)
    graph.validate(cfg.grid, dataset.ports)
    if graph.by_kind("track") and not is_sequence(dataset):
        raise GraphError(f"pipeline {pipeline.name} tracks objects over time: it needs a video dataset "
                         f"(video, mot, kwcoco), not {cfg.dataset.type!r}")
    plan = make_plan(graph, cfg.grid, cfg.exclude)
    return Experiment(cfg, graph, dataset, plan, Path(cfg.output_dir), pipeline.resolve())


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    computed: int  # items computed by this call
    skipped: int   # items it did not compute: stored before, or by a concurrent run


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to rebuild the run's components: it pickles, and calling it
    (once per worker) returns the function that computes a unit's records."""

    config: ExperimentConfig  # with ``pipeline`` resolved to an absolute path
    cwd: str                  # relative paths in the config resolve from here
    env: tuple[tuple[str, str], ...] = ()

    def __call__(self) -> Callable[[Unit], list[tuple[str, str, bytes]]]:
        enter(self.cwd, self.env)
        return make_work(prepare(self.config))


def make_work(exp: Experiment) -> Callable[[Unit], list[tuple[str, str, bytes]]]:
    """Build the experiment's components and return the function computing one unit's records,
    encoded for the store (so a worker, not the run process, pays for JSON and zlib)."""
    seed_everything(exp.config.seed)
    components = build_all(exp, Components(resolve_device(exp.config.device), exp.config.eval.complexity))
    worker: Any = SampleWorker(exp.graph, exp.plan, exp.dataset, components, exp.config.eval.msssim, exp.config.eval.lpips)
    if is_sequence(exp.dataset):
        worker = ClipWorker(worker, exp.plan.trackers)
    return lambda unit: [(sid, key, encode_record(rec)) for sid, key, rec in worker(unit)]  # encoded here, in parallel


def is_sequence(dataset: Any) -> bool:
    """Whether the dataset's samples are clips (a unit of work is then a whole sequence)."""
    return getattr(dataset, "scope", "image") == "sequence"


def worker_spec(exp: Experiment) -> WorkerSpec:
    cfg = replace(exp.config, pipeline=str(exp.pipeline)) if exp.pipeline else exp.config
    env = tuple((k, v) for k, v in os.environ.items() if k.startswith("VCM_") or k == "PYTHONPATH")
    return WorkerSpec(cfg, os.getcwd(), env)


def enter(cwd: str, env: tuple[tuple[str, str], ...]) -> None:
    """Take the driver's working folder, VCM_* variables and PYTHONPATH (where plugins may live):
    a Ray worker starts elsewhere, with its own environment."""
    for k, v in env:
        os.environ.setdefault(k, v)
        if k == "PYTHONPATH":
            sys.path[:0] = [p for p in v.split(os.pathsep) if p and p not in sys.path]
    if Path(cwd).is_dir() and os.getcwd() != cwd:
        os.chdir(cwd)


def pending_units(exp: Experiment, store: ResultStore) -> list[Unit]:
    """(image, points not stored, reference not stored?) for every image with work left."""
    done, units = store.done(), []
    for sid in exp.dataset.ids():
        pts = [p for p in exp.plan.points if store.item_key(sid, p.key) not in done]
        ref = bool(exp.plan.tasks) and store.item_key(sid, REFERENCE) not in done  # no task: no reference
        if pts or ref:
            units.append((sid, pts, ref))
    return units


def run(exp: Experiment, progress: bool = True) -> RunSummary:
    """Compute every missing (image, point) record, skipping those already stored. Units are
    claimed in the store, so concurrent runs on one folder never compute an item twice."""
    try:
        exp.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"output_dir {exp.run_dir} cannot be created: {e.strerror or e}") from e
    seed_everything(exp.config.seed)
    (exp.run_dir / CONFIG_NAME).write_text(dump_config(exp.config))
    (exp.run_dir / "provenance.json").write_text(json.dumps(provenance(), indent=2))
    store, owner, ttl = ResultStore(exp.run_dir / STORE_NAME), new_owner(), exp.config.executor.claim_ttl
    computed = 0
    try:
        store.set_meta("cwd", os.getcwd())  # relative paths of the config resolve from here
        store.set_meta("env", json.dumps({"VCM_ASSETS": os.environ.get("VCM_ASSETS")}))
        if exp.pipeline is not None:
            store.set_meta("pipeline", str(exp.pipeline))
        units = pending_units(exp, store)  # workers build components before their first image
        total = sum(len(p) + int(r) for _, p, r in units)
        work = claimed(store, owner, ttl, units)
        with tqdm(total=total, desc=exp.config.name, unit="item", disable=not progress) as bar, \
                Heartbeat(store.path, owner, ttl):
            local = exp.config.executor.type == "inprocess"  # no pickling: reuse this experiment
            factory = partial(make_work, exp) if local else worker_spec(exp)
            for unit, records in make_executor(exp.config.executor).imap(factory, work):
                store.put_blobs(records)  # one transaction per image
                store.release(owner, unit[0])
                computed += len(records)
                bar.update(len(records))
    finally:
        store.release(owner)
        store.close()
    n_all = len(exp.dataset.ids()) * (len(exp.plan.points) + int(bool(exp.plan.tasks)))
    return RunSummary(exp.run_dir, computed, n_all - computed)


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's global generators (components keep their own seeds)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_all(exp: Experiment, components: Components) -> Components:
    """Build every component the plan uses before any image is read, so a bad value, a missing
    checkpoint or an unusable device fails at once, naming the component."""
    choices = {(n.kind, c.ident): (n, c) for p in exp.plan.points for n in exp.graph.nodes if n.kind not in FIXED_KINDS
               for c in [p.choice(n.component)]}
    choices.update({("task", t.ident): (exp.graph.by_kind("task")[0], t) for t in exp.plan.tasks})
    choices.update({("track", t.ident): (exp.graph.by_kind("track")[0], t) for t in exp.plan.trackers})
    for (kind, _), (node, choice) in choices.items():
        try:
            components.get(kind, choice)
        except Exception as e:
            raise ValueError(f"grid.{node.component} '{choice.label}' ({choice.type}, {dict(choice.params)}): "
                             f"{type(e).__name__}: {e}") from e
    return components


def provenance() -> dict[str, Any]:
    """What produced the results: versions, platform, git commit and diff state of vcm."""
    pkgs = {}
    for name in ("vcm", "torch", "compressai", "numpy", "pillow", "pycocotools", "ai-edge-litert",
                 "opencv-python-headless", "bjontegaard", "av", "imageio-ffmpeg", "ray"):  # av: FFmpeg's encoders
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    repo = Path(__file__).resolve().parents[2]
    git = {}
    for key, args in (("commit", ["rev-parse", "HEAD"]), ("dirty", ["status", "--porcelain"])):
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
            git[key] = out.stdout.strip() if key == "commit" else bool(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            git[key] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": pkgs, "git": git}
