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
from dataclasses import dataclass, replace
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
    trackers: tuple[Choice, ...] = ()  # trackers run on every head's detections of every clip

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
    track_keys = {n.component for n in graph.by_kind("track")}
    keys = [k for k in grid if k != task_key and k not in track_keys]
    for k in keys + ([task_key] if task_key else []):
        labels = [auto_label(s) for s in grid[k]]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"grid.{k}: alternatives share a label ({labels}); give each a 'label'")
    tasks = tuple(_fixed(s, {}) for s in grid.get(task_key, [])) if task_key else ()
    varying = [k for k in keys if len(grid[k]) > 1]
    skip = _excluder(exclude, keys)
    combos: list[_Combo] = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        labels = {k: auto_label(s) for k, s in zip(keys, combo)}
        if skip(labels):
            continue
        full = "/".join(labels[k] for k in keys if k in varying) or "default"
        found = [analyse(graph, dict(p.choices)) for p in _points(full, keys, combo)]
        needed = set().union(*(f[0] for f in found))
        short = "/".join(labels[k] for k in keys if k in varying and k in needed) or \
            "/".join(labels[k] for k in keys if k in needed) or full
        combos.append(_Combo(full, short, frozenset(f[1] for f in found), any(f[2] for f in found), combo))
    if not combos:
        raise ConfigError("the grid (after 'exclude') has no points to run")
    trackers = tuple(_fixed(s, {}) for k in sorted(track_keys) for s in grid.get(k, []))
    return replace(_dedup(combos, keys, tasks, task_key), trackers=trackers)


@dataclass(frozen=True)
class _Combo:
    full: str                 # label of every varying key
    short: str                # labels of the keys that change the result
    sigs: frozenset[str]      # what its points compute
    converted: bool           # computed as another codec's full-frame form
    specs: tuple[ComponentSpec, ...]


def _dedup(combos: list[_Combo], keys: list[str], tasks: tuple[Choice, ...], task_key: str | None) -> Plan:
    """One series per distinct set of computations: the first combination that needs no
    conversion computes it (else the first); the others become aliases of its name."""
    groups: dict[frozenset[str], list[_Combo]] = {}
    for c in combos:
        groups.setdefault(c.sigs, []).append(c)
    heads = [next((c for c in g if not c.converted), g[0]) for g in groups.values()]
    shorts = [h.short for h in heads]
    names = {h.full: h.short if shorts.count(h.short) == 1 else h.full for h in heads}
    aliases = {c.full: names[h.full] for g, h in zip(groups.values(), heads) for c in g if c.full != names[h.full]}
    points = [p for c in combos if c.full in names and any(c is h for h in heads)
              for p in _points(names[c.full], keys, c.specs)]
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


def analyse(graph: Graph, choices: Mapping[str, Choice]) -> tuple[set[str], str, bool]:
    """(grid keys that change the result, what the point computes, whether a codec is taken as
    its full-frame form). A full-frame codec ignores its mask and what feeds it; a codec with a
    full-frame form whose wired mask covers everything (and feeds nothing else) is that form."""
    by_name = {n.name: n for n in graph.nodes}
    nodes = needed_nodes(graph, choices)
    needed = {by_name[n].component for n in nodes}
    eff = {k: (c.type, c.params) for k, c in choices.items() if k in needed}
    converted = False
    for enc in graph.by_kind("encode"):
        codec, src = choices.get(enc.component), by_name.get(enc.inputs.get("mask", ""))
        to_full = _hook("encode", codec, "full_frame_params") if codec else None
        if codec is None or to_full is None or src is None or enc.name not in nodes:
            continue
        others = [n for n in graph.nodes if src.name in n.inputs.values() and n.name != enc.name and n.name in nodes]
        mask = choices.get(src.component)
        covers = mask is not None and bool(_hook("mask", mask, "covers_all")) and not others
        if src.name not in nodes or covers:
            full = tuple(sorted(to_full(codec.kwargs).items()))
            converted |= covers and src.name in nodes  # a masked codec taken as its full-frame form
            if covers:
                eff.pop(src.component, None)
            eff[enc.component] = (codec.type, full)
    return needed, json.dumps(sorted(eff.items()), default=str), converted


def needed_nodes(graph: Graph, choices: Mapping[str, Choice]) -> set[str]:
    """Nodes whose components affect the output: walk back from decode and task nodes, skipping
    the inputs a component does not take or says it ignores (a full-frame codec's mask)."""
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
    return seen
