"""Matplotlib charts of a checkpoint report, rendered to inline SVG text (no files, no network)."""
from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

_RC = {"svg.hashsalt": "provaudit", "svg.fonttype": "none", "font.size": 9, "axes.spines.top": False}


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "provaudit"})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype for inline use
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    return re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)


def _finish(fig: Any, ax: Any, names: list[str], ylabel: str, title: str) -> str:
    """Checkpoint names on x, label, two-column legend and title; the SVG text."""
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.set_title(title)
    return _svg(fig)


def series_chart(report: Any) -> str:
    """Proxy and outcome across checkpoints (two y axes), intervals, best checkpoint and flags."""
    with plt.rc_context(_RC):
        return _svg(series_figure(report))


def series_figure(report: Any) -> Any:
    """The matplotlib figure behind :func:`series_chart` (the caller closes or saves it)."""
    s: pl.DataFrame = report.series
    names = s["checkpoint"].to_list()
    x = np.arange(len(names))
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        ax2 = ax.twinx()
        p, o = s["proxy"].to_numpy(), s["outcome"].to_numpy()
        pe = s["proxy_se"].to_numpy() * 1.96 if "proxy_se" in s.columns else None
        oe = s["outcome_se"].to_numpy() * 1.96 if "outcome_se" in s.columns else None
        ax.errorbar(x, p, yerr=pe, color="#1f77b4", marker="o", ms=4, capsize=2, label=f"proxy ({report.proxy})")
        ax2.errorbar(x, o, yerr=oe, color="#d62728", marker="s", ms=4, capsize=2,
                     label=f"outcome ({report.outcome})")
        ax.set_ylabel("proxy", color="#1f77b4")
        ax2.set_ylabel("outcome", color="#d62728")
        if report.best_checkpoint in names:
            b = names.index(report.best_checkpoint)
            ax.axvline(b, color="#2ca02c", ls="--", lw=1)
            # inside the axes, just below the top edge, so it never collides with the title
            ax.annotate(f"best: {report.best_checkpoint}", xy=(b, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(4, -4), textcoords="offset points", color="#2ca02c", ha="left", va="top",
                        fontsize=8, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
        flagged = sorted({names.index(f.checkpoint) for f in report.flags if f.decoupling and f.checkpoint in names})
        for k in flagged:
            ax2.plot([k], [o[k]], marker="X", color="black", ms=9, ls="none")
        step = max(1, len(names) // 12)
        ax.set_xticks(x[::step])
        ax.set_xticklabels([names[i] for i in range(0, len(names), step)], rotation=30, ha="right")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.set_xlabel("checkpoint")
        ax.set_title("Proxy and outcome across checkpoints (x = decoupling flag)", pad=10)
        fig.tight_layout()
        # the legend goes under everything the x axis draws (tick labels of any length, its label): a layout
        # pass without rasterizing (the same positions as canvas.draw(), the same SVG bytes, 8% faster a chart)
        fig.draw_without_rendering()
        below = ax.get_tightbbox(fig.canvas.get_renderer()).y0
        y = ax.transAxes.inverted().transform((0, below))[1]
        ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, y - 0.02), ncol=2, fontsize=8,
                  frameon=False)
        return fig


def length_chart(report: Any, max_points: int = 1500) -> str | None:
    """Proxy against response length: per-sample points coloured by checkpoint, or per-checkpoint means."""
    pts = report.points
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        if pts is not None and "length" in pts.columns and pts["length"].null_count() < pts.height:
            names = report.checkpoints
            cmap = plt.get_cmap("viridis", max(len(names), 2))
            if pts.height > max_points:
                pts = pts.sample(max_points, seed=report.seed)
            for k, name in enumerate(names):
                sub = pts.filter(pl.col("checkpoint") == name)
                ax.scatter(sub["length"].to_numpy(), sub["proxy"].to_numpy(), s=6, alpha=0.5, color=cmap(k),
                           label=name if len(names) <= 10 or k in (0, len(names) - 1) else None)
            ax.legend(fontsize=7, frameon=False, markerscale=2)
        elif "length" in report.series.columns and report.series["length"].null_count() == 0:
            s = report.series
            ax.plot(s["length"].to_numpy(), s["proxy"].to_numpy(), marker="o")
            for name, lx, py in zip(s["checkpoint"], s["length"], s["proxy"]):
                ax.annotate(name, (lx, py), fontsize=7)
        else:
            plt.close(fig)
            return None
        ax.set_xlabel("response length")
        ax.set_ylabel(f"proxy ({report.proxy})")
        ax.set_title("Proxy against length")
        return _svg(fig)


def tail_chart(report: Any) -> str | None:
    """Outcome quantiles (p5, p10, median, mean) across checkpoints from per-sample results."""
    pts = report.points
    if pts is None or is_binary(pts["outcome"]):
        return None  # quantiles of a 0/1 outcome are 0 or 1: the chart would say nothing
    names = report.checkpoints
    qs = {"p5": 0.05, "p10": 0.10, "median": 0.5}
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
        for label, q in qs.items():
            vals = [float(np.quantile(pts.filter(pl.col("checkpoint") == n)["outcome"].to_numpy(), q)) for n in names]
            ax.plot(range(len(names)), vals, marker="o", ms=3, label=label)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel("outcome")
        ax.legend(fontsize=8, frameon=False)
        ax.set_title("Outcome median and low quantiles")
        return _svg(fig)


def is_binary(values: pl.Series) -> bool:
    """True when every non-null value is 0 or 1 (pass/fail, success): quantiles do not apply."""
    v = values.drop_nulls()
    return v.len() > 0 and bool(v.cast(pl.Float64).is_in([0.0, 1.0]).all())


def slice_chart(report: Any) -> str | None:
    """Mean outcome per slice across checkpoints."""
    st = report.slices
    if st is None or st.height == 0:
        return None
    names = report.checkpoints
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
        for sl in sorted(st["slice"].unique().to_list()):
            sub = st.filter(pl.col("slice") == sl)
            xs = [names.index(c) for c in sub["checkpoint"]]
            ax.plot(xs, sub["outcome"].to_numpy(), marker="o", ms=3, label=str(sl))
        return _finish(fig, ax, names, "mean outcome", "Outcome per slice")


def harness_chart(harness: dict[str, Any]) -> str | None:
    """Share of samples with each harness fault, per checkpoint (grouped bars)."""
    per = harness.get("per_checkpoint") or []
    if not per:
        return None
    from provaudit.checkpoints.harness import FAULTS

    names = [r["checkpoint"] for r in per]
    kinds = [k for k in FAULTS if any(r.get(k) for r in per)] or ["empty"]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
        w = 0.8 / len(kinds)
        for j, k in enumerate(kinds):
            ax.bar(np.arange(len(names)) + j * w - 0.4 + w / 2, [r.get(k) or 0.0 for r in per], w, label=k)
        ax.axhline(harness.get("thresholds", {}).get("min_share", 0.05), color="#d62728", ls="--", lw=1)
        return _finish(fig, ax, names, "share of samples", "Harness faults per checkpoint (dashed: flag threshold)")


def harness_change_chart(harness: dict[str, Any]) -> str | None:
    """Outcome change between checkpoints: all samples, carried by health changes, healthy samples."""
    pairs = [p for p in harness.get("pairs") or [] if p["outcome"].get("total") is not None]
    if not pairs:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
        for j, (key, label, color) in enumerate((("total", "all samples", "#1f77b4"),
                                                 ("carried", "carried by health changes", "#d62728"),
                                                 ("healthy", "healthy in both", "#2ca02c"))):
            xs, ys, lo, hi = [], [], [], []
            for k, p in enumerate(pairs):
                o = p["outcome"]
                v, iv = ((o["healthy"]["delta"], o["healthy"]["interval"]) if key == "healthy" and o.get("healthy")
                         else (o.get(key), o.get(f"{key}_interval")))
                if v is None or not iv:
                    continue
                xs.append(k + (j - 1) * 0.22)
                ys.append(v)
                lo.append(v - iv[0])
                hi.append(iv[1] - v)
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=color, capsize=3, label=label)
        ax.axhline(0, color="#999", lw=0.8)
        ax.set_xticks(range(len(pairs)))
        ax.set_xticklabels([f"{p['from']}→{p['to']}" for p in pairs], rotation=30, ha="right")
        ax.set_ylabel("outcome change (95% interval)")
        ax.legend(fontsize=7, frameon=False)
        ax.set_title("Where the outcome change sits: harness or model")
        return _svg(fig)


