"""Pipeline graph templates: named nodes with typed ports, checked when the graph is built.

A template (``pipelines/*.yaml``) lists nodes; each names its ``kind``, the ``component`` (grid
key) that supplies its implementation, and ``inputs`` (port -> upstream node or source)::

    nodes:
      mask:   {kind: mask,   component: mask,  inputs: {image: image, annotations: annotations}}
      encode: {kind: encode, component: codec, inputs: {image: image, mask: mask}}
      decode: {kind: decode, component: codec, inputs: {bitstream: encode}}
      task:   {kind: task,   component: task,  inputs: {image: decode}}

    image --> mask --> encode --bytes--> decode --> task --> predictions
      \\_____________/

Sources (``image``, ``annotations``, ``sample_id``) come from the dataset. Decode nodes see
only bytes, so every codec is checked to decode from its bitstream alone.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vcm.config import ComponentSpec, ConfigError
from vcm.registry import Registry, check_params

SOURCES = {"image": "image", "annotations": "annotations", "sample_id": "sample_id"}
OUTPUT_TYPE = {"mask": "mask", "encode": "bitstream", "decode": "decoded", "task": "prediction", "track": "tracks"}
FIXED_KINDS = ("task", "track")  # one component per grid entry runs on every point: not part of a series
# A decoded image can feed an image port; ground truth or a mask's instances can give boxes.
COMPATIBLE = {("decoded", "image"), ("annotations", "boxes"), ("mask", "boxes")}


class GraphError(ConfigError):
    """A pipeline whose wiring or components do not fit together."""


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    component: str
    inputs: dict[str, str]


def _registries() -> dict[str, Registry[Any]]:
    from vcm.codecs import CODECS
    from vcm.masks import MASKS
    from vcm.tasks import TASKS
    from vcm.tracking import TRACKERS

    return {"mask": MASKS, "encode": CODECS, "decode": CODECS, "task": TASKS, "track": TRACKERS}


def component_class(factory: Any) -> Any:
    """The class a registry factory builds (itself, or its return annotation)."""
    if isinstance(factory, type):
        return factory
    return typing.get_type_hints(factory).get("return", factory)


@dataclass(frozen=True)
class Graph:
    """A validated pipeline: nodes in topological order."""

    nodes: tuple[Node, ...]

    def by_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    @classmethod
    def load(cls, path: str | Path) -> Graph:
        p = Path(path)
        if not p.is_file():
            raise GraphError(f"pipeline template not found: {p}")
        raw = yaml.safe_load(p.read_text()) or {}
        unknown = set(raw) - {"nodes", "description"}
        if unknown:
            raise GraphError(f"{p}: unknown key(s) {sorted(unknown)}; allowed: nodes, description")
        return cls.from_dict(raw.get("nodes") or {}, where=str(p))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "pipeline") -> Graph:
        nodes = {}
        for name, spec in raw.items():
            if name in SOURCES:
                raise GraphError(f"{where}: node name {name!r} is reserved for a dataset source")
            bad = set(spec) - {"kind", "component", "inputs"}
            if bad:
                raise GraphError(f"{where}.{name}: unknown key(s) {sorted(bad)}; allowed: kind, component, inputs")
            if spec.get("kind") not in OUTPUT_TYPE:
                raise GraphError(f"{where}.{name}: kind must be one of {sorted(OUTPUT_TYPE)}, got {spec.get('kind')!r}")
            nodes[name] = Node(name, spec["kind"], spec.get("component", name), dict(spec.get("inputs") or {}))
        return cls(tuple(_toposort(nodes, where)))

    def validate(self, grid: Mapping[str, list[ComponentSpec]], dataset_ports: frozenset[str]) -> None:
        """Check every wire, every component choice and every parameter before any image runs."""
        used = {n.component for n in self.nodes}
        for key in grid:
            if key not in used:
                raise GraphError(f"grid entry {key!r} is used by no node (nodes use: {', '.join(sorted(used))})")
        regs = _registries()
        dataset_ports = dataset_ports | {"sample_id"}  # every sample has an id
        for node in self.nodes:
            if node.component not in grid:
                raise GraphError(f"node {node.name!r} takes its component from grid entry "
                                 f"{node.component!r}, which the config does not give")
            for spec in grid[node.component]:
                self._check_choice(node, spec, regs[node.kind], dataset_ports)

    def _check_choice(self, node: Node, spec: ComponentSpec, reg: Registry[Any],
                      dataset_ports: frozenset[str]) -> None:
        factory = reg.get(spec.type)
        what = f"node {node.name!r} ({node.kind} {spec.type!r})"
        for values in _sweep_points(spec):
            check_params(what, factory, {**spec.params, **values})
        if node.kind in ("decode", "track"):  # a tracker takes a head's per-frame detections
            ports: Mapping[str, str] = {"bitstream": "bitstream"} if node.kind == "decode" else {"detections": "prediction"}
            optional: frozenset[str] = frozenset()
        else:
            cls = component_class(factory)
            ports, optional = getattr(cls, "input_ports", {"image": "image"}), getattr(cls, "optional_ports", frozenset())
        for port, ptype in ports.items():
            src = node.inputs.get(port)
            if src is None:
                if port not in optional:
                    raise GraphError(f"{what}: input {port!r} ({ptype}) is not wired")
                continue
            if src in SOURCES and src not in dataset_ports and port not in optional:
                raise GraphError(f"{what}: input {port!r} needs {src!r}, which the dataset does not "
                                 f"provide (it provides: {', '.join(sorted(dataset_ports))})")
            stype = SOURCES.get(src) or OUTPUT_TYPE[self._node(src).kind]
            if stype != ptype and (stype, ptype) not in COMPATIBLE:
                raise GraphError(f"{what}: input {port!r} expects {ptype}, but {src!r} gives {stype}")
        if node.kind == "encode" and "mask" in node.inputs and "mask" not in ports:
            raise GraphError(f"{what} takes no mask, but the pipeline wires {node.inputs['mask']!r} to it; "
                             f"use a pipeline without a mask node (e.g. pipelines/codec_task.yaml)")

    def _node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


def _toposort(nodes: dict[str, Node], where: str) -> list[Node]:
    order: list[Node] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise GraphError(f"{where}: cycle {' -> '.join(path + (name,))}")
        state[name] = 1
        for port, src in nodes[name].inputs.items():
            if src in SOURCES:
                continue
            if src not in nodes:
                raise GraphError(f"{where}.{name}: input {port!r} comes from {src!r}, which is neither "
                                 f"a node nor a source ({', '.join(sorted(set(nodes) | set(SOURCES)))})")
            visit(src, path + (name,))
        state[name] = 2
        order.append(nodes[name])

    for name in nodes:
        visit(name, ())
    return order


def _sweep_points(spec: ComponentSpec) -> list[dict[str, Any]]:
    if not spec.sweep:
        return [{}]
    (param, values), = spec.sweep.items()
    return [{param: v} for v in values]
