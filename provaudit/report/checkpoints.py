"""HTML, Markdown and JSON renderings of a :class:`~provaudit.checkpoints.CheckpointReport`.

The HTML is one self-contained file: inline CSS, charts as inline SVG, no external resources.
A tiny inline script records how many charts and flags are displayed (``data-charts-visible``,
``data-flags-visible`` on ``<body>``) so a headless browser test can check the rendering.
"""
from __future__ import annotations

import html
import json
import math
from typing import Any

import polars as pl

from provaudit.checkpoints.model import rnd
from provaudit.report import plots


def _f(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "–"
        return f"{x:.{digits}g}"
    return str(x)


def _interval(iv: Any) -> str:
    if not iv:
        return "–"
    return f"[{_f(iv[0])}, {_f(iv[1])}]"


def render_json(report: Any) -> str:
    """Deterministic JSON of the report (sorted keys, rounded floats)."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)


def _headline(report: Any) -> list[tuple[str, str]]:
    over = report.overoptimization
    rows = [("checkpoints", str(report.series.height)), ("proxy column", report.proxy),
            ("outcome column", report.outcome), ("best checkpoint (outcome)", _f(report.best_checkpoint)),
            ("checkpoints past best", _f(over.get("checkpoints_past_best"))),
            ("proxy rise past best", _f(over.get("proxy_rise_past_best"))),
            ("outcome drop from best to last", _f(over.get("outcome_drop_from_best"))),
            ("Spearman(proxy, outcome)", _f(report.correlation.get("spearman"))),
            ("decoupled", "YES" if report.decoupled else "no"),
            ("harness faults flagged", "YES" if report.harness_flagged else "no" if report.harness else "–")]
    if report.length.get("share") is not None:
        rows.append(("length share of proxy gain", _f(report.length.get("combined_share"))))
    if over.get("peak_kl") is not None:
        rows.append((f"Gao {str(over.get('gao_form', '')).upper()} fit peak KL", _f(over["peak_kl"])))
    return rows


def _table_html(frame: pl.DataFrame | None, cls: str = "", highlight: str | None = None, limit: int = 200) -> str:
    if frame is None or frame.height == 0:
        return "<p class='muted'>none</p>"
    cols = frame.columns
    out = [f"<table class='{cls}'><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
           + "</tr></thead><tbody>"]
    for row in frame.head(limit).iter_rows(named=True):
        hl = " class='hl'" if highlight and row.get(highlight) else ""
        out.append(f"<tr{hl}>" + "".join(f"<td>{html.escape(_f(row[c]))}</td>" for c in cols) + "</tr>")
    out.append("</tbody></table>")
    if frame.height > limit:
        out.append(f"<p class='muted'>{frame.height - limit} more rows in report.json</p>")
    return "".join(out)


def _slice_pivot(report: Any) -> pl.DataFrame | None:
    st = report.slices
    if st is None or st.height == 0:
        return None
    wide = st.pivot(on="checkpoint", index="slice", values="outcome")
    cols = ["slice"] + [c for c in report.checkpoints if c in wide.columns]
    return wide.select(cols).sort("slice")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}tr.hl td{background:#fff1f0}
.flag{border-left:5px solid #999;background:#fafafa;padding:8px 12px;margin:8px 0}
.flag.decoupling{border-color:#d62728;background:#fff5f5}.flag .kind{font-weight:600;text-transform:uppercase;
font-size:12px}.muted{color:#777}.verdict{font-size:1.1em;padding:8px 12px;display:inline-block}
.verdict.bad{background:#ffe3e3}.verdict.ok{background:#e6f6e6}figure.chart{margin:12px 0}
figure.chart svg{max-width:100%;height:auto}.grid{display:flex;flex-wrap:wrap;gap:12px}
"""

_CHECK_JS = """
window.addEventListener('load',function(){
  var vis=function(el){var r=el.getBoundingClientRect();return r.width>0&&r.height>0;};
  var charts=Array.prototype.filter.call(document.querySelectorAll('figure.chart svg, figure.chart img'),vis);
  var flags=Array.prototype.filter.call(document.querySelectorAll('.flag'),vis);
  document.body.setAttribute('data-charts-visible',String(charts.length));
  document.body.setAttribute('data-flags-visible',String(flags.length));
});
"""


def render_html(report: Any) -> str:
    """One self-contained HTML page: verdict, flags with evidence, charts, tables and notes."""
    title = "provaudit checkpoint report" if report.mode == "series" else "provaudit checkpoint comparison"
    from provaudit.report import integrity

    harness_sec, harness_charts = integrity.harness_html(report.harness)
    labelers_sec, labeler_charts = integrity.labelers_html(report.labelers)
    charts = [("series", plots.series_chart(report)), ("length", plots.length_chart(report)),
              ("tails", plots.tail_chart(report)), ("slices", plots.slice_chart(report)),
              *harness_charts, *labeler_charts]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body data-flags='{len(report.flags)}'>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='muted'>inputs: {html.escape(', '.join(report.inputs))}</p>"]
    verdict = ("Decoupling detected: the proxy kept rising while the outcome fell" if report.decoupled
               else "No proxy/outcome decoupling detected")
    parts.append(f"<p class='verdict {'bad' if report.decoupled else 'ok'}' id='verdict'>{html.escape(verdict)}</p>")
    parts.append("<table class='headline'><tbody>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _headline(report))
        + "</tbody></table>")
    parts.append(f"<h2>Flags ({len(report.flags)})</h2><div id='flags'>")
    if not report.flags:
        parts.append("<p class='muted'>no flags</p>")
    for fl in report.flags:
        cls = "flag decoupling" if fl.decoupling or fl.kind.startswith("harness") else "flag"
        parts.append(
            f"<div class='{cls}' data-kind='{html.escape(fl.kind)}'><span class='kind'>{html.escape(fl.kind)}</span>"
            f" at <b>{html.escape(_f(fl.checkpoint))}</b><br>{html.escape(fl.evidence)}<br>"
            f"<span class='muted'>interval {_interval(fl.interval)}"
            f"{'' if fl.p_value is None else ', p=' + _f(fl.p_value, 3)}</span></div>")
    parts.append("</div><h2>Charts</h2><div class='grid'>")
    for name, svg in charts:
        if svg:
            parts.append(f"<figure class='chart' id='chart-{name}'>{svg}</figure>")
    parts.append("</div>")
    if report.pair:
        prs = []
        for what in ("proxy", "outcome"):
            e = report.pair[what]
            prs.append({"metric": what, "A": e["a_mean"], "B": e["b_mean"], "delta": e["delta"],
                        "ci_lo": e["interval"][0], "ci_hi": e["interval"][1], "wilcoxon_p": e.get("wilcoxon_p"),
                        "sign_test_p": e.get("sign_test_p")})
        parts.append("<h2>Paired comparison</h2>" + _table_html(pl.DataFrame(prs)))
    parts += [harness_sec, labelers_sec]
    series_cols = [c for c in report.series.columns]
    parts.append("<h2>Checkpoints</h2>" + _table_html(report.series.select(series_cols)))
    parts.append("<h2>Slices (mean outcome)</h2>" + _table_html(_slice_pivot(report), "slices"))
    if report.tails is not None:
        parts.append("<h2>Tail and slice changes between consecutive checkpoints</h2>"
                     + _table_html(report.tails, "tails", highlight="flagged"))
    if report.length:
        parts.append("<h2>Length confound</h2>" + _kv_html(report.length))
    if report.teacher:
        parts.append("<h2>Teacher-likeness confound</h2>" + _kv_html(report.teacher))
    if report.win_rates is not None:
        parts.append("<h2>Win rates (raw and length-controlled)</h2>" + _table_html(report.win_rates))
    over = {k: v for k, v in report.overoptimization.items() if k not in ("gao_fits", "smoothed_outcome")}
    parts.append("<h2>Over-optimisation</h2>" + _kv_html(over))
    if report.seesaw:
        parts.append("<h2>See-saw candidates</h2>" + _table_html(pl.DataFrame(report.seesaw), highlight="flagged"))
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>")
    parts.append(f"<script>{_CHECK_JS}</script></body></html>")
    return "\n".join(parts)


def _kv_html(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt_val(v))}</td></tr>"
                   for k, v in sorted(d.items()))
    return f"<table><tbody>{rows}</tbody></table>"


