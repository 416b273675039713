"""The self-contained HTML report: real tables (3 significant digits, units, sortable columns),
one section per metric with its BD table ranked by BD-rate and its curve, every flag and "n/a"
explained where it appears, the run's settings and provenance."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vcm.report.bdrate import FLAG_TEXT, METHODS
from vcm.report.published import TAG

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px}
th{background:#f2f2f2;cursor:pointer;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.flag{color:#a40;font-weight:600}.caution{background:#fff4e0;border-left:4px solid #e90;padding:.5em 1em}
.wrap{overflow-x:auto}img{max-width:100%}abbr{text-decoration:underline dotted}code{font-size:12px}"""
SORT_JS = """document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{
const tb=th.closest('table').tBodies[0],rows=[...tb.rows],asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
const key=r=>{const c=r.cells[i];return c.dataset.v!==undefined?parseFloat(c.dataset.v):c.textContent};
rows.sort((a,b)=>{const x=key(a),y=key(b);const c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
return asc?c:-c});rows.forEach(r=>tb.appendChild(r))}));"""
UNITS = {"bpp": "bpp", "psnr": "dB", "psnr_in": "dB", "psnr_out": "dB"}


def num(v: Any) -> str:
    """3 significant digits, no exponent for ordinary magnitudes; '' for None."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, (bool, int)) or not isinstance(v, float):
        return str(v)
    if v == 0 or 1e-4 <= abs(v) < 1e6:
        digits = max(0, 2 - math.floor(math.log10(abs(v)))) if v else 0
        return f"{v:.{digits}f}"
    return f"{v:.3g}"


def _cell(v: Any, title: str = "") -> str:
    tip = f' title="{html.escape(title)}"' if title else ""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return f'<td class="n" data-v="{v!r}"{tip}>{num(v)}</td>'
    return f"<td{tip}>{html.escape(num(v))}</td>"


def table(records: list[dict[str, Any]], headers: dict[str, str] | None = None,
          tips: dict[str, str] | None = None) -> str:
    """A sortable <table>; ``headers`` renames columns; ``tips`` puts a row's text in the title of
    the cell named by the key (e.g. the note behind an 'n/a')."""
    if not records:
        return "<p>(no rows)</p>"
    cols = list(records[0])
    head = "".join(f"<th>{html.escape((headers or {}).get(c, c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(r.get(c), str(r.get((tips or {}).get(c, ""), "") or "")) for c in cols)
                   + "</tr>" for r in records)
    return f'<div class="wrap"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def bd_section(bd: list[dict[str, Any]], metric: str) -> str:
    """The BD rows of one metric, ranked by headline BD-rate (n/a last), flags spelled out."""
    rows = sorted((b for b in bd if b["metric"] == metric),
                  key=lambda b: (b["bd_rate_pct"] is None, b["bd_rate_pct"] or 0.0))
    recs = [{"series": b["series"] + (f" ({TAG})" if b.get("published") else ""), "BD-rate %": b["bd_rate_pct"] if b["bd_rate_pct"] is not None else "n/a",
             **({"95 % CI (bootstrap)": b["bd_rate_ci95"] or "n/a"} if any(x.get("bd_rate_ci95") for x in rows) else {}),
             **{f"{m} %": b[f"bd_rate_{m}"] for m in METHODS}, "overlap %": b["overlap_pct"],
             "points (anchor/test)": b["points"], f"BD-{metric}": b["bd_metric"],
             "flags": b["flags"] or "", "why n/a": b["note"]} for b in rows]
    fired = dict.fromkeys(f for b in rows for f in b["flags"].split())
    legend = "".join(f'<li><span class="flag">{f}</span>: {html.escape(FLAG_TEXT[f])}</li>' for f in fired)
    return table(recs) + (f"<ul>{legend}</ul>" if legend else "<p>No value here is flagged.</p>")


def _image(path: Path, alt: str) -> str:
    data, kind = base64.b64encode(path.read_bytes()).decode(), "jpeg" if path.suffix == ".jpg" else "png"
    return f'<img alt="{html.escape(alt)}" src="data:image/{kind};base64,{data}"/>'


def summary_rows(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rate points with units in the headers and side info as a share of bpp."""
    out = []
    for r in summary:
        row = {}
        for k, v in r.items():
            unit = "ms" if k.startswith("ms_") else UNITS.get(k)
            row[f"{k.removeprefix('ms_')} ({unit})" if unit else k] = v
            if k == "bpp_side":
                bpp = r.get("bpp")
                row["side % of bpp"] = 100 * v / bpp if v is not None and bpp else None
        out.append(row)
    return out


def settings_rows(grid: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"node": key, "label": spec.get("label") or spec["type"], "type": spec["type"],
             "params": json.dumps(spec.get("params", {}), sort_keys=True),
             "sweep": json.dumps(spec.get("sweep", {}))} for key, specs in grid.items() for spec in specs]


def page(title: str, anchor: str, method: str, info: dict[str, Any], cautions: list[str],
         bd: list[dict[str, Any]], summary: list[dict[str, Any]], plots: dict[str, Path],
         grid: dict[str, list[dict[str, Any]]], provenance: dict[str, Any], shots: Sequence[Path] = (),
         references: str = "", complexity: str = "") -> str:
    """The whole page as one string (images embedded); ``references``: the published-curves section;
    ``complexity``: the complexity section."""
    esc = html.escape
    parts = [f"<h1>{esc(title)}</h1>"]
    parts += [f'<p class="caution">{esc(c)}</p>' for c in cautions]
    parts.append("<h2>Run</h2>" + table([{"item": k, "value": v} for k, v in info.items()]))
    parts.append(f"<h2>Curves and BD values against <code>{esc(anchor)}</code></h2><p>BD-rate: % bits at equal "
                 f"metric (negative = fewer bits), headline interpolation <b>{esc(method)}</b>, the other two "
                 "beside it; BD-metric: mean metric gap at equal rate. Click a column to sort.</p>")
    for metric, path in plots.items():
        parts.append(f"<h3>{esc(metric)}</h3>" + (bd_section(bd, metric) if any(b['metric'] == metric for b in bd)
                                                  else "<p>No BD values for this metric (lower is better, or "
                                                       "no anchor curve).</p>") + _image(path, metric))
    parts.append(references)
    parts.append("<h2>Rate points</h2><p>Means over the images; bpp from the bytes (header + side info + "
                 "payload) over the image area.</p>" + table(summary_rows(summary)))
    parts.append(complexity)
    if shots:
        parts.append("<h2>Decoded images</h2><p>Original, then each series at its middle rate point (this "
                     "image's bpp and PSNR); green: the boundary of the region the codec coded.</p>"
                     + "".join(_image(p, p.stem) for p in shots))
    parts.append("<h2>Settings</h2>" + table(settings_rows(grid)))
    parts.append("<h2>Provenance</h2><pre>" + esc(json.dumps(provenance, indent=1)) + "</pre>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style>"
            f"</head><body>{''.join(parts)}<script>{SORT_JS}</script></body></html>")
