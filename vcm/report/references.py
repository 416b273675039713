"""Published rate-quality points (``report.references``): read and validated when the config loads,
drawn on the curves as "published" series and compared by BD values.

    report:
      references:
        - configs/references/segpic_kodak.csv            # columns series, bpp, metric, value, source
        - {series: "X (paper)", metric: psnr, source: "arXiv 1234.5678, Table 2",
           bpp: [0.12, 0.19, 0.29], value: [29.2, 30.8, 32.3]}

Values are in vcm's units: PSNR in dB, MS-SSIM and task scores (segm_AP, mIoU, HOTA ...) in [0, 1]
(a paper's AP of 35.2 is 0.352). A metric may carry a head's label (``seg:segm_AP``). Rates are bpp,
strictly rising. CSV lines starting with ``#`` are comments.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcm.config import ConfigError

FIDELITY = {"psnr": (0.0, 100.0), "msssim": (0.0, 1.0)}  # metric -> allowed value range
TASK = ("segm_AP", "bbox_AP", "kp_AP", "mIoU", "HOTA", "MOTA", "IDF1")  # scores <= 1 (MOTA may be negative)
FIELDS = ("series", "metric", "source", "bpp", "value")
RESERVED = ("reference", "uncompressed")  # names the report uses for the uncompressed image


@dataclass(frozen=True)
class Reference:
    """One published curve: ``series`` (its name in the report), ``metric`` (a vcm metric name),
    ``source`` (where the numbers come from), ``bpp`` (strictly rising) and ``value`` (one per bpp)."""

    series: str
    metric: str
    source: str
    bpp: tuple[float, ...]
    value: tuple[float, ...]

    def __post_init__(self) -> None:
        what = f"{self.series!r} ({self.metric})"
        if not self.series.strip() or self.series in RESERVED:
            raise ConfigError(f"series name {self.series!r} is empty or reserved ({', '.join(RESERVED)})")
        if not self.source.strip():
            raise ConfigError(f"{what}: source is required (the paper or repository the points come from)")
        low, high = value_range(self.metric)
        if len(self.bpp) != len(self.value) or len(self.bpp) < 2:
            raise ConfigError(f"{what}: needs >= 2 points with one value per bpp, got {len(self.bpp)} bpp "
                              f"and {len(self.value)} values")
        for r, v in zip(self.bpp, self.value):
            if not (math.isfinite(r) and r > 0) or not (math.isfinite(v) and low <= v <= high):
                raise ConfigError(f"{what}: point (bpp {r}, value {v}) out of range: bpp > 0, "
                                  f"{self.metric} in [{low}, {high}] (vcm's units)")
        for a, b in zip(self.bpp, self.bpp[1:]):
            if b <= a:
                raise ConfigError(f"{what}: bpp must rise strictly from point to point, got {b} after {a}")

    def to_dict(self) -> dict[str, Any]:
        return {"series": self.series, "metric": self.metric, "source": self.source,
                "bpp": list(self.bpp), "value": list(self.value)}


def value_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` may take; raises on a metric no report curve has."""
    name = metric.rpartition(":")[2]
    if name in FIDELITY:
        return FIDELITY[name]
    if name in TASK:
        return (-math.inf if name == "MOTA" else 0.0, 1.0)
    raise ConfigError(f"unknown metric {metric!r}; known: {', '.join([*FIDELITY, *TASK])} "
                      "(a task metric may be prefixed by its head's label, e.g. seg:segm_AP)")


def parse_references(raw: Any) -> tuple[Reference, ...]:
    """``report.references``: a list of CSV paths, ``{csv: PATH}`` or inline curves (or one of them)."""
    out: list[Reference] = []
    for i, item in enumerate(raw if isinstance(raw, (list, tuple)) else [raw]):
        where = f"report.references[{i}]"
        if isinstance(item, Reference):
            out.append(item)
        elif isinstance(item, str) or isinstance(item, Mapping) and "csv" in item:
            out += read_csv(item if isinstance(item, str) else _only_csv(item, where), where)
        elif isinstance(item, Mapping):
            out.append(_inline(item, where))
        else:
            raise ConfigError(f"{where}: give a CSV path or a mapping with {', '.join(FIELDS)}, got {item!r}")
    seen = set()
    for ref in out:
        if (ref.series, ref.metric) in seen:
            raise ConfigError(f"report.references: {ref.series!r} ({ref.metric}) is given twice")
        seen.add((ref.series, ref.metric))
    return tuple(out)


