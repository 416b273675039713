"""The report's complexity tables: kMAC per pixel and parameters of every network stage, per series
(mask generator, encoder, decoder) and per task head, beside the stages' measured milliseconds.

Costs are recorded per component (``record["complexity"]``, see :mod:`vcm.metrics.complexity`),
so a component shared by several points, or counted on the reference, is found for each of them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from vcm.pipeline.graph import FIXED_KINDS, Graph
from vcm.pipeline.plan import Plan, Point

NOT_NETWORK = "n/a (not a network)"
KIND_NAME = {"mask": "mask", "encode": "encoder", "decode": "decoder", "task": "task"}


def collect(costs: dict[str, list[dict[str, Any]]], record: dict[str, Any]) -> None:
    """Add a record's counted costs to ``costs`` ('kind:component ident' -> cost dicts; an encoder
    and a decoder share their component's ident)."""
    for cost in record.get("complexity", {}).values():
        costs[f"{cost['kind']}:{cost['component']}"].append(cost)


def summarise(cost_list: list[dict[str, Any]]) -> dict[str, Any]:
    """One component's cost over its counted calls: mean kMAC/pixel (over image sizes), parameters,
    counter and how many calls were counted."""
    kmac = [c["macs"] / c["pixels"] / 1e3 for c in cost_list]
    return {"kmac_px": float(np.mean(kmac)), "params": max(c["params"] for c in cost_list),
            "counter": cost_list[0]["counter"], "counted": len(cost_list)}


def stages(graph: Graph, plan: Plan, point: Point | None) -> dict[str, tuple[str, str]]:
    """Stage name -> (kind, component ident) of a point (None: the reference, task heads only)."""
    out = {}
    for node in graph.nodes:
        if node.kind == "task":
            out.update({f"{node.name}:{t.label}": ("task", t.ident) for t in plan.tasks})
        elif node.kind not in FIXED_KINDS and point is not None:
            out[node.name] = (node.kind, point.choice(node.component).ident)
    return out


def point_costs(graph: Graph, plan: Plan, point: Point | None, costs: dict[str, list[dict[str, Any]]]
                ) -> dict[str, dict[str, Any]]:
    """Stage -> cost summary of one point ({"kind"} alone where nothing was counted: not a network)."""
    return {stage: {"kind": kind, **(summarise(costs[f"{kind}:{ident}"]) if costs.get(f"{kind}:{ident}") else {})}
            for stage, (kind, ident) in stages(graph, plan, point).items()}


def series_table(rows: list[Any], mode: str) -> list[dict[str, Any]]:
    """One row per measured series: kMAC/pixel of each non-task stage, encoder / decoder
    parameters, and each stage's mean ms (``mode``: eval.complexity, 'off' when not counted)."""
    by_series: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        if r.series != "reference" and not r.source and r.costs:
            by_series[r.series].append(r)
    return [_series_row(s, rs, mode) for s, rs in by_series.items()]


def _series_row(series: str, rows: list[Any], mode: str) -> dict[str, Any]:
    out: dict[str, Any] = {"series": series}
    names = [s for s, c in rows[0].costs.items() if c["kind"] != "task"]
    for stage in names:
        kind = KIND_NAME.get(rows[0].costs[stage]["kind"], stage)
        out[f"{kind} kMAC/px"] = _kmac([r.costs.get(stage, {}) for r in rows], mode)
    for stage in names:
        if rows[0].costs[stage]["kind"] in ("encode", "decode"):
            params = [r.costs[stage].get("params") for r in rows if r.costs[stage].get("params") is not None]
            out[f"{KIND_NAME[rows[0].costs[stage]['kind']]} params"] = _count(max(params)) if params else "n/a"
    for stage in names:
        ms = [r.values.get(f"ms_{stage}") for r in rows if r.values.get(f"ms_{stage}") is not None]
        out[f"{stage} ms"] = _ms(ms)
    return out


def task_table(rows: list[Any], mode: str) -> list[dict[str, Any]]:
    """One row per task head: kMAC/pixel of the image it reads, parameters, counter, mean ms."""
    ref = next((r for r in rows if r.series == "reference"), None)
    if ref is None:
        return []
    out = []
    for stage, c in ref.costs.items():
        ms = [r.values.get(f"ms_{stage}") for r in rows if not r.source and r.values.get(f"ms_{stage}") is not None]
        out.append({"task head": stage, "kMAC/px": _kmac([c], mode), "params": _count(c["params"]) if "params" in c else "n/a",
                    "counted by": c.get("counter", ""), "ms": _ms(ms)})
    return out


def _kmac(costs: list[dict[str, Any]], mode: str) -> str:
    if mode == "off":
        return "not counted (eval.complexity: off)"
    vals = [c["kmac_px"] for c in costs if "kmac_px" in c]
    if not vals:
        return NOT_NETWORK
    lo, hi = min(vals), max(vals)
    return f"{lo:.1f}" if hi - lo < 0.05 * max(hi, 1e-9) else f"{np.mean(vals):.1f} ({lo:.1f}-{hi:.1f})"


def _ms(values: list[float]) -> str:
    """Mean milliseconds, one decimal ('' when the stage never ran: its output was always reused)."""
    return f"{np.mean(values):.1f}" if values else ""


def _count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


NOTE = ("kMAC per pixel of the dataset image (multiply-accumulates of convolutions, matrix products and attention: "
        "torch's FlopCounterMode, or the TFLite operator graph; element-wise operations and entropy coding are not "
        "counted), counted {how}; a mask-dependent encoder's cost is that of the counted image's mask. A range "
        "gives the series' rate points' spread. Parameters: those the stage read. ms: mean measured time per image "
        "of the stage on this machine. Classical and standard codecs are not networks: their cost is their ms.")
HOW = {"per_size": "once per component and image size", "once": "once per component (on the first image)",
       "off": "not at all (eval.complexity: off)"}
