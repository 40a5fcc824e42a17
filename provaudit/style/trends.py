"""Trend of teacher-likeness over ordered batches, checkpoints or the scan history in the catalog.

Slope: least squares of the metric on the step index (0, 1, 2, ...). Its interval is a parametric
bootstrap: each batch's value is redrawn from a normal with the standard error implied by that
batch's own document-bootstrap interval, and the slope refitted. Kendall's tau (with its p-value)
says whether the order is monotone regardless of step sizes. ``converging`` = the slope is at least
``trend.min_slope_per_step`` (rules/converge.yaml) and its interval lies above zero.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from provaudit.errors import InputError, UsageError
from provaudit.style.rules import load_rules


def _get(d: dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _interval_keys(metric: str) -> tuple[str, str]:
    """Where the CI of a metric lives: teacher_likeness -> ci_low/ci_high; x.alpha -> x.ci_low/x.ci_high."""
    if "." in metric:
        head = metric.rsplit(".", 1)[0]
        return f"{head}.ci_low", f"{head}.ci_high"
    return "ci_low", "ci_high"


#: the per-batch rule (rules/converge.yaml, section teacher) a metric is held against, drawn on the plot
_VALUE_RULES = {"teacher_likeness": "max_teacher_likeness", "teacher_fraction.alpha": "max_teacher_fraction"}


def trend(results: Sequence[dict[str, Any]] | None = None, *, batches: Sequence[Any] | None = None,
          teacher: Any = None, human: Any = None, metric: str = "teacher_likeness",
          rules: dict[str, Any] | str | None = None, seed: int = 0, **converge_opts: Any) -> dict[str, Any]:
    """Slope (with CI), Kendall tau and a converging flag over ordered per-batch results.

    Pass ``results`` (the list :func:`provaudit.style.converge` returns, or scan summaries' teacher
    blocks, in order) or ``batches`` + ``teacher`` to compute them first.
    """
    from scipy.stats import kendalltau

    rules = rules if isinstance(rules, dict) else load_rules(rules)
    r = rules["trend"]
    if results is None:
        if batches is None or teacher is None:
            raise UsageError("trend needs per-batch results, or batches and a teacher reference")
        from provaudit.style.converge import converge

        results = converge(batches, teacher, human, seed=seed, **converge_opts)
    lo_key, hi_key = _interval_keys(metric)
    points = []
    for i, res in enumerate(results):
        v = _get(res, metric)
        if v is None:
            continue
        lo, hi = _get(res, lo_key), _get(res, hi_key)
        points.append({"step": i, "batch": res.get("batch", f"step{i}"), "value": float(v),
                       "ci_low": None if lo is None else float(lo), "ci_high": None if hi is None else float(hi),
                       "n": res.get("n"), **({"started_at": res["started_at"]} if res.get("started_at") else {})})
    out: dict[str, Any] = {"metric": metric, "points": points, "n_steps": len(points),
                           "threshold_slope_per_step": r["min_slope_per_step"],
                           "threshold_value": _VALUE_RULES.get(metric) and rules["teacher"][_VALUE_RULES[metric]]}
    if len(points) < 2:
        out.update({"slope": None, "slope_ci_low": None, "slope_ci_high": None, "kendall_tau": None,
                    "kendall_p": None, "converging": False, "note": "need at least two steps",
                    "verdict": "no trend (need at least two steps)"})
        return out
    x = np.array([p["step"] for p in points], dtype=float)
    y = np.array([p["value"] for p in points], dtype=float)
    z = 1.959964
    se = np.array([(p["ci_high"] - p["ci_low"]) / (2 * z) if p["ci_low"] is not None and p["ci_high"] is not None
                   else 0.0 for p in points])
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc))
    rng = np.random.default_rng(seed)
    ys = y[None, :] + rng.standard_normal((int(r["n_boot"]), len(y))) * se[None, :]
    slopes = (ys - ys.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    tail = (1 - float(r["ci"])) / 2
    s_lo, s_hi = (float(v) for v in np.quantile(slopes, [tail, 1 - tail]))
    tau, p = kendalltau(x, y)
    converging = bool(slope >= r["min_slope_per_step"] and s_lo > 0)
    out.update({"slope": round(slope, 5), "slope_ci_low": round(min(s_lo, slope), 5),
                "slope_ci_high": round(max(s_hi, slope), 5),
                "kendall_tau": None if np.isnan(tau) else round(float(tau), 4),
                "kendall_p": None if np.isnan(p) else round(float(p), 4),
                "converging": converging,
                "verdict": "converging toward the teacher" if converging else
                ("diverging from the teacher" if slope <= -r["min_slope_per_step"] and s_hi < 0 else "no significant trend")})
    return out


INPUT_FIELDS = {"path": pl.Utf8, "dataset": pl.Utf8, "format": pl.Utf8, "schema": pl.Utf8, "rows": pl.Int64,
                "records": pl.Int64, "fingerprint": pl.Utf8, "bad_rows": pl.Int64, "columns": pl.List(pl.Utf8)}


def _inputs(raw: Any) -> list[dict[str, Any]]:
    """A scan's inputs (JSON text or a list) as dicts with exactly the :data:`INPUT_FIELDS` keys; the
    dataset name falls back to the file stem."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = []
    out = []
    for item in raw if isinstance(raw, list) else []:
        item = item if isinstance(item, dict) else {}
        row = {k: item.get(k) for k in INPUT_FIELDS}
        if not row["dataset"] and row["path"]:
            name = Path(str(row["path"])).name
            row["dataset"] = name.split(".")[0] or name
        out.append(row)
    return out


