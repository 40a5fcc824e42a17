"""Self-contained HTML report of a coverage run: a 2-D map of eval and production, the coverage trend, tables.

The map is PCA over the embeddings (eval and production pooled; at most 4,000 points each side, seeded),
with the uncovered clusters in colour. The same inline check as the checkpoint report records how many
charts and uncovered-cluster rows are displayed (``data-charts-visible``, ``data-flags-visible``).
"""

from __future__ import annotations

import html
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from provaudit.coverage.stats import pca_2d
from provaudit.report.checkpoints import _CHECK_JS, _CSS, _table_html
from provaudit.report.plots import _RC, _svg

MAX_POINTS = 4000


def map_chart(result: Any, seed: int = 0) -> str:
    """PCA map: eval (blue), covered production (grey), uncovered clusters (colours, top 8 labelled)."""
    rng = np.random.default_rng(seed)
    e, p = result.eval_vectors, result.production_vectors
    ei = np.arange(len(e)) if len(e) <= MAX_POINTS else np.sort(rng.choice(len(e), MAX_POINTS, replace=False))
    pi = np.arange(len(p)) if len(p) <= MAX_POINTS else np.sort(rng.choice(len(p), MAX_POINTS, replace=False))
    xy = pca_2d(np.vstack([e[ei], p[pi]]))
    exy, pxy = xy[: len(ei)], xy[len(ei) :]
    cl = result.production_units["cluster"].to_numpy()[pi]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 5.2))
        ax.scatter(pxy[cl == -1, 0], pxy[cl == -1, 1], s=6, c="#bbbbbb", alpha=0.6, label="production, covered")
        if (cl == -2).any():
            ax.scatter(pxy[cl == -2, 0], pxy[cl == -2, 1], s=6, c="#e8a0a0", alpha=0.6,
                       label="uncovered, not confidently new")
        ax.scatter(exy[:, 0], exy[:, 1], s=8, c="#1f77b4", alpha=0.7, marker="^", label="eval")
        cmap = plt.get_cmap("tab10")
        palette = [1, 2, 3, 4, 5, 6, 8, 9]  # tab10 without the eval blue and the covered grey
        for u in result.summary["uncovered"][:8]:
            m = cl == u["cluster"]
            if m.any():
                ax.scatter(
                    pxy[m, 0],
                    pxy[m, 1],
                    s=14,
                    color=cmap(palette[u["cluster"] % len(palette)]),
                    edgecolors="black",
                    linewidths=0.3,
                    label=f"#{u['cluster']} {u['label'][:28]} ({u['share']:.1%})",
                )
        rest = cl >= 8
        if rest.any():
            ax.scatter(pxy[rest, 0], pxy[rest, 1], s=10, c="#d62728", alpha=0.5, label="other uncovered")
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_title("Eval and production (PCA of the embeddings); uncovered clusters in colour")
        return _svg(fig)


def trend_chart(points: list[tuple[str, float, float | None, float | None]], title: str) -> str | None:
    """Coverage per step (window or catalog run) with its interval."""
    if not points:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
        x = np.arange(len(points))
        y = np.array([pt[1] for pt in points], dtype=float)
        lo = np.array([pt[1] - (pt[2] if pt[2] is not None else pt[1]) for pt in points])
        hi = np.array([(pt[3] if pt[3] is not None else pt[1]) - pt[1] for pt in points])
        ax.errorbar(x, y, yerr=[lo, hi], marker="o", ms=4, capsize=3)
        ax.set_xticks(x)
        ax.set_xticklabels([pt[0][:16] for pt in points], rotation=30, ha="right")
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("coverage")
        ax.set_title(title)
        return _svg(fig)


