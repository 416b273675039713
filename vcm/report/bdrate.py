"""BD-rate of one rate-metric curve against an anchor, via the ``bjontegaard`` package.

Curves whose metric does not rise with rate are flagged; BD-rate then uses their monotone
envelope (each kept point beats every lower-rate point), which is stated in the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    value: float | None    # percent; negative = fewer bits than the anchor for equal metric
    note: str = ""


def bd_rate(anchor: Curve, test: Curve, method: str = "akima") -> BDResult:
    """BD-rate (%) of ``test`` vs ``anchor``; None with a note when it cannot be computed."""
    import bjontegaard

    a, t = anchor.envelope(), test.envelope()
    notes = [f"{name} non-monotonic: envelope of {len(c.rate)}/{len(raw.rate)} points used"
             for name, c, raw in (("anchor", a, anchor), ("test", t, test)) if not raw.monotonic]
    if len(a.rate) < 2 or len(t.rate) < 2:
        return BDResult(None, "; ".join(notes + ["fewer than 2 usable points"]))
    lo, hi = max(min(a.metric), min(t.metric)), min(max(a.metric), max(t.metric))
    if hi <= lo:
        return BDResult(None, "; ".join(notes + ["metric ranges do not overlap"]))
    if min(min(a.rate), min(t.rate)) <= 0:
        return BDResult(None, "; ".join(notes + ["zero rate"]))
    try:
        value = bjontegaard.bd_rate(list(a.rate), list(a.metric), list(t.rate), list(t.metric),
                                    method=method, require_matching_points=False)
    except (ValueError, ZeroDivisionError) as e:
        return BDResult(None, "; ".join(notes + [str(e)]))
    return BDResult(float(value), "; ".join(notes))
