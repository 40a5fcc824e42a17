"""The statistics behind coverage: nearest neighbours, the calibrated threshold, bootstrap, MMD, clusters.

All vectors are unit-norm embeddings, so cosine distance is ``1 - a @ b``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

BLOCK = 4096


def nearest(
    a: np.ndarray, b: np.ndarray, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine distance of each row of ``a`` to its nearest row of ``b`` (and its index), and of each row of
    ``b`` to its nearest row of ``a``. Blocked, so memory stays ``BLOCK x len(b)``.

    ``exclude_self``: ``a`` is ``b``; a row is not its own neighbour (leave-one-out).
    """
    n, m = len(a), len(b)
    best_a = np.full(n, -np.inf, dtype=np.float32)
    arg_a = np.zeros(n, dtype=np.int64)
    best_b = np.full(m, -np.inf, dtype=np.float32)
    for s in range(0, n, BLOCK):
        sims = a[s : s + BLOCK] @ b.T
        if exclude_self:
            idx = np.arange(s, min(s + BLOCK, n))
            sims[idx - s, idx] = -np.inf
        arg = sims.argmax(axis=1)
        arg_a[s : s + BLOCK] = arg
        best_a[s : s + BLOCK] = sims[np.arange(len(arg)), arg]
        if m:
            np.maximum(best_b, sims.max(axis=0), out=best_b)
    dist_a = np.clip(1.0 - best_a.astype(np.float64), 0.0, 2.0)
    dist_b = np.clip(1.0 - best_b.astype(np.float64), 0.0, 2.0)
    return dist_a, arg_a, dist_b


