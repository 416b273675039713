"""Experiment configs: YAML (safe_load) -> validated dataclasses; ``a.b=value`` overrides.

Unknown keys anywhere are errors that name the key and the allowed ones. Component specs
(``{type: jpeg, quality: 50}``) keep their parameters as a dict; those are checked against the
component's constructor when the pipeline is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid config: unknown key, wrong type, bad override."""


@dataclass(frozen=True)
class ComponentSpec:
    """One component choice: registry ``type``, its ``params``, an optional series ``label``
    and an optional ``sweep`` of one parameter (the rate axis, e.g. ``{quality: [10, 50]}``)."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    sweep: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, where: str) -> ComponentSpec:
        if isinstance(raw, str):
            raw = {"type": raw}
        if not isinstance(raw, Mapping) or "type" not in raw:
            raise ConfigError(f"{where}: a component needs a mapping with a 'type' key, got {raw!r}")
        params = {k: v for k, v in raw.items() if k not in ("type", "label", "sweep")}
        sweep = raw.get("sweep") or {}
        if not isinstance(sweep, Mapping) or len(sweep) > 1:
            raise ConfigError(f"{where}.sweep: give one parameter and its list of values")
        for k, v in sweep.items():
            if not isinstance(v, list) or not v:
                raise ConfigError(f"{where}.sweep.{k}: must be a non-empty list")
            if k in params:
                raise ConfigError(f"{where}: {k!r} is both a parameter and swept")
        return cls(str(raw["type"]), dict(params), raw.get("label"), {k: list(v) for k, v in sweep.items()})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, **self.params}
        if self.label:
            out["label"] = self.label
        if self.sweep:
            out["sweep"] = self.sweep
        return out


@dataclass(frozen=True)
class EvalConfig:
    """How task accuracy is scored."""

    pseudo_gt: bool = False          # score against the head's predictions on the uncompressed image
    pseudo_gt_min_score: float = 0.5  # reference predictions kept as pseudo ground truth
    category_ids: tuple[int, ...] | None = None  # score only these COCO categories (None: all)
    msssim: bool = False             # also MS-SSIM per image (pytorch_msssim; ~0.2 s per Kodak image)
    lpips: str | None = None         # LPIPS per image, from this local torchvision AlexNet state dict
    complexity: str = "per_size"     # count networks' MACs / parameters: once per component and image
                                     # size (per_size), once per component (once), or off

    def __post_init__(self) -> None:
        if self.complexity not in ("per_size", "once", "off"):
            raise ConfigError(f"eval.complexity must be per_size, once or off, got {self.complexity!r}")


@dataclass(frozen=True)
class ReportConfig:
    anchor: str | None = None         # series label BD-rates are computed against (default: first)
    bd_method: str = "pchip"          # headline BD interpolation: pchip (JVET / MPEG CTC) | akima | cubic
    bd_fit: str = "envelope"          # a non-monotonic curve: its monotone envelope | curve_fit (MPEG's
                                      # monotonic cubic, Wang et al. PCS 2024)
    formats: tuple[str, ...] = ("png", "md", "csv", "html")
    gallery: int = 2                  # images shown decoded by every series in the HTML report (0: none)
    bpp: str = "mean"                 # rate of curves and BD: mean of per-image bpp | pooled (bits / pixels)
    bootstrap: int = 0                # image-bootstrap resamples for 95 % intervals (0: off; e.g. 200)
    references: tuple[Any, ...] = ()  # published curves (vcm.report.references.Reference): CSV paths or
                                      # inline {series, metric, source, bpp, value}; read and checked here

    def __post_init__(self) -> None:
        if self.references:
            from vcm.report.references import parse_references

            object.__setattr__(self, "references", parse_references(self.references))
        if self.bd_method not in ("pchip", "akima", "cubic"):
            raise ConfigError(f"report.bd_method must be pchip, akima or cubic, got {self.bd_method!r}")
        if self.bd_fit not in ("envelope", "curve_fit"):
            raise ConfigError(f"report.bd_fit must be envelope or curve_fit, got {self.bd_fit!r}")
        if self.gallery < 0 or self.bootstrap < 0:
            raise ConfigError(f"report.gallery and report.bootstrap must be >= 0, got {self.gallery}, {self.bootstrap}")
        if self.bpp not in ("mean", "pooled"):
            raise ConfigError(f"report.bpp must be mean or pooled, got {self.bpp!r}")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where units of work (one image with its pending points) run: ``inprocess`` (serial),
    ``process`` (a pool of local worker processes) or ``ray`` (actors on a Ray cluster)."""

    type: str = "inprocess"
    workers: int | None = None        # process / ray: worker count (default: cores // threads)
    threads: int | None = None        # CPU threads per worker for torch, TFLite, OpenCV (default: cores // workers)
    address: str | None = None        # ray: cluster address (``auto``, ``host:6379``); None starts a local one
    claim_ttl: float = 60.0           # seconds a unit claim lives without renewal (a dead run's claims expire)

    def __post_init__(self) -> None:
        if self.type not in ("inprocess", "process", "ray"):
            raise ConfigError(f"executor.type must be inprocess, process or ray, got {self.type!r}")
        for name in ("workers", "threads"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"executor.{name} must be >= 1, got {v}")
        if self.claim_ttl <= 0:
            raise ConfigError(f"executor.claim_ttl must be > 0 seconds, got {self.claim_ttl}")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: dataset x grid of node components x sweep -> run folder."""

    name: str
    pipeline: str
    dataset: ComponentSpec
    grid: dict[str, list[ComponentSpec]]
    output_dir: str = "runs/${name}"
    device: str = "auto"
    seed: int = 0                    # seeds Python, NumPy and torch at the start of a run (random masks
                                     # also take their own per-image ``seed``)
    executor: ExecutorConfig = ExecutorConfig()  # or just its type: ``executor: process``
    exclude: tuple[dict[str, Any], ...] = ()  # combinations to skip: {grid key: label glob(s)}
    plugins: tuple[str, ...] = ()    # modules imported first (they register components)
    eval: EvalConfig = EvalConfig()
    report: ReportConfig = ReportConfig()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "pipeline": self.pipeline, "dataset": self.dataset.to_dict(),
            "grid": {k: [s.to_dict() for s in v] for k, v in self.grid.items()},
            "output_dir": self.output_dir, "device": self.device, "seed": self.seed,
            "executor": dataclasses.asdict(self.executor), "exclude": [dict(e) for e in self.exclude], "plugins": list(self.plugins),
            "eval": dataclasses.asdict(self.eval),
            "report": {**dataclasses.asdict(self.report), "formats": list(self.report.formats),
                       "references": [r.to_dict() for r in self.report.references]},
        }


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config, apply ``a.b=value`` overrides, validate."""
    raw = read_yaml(path)
    if isinstance(raw.get("executor"), str):  # ``executor: process`` takes ``executor.workers=2`` too
        raw["executor"] = {"type": raw["executor"]}
    return parse_experiment(apply_overrides(raw, overrides or []), where=str(path))


