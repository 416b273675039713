"""MPEG's monotonic cubic fit (Wang et al., PCS 2024) in ``vcm.report.bdrate``: reproduces the
reference implementation's numbers (``fixtures/curve_fit``) and threads through BD-rate."""

import json
from pathlib import Path

import bjontegaard
import numpy as np
import pytest

from vcm.report.bdrate import FITS, FLAG_TEXT, Curve, _one, bd_metric, bd_rate, metric_bounds, monotone_fit

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "curve_fit" / "reference.json").read_text())
CASES = REFERENCE["cases"]
# Percent points. The reference's own output moves by up to ~8e-5 when its input is perturbed by
# 1e-13 relative noise (``jitter_percent``: SLSQP stops on an absolute objective change of 1e-6),
# so a floating-point-different implementation can only agree to that order; 2e-4 leaves a margin
# for other numpy / scipy builds. vcm's measured max difference: 6.3e-5 (sfu_kbps).
TOL = 2e-4


def _percent(case: dict) -> Curve:
    return Curve(tuple(case["rate"]), tuple(case["metric_percent"]))


def _unit(case: dict) -> Curve:
    return Curve(tuple(case["rate"]), tuple(m / 100 for m in case["metric_percent"]))


def test_tolerance_covers_the_references_own_jitter() -> None:
    assert all(c["success"] for c in CASES.values())
    assert max(c["jitter_percent"] for c in CASES.values()) < TOL


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_reproduces_reference_in_percent_and_unit_scale(name: str) -> None:
    """Percent metric with MPEG's bounds (0, 100), and the same metric in [0, 1] with bounds (0, 1)
    (fitted x100 internally), both land on the reference's fitted values."""
    case, ref = CASES[name], np.asarray(CASES[name]["fitted_percent"])
    pct, unit = monotone_fit(_percent(case), 0.0, 100.0), monotone_fit(_unit(case), 0.0, 1.0)
    assert pct is not None and unit is not None
    assert pct.rate == tuple(case["rate"]) and np.max(np.abs(np.asarray(pct.metric) - ref)) < TOL
    assert np.max(np.abs(100 * np.asarray(unit.metric) - ref)) < TOL


def test_fit_sorts_by_rate() -> None:
    """MPEG's sheets list rates falling; the fit is taken by rising rate whatever the order."""
    case = CASES["sfu_kbps"]
    falling = Curve(tuple(case["rate"][::-1]), tuple(case["metric_percent"][::-1]))
    fit = monotone_fit(falling, 0.0, 100.0)
    assert fit is not None and fit.rate == tuple(case["rate"])
    assert np.max(np.abs(np.asarray(fit.metric) - case["fitted_percent"])) < TOL


def test_unit_scale_matters() -> None:
    """Fitting a [0, 1] score without the x100 stops SLSQP elsewhere (why ``scale`` exists)."""
    case = CASES["ap_dip_middle"]
    raw = monotone_fit(_unit(case), 0.0, 1.0, scale=1.0)
    assert raw is not None
    assert np.max(np.abs(100 * np.asarray(raw.metric) - case["fitted_percent"])) > 100 * TOL


@pytest.mark.parametrize("name", sorted(CASES))
def test_fitted_curve_is_non_decreasing_concave_and_bounded(name: str) -> None:
    fit = monotone_fit(_unit(CASES[name]), 0.0, 1.0)
    assert fit is not None
    x, y = np.log10(fit.rate), np.asarray(fit.metric)
    assert np.all(np.diff(y) >= -1e-9)
    slopes = np.diff(y) / np.diff(x)
    assert np.all(np.diff(slopes) <= 1e-9)  # secant slopes of a concave function do not rise
    assert y[0] >= -1e-9 and y[-1] <= 1 + 1e-9


def test_none_bound_drops_the_constraint() -> None:
    """Near saturation the upper bound is active; without it the fit overshoots 100."""
    case = CASES["near_upper_bound"]
    bounded, free = monotone_fit(_percent(case), 0.0, 100.0), monotone_fit(_percent(case), 0.0, None)
    assert bounded is not None and free is not None
    assert max(bounded.metric) <= 100 + 1e-6 < max(free.metric)


def test_monotone_curve_is_left_unchanged() -> None:
    c = _unit(CASES["ap_monotone"])
    assert CASES["ap_monotone"]["monotonic"] and c.monotonic
    assert c.monotone("curve_fit", 0.0, 1.0) == (c, "") and c.monotone("envelope") == (c, "")