def coverage_ci(
    prod_dist: np.ndarray,
    loo_dist: np.ndarray,
    quantile: float,
    *,
    n_boot: int,
    seed: int,
    fixed_threshold: float | None = None,
    level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap interval of the covered share, resampling both the eval set (which moves the calibrated
    threshold) and production. For a threshold t the resampled production count is exactly
    Binomial(N, F(t)), F the empirical CDF of production distances, so no N x n_boot index matrix is drawn."""
    rng = np.random.default_rng(seed)
    n = len(prod_dist)
    sorted_prod = np.sort(prod_dist)
    if fixed_threshold is None:
        idx = rng.integers(0, len(loo_dist), size=(n_boot, len(loo_dist)))
        taus = np.quantile(loo_dist[idx], quantile, axis=1)
    else:
        taus = np.full(n_boot, fixed_threshold)
    p = np.searchsorted(sorted_prod, taus, side="right") / n
    cov = rng.binomial(n, p) / n
    tail = (1 - level) / 2
    lo, hi = np.quantile(cov, [tail, 1 - tail])
    return float(lo), float(hi)


#: the eval-score quantiles at which ``method="mixture"`` compares production with eval
MIXTURE_QUANTILES = (0.5, 0.95)


def mixture_coverage(
    prod_score: np.ndarray, eval_score: np.ndarray, qs: Sequence[float] = MIXTURE_QUANTILES
) -> float:
    """Share of production the eval distribution explains (a mixture-proportion estimate).

    Production = (1 - pi) x eval-like + pi x new traffic. Scores rise with "production, not eval", so at the
    eval scores' ``q`` quantile t: P_prod(s <= t) = (1 - pi) q + pi P_new(s <= t) >= (1 - pi) q, with
    equality when new traffic scores above t. Each q bounds 1 - pi from above; the estimate is the tightest,
    min(1, min_q P_prod(s <= t_q) / q). The median needs the new traffic above half the eval set only; the
    0.95 quantile is the steadier bound when the new traffic lies above nearly all of it.
    """
    ts = np.quantile(eval_score, qs)
    return float(min(1.0, min(np.mean(prod_score <= t) / q for t, q in zip(ts, qs))))


def mixture_ci(
    prod_score: np.ndarray, eval_score: np.ndarray, *, n_boot: int, seed: int,
    qs: Sequence[float] = MIXTURE_QUANTILES, level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap interval of :func:`mixture_coverage`, resampling eval (which moves the t_q) and production.

    For given t_q the resampled production counts in the bins they cut are exactly multinomial with the
    empirical bin shares, so no N x n_boot index matrix is drawn."""
    rng = np.random.default_rng(seed)
    n, qs_a = len(prod_score), np.asarray(qs, dtype=float)
    sorted_prod = np.sort(prod_score)
    idx = rng.integers(0, len(eval_score), size=(n_boot, len(eval_score)))
    ts = np.quantile(eval_score[idx], qs_a, axis=1).T  # n_boot x len(qs)
    ts = np.sort(ts, axis=1)
    order = np.argsort(qs_a)
    cdf = np.searchsorted(sorted_prod, ts, side="right") / n  # n_boot x len(qs), non-decreasing
    probs = np.diff(np.concatenate([np.zeros((n_boot, 1)), cdf, np.ones((n_boot, 1))], axis=1), axis=1)
    counts = np.stack([rng.multinomial(n, np.clip(pr, 0, None) / np.clip(pr, 0, None).sum()) for pr in probs])
    boot_cdf = np.cumsum(counts, axis=1)[:, :-1] / n
    est = np.minimum(1.0, (boot_cdf / qs_a[order]).min(axis=1))
    tail = (1 - level) / 2
    lo, hi = np.quantile(est, [tail, 1 - tail])
    return float(lo), float(hi)


def rank_threshold(score: np.ndarray, covered_share: float) -> float:
    """The score at or under which ``round(covered_share * n)`` units lie: the most eval-like ones."""
    k = round(covered_share * len(score))
    srt = np.sort(score)
    if k <= 0:
        return float(srt[0] - 1.0)
    return float(srt[k - 1])


def new_traffic_fdr(prod_score: np.ndarray, eval_score: np.ndarray, covered_share: float) -> np.ndarray:
    """Estimated false-discovery rate of calling each production unit, and every unit scoring at least as
    high, new traffic: the expected number of eval-like units among them over their number.

    Production = ``covered_share`` x eval-like + the rest new, and eval-like production units score like
    the eval units' own out-of-fold scores, so of the N production units about
    ``covered_share * N * P_eval(score >= s)`` eval-like ones score at least s. Made monotone (a unit's
    value is the least over the cuts that include it, as in Benjamini-Hochberg's step-up), capped at 1.
    """
    n = len(prod_score)
    if n == 0:
        return np.zeros(0)
    order = np.argsort(-prod_score, kind="stable")
    ps = prod_score[order]
    above_eval = 1.0 - np.searchsorted(np.sort(eval_score), ps, side="left") / len(eval_score)
    # units tied at one score enter together: count every unit scoring >= s
    n_at_least = np.searchsorted(-ps, -ps, side="right")
    raw = covered_share * n * above_eval / n_at_least
    step_up = np.minimum.accumulate(raw[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(step_up, 1.0)
    return out


def mmd_test(x: np.ndarray, y: np.ndarray, *, n_perm: int, seed: int, max_n: int = 1000) -> dict[str, float]:
    """Two-sample MMD test (Gaussian kernel, median-heuristic bandwidth) with a permutation p-value.

    Each sample is subsampled (seeded) to at most ``max_n`` rows. ``effect`` is the unbiased MMD^2
    (0 when the two samples come from one distribution); ``p_value`` = (1 + #perm >= observed) / (1 + n_perm)
    for the biased statistic, which the permutations treat exactly (any statistic gives a valid test).
    """
    rng = np.random.default_rng(seed)
    if len(x) > max_n:
        x = x[np.sort(rng.choice(len(x), max_n, replace=False))]
    if len(y) > max_n:
        y = y[np.sort(rng.choice(len(y), max_n, replace=False))]
    m, n = len(x), len(y)
    z = np.vstack([x, y]).astype(np.float64)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    off = d2[np.triu_indices(len(z), k=1)]
    med = float(np.median(off[off > 0])) if np.any(off > 0) else 1.0
    k = np.exp(-d2 / med)  # bandwidth 2*sigma^2 = median squared distance
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    mmd2_u = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )
    w = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
    observed = float(w @ k @ w)
    perms = np.stack([w[rng.permutation(m + n)] for _ in range(n_perm)])
    stats = np.einsum("ij,ij->i", perms @ k, perms)
    p = (1 + int(np.sum(stats >= observed - 1e-12))) / (1 + n_perm)
    return {"p_value": p, "effect": float(mmd2_u), "n_eval": m, "n_window": n}


# ------------------------------------------------------------------ clusters and labels
_TOKEN = re.compile(r"[a-z][a-z0-9'-]{2,}")


def cluster(vecs: np.ndarray, *, seed: int, max_clusters: int = 20, fit_max: int = 5000) -> np.ndarray:
    """K-means labels of unit vectors, k = round(sqrt(n / 2)) capped at ``max_clusters`` (1 for tiny sets).

    Fitted on at most ``fit_max`` rows (seeded sample) and applied to all.
    """
    from sklearn.cluster import KMeans

    n = len(vecs)
    k = int(min(max_clusters, max(1, round(np.sqrt(n / 2)))))
    if k <= 1 or n < 3:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    fit = vecs if n <= fit_max else vecs[np.sort(rng.choice(n, fit_max, replace=False))]
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(fit.astype(np.float64))
    return km.predict(vecs.astype(np.float64)).astype(np.int64)


def _doc_terms(text: str, stop: frozenset[str]) -> set[str]:
    return {t.strip("'-") for t in _TOKEN.findall(text.lower()) if t.strip("'-") not in stop and len(t) > 2}


def distinctive_terms(
    groups: Sequence[Sequence[str]], rest: Sequence[str], *, top: int = 4
) -> list[list[str]]:
    """Top terms of each group against every other text (class-based TF-IDF over document frequencies):

    score(t, g) = df_g(t)/|g| * log((N + 1) / (df_all(t) + 1)), ``N`` all texts of all groups plus ``rest``.
    A term must occur in two texts of the group when some term does (else one).
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop = frozenset(ENGLISH_STOP_WORDS)
    group_df = []
    total: dict[str, int] = {}
    for g in groups:
        df: dict[str, int] = {}
        for text in g:
            for t in _doc_terms(text, stop):
                df[t] = df.get(t, 0) + 1
        group_df.append(df)
        for t, c in df.items():
            total[t] = total.get(t, 0) + c
    for text in rest:
        for t in _doc_terms(text, stop):
            if t in total:
                total[t] += 1
    n_all = sum(len(g) for g in groups) + len(rest)
    out = []
    for g, df in zip(groups, group_df):
        floor = 2 if any(c >= 2 for c in df.values()) else 1
        scored = [
            (-(c / len(g)) * np.log((n_all + 1) / (total[t] + 1)), t) for t, c in df.items() if c >= floor
        ]
        out.append([t for _, t in sorted(scored)[:top]])
    return out


def pca_2d(vecs: np.ndarray) -> np.ndarray:
    """First two principal components (sign fixed so the largest loading is positive)."""
    centred = vecs - vecs.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return centred @ (comps * signs[:, None]).T


def domain_scores(
    e: np.ndarray, p: np.ndarray, *, seed: int, folds: int = 5, fit_max: int = 5000, c: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold logits of a logistic regression telling production (1) from eval (0) units.

    Every unit is scored by a model that never saw it (``folds``-fold cross-fitting, balanced class
    weights); each fold's model trains on at most ``fit_max`` units of each side (seeded sample).
    High score = looks like production and unlike anything in the eval set.
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    fe = rng.permutation(len(e)) % folds
    fp = rng.permutation(len(p)) % folds
    se, sp = np.zeros(len(e)), np.zeros(len(p))
    for f in range(folds):
        tr_e, tr_p = np.flatnonzero(fe != f), np.flatnonzero(fp != f)
        if len(tr_e) > fit_max:
            tr_e = np.sort(rng.choice(tr_e, fit_max, replace=False))
        if len(tr_p) > fit_max:
            tr_p = np.sort(rng.choice(tr_p, fit_max, replace=False))
        x = np.vstack([e[tr_e], p[tr_p]]).astype(np.float64)
        y = np.r_[np.zeros(len(tr_e)), np.ones(len(tr_p))]
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(x, y)
        se[fe == f] = model.decision_function(e[fe == f].astype(np.float64))
        sp[fp == f] = model.decision_function(p[fp == f].astype(np.float64))
    return se, sp
