"""Bjontegaard deltas of one rate-metric curve against an anchor, via the ``bjontegaard`` package,
with everything that makes a value fragile stated next to it.

- **BD-rate** (%): mean log-rate difference at equal metric, integrated over the metric range
  both curves cover. **BD-metric** (BD-PSNR in dB, BD-AP in AP points): mean metric difference at
  equal rate, over the log10-rate range both cover.
- Each is computed with the three interpolations the package offers (``cubic``: VCEG-M33's
  polynomial fit; ``pchip``: piecewise cubic, the JVET / MPEG common-test-condition sheets;
  ``akima``: Herglotz et al. 2022); ``method`` picks the headline value.
- Curves whose metric does not rise with rate are reduced to their monotone envelope (each kept
  point beats every lower-rate point); how many points remain is reported.
- Flags: ``overlap`` (the integration range covers < 75 % of the union of both curves' ranges,
  the package's own threshold and definition), ``points`` (< 4 points on a curve), ``methods``
  (the three interpolations disagree in sign, or spread more than 5 % points of BD-rate / 5 % of
  the anchor's metric span for BD-metric).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

METHODS = ("cubic", "pchip", "akima")
MIN_OVERLAP = 0.75  # the bjontegaard package's threshold
MIN_POINTS = 4
SPREAD = 5.0  # % points of BD-rate, % of the anchor's metric span for BD-metric: the ``methods`` flag
FLAG_TEXT = {
    "overlap": "curves overlap on < 75 % of their joint range: the value extrapolates the comparison",
    "points": "fewer than 4 points on a curve (after the monotone envelope): the fit is loose",
    "methods": "cubic / pchip / akima disagree in sign or by more than 5 % points (BD-metric: 5 % of the "
               "anchor's metric span): the value depends on the interpolation",
    "envelope": "a curve is not monotonic: its monotone envelope was used",
    "partial": "some rate points cover fewer images than others (an unfinished run)",
}


@dataclass(frozen=True)
class Curve:
    rate: tuple[float, ...]    # bpp, one per point
    metric: tuple[float, ...]  # higher is better

    def sorted(self) -> Curve:
        order = np.argsort(self.rate, kind="stable")
        return Curve(tuple(np.asarray(self.rate)[order]), tuple(np.asarray(self.metric)[order]))

    @property
    def monotonic(self) -> bool:
        m = np.asarray(self.sorted().metric)
        return bool(np.all(np.diff(m) > 0))

    def envelope(self) -> Curve:
        """Points (by rising rate) whose metric exceeds every lower-rate point's."""
        c = self.sorted()
        keep_r, keep_m, best = [], [], -np.inf
        for r, m in zip(c.rate, c.metric):
            if m > best:
                keep_r.append(r)
                keep_m.append(m)
                best = m
        return Curve(tuple(keep_r), tuple(keep_m))


@dataclass(frozen=True)
class BDResult:
    """One Bjontegaard delta: the headline ``value`` (None when it cannot be computed, ``note``
    says why), the value under each interpolation, and what makes it fragile."""

    value: float | None
    note: str = ""
    methods: dict[str, float | None] = field(default_factory=dict)
    overlap: float | None = None    # fraction of the joint range both curves cover (0..1)
    points: tuple[int, int] = (0, 0)  # anchor, test points used (after the envelope)
    flags: tuple[str, ...] = ()

    @property
    def fragile(self) -> bool:
        return bool(set(self.flags) - {"envelope"}) or self.value is None


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the common range of ``a`` and ``b`` over the length of their joint range."""
    joint = max(a.max(), b.max()) - min(a.min(), b.min())
    return 0.0 if joint <= 0 else max(0.0, min(a.max(), b.max()) - max(a.min(), b.min())) / joint


def bd_rate(anchor: Curve, test: Curve, method: str = "pchip", all_methods: bool = True) -> BDResult:
    """BD-rate (%) of ``test`` vs ``anchor``: negative = fewer bits for the same metric
    (``all_methods=False``: only ``method``, no ``methods`` flag; for bootstrap loops)."""
    return _delta(anchor, test, method, "rate", all_methods)


def bd_metric(anchor: Curve, test: Curve, method: str = "pchip") -> BDResult:
    """BD-metric (the metric's unit) of ``test`` vs ``anchor``: positive = better at the same rate."""
    return _delta(anchor, test, method, "metric")


def _delta(anchor: Curve, test: Curve, method: str, kind: str, all_methods: bool = True) -> BDResult:
    import bjontegaard

    if method not in METHODS:
        raise ValueError(f"BD interpolation must be one of {', '.join(METHODS)}, got {method!r}")
    a, t = anchor.envelope(), test.envelope()
    points = (len(a.rate), len(t.rate))
    flags = ("envelope",) * (not (anchor.monotonic and test.monotonic)) + ("points",) * (min(points) < MIN_POINTS)
    if min(points) < 2:
        return BDResult(None, "fewer than 2 usable points", points=points, flags=flags)
    if min(min(a.rate), min(t.rate)) <= 0:
        return BDResult(None, "zero rate", points=points, flags=flags)
    axis = (np.asarray(a.metric), np.asarray(t.metric)) if kind == "rate" else \
        (np.log10(a.rate), np.log10(t.rate))
    ov = overlap(*axis)
    flags += ("overlap",) * (ov < MIN_OVERLAP)
    if ov <= 0:
        return BDResult(None, "the curves do not overlap", overlap=ov, points=points, flags=flags)
    fn = bjontegaard.bd_rate if kind == "rate" else bjontegaard.bd_psnr
    values = {m: _one(fn, a, t, m) for m in (METHODS if all_methods else (method,))}
    if not all_methods:
        return BDResult(values[method], "", values, ov, points, flags)
    spread = SPREAD if kind == "rate" else SPREAD / 100 * (max(a.metric) - min(a.metric))
    flags += ("methods",) * _disagree(list(values.values()), spread)
    return BDResult(values[method], "", values, ov, points, flags)


def _one(fn, a: Curve, t: Curve, method: str) -> float | None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overlap is measured and flagged here instead
        try:
            v = float(fn(list(a.rate), list(a.metric), list(t.rate), list(t.metric), method=method,
                         require_matching_points=False, min_overlap=0))
        except (ValueError, ZeroDivisionError):
            return None
    return v if np.isfinite(v) else None


def _disagree(values: list[float | None], spread: float) -> bool:
    vals = [v for v in values if v is not None]
    if len(vals) < len(values):
        return True
    return (min(vals) < 0 < max(vals)) or max(vals) - min(vals) > spread