def test_metric_bounds() -> None:
    assert metric_bounds("segm_AP") == metric_bounds("seg:bbox_AP50") == metric_bounds("mIoU") == (0.0, 1.0)
    assert metric_bounds("HOTA") == metric_bounds("IDF1") == metric_bounds("msssim") == (0.0, 1.0)
    assert metric_bounds("MOTA") == (None, 1.0)  # MOTA can be negative
    assert metric_bounds("psnr") == (0.0, None) and metric_bounds("lpips") == (None, None)


ANCHOR = _unit(CASES["ap_monotone"])
BUMPY = _unit(CASES["ap_dip_middle"])  # 20.1, 25.3, 24.9, 31.2, 30.8 (% AP) at 0.1 .. 1.6 bpp


def test_bd_rate_curve_fit_flags_fitted_and_differs_from_envelope() -> None:
    bounds = metric_bounds("segm_AP")
    env, fit = bd_rate(ANCHOR, BUMPY), bd_rate(ANCHOR, BUMPY, fit="curve_fit", bounds=bounds)
    assert "fitted" in fit.flags and "envelope" not in fit.flags and fit.points == (5, 5) and fit.note == ""
    assert "envelope" in env.flags and "fitted" not in env.flags and env.points == (5, 3)
    assert env.value is not None and fit.value is not None and abs(fit.value - env.value) > 1.0
    gap = bd_metric(ANCHOR, BUMPY, fit="curve_fit", bounds=bounds)
    assert "fitted" in gap.flags and gap.value != bd_metric(ANCHOR, BUMPY).value
    assert "fitted" in FLAG_TEXT and FITS == ("envelope", "curve_fit")


def test_default_fit_is_the_envelope() -> None:
    assert bd_rate(ANCHOR, BUMPY) == bd_rate(ANCHOR, BUMPY, fit="envelope", bounds=(0.0, 1.0))
    assert bd_rate(ANCHOR, ANCHOR, fit="curve_fit").flags == bd_rate(ANCHOR, ANCHOR).flags == ()
    with pytest.raises(ValueError, match="monotone fit"):
        bd_rate(ANCHOR, BUMPY, fit="spline")


def test_failed_fit_falls_back_to_the_envelope() -> None:
    """Bounds no non-decreasing curve can meet (start >= 0.5, end <= 0.4): SLSQP fails."""
    assert monotone_fit(BUMPY, 0.5, 0.4) is None
    assert BUMPY.monotone("curve_fit", 0.5, 0.4) == (BUMPY.envelope(), "curve_fit failed: envelope used")
    res = bd_rate(ANCHOR, BUMPY, fit="curve_fit", bounds=(0.5, 0.4))
    assert res.value == bd_rate(ANCHOR, BUMPY).value and res.points == (5, 3)
    assert "envelope" in res.flags and "fitted" not in res.flags and res.note == "test: curve_fit failed: envelope used"


def test_pchip_rejects_equal_metric_values() -> None:
    """Why a flat fit is not passed on as is: BD-rate interpolates rate over the metric, and
    pchip / akima need it strictly rising (BD-metric and the cubic cope)."""
    flat = Curve((0.1, 0.2, 0.4, 0.8), (0.31, 0.31, 0.35, 0.38))
    assert _one(bjontegaard.bd_rate, ANCHOR, flat, "pchip") is None
    assert _one(bjontegaard.bd_rate, ANCHOR, flat, "akima") is None
    assert _one(bjontegaard.bd_rate, ANCHOR, flat, "cubic") is not None


def test_flat_fit_goes_through_its_envelope() -> None:
    """A falling curve's best non-decreasing concave cubic is a constant (equal fitted values up
    to round-off, as in the reference): its envelope keeps one point, so no BD value."""
    falling = _unit(CASES["falling"])
    assert np.ptp(CASES["falling"]["fitted_percent"]) < 1e-9
    curve, how = falling.monotone("curve_fit", 0.0, 1.0)
    assert how == "curve_fit flat: envelope of the fit used" and len(curve.rate) == 1
    res = bd_rate(ANCHOR, falling, fit="curve_fit", bounds=(0.0, 1.0))
    assert res.value is None and {"fitted", "envelope"} <= set(res.flags)
    assert res.note == "fewer than 2 usable points; test: curve_fit flat: envelope of the fit used"
