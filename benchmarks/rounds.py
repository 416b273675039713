"""Timing on a shared, noisy machine: variants run in interleaved rounds (A B C, then C B A, ...)
so load drift hits every variant alike, and every ratio is taken within one round."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(variants: dict[str, Callable[[], float | None]], rounds: int) -> list[dict[str, float]]:
    """Run every variant once per round, reversing the order every other round. A variant returns
    its own seconds, or None to be timed here. Returns one ``{name: seconds}`` per round."""
    names, out = list(variants), []
    for r in range(rounds):
        row = {}
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            got = variants[name]()
            row[name] = time.perf_counter() - t if got is None else got
        out.append(row)
    return out


def ratios(rows: list[dict[str, float]], num: str, den: str) -> list[float]:
    """``num / den`` within each round."""
    return [r[num] / r[den] for r in rows]


def min_median(xs: list[float], fmt: str = ".3f") -> str:
    return f"{min(xs):{fmt}} / {statistics.median(xs):{fmt}}"