def scan_history(catalog: Any = None) -> pl.DataFrame:
    """Scans in the catalog with their teacher measures (one row per scan, in scan order).

    Columns: scan_id, started_at, datasets (input dataset names), inputs (list of structs: path,
    dataset, format, schema, rows, records, fingerprint, bad_rows, columns), teacher_likeness,
    ci_low, ci_high, teacher_fraction, n, diversity_floor_ratio (null where a scan had no teacher
    reference).
    """
    from provaudit.catalog.store import open_catalog

    if catalog is not None and not hasattr(catalog, "scans") and not Path(catalog).exists():
        raise InputError("catalog not found", file=str(catalog))
    with open_catalog(catalog, read_only=True) as cat:
        scans = cat.scans()
    rows = []
    for s in scans.iter_rows(named=True):
        summary = s["summary"]
        try:
            summary = json.loads(summary) if isinstance(summary, str) else (summary or {})
        except json.JSONDecodeError:
            summary = {}
        t = summary.get("teacher") or {}
        inputs = _inputs(s["inputs"])
        rows.append({"scan_id": int(s["scan_id"]), "started_at": str(s["started_at"]),
                     "datasets": [i["dataset"] for i in inputs if i["dataset"]], "inputs": inputs,
                     "teacher_likeness": t.get("teacher_likeness"), "ci_low": t.get("ci_low"),
                     "ci_high": t.get("ci_high"), "teacher_fraction": _get(t, "teacher_fraction.alpha"),
                     "n": t.get("n"), "diversity_floor_ratio": _get(t, "diversity.diversity_floor_ratio")})
    schema = {"scan_id": pl.Int64, "started_at": pl.Utf8, "datasets": pl.List(pl.Utf8),
              "inputs": pl.List(pl.Struct(INPUT_FIELDS)), "teacher_likeness": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "teacher_fraction": pl.Float64, "n": pl.Int64,
              "diversity_floor_ratio": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def history_trend(catalog: Any = None, *, rules: dict[str, Any] | str | None = None,
                  seed: int = 0) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The scan history table and the trend over the scans that carry a teacher result."""
    hist = scan_history(catalog)
    with_teacher = hist.filter(pl.col("teacher_likeness").is_not_null())
    results = [{"batch": _scan_label(r), "teacher_likeness": r["teacher_likeness"], "ci_low": r["ci_low"],
                "ci_high": r["ci_high"], "n": r["n"], "scan_id": r["scan_id"], "started_at": r["started_at"]}
               for r in with_teacher.iter_rows(named=True)]
    return hist, trend(results, rules=rules, seed=seed)


def _scan_label(row: dict[str, Any]) -> str:
    """``#3 batch2`` (scan id and its input datasets): what a trend point is, in a table or on an axis."""
    names = ", ".join(row.get("datasets") or []) or "?"
    return f"#{row['scan_id']} {names}"


def plot_trend(tr: dict[str, Any], path: str | Path) -> Path:
    """Write a 1000x500 PNG of the metric per step with its intervals, the fitted slope and the rule's
    threshold; the x axis names each step (dataset names, and the scan date when there is one)."""
    import matplotlib.pyplot as plt

    fig = trend_figure(tr)
    out = Path(path)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out


def trend_figure(tr: dict[str, Any]) -> Any:
    """The matplotlib figure :func:`plot_trend` saves (10 x 5 inches at 100 dpi)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = tr["points"]
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    xs = [p["step"] for p in pts]
    ys = [p["value"] for p in pts]
    lo = [p["value"] - p["ci_low"] if p["ci_low"] is not None else 0 for p in pts]
    hi = [p["ci_high"] - p["value"] if p["ci_high"] is not None else 0 for p in pts]
    ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", capsize=4, label=f"{tr['metric']} (95% CI)")
    if tr.get("slope") is not None:
        xm, ym = float(np.mean(xs)), float(np.mean(ys))
        ax.plot(xs, [ym + tr["slope"] * (x - xm) for x in xs], "--", color="gray",
                label=f"fitted slope {tr['slope']:+.3f}/step (rule: converging at >= "
                      f"{tr['threshold_slope_per_step']:+.3f})")
    if tr.get("threshold_value") is not None:
        ax.axhline(tr["threshold_value"], color="tab:red", linestyle=":",
                   label=f"rule: {tr['metric']} above {tr['threshold_value']:.2f} is flagged")
    ax.legend(loc="lower right", fontsize=9)
    labels = [str(p["batch"])[:28] + (f"\n{str(p['started_at'])[:10]}" if p.get("started_at") else "") for p in pts]
    ax.set_xticks(xs, labels, rotation=20 if len(pts) > 4 else 0, ha="right" if len(pts) > 4 else "center",
                  fontsize=9)
    ax.set_xlabel("scan (catalog order)" if any(p.get("started_at") for p in pts) else "batch (order given)")
    ax.set_ylabel(f"{tr['metric']} (higher = more like the teacher)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{tr['metric']} per step: {tr.get('verdict') or tr.get('note', '')}", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
