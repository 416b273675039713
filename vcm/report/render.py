"""Write a report folder: summary/BD-rate tables (CSV, Markdown), curves (PNG), one HTML page."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from vcm.report import complexity as cx
from vcm.report.aggregate import QUALITY_KEYS, RATE_KEYS, Row, finite
from vcm.report.bdrate import FITS, FLAG_TEXT, METHODS, Curve, bd_metric, bd_rate, metric_bounds
from vcm.report.bootstrap import bd_interval
from vcm.report.html import page
from vcm.report.published import TAG, bd_vs_references
from vcm.report.published import html_section as references_html
from vcm.report.published import markdown as references_md


def metric_keys(rows: list[Row]) -> list[str]:
    """Task metrics present in the rows (AP / AP50 / AP75 / mIoU ...), in first-seen order."""
    keys: dict[str, None] = {}
    for r in rows:
        for k in r.values:
            if k not in RATE_KEYS + ("bpp_mean", "bpp_pooled") and k not in QUALITY_KEYS and not k.startswith(("ms_", "kbps")) \
                    and not k.endswith(("_lo", "_hi")):
                keys[k] = None
    return list(keys)


def bd_metrics(rows: list[Row]) -> list[str]:
    task = [k for k in metric_keys(rows) if k.endswith(("_AP", "mIoU", "HOTA", "MOTA", "IDF1"))]
    return task + ["psnr", "msssim"]  # not psnr_in: each codec measures it over its own region


def rate_key(rows: list[Row]) -> str:
    """The rate axis: ``kbps`` for clips (MPEG's video convention), else ``bpp``."""
    return "kbps" if any(finite(r.values.get("kbps")) for r in rows) else "bpp"


RATE_LABEL = {"bpp": "bits per pixel (measured from bytes, side info included)",
              "kbps": "kbit/s (bytes x 8 x fps / 1000 / frames, side info included)"}


def curves(rows: list[Row], metric: str) -> dict[str, Curve]:
    pts: dict[str, list[tuple[float, float]]] = defaultdict(list)
    axis = rate_key(rows)
    for r in rows:
        rate, m = r.values.get(axis), r.values.get(metric)
        if r.series != "reference" and finite(rate) and finite(m):
            pts[r.series].append((float(rate), float(m)))  # type: ignore[arg-type]
    return {s: Curve(tuple(p[0] for p in v), tuple(p[1] for p in v)).sorted() for s, v in pts.items()}


def bd_table(rows: list[Row], anchor: str, method: str, metrics: list[str] | None = None,
             fit: str = "envelope") -> list[dict[str, Any]]:
    """One row per (series, metric): BD-rate (headline ``method`` and all three interpolations,
    non-monotonic curves made monotonic by ``fit``; the headline under each fit beside them) and
    BD-metric vs ``anchor``, the curves' overlap, the points used and the flags raised
    (``metrics``: these only; default every BD metric of the rows)."""
    out = []
    by_series: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_series[r.series].append(r)
    most = max((r.images for r in rows if not r.source), default=0)
    for metric in metrics or bd_metrics(rows):
        cs = curves(rows, metric)
        if anchor not in cs:
            continue
        for series, c in cs.items():
            if series == anchor:
                continue
            bounds = metric_bounds(metric)
            rate, gap = bd_rate(cs[anchor], c, method, fit=fit, bounds=bounds), bd_metric(cs[anchor], c, method, fit, bounds)
            per_fit = {f: rate.value if f == fit else bd_rate(cs[anchor], c, method, False, f, bounds).value for f in FITS}
            ci = bd_interval(by_series[anchor], by_series[series], metric, method, fit)
            partial = ("partial",) * any(r.images < most for r in by_series[anchor] + by_series[series] if not r.source)
            out.append({"series": series, "metric": metric, "anchor": anchor, "bd_rate_pct": rate.value,
                        **{f"bd_rate_{m}": rate.methods.get(m) for m in METHODS},
                        **{f"bd_rate_{f}": v for f, v in per_fit.items()},
                        "overlap_pct": None if rate.overlap is None else 100 * rate.overlap,
                        "bd_rate_ci95": None if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]",
                        "points": f"{rate.points[0]}/{rate.points[1]}", "bd_metric": gap.value,
                        "bd_metric_overlap_pct": None if gap.overlap is None else 100 * gap.overlap,
                        "flags": " ".join(dict.fromkeys(rate.flags + gap.flags + partial)), "note": rate.note or gap.note,
                        "monotonic": c.monotonic, "published": bool(by_series[series][0].source)})
    return out


def flag_legend(bd: list[dict[str, Any]]) -> list[str]:
    """What each flag that fires in ``bd`` means, one line each."""
    fired = dict.fromkeys(f for b in bd for f in b["flags"].split())
    return [f"{f}: {FLAG_TEXT[f]}" for f in fired]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return "" if v is None else str(v)


