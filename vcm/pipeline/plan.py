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
    aliases: tuple[tuple[str, str], ...] = ()  # (dropped combination, the series that computes it)

    def series(self) -> list[str]:
        return list(dict.fromkeys(p.series for p in self.points))

    def resolve(self, name: str) -> str:
        """A series name, or the series an aliased combination (e.g. ``none/jpeg-full``) became."""
        return dict(self.aliases).get(name, name)


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
    points: list[Point] = []
    seen: dict[str, str] = {}  # computation signature of each kept point -> its series
    aliases: dict[str, str] = {}
    for combo in itertools.product(*(grid[k] for k in keys)):
        labels = {k: auto_label(s) for k, s in zip(keys, combo)}
        if skip(labels):
            continue
        needed = needed_keys(graph, {k: _fixed(s, {}) for k, s in zip(keys, combo)})
        full = "/".join(labels[k] for k in keys if k in varying) or "default"
        series = "/".join(labels[k] for k in keys if k in varying and k in needed) or full
        mine = _points(series, keys, combo)
        sigs = [signature(graph, dict(p.choices), needed) for p in mine]
        earlier = {seen.get(sig) for sig in sigs}
        if len(earlier) == 1 and None not in earlier:  # every point is computed by one earlier series
            aliases[full] = earlier.pop()  # type: ignore[assignment]
            continue
        if series in {p.series for p in points}:
            series = full  # same name, different computation: keep the full name
            mine = _points(series, keys, combo)
        aliases.update({full: series} if full != series else {})
        seen.update({sig: series for sig in sigs})
        points += mine
    if not points:
        raise ConfigError("the grid (after 'exclude') has no points to run")
    return Plan(tuple(points), tasks, task_key, tuple(aliases.items()))


def _points(series: str, keys: list[str], combo: tuple[ComponentSpec, ...]) -> list[Point]:
    sweeps = [(p, v) for s in combo for p, v in s.sweep.items()]
    names, out = [p for p, _ in sweeps], []
    for values in itertools.product(*(v for _, v in sweeps)):
        vals = dict(zip(names, values))
        choices = tuple((k, _fixed(s, {p: vals[p] for p in s.sweep})) for k, s in zip(keys, combo))
        label = ",".join(f"{p}={v}" for p, v in vals.items()) or "-"
        out.append(Point(series, label, tuple(vals.items()), choices))
    return out


def _hook(kind: str, choice: Choice, name: str) -> Any:
    from vcm.pipeline.graph import _registries, component_class

    try:
        return getattr(component_class(_registries()[kind].get(choice.type)), name, None)
    except (KeyError, ValueError):
        return None


def needed_keys(graph: Graph, choices: Mapping[str, Choice]) -> set[str]:
    """Grid keys whose components affect the output: walk back from decode and task nodes,
    skipping the inputs a component does not take or says it ignores (a full-frame codec's mask)."""
    by_name = {n.name: n for n in graph.nodes}
    todo = [n for n in graph.nodes if n.kind in ("decode", "task")]
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        choice = choices.get(node.component)
        ignored = _hook(node.kind, choice, "ignored_inputs") if choice else None
        ports = _hook(node.kind, choice, "input_ports") if choice and node.kind != "decode" else None
        skip = set(ignored(choice.kwargs) if ignored and choice else ()) | \
            ({p for p in node.inputs if p not in ports} if ports is not None else set())
        todo += [by_name[s] for p, s in node.inputs.items() if s in by_name and p not in skip]
    return {by_name[n].component for n in seen}


def signature(graph: Graph, choices: Mapping[str, Choice], needed: set[str]) -> str:
    """What a point computes: the needed choices; a codec that has a full-frame form, fed by a
    mask that covers everything, is that full-frame codec (and that mask is then not needed)."""
    by_name = {n.name: n for n in graph.nodes}
    eff = {k: (c.type, c.params) for k, c in choices.items() if k in needed}
    for enc in graph.by_kind("encode"):
        codec, src = choices.get(enc.component), by_name.get(enc.inputs.get("mask", ""))
        to_full = _hook("encode", codec, "full_frame_params") if codec else None
        if codec is None or to_full is None or enc.component not in needed:
            continue
        mask = choices.get(src.component) if src is not None else None
        ignored = src is None or src.component not in needed
        if ignored or (mask is not None and _hook("mask", mask, "covers_all")):
            if src is not None:
                eff.pop(src.component, None)
            eff[enc.component] = (codec.type, tuple(sorted(to_full(codec.kwargs).items())))
    return json.dumps(sorted(eff.items()), default=str)
