"""Bjontegaard deltas of one rate-metric curve against an anchor, via the ``bjontegaard`` package,
with everything that makes a value fragile stated next to it.

- **BD-rate** (%): mean log-rate difference at equal metric, integrated over the metric range
  both curves cover. **BD-metric** (BD-PSNR in dB, BD-AP in AP points): mean metric difference at
  equal rate, over the log10-rate range both cover.
- Each is computed with the three interpolations the package offers (``cubic``: VCEG-M33's
  polynomial fit; ``pchip``: piecewise cubic, the JVET / MPEG common-test-condition sheets;
  ``akima``: Herglotz et al. 2022); ``method`` picks the headline value.
- Curves whose metric does not rise with rate are reduced to their monotone envelope (each kept
  point beats every lower-rate point; ``fit="envelope"``, the default), or (``fit="curve_fit"``)
  keep all their points with the metric replaced by MPEG's monotonic cubic fit (H. Wang et al.,
  "Improvements of the BD-Rate Metrics Using Monotonic Curve-Fitting Methods", PCS 2024; as in
  CompressAI-Vision's ``scripts/metrics``): see ``monotone_fit``. How many points remain is reported.
- Flags: ``overlap`` (the integration range covers < 75 % of the union of both curves' ranges,
  the package's own threshold and definition), ``points`` (< 4 points on a curve), ``methods``
  (the three interpolations disagree in sign, or spread more than 5 % points of BD-rate / 5 % of
  the anchor's metric span for BD-metric), ``envelope`` / ``fitted`` (which of the two changed a
  curve).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

METHODS = ("cubic", "pchip", "akima")
FITS = ("envelope", "curve_fit")  # what a non-monotonic curve becomes
FLAT = 1e-9  # fitted steps below FLAT x max(1, |metric|) are SLSQP round-off: equal values
UNIT_SCORES = ("AP", "AP50", "AP75", "mIoU", "HOTA", "DetA", "AssA", "MOTP", "IDF1", "msssim")  # [0, 1]
MIN_OVERLAP = 0.75  # the bjontegaard package's threshold
MIN_POINTS = 4
SPREAD = 5.0  # % points of BD-rate, % of the anchor's metric span for BD-metric: the ``methods`` flag
FLAG_TEXT = {
    "overlap": "curves overlap on < 75 % of their joint range: the value extrapolates the comparison",
    "points": "fewer than 4 points on a curve (after the monotone envelope or fit): the fit is loose",
    "methods": "cubic / pchip / akima disagree in sign or by more than 5 % points (BD-metric: 5 % of the "
               "anchor's metric span): the value depends on the interpolation",
    "envelope": "a curve is not monotonic: its monotone envelope was used",
    "fitted": "a curve is not monotonic: MPEG's monotonic cubic fit (Wang et al., PCS 2024) replaced "
              "its metric values",
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

    def envelope(self, tol: float = 0.0) -> Curve:
        """Points (by rising rate) whose metric exceeds every lower-rate point's (by more than ``tol``)."""
        c = self.sorted()
        keep_r, keep_m, best = [], [], -np.inf
        for r, m in zip(c.rate, c.metric):
            if m > best + tol:
                keep_r.append(r)
                keep_m.append(m)
                best = m
        return Curve(tuple(keep_r), tuple(keep_m))

    def monotone(self, fit: str = "envelope", lower: float | None = None,
                 upper: float | None = None) -> tuple[Curve, str]:
        """The curve (rising rate) to take BD values on, and what was done to it: "" (strictly
        rising already: unchanged), "envelope", "curve_fit" (all points, fitted metric; ``lower`` /
        ``upper``: see ``monotone_fit``), "curve_fit failed: envelope used", or "curve_fit flat:
        envelope of the fit used" (the fit has equal consecutive values, which pchip / akima reject)."""
        if fit not in FITS:
            raise ValueError(f"monotone fit must be one of {', '.join(FITS)}, got {fit!r}")
        c = self.sorted()
        if c.monotonic:
            return c, ""
        if fit == "envelope":
            return c.envelope(), "envelope"
        fitted = monotone_fit(c, lower, upper)
        if fitted is None:
            return c.envelope(), "curve_fit failed: envelope used"
        tol = FLAT * max(1.0, float(np.max(np.abs(fitted.metric))))
        if np.any(np.diff(fitted.metric) <= tol):
            return fitted.envelope(tol), "curve_fit flat: envelope of the fit used"
        return fitted, "curve_fit"


