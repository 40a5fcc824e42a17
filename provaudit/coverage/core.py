"""``provaudit.coverage``: does the eval set still look like production traffic?

1. Embed eval and production units (static MiniLM distillation by default, full MiniLM on request).
2. Score every unit by how far it is from the eval set, and calibrate "close" on the eval set itself:
   - ``method="mixture"`` (default): the classifier scores below, and coverage estimated as a mixture
     proportion: production = (1 - pi) x eval-like + pi x new traffic, and at the eval scores' q quantile
     t_q, P_prod(score <= t_q) >= (1 - pi) q, with equality when the new traffic scores above t_q, so
     coverage = min(1, min over q in (0.5, 0.95) of P_prod(score <= t_q) / q). The threshold then marks
     the ``coverage`` share of production with the lowest scores as covered. Unlike a 0.95-quantile
     threshold alone this does not need the classifier to put nearly all new traffic above the eval set's
     95th percentile, only above its median (HH-RLHF red-team prompts against AlpacaEval: about 0.5
     coverage at half red-team traffic instead of 0.73-0.76).
   - ``method="classifier"``: out-of-fold logit of a logistic regression telling production
     from eval (5-fold cross-fitting, so no unit is scored by a model that saw it); the threshold is the
     ``quantile`` (0.95) of the eval units' own out-of-fold scores.
   - ``method="neighbour"``: cosine distance to the nearest eval unit; the threshold is the ``quantile``
     of each deduplicated eval unit's distance to its nearest other eval unit.
   Either way a production sample drawn from the eval set's own distribution has about ``quantile`` of
   its units covered, whatever the embedding's scale. (On the bundled fixtures the classifier separates
   new traffic far better: nearest-neighbour distances of red-team prompts to AlpacaEval instructions
   are no larger than those of other AlpacaEval instructions in the static embedding.)
3. coverage = share of production units at or under the threshold, with a bootstrap interval that
   resamples eval (the threshold) and production; per window too.
4. uncovered: k-means clusters of the uncovered production units that are confidently new traffic,
   ranked by traffic share, labelled by their most distinctive terms. A unit is confidently new when the
   estimated false-discovery rate of calling it and every unit scoring higher new is at most ``fdr``
   (0.1): coverage x n x P_eval(score >= s) eval-like units are expected among them (the eval units' own
   out-of-fold scores stand for the eval-like traffic), Benjamini-Hochberg step-up. The rest of the
   uncovered units (the ranking cut is only as precise as the classifier) stay unclustered (cluster -2).
   stale: the mirror image, eval units scored more eval-like than ``quantile`` of production
   (classifier), or with no production unit within the threshold (neighbour).
5. drift: MMD two-sample test (permutation p-value) of eval against all production and each window;
   a window is ``detected`` at ``alpha / n_windows`` (Bonferroni), and the trend over windows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from provaudit import progress
from provaudit.coverage import stats
from provaudit.coverage.inputs import Units, load_units, order_windows
from provaudit.errors import InputError, UsageError

METHODS = ("mixture", "classifier", "neighbour")
#: metric paths a coverage summary can hold, for gate files over it (``rules/gate-coverage.yaml``);
#: a typo in such a file exits 2 naming the nearest of these
COVERAGE_METRICS: tuple[str, ...] = (
    "coverage", "uncovered_share", "uncovered_top_share", "uncovered_clustered.share", "n_eval", "n_production",
    "seed",
    "stale.share", "stale.n", "threshold.value", "threshold.n_calibration", "threshold.neighbour_distance",
    "drift.alpha", "drift.p_value", "drift.effect", "drift.detected",
)
DEFAULTS: dict[str, Any] = {"quantile": 0.95, "alpha": 0.01, "n_boot": 1000, "n_perm": 500, "max_windows": 12,
                            "max_clusters": 20, "examples": 3, "drift_max_n": 1000, "window_max_n": 500,
                            "min_window": 10, "fdr": 0.1}
MIN_EVAL = 10


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _cut(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class CoverageResult:
    """The JSON-ready ``summary`` and the arrays behind it (for the HTML map)."""

    summary: dict[str, Any]
    eval_units: pl.DataFrame
    production_units: pl.DataFrame  # + distance, covered, cluster (-1 = covered)
    eval_vectors: np.ndarray = field(repr=False)
    production_vectors: np.ndarray = field(repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.summary.get("gate", {}).get("passed", True))

    def to_json(self) -> str:
        return json.dumps(self.summary, indent=2, sort_keys=True, ensure_ascii=False)


def _embed(texts: list[str], backend: str) -> np.ndarray:
    """Embeddings of ``texts``, each distinct text encoded once (production traffic repeats)."""
    from provaudit.embed import encode

    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    if len(uniq) == len(texts):
        return encode(texts, backend=backend)
    return encode(uniq.tolist(), backend=backend)[inverse]


def _as_units(src: Any, *, unit: str, by: str | None, what: str) -> Units:
    if isinstance(src, Units):
        return src
    if isinstance(src, str | Path):
        src = [src]
    return load_units(list(src), unit=unit, by=by, what=what)


def coverage(
    eval: Any,
    production: Any,
    *,
    unit: str = "prompt",
    by: str | None = None,
    backend: str = "static",
    method: str = "mixture",
    quantile: float = DEFAULTS["quantile"],
    threshold: float | None = None,
    alpha: float = DEFAULTS["alpha"],
    n_boot: int = DEFAULTS["n_boot"],
    n_perm: int = DEFAULTS["n_perm"],
    max_windows: int = DEFAULTS["max_windows"],
    max_clusters: int = DEFAULTS["max_clusters"],
    fdr: float = DEFAULTS["fdr"],
    seed: int = 0,
    gate: str | Path | None = None,
    catalog: Any = None,
    record: bool = False,
) -> CoverageResult:
    """Coverage of ``production`` (paths; windows by ``by`` or file order) by ``eval`` (a path).

    ``method``: ``mixture``, ``classifier`` or ``neighbour`` (see the module doc). ``threshold``: a fixed
    score (cosine distance for ``neighbour``, logit otherwise) instead of the calibrated one. ``fdr``: the
    estimated false-discovery rate up to which an uncovered unit counts as new traffic and is clustered. ``gate``: a gate
    file whose checks (``coverage``, ``uncovered_top_share``, ``drift.detected``, ...) are evaluated on
    the summary.
    ``record``: store the run in the catalog (``catalog`` path or the default) for ``provaudit trend``.
    """
    if not 0 < quantile < 1:
        raise UsageError(f"quantile must be in (0, 1), got {quantile}")
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {METHODS}")
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < fdr <= 1:
        raise UsageError(f"fdr must be in (0, 1], got {fdr}")
    ev = _as_units(eval, unit=unit, by=None, what="eval")
    prod = _as_units(production, unit=unit, by=by, what="production")
    if prod.frame.height < MIN_EVAL:
        raise InputError(
            f"production has {prod.frame.height} units; at least {MIN_EVAL} are needed for the "
            "classifier folds and the drift test",
            file=prod.inputs[0]["path"],
        )
    progress.step(f"embedding {len(ev.frame)} eval and {len(prod.frame)} production units ({backend})")
    e_vec = _embed(ev.frame["text"].to_list(), backend)
    p_vec = _embed(prod.frame["text"].to_list(), backend)

    # calibration on the deduplicated eval set
    _, first = np.unique(e_vec.round(5), axis=0, return_index=True)
    uniq = e_vec[np.sort(first)]
    if threshold is None and len(uniq) < MIN_EVAL:
        raise InputError(
            f"eval set has {len(uniq)} distinct units; at least {MIN_EVAL} are needed to calibrate "
            "the closeness threshold (or give --threshold)",
            file=ev.inputs[0]["path"],
        )
    loo, _, _ = stats.nearest(uniq, uniq, exclude_self=True) if len(uniq) > 1 else (np.zeros(1), None, None)
    nn_tau = float(np.quantile(loo, quantile))
    progress.step("nearest eval neighbours and the production-vs-eval classifier")
    p_dist, p_arg, e_dist = stats.nearest(p_vec, e_vec)
    if method in ("mixture", "classifier"):
        calib, p_score = stats.domain_scores(e_vec, p_vec, seed=seed)
    else:
        calib, p_score = loo, p_dist
    mixture = method == "mixture" and threshold is None
    if threshold is not None:
        tau = float(threshold)
    elif mixture:
        tau = stats.rank_threshold(p_score, stats.mixture_coverage(p_score, calib))
    else:
        tau = float(np.quantile(calib, quantile))
    covered = p_score <= tau
    n = len(p_dist)
    cov = float(covered.mean())
    progress.step(f"coverage interval ({n_boot} bootstrap resamples)")

    def interval(scores: np.ndarray, boot_seed: int) -> tuple[float, float]:
        if mixture:
            return stats.mixture_ci(scores, calib, n_boot=n_boot, seed=boot_seed)
        return stats.coverage_ci(scores, calib, quantile, n_boot=n_boot, seed=boot_seed,
                                 fixed_threshold=threshold)

    lo, hi = interval(p_score, seed)

    # windows
    pf = prod.frame.with_columns(
        pl.Series("score", p_score),
        pl.Series("distance", p_dist),
        pl.Series("covered", covered),
        pl.Series("nearest_eval", ev.frame["record_id"].gather(p_arg)),
    )
    labels, wmap = order_windows(pf["window"].to_list(), max_windows)
    pf = pf.with_columns(pl.col("window").replace_strict(wmap, return_dtype=pl.Utf8))
    win_idx = {w: np.flatnonzero((pf["window"] == w).to_numpy()) for w in labels}

    # uncovered clusters: of the uncovered units, those confidently new traffic (estimated false-discovery
    # rate at most ``fdr``); the others (cluster -2) may be eval-like traffic the classifier ranks high
    est_fdr = stats.new_traffic_fdr(p_score, calib, cov) if threshold is None else np.zeros(n)
    confident = ~covered & (est_fdr <= fdr)
    unc = np.flatnonzero(confident)
    cl = np.where(covered, -1, -2).astype(np.int64)
    clusters: list[dict[str, Any]] = []
    if len(unc):
        progress.step("clustering the confidently new production units")
        raw = stats.cluster(p_vec[unc], seed=seed, max_clusters=max_clusters)
        # rank by size, ties by first member, and renumber 0.. in that order
        order = sorted(set(raw.tolist()), key=lambda c: (-int(np.sum(raw == c)), int(np.argmax(raw == c))))
        renum = {c: i for i, c in enumerate(order)}
        cl[unc] = [renum[c] for c in raw.tolist()]
        texts = pf["text"].to_list()
        ids = pf["record_id"].to_list()
        members = [np.flatnonzero(cl == c) for c in range(len(order))]
        rng = np.random.default_rng(seed)
        cov_idx = np.flatnonzero(covered)
        rest_idx = cov_idx if len(cov_idx) <= 20000 else rng.choice(cov_idx, 20000, replace=False)
        terms = stats.distinctive_terms(
            [[texts[i] for i in m] for m in members], [texts[i] for i in rest_idx]
        )
        for c, m in enumerate(members):
            centre = p_vec[m].mean(axis=0)
            near = m[np.argsort(-(p_vec[m] @ centre), kind="stable")[: DEFAULTS["examples"]]]
            clusters.append(
                {
                    "cluster": c,
                    "size": len(m),
                    "share": _r(len(m) / n),
                    "label": ", ".join(terms[c]) if terms[c] else "(no distinctive terms)",
                    "terms": terms[c],
                    "mean_score": _r(float(p_score[m].mean())),
                    "windows": {w: int(np.sum(np.isin(m, win_idx[w]))) for w in labels},
                    "examples": [
                        {
                            "record_id": ids[i],
                            "text": _cut(texts[i]),
                            "score": _r(p_score[i]),
                            "nearest_eval_distance": _r(p_dist[i]),
                        }
                        for i in near
                    ],
                }
            )
    pf = pf.with_columns(pl.Series("cluster", cl), pl.Series("fdr", est_fdr))

    # stale eval units
    if method != "neighbour":  # the mirror image: eval units more eval-like than 95% of production is
        stale_tau = float(np.quantile(p_score, 1 - quantile))
        stale_mask = calib < stale_tau
        e_score = calib
    else:
        stale_tau, stale_mask, e_score = nn_tau, e_dist > nn_tau, e_dist
    stale_idx = np.flatnonzero(stale_mask)
    stale_idx = stale_idx[
        np.argsort(e_score[stale_idx] if method != "neighbour" else -e_dist[stale_idx], kind="stable")
    ]
    e_ids, e_texts = ev.frame["record_id"].to_list(), ev.frame["text"].to_list()
    stale = {
        "share": _r(float(stale_mask.mean())),
        "n": int(stale_mask.sum()),
        "n_eval": len(e_dist),
        "threshold": _r(stale_tau, 5),
        "examples": [
            {
                "record_id": e_ids[i],
                "text": _cut(e_texts[i]),
                "score": _r(e_score[i]),
                "distance": _r(e_dist[i]),
            }
            for i in stale_idx[:10]
        ],
    }

    # drift: pooled, then each window at alpha / k
    progress.step(f"drift: MMD permutation test ({n_perm} permutations) per window")
    pooled = stats.mmd_test(e_vec, p_vec, n_perm=n_perm, seed=seed, max_n=DEFAULTS["drift_max_n"])
    k = len(labels)
    windows, drift_windows = [], []
    for j, w in enumerate(labels):
        idx = win_idx[w]
        wcov = stats.mixture_coverage(p_score[idx], calib) if mixture else float(covered[idx].mean())
        wlo, whi = interval(p_score[idx], seed + 1 + j)
        windows.append({"window": w, "n": len(idx), "coverage": _r(wcov), "coverage_ci": [_r(wlo), _r(whi)]})
        if len(idx) < DEFAULTS["min_window"]:
            drift_windows.append(
                {
                    "window": w,
                    "n": len(idx),
                    "p_value": None,
                    "effect": None,
                    "detected": False,
                    "note": f"fewer than {DEFAULTS['min_window']} units",
                }
            )
            continue
        t = (
            pooled
            if k == 1
            else stats.mmd_test(
                e_vec, p_vec[idx], n_perm=n_perm, seed=seed + 1 + j, max_n=DEFAULTS["window_max_n"]
            )
        )
        drift_windows.append(
            {
                "window": w,
                "n": len(idx),
                "p_value": _r(t["p_value"]),
                "effect": _r(t["effect"], 5),
                "detected": bool(t["p_value"] < alpha / k),
            }
        )
    detected = bool(pooled["p_value"] < alpha) or any(d["detected"] for d in drift_windows)
    drift = {
        "test": "mmd (gaussian kernel, median bandwidth), permutation p-value",
        "alpha": alpha,
        "window_alpha": _r(alpha / k, 6),
        "n_permutations": n_perm,
        "p_value": _r(pooled["p_value"]),
        "effect": _r(pooled["effect"], 5),
        "detected": detected,
        "windows": drift_windows,
        "trend": _trend(windows, drift_windows),
    }

    summary: dict[str, Any] = {
        "coverage": _r(cov),
        "coverage_ci": [_r(lo), _r(hi)],
        "threshold": {
            "value": _r(tau, 5),
            "method": method,
            "quantile": (list(stats.MIXTURE_QUANTILES) if mixture else quantile) if threshold is None else None,
            "how": ("given" if threshold is not None else _HOW[method]),
            "reference_scores": [_r(float(t), 5) for t in np.quantile(calib, stats.MIXTURE_QUANTILES)]
            if mixture
            else None,
            "n_calibration": len(calib),
            "neighbour_distance": _r(nn_tau, 5),
        },
        "n_eval": len(e_vec),
        "n_production": n,
        "unit": unit,
        "backend": backend,
        "by": by,
        "seed": seed,
        "uncovered": clusters,
        "uncovered_share": _r(1 - cov),
        "uncovered_clustered": {
            "share": _r(len(unc) / n),
            "n": len(unc),
            "fdr": fdr if threshold is None else None,
            "how": "uncovered units whose estimated false-discovery rate as new traffic is at most fdr: "
            "(coverage x n x share of eval scores >= the unit's score) / (production units scoring >= it), "
            "step-up; the rest of the uncovered share may be eval-like traffic ranked high"
            if threshold is None else "every uncovered unit (a given threshold)",
        },
        "uncovered_top_share": clusters[0]["share"] if clusters else 0.0,
        "stale": stale,
        "drift": drift,
        "windows": windows,
        "inputs": {"eval": ev.inputs, "production": prod.inputs},
    }
    if gate is not None:
        from provaudit.gate import evaluate_gate, gate_summary

        summary["gate"] = gate_summary(evaluate_gate(summary, gate, known=COVERAGE_METRICS,
                                                     what="a coverage summary"))
    ef = ev.frame.with_columns(pl.Series("score", e_score), pl.Series("distance", e_dist),
                               pl.Series("stale", stale_mask))
    result = CoverageResult(summary, ef, pf, e_vec, p_vec)
    if record:
        from provaudit.coverage.history import record_run

        record_run(summary, catalog)
    return result


_HOW = {
    "mixture": "coverage = min(1, min over q in (0.5, 0.95) of the share of production scoring at or under "
    "the q quantile of the eval units' own out-of-fold production-vs-eval logits, divided by q) (a "
    "mixture-proportion estimate); the threshold covers that share of production, lowest logits first",
    "classifier": "the quantile of the eval units' own out-of-fold production-vs-eval logits",
    "neighbour": "the quantile of each eval unit's cosine distance to its nearest other eval unit",
}


def _trend(windows: Sequence[dict], drift_windows: Sequence[dict]) -> dict[str, Any]:
    """Least-squares slope per window step of coverage and of the drift effect, Kendall tau of coverage."""
    if len(windows) < 2:
        return {
            "n_windows": len(windows),
            "coverage_slope": None,
            "effect_slope": None,
            "kendall_tau": None,
            "kendall_p": None,
            "direction": "one window",
        }
    from scipy.stats import kendalltau

    x = np.arange(len(windows), dtype=float)
    y = np.array([w["coverage"] for w in windows], dtype=float)
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc))
    eff = [(i, d["effect"]) for i, d in enumerate(drift_windows) if d["effect"] is not None]
    e_slope = None
    if len(eff) >= 2:
        ex = np.array([i for i, _ in eff], dtype=float)
        ey = np.array([e for _, e in eff], dtype=float)
        exc = ex - ex.mean()
        e_slope = float(exc @ (ey - ey.mean()) / (exc @ exc))
    tau, p = kendalltau(x, y)
    tau_v = None if np.isnan(tau) else float(tau)
    p_v = None if np.isnan(p) else float(p)
    direction = "no trend"
    if p_v is not None and p_v < 0.05 and slope < 0:
        direction = "coverage falling"
    elif p_v is not None and p_v < 0.05 and slope > 0:
        direction = "coverage rising"
    return {
        "n_windows": len(windows),
        "coverage_slope": _r(slope, 5),
        "effect_slope": _r(e_slope, 6),
        "kendall_tau": _r(tau_v),
        "kendall_p": _r(p_v),
        "direction": direction,
    }