def labeler_chart(lab: dict[str, Any]) -> str | None:
    """Agreement and relative chosen-response diversity per batch, with bootstrap intervals."""
    rows = lab.get("batches") or []
    if not rows:
        return None
    key = (lab.get("trend") or {}).get("agreement") or "alpha_nominal"
    ivk = "alpha_interval" if key == "alpha_nominal" else None
    x = np.arange(len(rows))
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
        ax2 = ax.twinx()
        ya = np.array([r.get(key) if r.get(key) is not None else np.nan for r in rows], dtype=float)
        ea = None
        if ivk and all(r.get(ivk) for r in rows):
            ea = np.array([[r[key] - r[ivk][0], r[ivk][1] - r[key]] for r in rows]).T
        ax.errorbar(x, ya, yerr=ea, color="#1f77b4", marker="o", ms=4, capsize=2, label=f"agreement ({key})")
        yd = np.array([r.get("chosen_diversity_rel") if r.get("chosen_diversity_rel") is not None else np.nan
                       for r in rows], dtype=float)
        ed = None
        if all(r.get("chosen_diversity_rel_interval") for r in rows):
            ed = np.array([[r["chosen_diversity_rel"] - r["chosen_diversity_rel_interval"][0],
                            r["chosen_diversity_rel_interval"][1] - r["chosen_diversity_rel"]] for r in rows]).T
        ax2.errorbar(x, yd, yerr=ed, color="#d62728", marker="s", ms=4, capsize=2, label="chosen diversity / candidates")
        for f in lab.get("flags") or []:
            names = [r["batch"] for r in rows]
            if f.get("checkpoint") in names:
                ax.axvline(names.index(f["checkpoint"]), color="black", ls=":", lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels([r["batch"] for r in rows], rotation=30, ha="right")
        ax.set_ylabel("agreement", color="#1f77b4")
        ax2.set_ylabel("chosen diversity (relative)", color="#d62728")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, frameon=False, loc="lower left")
        ax.set_title("Labeler agreement vs chosen-response diversity (dotted: homogenizing)")
        return _svg(fig)