def markdown_table(records: list[dict[str, Any]]) -> str:
    if not records:
        return "(no rows)\n"
    cols = list(records[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in records]
    return "\n".join(lines) + "\n"


def summary_records(rows: list[Row]) -> list[dict[str, Any]]:
    timing = list(dict.fromkeys(k for r in rows for k in r.values if k.startswith("ms_")))
    ci = list(dict.fromkeys(k for r in rows for k in r.values if k.endswith(("_lo", "_hi"))))
    kbps = list(dict.fromkeys(k for r in rows for k in r.values if k.startswith("kbps")))
    keys = kbps + ["bpp", "bpp_mean", "bpp_pooled"] + list(RATE_KEYS[1:]) + list(QUALITY_KEYS) + metric_keys(rows) + ci + timing
    return [{"series": r.series, "point": r.point, "images": r.images, **{k: r.values.get(k) for k in keys}}
            for r in rows]


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        if records:
            w = csv.DictWriter(f, fieldnames=list(records[0]))
            w.writeheader()
            w.writerows(records)


def series_styles(rows: list[Row]) -> dict[str, tuple[Any, str, str]]:
    """(colour, marker, line style) per series, fixed by first appearance: the same in every plot;
    published reference curves in greys, dotted, with their own markers."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    names = list(dict.fromkeys(r.series for r in rows if r.series != "reference" and not r.source))
    markers, styles = ("o", "s", "^", "D", "v", "x"), ("-", "--", ":", "-.")
    out = {s: (colours[i % 10], markers[i % 6], styles[i // 10 % 4]) for i, s in enumerate(names)}
    published = list(dict.fromkeys(r.series for r in rows if r.source))
    greys = ("0.15", "0.45", "0.65")
    out.update({s: (greys[i % 3], ("*", "P", "X", "h")[i % 4], ":") for i, s in enumerate(published)})
    return out


def legend_label(rows: list[Row], series: str) -> str:
    """The series name; a published curve's says so."""
    return series + (f" ({TAG})" if any(r.source for r in rows if r.series == series) else "")


def plot_title(metric: str, tasks: dict[str, str], axis: str = "bpp") -> str:
    """'segm_AP of yolov8n-seg (yolov8_seg) vs bpp'; fidelity metrics name the decoded image."""
    label, _, name = metric.rpartition(":")
    if name in QUALITY_KEYS:
        return f"{name} of the decoded image vs {axis}"
    task = label or (next(iter(tasks)) if len(tasks) == 1 else "")
    return f"{name} of {task} ({tasks[task]}) vs {axis}" if task in tasks else f"{metric} vs {axis}"


def plot_metric(rows: list[Row], metric: str, path: Path, flagged: dict[str, str], title: str = "",
                styles: dict[str, tuple[Any, str, str]] | None = None) -> list[str]:
    """Metric vs bpp, one line per series (fixed style per series, published curves dotted grey);
    the uncompressed reference as a dashed line; a series' flags in brackets in the legend.
    Returns the legend's labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles, axis = styles or series_styles(rows), rate_key(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for series, c in curves(rows, metric).items():
        colour, marker, ls = styles[series]
        mark = f" [{flagged[series]}]" if flagged.get(series) else ""
        ax.plot(c.rate, c.metric, color=colour, ls=ls, marker=marker, ms=4, lw=1.4, alpha=0.85,
                label=legend_label(rows, series) + mark)
        band = sorted((r.values[axis], r.values.get(f"{metric}_lo"), r.values.get(f"{metric}_hi")) for r in rows
                      if r.series == series and finite(r.values.get(axis)) and finite(r.values.get(metric)))
        if band and all(lo is not None and hi is not None for _, lo, hi in band):
            ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=colour, alpha=0.12)
    ref = next((r.values.get(metric) for r in rows if r.series == "reference"), None)
    if finite(ref):
        ax.axhline(float(ref), color="k", ls="--", lw=1, label="uncompressed")  # type: ignore[arg-type]
    ax.set_xlabel(RATE_LABEL[axis])
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} vs {axis}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def write_report(rows: list[Row], out: Path, title: str, anchor: str, method: str,
                 info: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write every report file under ``out``; returns name -> path. ``context`` may hold
    ``tasks`` (label -> type), ``grid`` (the config's grid), ``provenance``, ``cautions``,
    ``references`` (published curves, whose points are rows with a ``source``) and ``left_out``
    (reference -> why it is not drawn)."""
    ctx = context or {}
    out.mkdir(parents=True, exist_ok=True)
    refs, left_out = ctx.get("references", ()), ctx.get("left_out", {})
    fit = ctx.get("fit", "envelope")
    summary, bd = summary_records([r for r in rows if not r.source]), bd_table(rows, anchor, method, fit=fit)
    vs_refs = bd_vs_references(rows, refs, anchor, method, fit)
    write_csv(out / "summary.csv", summary)
    write_csv(out / "bdrate.csv", bd + vs_refs)
    plots, styles, drawn = {}, series_styles(rows), {}
    for metric in bd_metrics(rows) + ["psnr_in", "psnr_out", "lpips"]:  # plots only: no BD value
        flagged = {b["series"]: b["flags"] for b in bd if b["metric"] == metric}
        if curves(rows, metric):
            plots[metric] = out / f"{metric.replace(':', '_')}_vs_bpp.png"
            drawn[metric] = plot_metric(rows, metric, plots[metric], flagged,
                                        plot_title(metric, ctx.get("tasks", {}), rate_key(rows)), styles)
    mode = ctx.get("complexity", "per_size")
    costs = {"series": cx.series_table(rows, mode), "tasks": cx.task_table(rows, mode),
             "note": cx.NOTE.format(how=cx.HOW[mode])}
    md = _markdown(title, anchor, info, summary, bd, plots) + references_md(refs, left_out, vs_refs) + _costs_md(costs)
    (out / "report.md").write_text(md)
    (out / "summary.txt").write_text(terminal_summary(rows, bd, anchor, method, fit))
    (out / "report.html").write_text(page(title, anchor, method, info, ctx.get("cautions", []), bd, summary,
                                          plots, ctx.get("grid", {}), ctx.get("provenance", {}),
                                          ctx.get("gallery", []), references_html(refs, left_out, vs_refs),
                                          _costs_html(costs)))
    (out / "summary.json").write_text(json.dumps({"rows": summary, "bdrate": bd, "bd_vs_references": vs_refs,
                                                  "complexity": costs,
                                                  "references": [r.to_dict() for r in refs], "legends": drawn,
                                                  "info": info}, indent=1))
    return {"md": out / "report.md", "html": out / "report.html", "csv": out / "summary.csv", "txt": out / "summary.txt",
            "bdrate": out / "bdrate.csv", **{f"plot:{k}": v for k, v in plots.items()}}


def _markdown(title: str, anchor: str, info: dict[str, Any], summary: list[dict[str, Any]],
              bd: list[dict[str, Any]], plots: dict[str, Path]) -> str:
    parts = [f"# {title}\n", "".join(f"- {k}: {v}\n" for k, v in info.items()),
             f"\n## BD-rate vs anchor `{anchor}` (%, negative = fewer bits for the same metric)\n\n",
             markdown_table(_bd_pivot(bd)),
             "\nFlags (in brackets): " + ("; ".join(flag_legend(bd)) or "none") + "\n",
             "\n## BD details (all interpolations, overlap, points used, BD-metric at equal rate)\n\n",
             markdown_table(bd), "\n## Rate points\n\n", markdown_table(summary), "\n## Curves\n\n"]
    parts += [f"![{m}]({p.name})\n" for m, p in plots.items()]
    return "".join(parts)


def terminal_summary(rows: list[Row], bd: list[dict[str, Any]], anchor: str, method: str, fit: str) -> str:
    """A short plain-text table: per series, the BD-rate on the first task metric (PSNR when no
    task) with its flags, and its best point (highest metric, with its rate)."""
    metrics = bd_metrics(rows)
    metric, axis = metrics[0], rate_key(rows)
    lines = [f"BD-rate vs anchor {anchor} on {metric} ({method}, {fit}; % bits at equal {metric}, negative = fewer)",
             f"{'series':<24} {'BD-rate %':>10}  {'flags':<34} best point ({metric} at {axis})"]
    by_series = {b["series"]: b for b in bd if b["metric"] == metric}
    for series, c in curves([r for r in rows if not r.source], metric).items():
        b = by_series.get(series)
        v = "anchor" if series == anchor else "n/a" if b is None or b["bd_rate_pct"] is None else f"{b['bd_rate_pct']:+.1f}"
        best = max(range(len(c.rate)), key=lambda i: c.metric[i])
        name = next(r.point for r in rows if r.series == series and r.values.get(axis) == c.rate[best])
        name = re.sub(r"[^=,]*/", "", name)  # checkpoint=q2.pth, not the whole path
        lines.append(f"{series[:24]:<24} {v:>10}  {(b or {}).get('flags', ''):<34} "
                     f"{name}: {c.metric[best]:.3f} at {c.rate[best]:.3f}")
    return "\n".join(lines) + "\n"


def _costs_md(costs: dict[str, Any]) -> str:
    return (f"\n## Complexity\n\n{costs['note']}\n\n" + markdown_table(costs["series"]) + "\n"
            + markdown_table(costs["tasks"]))


def _costs_html(costs: dict[str, Any]) -> str:
    import html

    from vcm.report.html import table

    return f"<h2>Complexity</h2><p>{html.escape(costs['note'])}</p>" + table(costs["series"]) + table(costs["tasks"])


def _bd_pivot(bd: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for b in bd:
        row = table.setdefault(b["series"], {"series": b["series"] + (f" ({TAG})" if b.get("published") else "")})
        v = b["bd_rate_pct"]
        row[b["metric"]] = ("n/a" if v is None else f"{v:+.2f}") + (f" [{b['flags']}]" if b["flags"] else "")
    return list(table.values())
