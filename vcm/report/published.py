"""Published reference curves in a report: their points as rows (drawn as "published" series, in
the BD table against the anchor), each measured series' BD values against each of them, and the
section that says what each reference is and where its numbers come from."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from vcm.report.aggregate import QUALITY_KEYS, Row, finite
from vcm.report.references import Reference

TAG = "published"  # how the report labels a reference series (legend, tables)


def reference_rows(refs: Sequence[Reference], measured: list[Row], axis: str) -> tuple[list[Row], dict[str, str]]:
    """One Row per published point of the references the run can be compared with, and why each
    other reference is left out (series -> reason)."""
    have = {k for r in measured for k, v in r.values.items() if finite(v)}
    rows, left_out = [], {}
    for ref in refs:
        if axis != "bpp":
            left_out[ref.series] = f"the run's rate axis is {axis}; published points are in bpp"
        elif ref.metric not in have:
            left_out[ref.series] = f"this run measures no {ref.metric!r}" + \
                ("" if ref.metric in QUALITY_KEYS else " (a task metric needs its head; labels prefix it when there are several)")
        else:
            rows += [Row(ref.series, f"{TAG} {i + 1}", 0, {"bpp": r, ref.metric: v}, source=ref.source)
                     for i, (r, v) in enumerate(zip(ref.bpp, ref.value))]
    return rows, left_out


def bd_vs_references(rows: list[Row], refs: Sequence[Reference], anchor: str, method: str,
                     fit: str = "envelope") -> list[dict[str, Any]]:
    """BD values of every measured series against every drawn reference (on its metric), with the
    usual flags; a reference that is the anchor is left out (the main BD table has it)."""
    from vcm.report.render import bd_table

    measured = [r for r in rows if not r.source]
    out = []
    for ref in refs:
        own = [r for r in rows if r.series == ref.series]
        if own and ref.series != anchor:
            out += [b for b in bd_table(measured + own, ref.series, method, [ref.metric], fit)]
    return out


def describe(refs: Sequence[Reference], left_out: dict[str, str]) -> list[dict[str, Any]]:
    """One record per reference: what it is, its range, its source, whether it is drawn."""
    return [{"series": r.series, "metric": r.metric, "points": len(r.bpp),
             "bpp range": f"{min(r.bpp):.3g}-{max(r.bpp):.3g}", "source": r.source,
             "compared": "no: " + left_out[r.series] if r.series in left_out else "yes"} for r in refs]


def markdown(refs: Sequence[Reference], left_out: dict[str, str], bd: list[dict[str, Any]]) -> str:
    """The report's Markdown section on published references ('' without references)."""
    from vcm.report.render import flag_legend, markdown_table

    if not refs:
        return ""
    rows = [{"series": b["series"], "vs reference": b["anchor"], "metric": b["metric"],
             "BD-rate %": b["bd_rate_pct"] if b["bd_rate_pct"] is not None else "n/a", "overlap %": b["overlap_pct"],
             "points (ref/test)": b["points"], "BD-metric": b["bd_metric"], "flags": b["flags"], "why n/a": b["note"]}
            for b in bd]
    return ("\n## Published reference curves (drawn dotted in grey, labelled published; not measured by this run)\n\n"
            + markdown_table(describe(refs, left_out))
            + "\n### BD values of each series against the published curves (negative = fewer bits than published)\n\n"
            + markdown_table(rows) + "\nFlags: " + ("; ".join(flag_legend(bd)) or "none") + "\n")


def html_section(refs: Sequence[Reference], left_out: dict[str, str], bd: list[dict[str, Any]]) -> str:
    """The report page's section on published references ('' without references)."""
    from vcm.report.html import bd_section, table

    if not refs:
        return ""
    parts = ["<h2>Published reference curves</h2><p>Points from papers or repositories, not measured by this "
             "run (their images, bpp convention and metric implementation may differ): drawn dotted in grey, "
             "labelled <i>published</i>.</p>", table(describe(refs, left_out))]
    for ref in refs:
        mine = [b for b in bd if b["anchor"] == ref.series]
        if mine:
            parts.append(f"<h3>BD values against <code>{html.escape(ref.series)}</code> ({html.escape(ref.metric)})"
                         "</h3>" + bd_section(mine, ref.metric))
    return "".join(parts)