def _fmt_val(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_f(x) for x in v) + "]"
    if isinstance(v, dict):
        return json.dumps(rnd(v), sort_keys=True)
    return _f(v)


def _md_table(frame: pl.DataFrame | None, limit: int = 100) -> str:
    if frame is None or frame.height == 0:
        return "_none_\n"
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.head(limit).iter_rows(named=True):
        lines.append("| " + " | ".join(_f(row[c]).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(report: Any) -> str:
    """Markdown report: verdict, headline numbers, flags with evidence and intervals, tables."""
    title = "Checkpoint report" if report.mode == "series" else "Checkpoint comparison"
    out = [f"# {title}", "", f"Inputs: {', '.join(f'`{p}`' for p in report.inputs)}", "",
           "**Decoupling detected.**" if report.decoupled else "No proxy/outcome decoupling detected.", ""]
    out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in _headline(report)] + [""]
    out.append(f"## Flags ({len(report.flags)})\n")
    for fl in report.flags:
        out.append(f"- **{fl.kind}** at `{fl.checkpoint}`: {fl.evidence} (interval {_interval(fl.interval)}"
                   f"{'' if fl.p_value is None else ', p=' + _f(fl.p_value, 3)})")
    if not report.flags:
        out.append("_no flags_")
    from provaudit.report import integrity

    out += ["", "## Checkpoints", "", _md_table(report.series)]
    out += integrity.harness_markdown(report.harness) + integrity.labelers_markdown(report.labelers)
    if report.pair:
        out += ["## Paired comparison", ""]
        for what in ("proxy", "outcome"):
            e = report.pair[what]
            out.append(f"- {what}: {_f(e['a_mean'])} -> {_f(e['b_mean'])}, delta {_f(e['delta'])} "
                       f"{_interval(e['interval'])}, Wilcoxon p={_f(e.get('wilcoxon_p'), 3)}, "
                       f"sign test p={_f(e.get('sign_test_p'), 3)}")
        out.append("")
    piv = _slice_pivot(report)
    if piv is not None:
        out += ["## Slices (mean outcome)", "", _md_table(piv)]
    if report.tails is not None:
        flagged = report.tails.filter(pl.col("flagged"))
        out += ["## Flagged tail and slice changes", "", _md_table(flagged)]
    if report.length:
        out += ["## Length confound", ""] + [f"- {k}: {_fmt_val(v)}" for k, v in sorted(report.length.items())] + [""]
    if report.win_rates is not None:
        out += ["## Win rates", "", _md_table(report.win_rates)]
    if report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(out)