def _only_csv(item: Mapping[str, Any], where: str) -> str:
    if set(item) != {"csv"} or not isinstance(item["csv"], str):
        raise ConfigError(f"{where}: a CSV reference is {{csv: PATH}} alone, got keys {', '.join(map(str, item))}")
    return item["csv"]


def _inline(item: Mapping[str, Any], where: str) -> Reference:
    unknown, missing = set(item) - set(FIELDS), [k for k in FIELDS if k not in item]
    if unknown or missing:
        raise ConfigError(f"{where}: unknown key(s) {sorted(map(str, unknown))}, missing {missing}; "
                          f"an inline reference has {', '.join(FIELDS)} (or csv: PATH)")
    try:
        return Reference(str(item["series"]), str(item["metric"]), str(item["source"]),
                         _numbers(item["bpp"], f"{where}.bpp"), _numbers(item["value"], f"{where}.value"))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _numbers(xs: Any, where: str) -> tuple[float, ...]:
    if not isinstance(xs, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of numbers, got {xs!r}")
    return tuple(_number(x, where) for x in xs)


def _number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise ConfigError(f"{where}: {x!r} is not a number")
    try:
        return float(x)
    except ValueError:
        raise ConfigError(f"{where}: {x!r} is not a number") from None


def read_csv(path: str, where: str) -> list[Reference]:
    """The curves of a CSV with columns series, bpp, metric, value, source (one row per point,
    in rising bpp per curve; ``#`` lines are comments), one per (series, metric)."""
    from vcm.assets import expand_path

    p = Path(expand_path(path))
    if not p.is_file():
        raise ConfigError(f"{where}: reference CSV not found: {p} (relative paths are read from {Path.cwd()})")
    lines = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    table = csv.DictReader(lines)
    cols = set(table.fieldnames or ())
    if cols != {"series", "bpp", "metric", "value", "source"}:
        raise ConfigError(f"{where}: {p} has columns {sorted(cols)}; expected series, bpp, metric, value, source")
    curves: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for n, row in enumerate(table, start=2):
        c = curves.setdefault((row["series"], row["metric"]), {"bpp": [], "value": [], "source": []})
        c["bpp"].append(_number(row["bpp"], f"{where}: {p.name} data row {n - 1} bpp"))
        c["value"].append(_number(row["value"], f"{where}: {p.name} data row {n - 1} value"))
        c["source"].append(row["source"])
    out = []
    for (series, metric), c in curves.items():
        if len(set(c["source"])) > 1:
            raise ConfigError(f"{where}: {p.name}: {series!r} ({metric}) names several sources")
        try:
            out.append(Reference(series, metric, c["source"][0], tuple(c["bpp"]), tuple(c["value"])))
        except ConfigError as e:
            raise ConfigError(f"{where}: {p.name}: {e}") from None
    if not out:
        raise ConfigError(f"{where}: {p} holds no points")
    return out


def check_series(refs: tuple[Reference, ...], series: list[str], anchor: str | None, what: str = "anchor") -> None:
    """Refuse a reference named like a measured series (the curves would merge) and an anchor
    (``what`` names it in the message) that is neither a series nor a reference."""
    clash = sorted({r.series for r in refs} & set(series))
    if clash:
        raise ValueError(f"report.references: {', '.join(map(repr, clash))} is also a series of this grid; "
                         "rename the reference")
    names = series + [r.series for r in refs if r.series not in series]
    if anchor is not None and anchor not in names:
        raise ValueError(f"{what} {anchor!r} is not a series of this run; series: {', '.join(names)}")