def read_yaml(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A YAML file's top-level mapping with ``a.b=value`` overrides applied."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot be read: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    return apply_overrides(raw, overrides or [])


def parse_experiment(raw: Mapping[str, Any], where: str = "config") -> ExperimentConfig:
    raw = dict(raw)
    grid_raw = raw.pop("grid", None)
    ds_raw = raw.pop("dataset", None)
    if not isinstance(grid_raw, Mapping) or not grid_raw:
        raise ConfigError(f"{where}: 'grid' must map node names to lists of components")
    if ds_raw is None:
        raise ConfigError(f"{where}: 'dataset' is required")
    grid = {
        str(node): [ComponentSpec.parse(s, f"{where}.grid.{node}[{i}]") for i, s in enumerate(as_list(alts))]
        for node, alts in grid_raw.items()
    }
    if isinstance(raw.get("executor"), str):
        raw["executor"] = {"type": raw["executor"]}
    base = from_dict(ExperimentConfig, {**raw, "grid": {}, "dataset": {"type": "_"}}, where)
    cfg = dataclasses.replace(base, grid=grid, dataset=ComponentSpec.parse(ds_raw, f"{where}.dataset"))
    return dataclasses.replace(cfg, output_dir=cfg.output_dir.replace("${name}", cfg.name))


def as_list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, list) else [x]


def from_dict(cls: type[T], raw: Mapping[str, Any], where: str) -> T:
    """Build dataclass ``cls`` from ``raw``; unknown keys and wrong scalar types raise."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; allowed: {', '.join(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if origin is tuple:
        return tuple(as_list(value))
    if tp in (str, int, float, bool):
        ok = isinstance(value, tp) or (tp is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return tp(value)
    return value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` (value parsed as YAML); list items are addressed by index."""
    for ov in overrides:
        key, sep, text = ov.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {ov!r} is not of the form key.path=value")
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {ov!r}: the value is not valid YAML ({getattr(e, 'problem', e)})") from e
        node: Any = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            node = _step(node, part, ".".join(parts[: i + 1]), create=True)
        last = parts[-1]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {ov!r}: {'.'.join(parts[:-1])!r} is a value, not a mapping")
        if isinstance(node, list):
            node[_index(node, last, key)] = value
        else:
            node[last] = value
    return raw


def _step(node: Any, part: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise ConfigError(f"override path {path!r} goes through a non-mapping value")
    if part not in node:
        if not create:
            raise ConfigError(f"override path {path!r} does not exist")
        node[part] = {}
    return node[part]


def _index(node: list[Any], part: str, path: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"override {path!r}: {part!r} is not an index of a {len(node)}-item list")
    return int(part)


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