def metric_bounds(metric: str) -> tuple[float | None, float | None]:
    """(lower, upper) values ``metric`` can take, in vcm's units, for ``monotone_fit``: (0, 1) for
    task scores and MS-SSIM, (None, 1) for MOTA, (0, None) for PSNR (dB), (None, None) otherwise.
    A head's label prefix (``seg:segm_AP``) is ignored. An upper bound of 1 makes ``monotone_fit``
    work in percent, as MPEG does."""
    name = metric.rpartition(":")[2]
    if name.startswith("psnr"):
        return (0.0, None)
    if name == "MOTA":
        return (None, 1.0)
    return (0.0, 1.0) if name.endswith(UNIT_SCORES) else (None, None)


def monotone_fit(curve: Curve, lower: float | None = None, upper: float | None = None,
                 scale: float | None = None) -> Curve | None:
    """MPEG's monotonic cubic fit (Wang et al., PCS 2024): the least-squares cubic in
    x = log10(rate), b0 x^3 + b1 x^2 + b2 x + b3, that is non-decreasing and concave at the points,
    at least ``lower`` at the lowest rate and at most ``upper`` at the highest (None: no such
    constraint); SLSQP from b = (1, 1, 1, 1). Returns the points (rising rate) with the fitted
    metric, or None when SLSQP reports failure or a rate is <= 0.

    ``scale`` multiplies metric and bounds during the fit (default: 100 when ``upper`` is 1, a
    [0, 1] score fitted in percent as MPEG fits it, else 1). It matters: SLSQP's stopping test is
    absolute, so AP fitted in [0, 1] stops elsewhere than AP fitted in percent (~0.5 % apart)."""
    from scipy.optimize import minimize

    c = curve.sorted()
    if min(c.rate) <= 0:
        return None
    s = scale if scale is not None else (100.0 if upper == 1 else 1.0)
    x, y = np.log10(np.asarray(c.rate, dtype=float)), np.asarray(c.metric, dtype=float) * s
    bounds = (None if lower is None else lower * s, None if upper is None else upper * s)
    res = minimize(lambda b: float(np.sum((_cubic(b, x) - y) ** 2)), x0=np.ones(4), method="SLSQP",
                   constraints=_fit_constraints(x, *bounds))
    if not res.success:
        return None
    return Curve(c.rate, tuple(float(v) / s for v in _cubic(res.x, x)))


def _cubic(b: np.ndarray, x: np.ndarray) -> np.ndarray:
    return b[0] * x**3 + b[1] * x**2 + b[2] * x + b[3]


def _fit_constraints(x: np.ndarray, lower: float | None,
                     upper: float | None) -> list[dict[str, object]]:
    """SLSQP inequalities (each >= 0): slope at the points, minus the curvature at the points, the
    value at the first point above ``lower``, the value at the last point below ``upper``."""
    cons = [lambda b: 3 * b[0] * x**2 + 2 * b[1] * x + b[2], lambda b: -(6 * b[0] * x + 2 * b[1])]
    if lower is not None:
        lo = float(lower)
        cons.append(lambda b: _cubic(b, x[:1]) - lo)
    if upper is not None:
        hi = float(upper)
        cons.append(lambda b: hi - _cubic(b, x[-1:]))
    return [{"type": "ineq", "fun": f} for f in cons]


@dataclass(frozen=True)
class BDResult:
    """One Bjontegaard delta: the headline ``value`` (None when it cannot be computed, ``note``
    says why; a note also says when a curve fit failed or was flat), the value under each
    interpolation, and what makes it fragile."""

    value: float | None
    note: str = ""
    methods: dict[str, float | None] = field(default_factory=dict)
    overlap: float | None = None    # fraction of the joint range both curves cover (0..1)
    points: tuple[int, int] = (0, 0)  # anchor, test points used (after the envelope or fit)
    flags: tuple[str, ...] = ()

    @property
    def fragile(self) -> bool:
        return bool(set(self.flags) - {"envelope", "fitted"}) or self.value is None


