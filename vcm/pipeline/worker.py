"""Evaluate the graph for every pending point of one image, yielding one record per point.

Within an image, node outputs are memoised by (node, component, inputs), and task predictions
by the decoded image's content hash, so identical decodes (e.g. a full-frame codec under two
masks) are scored once.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import torch

from vcm.metrics.complexity import Complexity, is_network, measure
from vcm.metrics.quality import Lpips, ms_ssim, psnr
from vcm.pipeline.graph import FIXED_KINDS, Graph, Node, _registries, component_class
from vcm.pipeline.plan import Choice, Plan, Point
from vcm.types import Bitstream, Decoded, Mask, Prediction, Sample

REFERENCE = "@reference"  # point key of the uncompressed-image predictions
Unit = tuple[str, list[Point], bool]  # (sample id, pending points, reference pending?)
Record = tuple[str, str, dict[str, Any]]  # (sample id, point key, record)


class Components:
    """Builds each fixed component once per run (encoder and decoder are separate objects) and
    counts a network component's cost (``complexity``: once per image size it meets, ``once``,
    or ``off``; see :mod:`vcm.metrics.complexity`)."""

    def __init__(self, device: torch.device, complexity: str = "per_size") -> None:
        self.device, self.complexity = device, complexity
        self._built: dict[tuple[str, str], Any] = {}
        self._counted: set[tuple[Any, ...]] = set()
        self._regs = _registries()

    def get(self, kind: str, choice: Choice) -> Any:
        key = (kind, choice.ident)
        if key not in self._built:
            self._built[key] = self._regs[kind].build(choice.type, choice.kwargs, device=self.device)
        return self._built[key]

    def measure(self, kind: str, choice: Choice, size: tuple[int, int], fn: Callable[[], Any]) -> Complexity | None:
        """The cost of ``fn`` (one call of the component on an image of ``size`` (H, W)), counted in
        a separate call so that the timed call runs uncounted; None when already counted (or not
        a network, or counting is off)."""
        comp = self.get(kind, choice)
        key = (kind, choice.ident) + (size if self.complexity == "per_size" else ())
        if self.complexity == "off" or key in self._counted or not is_network(comp):
            return None
        self._counted.add(key)
        return measure(comp, fn, *size)


def encode_prediction(p: Prediction) -> dict[str, Any]:
    sem = None
    if p.semantic is not None:
        ok, png = cv2.imencode(".png", p.semantic.astype(np.uint8))
        if not ok:
            raise ValueError(f"cannot PNG-encode a class map of shape {p.semantic.shape}")
        sem = base64.b64encode(png.tobytes()).decode("ascii")
    return {"instances": p.instances, "semantic": sem}


def decode_semantic(b64: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_UNCHANGED)


class SampleWorker:
    """Callable on (sample id, pending points, reference pending?) -> records."""

    def __init__(self, graph: Graph, plan: Plan, dataset: Any, components: Components, msssim: bool = False,
                 lpips: str | None = None) -> None:
        self.graph, self.plan, self.dataset, self.components = graph, plan, dataset, components
        self.msssim, self.lpips = msssim, Lpips(lpips) if lpips else None

    def __call__(self, unit: Unit) -> Iterator[Record]:
        sample_id, points, reference = unit
        t = time.perf_counter()
        sample = self.dataset.load(sample_id)
        yield from self.records(sample, points, reference, {}, {"load": time.perf_counter() - t})

    def records(self, sample: Sample, points: list[Point], reference: bool, memo: dict[Any, Any],
                load: dict[str, float]) -> Iterator[Record]:
        """The records of one loaded image; ``load`` timings go to its first record."""
        sample_id = sample.id
        if reference:
            costs: dict[str, Any] = {}
            values, keys = self._reference_values(sample, memo, costs)
            node = self.graph.by_kind("task")[0]
            preds, timings = {}, dict(load)
            for t in self.plan.tasks:
                pred, timings[f"{node.name}:{t.label}"] = self._task(t, node, sample.image, values, keys, memo, costs)
                preds[t.label] = encode_prediction(pred)
            load = {}
            yield sample_id, REFERENCE, {"height": sample.image.shape[0], "width": sample.image.shape[1],
                                         "coco_id": sample.coco_id, "predictions": preds, "timings": timings,
                                         "complexity": costs}
        for point in points:
            record = self.evaluate(sample, point, memo)
            record["timings"].update(load)
            load = {}
            yield sample_id, point.key, record

    def _task(self, choice: Choice, node: Node, image: np.ndarray, values: dict[str, Any],
              keys: dict[str, Any], memo: dict[Any, Any], costs: dict[str, Any]) -> tuple[Prediction, float | None]:
        """Run a head on ``image`` plus its other wired inputs (e.g. person boxes): the prediction
        and its seconds (None when reused from an identical earlier input); its cost goes to
        ``costs`` when counted now."""
        head = self.components.get("task", choice)
        ports = getattr(component_class(type(head)), "input_ports", {"image": "image"})
        extra = {p: s for p, s in node.inputs.items() if p != "image" and p in ports}
        key = ("task", choice.ident, hashlib.sha1(image.tobytes()).hexdigest(), image.shape,
               tuple((p, keys[s]) for p, s in sorted(extra.items())))
        if key in memo:
            return memo[key][0], None
        run = lambda: head(image=image, **{p: values[s] for p, s in extra.items()})  # noqa: E731
        self._count(costs, f"{node.name}:{choice.label}", "task", choice, image.shape[:2], run)
        t = time.perf_counter()
        memo[key] = (run(), time.perf_counter() - t)
        return memo[key]  # type: ignore[no-any-return]

    def _count(self, costs: dict[str, Any], stage: str, kind: str, choice: Choice, size: tuple[int, int],
               run: Callable[[], Any]) -> None:
        """Put the stage's cost in ``costs`` when this is the call that counts it."""
        cost = self.components.measure(kind, choice, size, run)
        if cost is not None:
            costs[stage] = {"kind": kind, "component": choice.ident, **cost.to_dict()}

    def _reference_values(self, sample: Sample, memo: dict[Any, Any],
                          costs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Node outputs for the uncompressed reference: the graph with the codec replaced by the
        identity (decode = the original image), other components at the first point's choice."""
        values: dict[str, Any] = {"image": sample.image, "annotations": sample.annotations,
                                  "sample_id": sample.id}
        keys: dict[str, Any] = {k: k for k in values}
        point, needed = self.plan.points[0], self._ancestors(self.graph.by_kind("task")[0])
        for node in self.graph.nodes:
            if node.name not in needed:
                continue
            if node.kind == "decode":
                values[node.name], keys[node.name] = Decoded(sample.image), "image"
            elif node.kind == "mask":
                choice = point.choice(node.component)
                key = (node.name, choice.ident, tuple(keys.get(s) for s in node.inputs.values()))
                if key not in memo:
                    run = lambda n=node, c=choice: self._run_node(n, c, values)  # noqa: E731
                    self._count(costs, node.name, node.kind, choice, sample.image.shape[:2], run)
                    t = time.perf_counter()
                    memo[key] = (run(), time.perf_counter() - t)
                values[node.name], keys[node.name] = memo[key][0], key
        return values, keys

    def _ancestors(self, task: Node) -> set[str]:
        """Nodes that a task node's non-image inputs depend on."""
        by_name = {n.name: n for n in self.graph.nodes}
        todo = [s for p, s in task.inputs.items() if p != "image"]
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in by_name and name not in seen:
                seen.add(name)
                todo += list(by_name[name].inputs.values())
        return seen

    def node_values(self, sample: Sample, point: Point, memo: dict[Any, Any], given: dict[str, Any] | None = None,
                    until: str | None = None, costs: dict[str, Any] | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, float | None]]:
        """Every non-task node's output for one point (memoised in ``memo``): values, their
        memo keys, and seconds per node (None where the output was reused, not computed).
        ``given`` supplies some nodes' outputs (a clip codec's bitstream and decoded frame);
        evaluation stops before node ``until``; node costs counted now go to ``costs``."""
        values: dict[str, Any] = {"image": sample.image, "annotations": sample.annotations,
                                  "sample_id": sample.id}
        keys: dict[str, Any] = {k: k for k in values}
        timings: dict[str, float | None] = {}
        for node in self.graph.nodes:
            if node.name == until:
                break
            if node.kind in FIXED_KINDS:
                continue
            if given and node.name in given:
                values[node.name], keys[node.name], timings[node.name] = given[node.name], ("given", node.name), None
                continue
            choice = point.choice(node.component)
            key = (node.name, choice.ident, tuple(keys[s] for s in node.inputs.values()))
            if key in memo:
                timings[node.name] = None  # reused: computed for an earlier point of this image
            else:
                run = lambda n=node, c=choice: self._run_node(n, c, values)  # noqa: E731
                self._count({} if costs is None else costs, node.name, node.kind, choice, sample.image.shape[:2], run)
                t = time.perf_counter()
                out = run()
                memo[key] = (out, time.perf_counter() - t)
                timings[node.name] = memo[key][1]
            values[node.name], keys[node.name] = memo[key][0], key
        return values, keys, timings

    def evaluate(self, sample: Sample, point: Point, memo: dict[Any, Any],
                 given: dict[str, Any] | None = None) -> dict[str, Any]:
        """One point's record for one image: rate, fidelity, every head's predictions, timings."""
        costs: dict[str, Any] = {}
        values, keys, timings = self.node_values(sample, point, memo, given, costs=costs)
        t = time.perf_counter()
        record = self._rate_and_quality(sample, values)
        timings["metrics"] = time.perf_counter() - t  # bpp, PSNR (in / out of the mask), MS-SSIM, LPIPS
        record["predictions"] = {}
        for node in self.graph.by_kind("task"):
            image = _as_image(values[node.inputs["image"]])
            for t in self.plan.tasks:
                pred, dt = self._task(t, node, image, values, keys, memo, costs)
                record["predictions"][t.label] = encode_prediction(pred)
                timings[f"{node.name}:{t.label}"] = dt
        record.update(series=point.series, point=point.point, sweep=dict(point.sweep), timings=timings,
                      complexity=costs)
        return record

    def _run_node(self, node: Node, choice: Choice, values: dict[str, Any]) -> Any:
        comp = self.components.get(node.kind, choice)
        if node.kind == "decode":
            bitstream = values[node.inputs["bitstream"]]
            return comp.decode(bitstream.data)
        ports = getattr(component_class(type(comp)), "input_ports", {"image": "image"})
        kwargs = {p: _as_image(values[s]) if ports.get(p) == "image" else values[s]
                  for p, s in node.inputs.items() if p in ports}
        return comp.encode(**kwargs) if node.kind == "encode" else comp(**kwargs)

    def _rate_and_quality(self, sample: Sample, values: dict[str, Any]) -> dict[str, Any]:
        h, w = sample.image.shape[:2]
        enc = self.graph.by_kind("encode")[0]
        bs: Bitstream = values[enc.name]
        dec: Decoded = values[self.graph.by_kind("decode")[0].name]
        mask: Mask | None = dec.mask  # what the codec coded (None: the whole frame)
        px = h * w
        rec: dict[str, Any] = {
            "height": h, "width": w, "coco_id": sample.coco_id,
            "bytes": {"header": bs.header_bytes, "side": bs.side_bytes, "payload": bs.payload_bytes,
                      "total": len(bs.data)},
            "bpp": 8 * len(bs.data) / px, "bpp_payload": 8 * bs.payload_bytes / px,
            "bpp_side": 8 * bs.side_bytes / px, "bpp_header": 8 * bs.header_bytes / px,
            "decoded_md5": hashlib.md5(np.ascontiguousarray(dec.image).tobytes()).hexdigest(),
            "psnr": psnr(sample.image, dec.image),
            "msssim": ms_ssim(sample.image, dec.image) if self.msssim else None,
            "lpips": self.lpips(sample.image, dec.image) if self.lpips is not None else None,
            "visible_fraction": mask.visible_fraction if mask is not None else 1.0,
        }
        keep = mask.coded_pixels() if mask is not None else np.ones((h, w), bool)
        rec["psnr_in"] = psnr(sample.image, dec.image, keep)
        rec["psnr_out"] = psnr(sample.image, dec.image, ~keep) if (~keep).any() else None
        return rec


def _as_image(v: Any) -> Any:
    return v.image if isinstance(v, Decoded) else v
