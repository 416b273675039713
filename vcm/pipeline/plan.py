"""Expand an experiment's grid into series and rate points (the work for each image).

A *series* is one choice per non-task grid entry (e.g. mask ``gt`` + codec ``jpeg-masked``);
its *points* are the values of the swept parameter(s). Task heads are not part of the series:
every head scores every decoded image.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcm.config import ComponentSpec, ConfigError
from vcm.pipeline.graph import Graph


@dataclass(frozen=True)
class Choice:
    """A component with every parameter fixed (sweep values included)."""

    type: str
    params: tuple[tuple[str, Any], ...]
    label: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def ident(self) -> str:
        """Hash of type and parameters; a parameter naming a file also contributes the file's size
        and modification time, so retrained weights at the same path are not served from cache."""
        params = [(k, _file_stamp(v)) for k, v in self.params]
        blob = json.dumps([self.type, params], sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _file_stamp(value: Any) -> Any:
    if not isinstance(value, str) or not value or len(value) > 4096:
        return value
    from vcm.assets import expand_path

    try:
        path = Path(expand_path(value))
        st = path.stat() if path.is_file() else None
    except (OSError, ValueError):  # unset variable, bad path: the value alone
        return value
    return value if st is None else [value, st.st_size, st.st_mtime_ns]


@dataclass(frozen=True)
class Point:
    """One rate point of one series."""

    series: str
    point: str                         # e.g. "quality=50"
    sweep: tuple[tuple[str, Any], ...]  # swept parameter values
    choices: tuple[tuple[str, Choice], ...]  # grid key -> choice (non-task keys)

    @property
    def key(self) -> str:
        """Stable id: changes whenever any parameter of the choices changes."""
        idents = "+".join(f"{k}:{c.ident}" for k, c in self.choices)
        return f"{self.series}|{self.point}|{hashlib.sha1(idents.encode()).hexdigest()[:12]}"

    def choice(self, key: str) -> Choice:
        return dict(self.choices)[key]


@dataclass(frozen=True)
class Plan:
    points: tuple[Point, ...]
    tasks: tuple[Choice, ...]   # task heads run on every decoded image
    task_key: str | None

    def series(self) -> list[str]:
        return list(dict.fromkeys(p.series for p in self.points))


def auto_label(spec: ComponentSpec) -> str:
    mode = spec.params.get("mode")
    return spec.label or (f"{spec.type}-{mode}" if mode else spec.type)


def _fixed(spec: ComponentSpec, values: Mapping[str, Any]) -> Choice:
    return Choice(spec.type, tuple(sorted({**spec.params, **values}.items())), auto_label(spec))


def _excluder(exclude: Sequence[Mapping[str, Any]], keys: list[str]) -> Any:
    """``exclude`` entries map grid keys to label globs (or lists of them); a combination is
    skipped when every key of some entry matches, e.g. ``{mask: [gt, damask*], codec: "*-full"}``."""
    rules = []
    for i, rule in enumerate(exclude):
        if not isinstance(rule, Mapping) or not rule:
            raise ConfigError(f"exclude[{i}]: give a mapping of grid keys to label patterns")
        bad = [k for k in rule if k not in keys]
        if bad:
            raise ConfigError(f"exclude[{i}]: unknown grid key(s) {', '.join(bad)}; grid has {', '.join(keys)}")
        rules.append({k: [v] if isinstance(v, str) else list(v) for k, v in rule.items()})

    def skip(labels: Mapping[str, str]) -> bool:
        return any(all(any(fnmatch.fnmatchcase(labels[k], pat) for pat in pats) for k, pats in r.items())
                   for r in rules)

    return skip


def make_plan(graph: Graph, grid: Mapping[str, list[ComponentSpec]],
              exclude: Sequence[Mapping[str, Any]] = ()) -> Plan:
    task_keys = {n.component for n in graph.by_kind("task")}
    if len(task_keys) > 1:
        raise ConfigError("all task nodes must share one grid entry")
    task_key = next(iter(task_keys), None)
    keys = [k for k in grid if k != task_key]
    for k in keys + ([task_key] if task_key else []):
        labels = [auto_label(s) for s in grid[k]]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"grid.{k}: alternatives share a label ({labels}); give each a 'label'")
    tasks = tuple(_fixed(s, {}) for s in grid.get(task_key, [])) if task_key else ()
    varying = [k for k in keys if len(grid[k]) > 1]
    skip = _excluder(exclude, keys)
    points = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        if skip({k: auto_label(s) for k, s in zip(keys, combo)}):
            continue
        series = "/".join(auto_label(s) for k, s in zip(keys, combo) if k in varying) or "default"
        sweeps = [(p, v) for s in combo for p, v in s.sweep.items()]
        names = [p for p, _ in sweeps]
        for values in itertools.product(*(v for _, v in sweeps)):
            vals = dict(zip(names, values))
            choices = tuple((k, _fixed(s, {p: vals[p] for p in s.sweep})) for k, s in zip(keys, combo))
            label = ",".join(f"{p}={v}" for p, v in vals.items()) or "-"
            points.append(Point(series, label, tuple(vals.items()), choices))
    if not points:
        raise ConfigError("the grid (after 'exclude') has no points to run")
    return Plan(tuple(points), tasks, task_key)