def render_coverage_html(result: Any, history: pl.DataFrame | None = None) -> str:
    """One HTML page: headline, map, coverage per window and over catalog runs, clusters, stale, drift."""
    s = result.summary
    d = s["drift"]
    charts = [
        ("map", map_chart(result, s["seed"])),
        (
            "windows",
            trend_chart(
                [(w["window"], w["coverage"], *w["coverage_ci"]) for w in s["windows"]],
                "Coverage per production window",
            ),
        ),
    ]
    if history is not None and history.height:
        charts.append(
            (
                "history",
                trend_chart(
                    [
                        (f"run {r['run_id']}", r["coverage"], r["coverage_ci_low"], r["coverage_ci_high"])
                        for r in history.iter_rows(named=True)
                    ],
                    "Coverage over recorded runs (catalog)",
                ),
            )
        )
    head = [
        ("coverage", f"{s['coverage']:.3f} [{s['coverage_ci'][0]:.3f}, {s['coverage_ci'][1]:.3f}]"),
        ("eval units / production units", f"{s['n_eval']} / {s['n_production']}"),
        ("threshold", f"{s['threshold']['value']} ({s['threshold']['method']}: {s['threshold']['how']})"),
        ("largest uncovered cluster share", str(s["uncovered_top_share"])),
        ("uncovered share / confidently new (clustered)",
         f"{s['uncovered_share']} / {s['uncovered_clustered']['share']}"),
        ("stale eval units", f"{s['stale']['n']} ({s['stale']['share']})"),
        ("drift", f"p={d['p_value']} effect={d['effect']} detected={d['detected']}"),
        ("trend", d["trend"]["direction"]),
    ]
    bad = d["detected"] or (s.get("gate") and not s["gate"]["passed"])
    verdict = ("Production has drifted from the eval set" if d["detected"] else "No drift detected") + (
        "; the gate failed" if s.get("gate") and not s["gate"]["passed"] else ""
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>provaudit coverage report</title>",
        f"<style>{_CSS}</style></head><body data-flags='{len(s['uncovered'])}'>",
        "<h1>provaudit eval coverage report</h1>",
        (
            f"<p class='muted'>eval: {html.escape(s['inputs']['eval'][0]['path'])}; production: "
            f"{html.escape(', '.join(p['path'] for p in s['inputs']['production']))}</p>"
        ),
        f"<p class='verdict {'bad' if bad else 'ok'}' id='verdict'>{html.escape(verdict)}</p>",
        "<table class='headline'><tbody>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in head)
        + "</tbody></table>",
        "<h2>Charts</h2><div class='grid'>",
    ]
    parts += [f"<figure class='chart' id='chart-{n}'>{svg}</figure>" for n, svg in charts if svg]
    parts.append("</div>")
    parts.append(
        f"<h2>Uncovered clusters ({len(s['uncovered'])}): cases to add to the eval set</h2><div id='flags'>"
    )
    if not s["uncovered"]:
        parts.append("<p class='muted'>none</p>")
    for u in s["uncovered"]:
        ex = "".join(
            f"<li><code>{html.escape(x['record_id'])}</code> {html.escape(x['text'])}</li>"
            for x in u["examples"]
        )
        parts.append(
            f"<div class='flag' data-cluster='{u['cluster']}'><span class='kind'>#{u['cluster']} "
            f"{html.escape(u['label'])}</span> share {u['share']:.2%}, {u['size']} units<ul>{ex}</ul></div>"
        )
    parts.append("</div>")
    parts.append(
        "<h2>Windows</h2>"
        + _table_html(
            pl.DataFrame(
                [
                    {
                        "window": w["window"],
                        "n": w["n"],
                        "coverage": w["coverage"],
                        "ci_low": w["coverage_ci"][0],
                        "ci_high": w["coverage_ci"][1],
                        "drift_p": dw["p_value"],
                        "effect": dw["effect"],
                        "detected": dw["detected"],
                    }
                    for w, dw in zip(s["windows"], d["windows"])
                ]
            ),
            highlight="detected",
        )
    )
    parts.append(
        "<h2>Stale eval units (nothing like them in production)</h2>"
        + _table_html(
            pl.DataFrame(
                s["stale"]["examples"],
                schema={"record_id": pl.Utf8, "text": pl.Utf8, "score": pl.Float64, "distance": pl.Float64},
            )
        )
    )
    if history is not None and history.height:
        parts.append("<h2>Recorded runs</h2>" + _table_html(history.drop("production_fingerprints")))
    if s.get("gate"):
        parts.append(
            "<h2>Gate</h2>"
            + _table_html(
                pl.DataFrame(s["gate"]["checks"]).select("id", "metric", "status", "value", "threshold")
            )
        )
    parts.append(f"<script>{_CHECK_JS}</script></body></html>")
    return "\n".join(parts)