Bounds = tuple[float | None, float | None]  # (lower, upper) metric values for ``monotone_fit``


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the common range of ``a`` and ``b`` over the length of their joint range."""
    joint = max(a.max(), b.max()) - min(a.min(), b.min())
    return 0.0 if joint <= 0 else max(0.0, min(a.max(), b.max()) - max(a.min(), b.min())) / joint


def bd_rate(anchor: Curve, test: Curve, method: str = "pchip", all_methods: bool = True,
            fit: str = "envelope", bounds: Bounds = (None, None)) -> BDResult:
    """BD-rate (%) of ``test`` vs ``anchor``: negative = fewer bits for the same metric
    (``all_methods=False``: only ``method``, no ``methods`` flag; for bootstrap loops). ``fit``:
    what a non-monotonic curve becomes (``FITS``); ``bounds``: the metric's range for the
    ``curve_fit`` (``metric_bounds``)."""
    return _delta(anchor, test, method, "rate", all_methods, fit, bounds)


def bd_metric(anchor: Curve, test: Curve, method: str = "pchip", fit: str = "envelope",
              bounds: Bounds = (None, None)) -> BDResult:
    """BD-metric (the metric's unit) of ``test`` vs ``anchor``: positive = better at the same rate."""
    return _delta(anchor, test, method, "metric", fit=fit, bounds=bounds)


def _delta(anchor: Curve, test: Curve, method: str, kind: str, all_methods: bool = True,
           fit: str = "envelope", bounds: Bounds = (None, None)) -> BDResult:
    import bjontegaard

    if method not in METHODS:
        raise ValueError(f"BD interpolation must be one of {', '.join(METHODS)}, got {method!r}")
    (a, how_a), (t, how_t) = anchor.monotone(fit, *bounds), test.monotone(fit, *bounds)
    points = (len(a.rate), len(t.rate))
    flags = _fit_flags(how_a, how_t) + ("points",) * (min(points) < MIN_POINTS)
    note = "; ".join(f"{who}: {how}" for who, how in (("anchor", how_a), ("test", how_t))
                     if how not in ("", *FITS))  # a fallback: the fit failed or was flat
    if min(points) < 2:
        return BDResult(None, _join("fewer than 2 usable points", note), points=points, flags=flags)
    if min(min(a.rate), min(t.rate)) <= 0:
        return BDResult(None, _join("zero rate", note), points=points, flags=flags)
    axis = (np.asarray(a.metric), np.asarray(t.metric)) if kind == "rate" else \
        (np.log10(a.rate), np.log10(t.rate))
    ov = overlap(*axis)
    flags += ("overlap",) * (ov < MIN_OVERLAP)
    if ov <= 0:
        return BDResult(None, _join("the curves do not overlap", note), overlap=ov, points=points, flags=flags)
    fn = bjontegaard.bd_rate if kind == "rate" else bjontegaard.bd_psnr
    values = {m: _one(fn, a, t, m) for m in (METHODS if all_methods else (method,))}
    if not all_methods:
        return BDResult(values[method], note, values, ov, points, flags)
    spread = SPREAD if kind == "rate" else SPREAD / 100 * (max(a.metric) - min(a.metric))
    flags += ("methods",) * _disagree(list(values.values()), spread)
    return BDResult(values[method], note, values, ov, points, flags)


def _fit_flags(*hows: str) -> tuple[str, ...]:
    """Flags for what ``Curve.monotone`` did to the curves: ``fitted`` when a fit was used,
    ``envelope`` when an envelope was (of the points, or of a flat fit)."""
    fitted = any(h.startswith("curve_fit") and "failed" not in h for h in hows)
    return ("envelope",) * any("envelope" in h for h in hows) + ("fitted",) * fitted


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


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
