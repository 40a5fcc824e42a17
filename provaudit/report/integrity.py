"""Report sections for eval integrity: harness health and labeler homogenization (HTML and Markdown).

Used by :mod:`provaudit.report.checkpoints` (sections of the checkpoint report) and by ``provaudit
labelers --html`` (a standalone page with the same CSS and visibility check as the checkpoint report).
"""
from __future__ import annotations

import html
import json
from typing import Any

from provaudit.checkpoints.model import rnd
from provaudit.report import plots

_LAB_COLS = ("batch", "n_items", "n_multi_rated", "annotators", "alpha_nominal", "alpha_interval", "fleiss_kappa",
             "cohen_kappa", "reference_agreement", "reference_kappa", "chosen_diversity_rel",
             "chosen_diversity_rel_interval", "score_variance_across_checkpoints")
_HARNESS_COLS = ("checkpoint", "n", "healthy_share", "empty", "truncated", "echo", "duplicate", "score_missing",
                 "score_non_numeric", "score_out_of_scale", "extraction_failed")


def _f(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, list):
        return "[" + ", ".join(_f(v) for v in x) + "]"
    if isinstance(x, dict):
        return json.dumps(rnd(x), sort_keys=True)
    return str(x)


def _table(rows: list[dict[str, Any]], cols: tuple[str, ...] | list[str]) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    cols = [c for c in cols if any(c in r for r in rows)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_f(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md(rows: list[dict[str, Any]], cols: tuple[str, ...] | list[str]) -> list[str]:
    cols = [c for c in cols if any(c in r for r in rows)]
    if not rows or not cols:
        return ["_none_", ""]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_f(r.get(c)).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return out + [""]


def _pair_rows(harness: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for p in harness.get("pairs") or []:
        o = p["outcome"]
        h = o.get("healthy") or {}
        rows.append({"from": p["from"], "to": p["to"], "became_unhealthy": o.get("became_unhealthy"),
                     "became_healthy": o.get("became_healthy"), "mcnemar_p": o.get("mcnemar_p"),
                     "outcome_change": o.get("total"), "change_interval": o.get("total_interval"),
                     "carried_share": o.get("share"), "share_interval": o.get("share_interval"),
                     "healthy_change": h.get("delta"), "healthy_interval": h.get("interval"),
                     "healthy_p": h.get("p_value")})
    return rows


def harness_html(harness: dict[str, Any]) -> tuple[str, list[tuple[str, str | None]]]:
    """The harness section and its charts."""
    if not harness:
        return "", []
    parts = ["<h2>Harness health</h2>",
             ("<p class='muted'>share of samples per fault; a fault is flagged at "
              f"{_f(harness.get('thresholds', {}).get('min_share'))} of a checkpoint's samples</p>"),
             _table(harness.get("per_checkpoint") or [], _HARNESS_COLS)]
    if harness.get("pairs"):
        parts += ["<h3>Outcome change by harness health (paired bootstrap intervals)</h3>",
                  _table(_pair_rows(harness), list(_pair_rows(harness)[0]))]
    changed = [s for s in harness.get("settings") or [] if s.get("settings")]
    if changed:
        parts += ["<h3>Generation settings per checkpoint</h3>",
                  _table([{"checkpoint": s["checkpoint"], "settings": s["settings"]} for s in changed],
                         ("checkpoint", "settings"))]
    return "\n".join(parts), [("harness", plots.harness_chart(harness)),
                              ("harness-change", plots.harness_change_chart(harness))]


def harness_markdown(harness: dict[str, Any]) -> list[str]:
    if not harness:
        return []
    out = ["## Harness health", ""] + _md(harness.get("per_checkpoint") or [], _HARNESS_COLS)
    if harness.get("pairs"):
        rows = _pair_rows(harness)
        out += ["### Outcome change by harness health", ""] + _md(rows, list(rows[0]))
    return out


def labelers_html(lab: dict[str, Any] | None) -> tuple[str, list[tuple[str, str | None]]]:
    if not lab:
        return "", []
    tr = lab.get("trend") or {}
    rows = [{**r, "origin": (r.get("label_origin") or {}).get("verdict")} for r in lab.get("batches") or []]
    parts = ["<h2>Labeler homogenization</h2>", _table(rows, (*_LAB_COLS, "origin"))]
    if tr.get("testable"):
        parts.append(f"<p>trend: agreement {_f(tr['agreement_slope'])} per batch {_f(tr['agreement_slope_interval'])}, "
                     f"chosen diversity {_f(tr['diversity_slope'])} per batch {_f(tr['diversity_slope_interval'])}; "
                     f"homogenizing: <b>{'YES at ' + str(tr['first_flagged_batch']) if lab.get('homogenizing') else 'no'}"
                     "</b></p>")
    else:
        parts.append("<p class='muted'>trend not testable (needs 3+ batches with agreement and chosen texts)</p>")
    return "\n".join(parts), [("labelers", plots.labeler_chart(lab))]


def labelers_markdown(lab: dict[str, Any] | None) -> list[str]:
    if not lab:
        return []
    rows = [{**r, "origin": (r.get("label_origin") or {}).get("verdict")} for r in lab.get("batches") or []]
    tr = lab.get("trend") or {}
    out = ["## Labeler homogenization", ""] + _md(rows, (*_LAB_COLS, "origin"))
    if tr.get("testable"):
        verdict = f"**yes** (first at {tr['first_flagged_batch']})" if lab.get("homogenizing") else "no"
        out += [(f"Trend: agreement {_f(tr['agreement_slope'])}/batch {_f(tr['agreement_slope_interval'])}, chosen "
                 f"diversity {_f(tr['diversity_slope'])}/batch {_f(tr['diversity_slope_interval'])}; homogenizing: "
                 f"{verdict}"), ""]
    return out


def render_labelers_html(lab: dict[str, Any]) -> str:
    """A standalone self-contained page for ``provaudit labelers --html``."""
    from provaudit.report.checkpoints import _CHECK_JS, _CSS

    section, charts = labelers_html(lab)
    flags = "".join(f"<div class='flag' data-kind='{html.escape(f['kind'])}'><span class='kind'>"
                    f"{html.escape(f['kind'])}</span> at <b>{html.escape(str(f['checkpoint']))}</b><br>"
                    f"{html.escape(f['evidence'])}</div>" for f in lab.get("flags") or [])
    figs = "".join(f"<figure class='chart' id='chart-{n}'>{svg}</figure>" for n, svg in charts if svg)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>provaudit labelers</title>"
            f"<style>{_CSS}</style></head><body data-flags='{len(lab.get('flags') or [])}'>"
            f"<h1>provaudit labeler homogenization</h1><div id='flags'>{flags or '<p class=muted>no flags</p>'}</div>"
            f"<div class='grid'>{figs}</div>{section}<script>{_CHECK_JS}</script></body></html>")
