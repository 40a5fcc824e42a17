"""Corpus-level model share from the per-record detector's decisions and its known error rates.

Adjusted classify-and-count (Forman 2008): if the detector calls a share ``c`` of the scoreable
records "model", and it calls human text "model" at rate FPR and model text at rate TPR, then
``c = FPR + a (TPR - FPR)`` and the model share is ``a = (c - FPR) / (TPR - FPR)``. It needs only
the detector's error rates, which every trained detector stores (``metrics.json``: out of fold,
pooled and per training domain), so it works with whichever detector ships.

The rates are not constant: on its training domains the shipped detector's recall ranges from under
10% (news continuations) to about 50% (instruction answers), and its false-positive rate from 0 to
5%. A batch from a domain the detector never saw can sit anywhere in that range, so the interval
takes both the sampling error of ``c`` (seeded bootstrap of the decisions) and that range into
account: the low end uses the highest FPR and TPR, the high end the lowest. When the interval is too
wide to support a decision (wider than ``MAX_WIDTH``), or too few records are long enough to score,
``status`` is ``unreliable`` with the reason, and the gate treats the check as "cannot tell"
(``when_unreliable`` in the gate file).

Goodness of fit. Both estimators assume the batch's scores are a mixture of the reference human and
model score distributions. The detector stores those distributions (``metrics.json`` ->
``score_reference``: out-of-fold score histograms per training domain and class, quintile bins), and
:func:`mixture_fit` fits ``(1 - a) H + a M`` for every pair of one training domain's human scores
``H`` and one training domain's model scores ``M`` (pooled included: a batch of one generator is not
the pooled model distribution) and tests each fit (G statistic against a parametric bootstrap that
also redraws the finite references). The interval is widened to hold the mixture interval of every
pair that fits (p >= ``GOF_LEVEL``): a batch that looks like news to the detector is also read with
news' score distributions. A fit that passes does not prove the estimate right (held-out biomed
human text fits other domains' model scores at a wrong share), which is why the interval keeps the
error-rate range. A batch that no pair fits is reported (``fit.pairs_fitting`` 0) but not made
``unreliable`` on that ground alone: measured, GPT-4 AlpacaEval answers fit none of the 42 pairs
(their scores sit between the references' human and model modes) while every estimator and the
error-rate interval read them correctly as model text, so a hard goodness-of-fit rule would turn the
clearest model batch into "cannot tell".

Alternatives measured next to it in ``bench/origin.py`` (corpus-estimate table): the Liang et al.
(2024) word-occurrence mixture MLE (``provaudit.mixture``; collapses to 1.0 on human text whose
vocabulary its reference never saw, e.g. CS224N abstracts) and EM over the calibrated posteriors
(Saerens et al. 2002; equivalent to the mixture MLE over the detector's likelihood ratios, biased
when the calibration does not transfer to a new domain).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GOF_LEVEL = 0.01         # a pair's mixture "explains" the batch when its goodness-of-fit p-value is at least this
GOF_BOOT = 100           # parametric bootstrap draws of the goodness-of-fit test (and of each mixture interval)
N_BINS = 5               # score histogram bins (edges: quintiles of the pooled out-of-fold scores)
_GRID = np.linspace(0.0, 1.0, 201)
MAX_WIDTH = 0.5          # an interval wider than this cannot support a pass/fail decision
MIN_SCORED = 20          # fewer scoreable records: no estimate
MIN_DOMAIN_TEXTS = 30    # a training domain's rate enters the range only with this many texts
CI = 0.95


@dataclass(frozen=True)
class ErrorRates:
    """The detector's decision error rates: pooled (point estimate) and the range over domains."""

    fpr: float
    tpr: float
    fpr_range: tuple[float, float]
    tpr_range: tuple[float, float]
    source: str
    tpr_domains: tuple[str, str] = ("", "")  # the domains with the lowest and highest recall

    def to_dict(self) -> dict[str, Any]:
        return {"fpr": round(self.fpr, 4), "tpr": round(self.tpr, 4),
                "fpr_range": [round(v, 4) for v in self.fpr_range],
                "tpr_range": [round(v, 4) for v in self.tpr_range], "source": self.source,
                "tpr_domains": list(self.tpr_domains)}


def rates_from_scores(y: np.ndarray, p: np.ndarray, threshold: float, domains: np.ndarray | None = None,
                      source: str = "out-of-fold scores") -> ErrorRates:
    """Error rates of ``p >= threshold`` from labelled (out-of-fold) scores, pooled and per domain."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    rows = []
    if domains is not None:
        domains = np.asarray(domains, dtype=object)
        for d in sorted(set(domains.tolist())):
            sel = domains == d
            h, m = sel & (y == 0), sel & (y == 1)
            rows.append({"domain": str(d), "n_human": int(h.sum()), "n_model": int(m.sum()),
                         "fpr_at_threshold": float((p[h] >= threshold).mean()) if h.any() else None,
                         "tpr_at_threshold": float((p[m] >= threshold).mean()) if m.any() else None})
    pooled = {"fpr_at_threshold": float((p[y == 0] >= threshold).mean()),
              "tpr_at_threshold": float((p[y == 1] >= threshold).mean())}
    return rates_from_metrics(pooled, rows, source)


def rates_from_metrics(pooled: dict[str, Any], per_domain: list[dict[str, Any]], source: str) -> ErrorRates:
    fpr, tpr = float(pooled["fpr_at_threshold"]), float(pooled["tpr_at_threshold"])
    fprs = [float(r["fpr_at_threshold"]) for r in per_domain
            if r.get("fpr_at_threshold") is not None and r.get("n_human", 0) >= MIN_DOMAIN_TEXTS]
    tprs = [(float(r["tpr_at_threshold"]), str(r["domain"])) for r in per_domain
            if r.get("tpr_at_threshold") is not None and r.get("n_model", 0) >= MIN_DOMAIN_TEXTS]
    lo_t, hi_t = (min(tprs), max(tprs)) if tprs else ((tpr, "pooled"), (tpr, "pooled"))
    return ErrorRates(fpr=fpr, tpr=tpr, fpr_range=(min([fpr, *fprs]), max([fpr, *fprs])),
                      tpr_range=(min(tpr, lo_t[0]), max(tpr, hi_t[0])), source=source,
                      tpr_domains=(lo_t[1], hi_t[1]))


@dataclass(frozen=True)
class ScoreReference:
    """Out-of-fold detector scores per training domain and class, as histograms over shared bins."""

    edges: tuple[float, ...]                              # N_BINS - 1 interior edges on the score
    hist: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]  # domain -> (human counts, model counts)

    def to_dict(self) -> dict[str, Any]:
        return {"edges": [round(e, 6) for e in self.edges],
                "hist": {d: {"human": list(h), "model": list(m)} for d, (h, m) in sorted(self.hist.items())}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreReference:
        return cls(tuple(float(e) for e in d["edges"]),
                   {k: (tuple(int(c) for c in v["human"]), tuple(int(c) for c in v["model"]))
                    for k, v in d["hist"].items()})

    def counts(self, p: np.ndarray) -> np.ndarray:
        return np.bincount(np.searchsorted(np.asarray(self.edges), np.asarray(p, float), side="right"),
                           minlength=len(self.edges) + 1)


def score_reference(y: np.ndarray, p: np.ndarray, domains: np.ndarray, n_bins: int = N_BINS) -> ScoreReference:
    """The reference a detector stores: bins at the quantiles of its pooled out-of-fold scores ``p``,
    each training domain's human and model counts (zeros for a class it lacks), and ``pooled`` (their sum)."""
    y, p, domains = np.asarray(y, int), np.asarray(p, float), np.asarray(domains, dtype=object)
    edges = tuple(float(e) for e in np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1])))
    ref = ScoreReference(edges, {})
    hist = {"pooled": (tuple(int(c) for c in ref.counts(p[y == 0])), tuple(int(c) for c in ref.counts(p[y == 1])))}
    for d in sorted(set(domains.tolist())):   # one-class domains too (instruction answers: model only)
        h, m = p[(domains == d) & (y == 0)], p[(domains == d) & (y == 1)]
        hist[str(d)] = (tuple(int(c) for c in ref.counts(h)), tuple(int(c) for c in ref.counts(m)))
    return ScoreReference(edges, hist)


def _density(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, float)
    return (c + 0.5) / (c.sum(axis=-1, keepdims=True) + 0.5 * c.shape[-1])


#: the grid is searched coarse (every ``_STEP``-th point) then fine (the ``_STEP`` points either side of the
#: coarse maximum): the log-likelihood is concave in ``a`` (a sum of logs of affine functions), so its grid
#: maximum lies next to the coarse one and the search returns the full grid's first maximum, in 42 evaluations
#: instead of 201 (the bootstrap calls this on pairs x draws batches at every scan)
_STEP = 10
_COARSE = np.arange(0, len(_GRID), _STEP)
_WINDOW = np.arange(-_STEP, _STEP + 1)


def _fit_alpha(c: np.ndarray, h: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned mixture MLE on a grid, vectorised over leading axes: (alpha, fitted bin probs, G statistic)."""
    c, h, m = np.asarray(c, float), np.asarray(h, float), np.asarray(m, float)

    def loglik(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = _GRID[idx][..., None]                                          # (..., k, 1)
        q = (1 - a) * h[..., None, :] + a * m[..., None, :]                # (..., k, bins)
        return (c[..., None, :] * np.log(q)).sum(-1), q

    lead = np.broadcast_shapes(c.shape[:-1], h.shape[:-1], m.shape[:-1])
    coarse, _ = loglik(np.broadcast_to(_COARSE, (*lead, len(_COARSE))))
    centre = _COARSE[np.argmax(coarse, axis=-1)]
    idx = np.clip(centre[..., None] + _WINDOW, 0, len(_GRID) - 1)           # (..., 2 * _STEP + 1)
    ll, q = loglik(idx)
    j = np.argmax(ll, axis=-1)[..., None]
    i = np.take_along_axis(idx, j, axis=-1)[..., 0]
    qb = np.take_along_axis(q, j[..., None], axis=-2)[..., 0, :]
    n = c.sum(-1, keepdims=True)
    g = 2 * np.where(c > 0, c * np.log(np.maximum(c, 1e-12) / (n * qb)), 0.0).sum(-1)
    return _GRID[i], qb, g


def mixture_fit(p: np.ndarray, ref: ScoreReference, *, n_boot: int = GOF_BOOT, seed: int = 0) -> dict[str, Any]:
    """Can the batch's scores be a mixture of human and model text the detector was measured on?

    For every pair (one training domain's human scores ``H``, one training domain's model scores ``M``;
    each with ``MIN_DOMAIN_TEXTS`` texts, ``pooled`` included), fit ``(1 - a) H + a M`` to the batch's
    score histogram (binned MLE) and test the fit: G statistic against a parametric bootstrap that
    redraws the batch from the fitted mixture and both references from their own counts. A pair
    "fits" when its p-value is at least ``GOF_LEVEL``; ``alpha_range`` spans the bootstrap intervals
    of ``a`` (batch and references redrawn) over the fitting pairs. Model text of one generator is not
    the pooled model distribution, so pairs rather than one pooled mixture: GPT-4 answers fit
    (any human, instruction answers), held-out news human text fits no pair."""
    c = ref.counts(p).astype(float)
    n = int(c.sum())
    tail = (1 - CI) / 2
    rng = np.random.default_rng(seed)
    side: dict[int, dict[str, np.ndarray]] = {0: {}, 1: {}}
    for d, counts in sorted(ref.hist.items()):
        for k in (0, 1):
            if sum(counts[k]) >= MIN_DOMAIN_TEXTS:
                side[k][d] = np.asarray(counts[k])
    pairs = [(dh, dm) for dh in side[0] for dm in side[1]]
    if not pairs or n == 0:
        return {"level": GOF_LEVEL, "bins": len(ref.edges) + 1, "pairs_tested": 0, "pairs_fitting": 0,
                "best": None, "alpha_range": None}
    hc = np.stack([side[0][dh] for dh, _ in pairs])
    mc = np.stack([side[1][dm] for _, dm in pairs])
    h, m = _density(hc), _density(mc)                                   # (pairs, bins)
    a, q, g = _fit_alpha(np.broadcast_to(c, h.shape), h, m)            # (pairs,)
    size = (n_boot, len(pairs))
    hb = _density(rng.multinomial(hc.sum(1), h, size=size)).transpose(1, 0, 2)   # (pairs, boot, bins)
    mb = _density(rng.multinomial(mc.sum(1), m, size=size)).transpose(1, 0, 2)
    g_null = _fit_alpha(rng.multinomial(n, q, size=size).transpose(1, 0, 2).astype(float), hb, mb)[2]
    pv = (np.sum(g_null >= g[:, None], axis=1) + 1) / (n_boot + 1)
    a_boot = _fit_alpha(rng.multinomial(n, c / n, size=size).transpose(1, 0, 2).astype(float), hb, mb)[0]
    fit = pv >= GOF_LEVEL
    i = int(np.argmax(pv))
    best = {"human": pairs[i][0], "model": pairs[i][1], "alpha": round(float(a[i]), 4), "p_value": round(float(pv[i]), 4)}
    rng_a = None
    if fit.any():
        rng_a = [round(float(np.quantile(a_boot[fit], tail, axis=1).min()), 4),
                 round(float(np.quantile(a_boot[fit], 1 - tail, axis=1).max()), 4)]
    return {"level": GOF_LEVEL, "bins": len(ref.edges) + 1, "pairs_tested": len(pairs),
            "pairs_fitting": int(fit.sum()), "best": best, "alpha_range": rng_a}


def detector_score_reference(detector_dir: str | Path | None = None) -> ScoreReference | None:
    """The detector's stored score reference (``metrics.json`` -> ``score_reference``), or None."""
    from provaudit.origin.detector import DEFAULT_DETECTOR

    d = Path(detector_dir) if detector_dir is not None else DEFAULT_DETECTOR
    d = d.parent if d.suffix == ".json" else d
    metrics = d / "metrics.json"
    if not metrics.exists():
        return None
    sr = json.loads(metrics.read_text(encoding="utf-8")).get("score_reference")
    return ScoreReference.from_dict(sr) if sr else None


def detector_error_rates(detector_dir: str | Path | None = None) -> ErrorRates:
    """The shipped (or given) detector's stored error rates, from its ``metrics.json`` (texts of at
    least ``min_words`` words, out of fold); pooled rates from ``detector.json`` if that file is missing."""
    from provaudit.origin.detector import DEFAULT_DETECTOR, load_detector

    d = Path(detector_dir) if detector_dir is not None else DEFAULT_DETECTOR
    d = d.parent if d.suffix == ".json" else d
    metrics = d / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text(encoding="utf-8"))
        pooled = m.get("out_of_fold_min_words") or m["out_of_fold"]
        return rates_from_metrics(pooled, m.get("per_domain", []), f"{metrics.name} (out of fold, per domain)")
    det = load_detector(detector_dir)
    tm = det.meta.get("training_metrics") or {}
    if tm.get("fpr_at_threshold") is None or tm.get("tpr_at_threshold") is None:
        raise ValueError("the detector stores no error rates (fpr/tpr at threshold)")
    return rates_from_metrics(tm, [], "detector.json training_metrics (pooled only)")


def acc(c: float | np.ndarray, fpr: float, tpr: float) -> np.ndarray:
    """Adjusted classify-and-count, clipped to [0, 1]."""
    den = max(tpr - fpr, 1e-6)
    return np.clip((np.asarray(c, float) - fpr) / den, 0.0, 1.0)


def em_estimate(p_model: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """EM over calibrated posteriors (Saerens et al. 2002): with ``p_model`` calibrated at 1:1 prior
    odds, ``p / (1 - p)`` is each record's likelihood ratio and the prior that EM converges to is the
    maximiser of ``sum log((1 - a) + a r_i)`` (solved by bisection; ``counts``: bootstrap weights)."""
    from provaudit.mixture import mle_alpha

    q = np.clip(np.asarray(p_model, float), 1e-6, 1 - 1e-6)
    return mle_alpha(np.log(q) - np.log1p(-q), counts)


def corpus_estimate(p_model: np.ndarray, threshold: float, rates: ErrorRates, *, n_boot: int = 500,
                    seed: int = 0, reference: ScoreReference | None = None) -> dict[str, Any]:
    """Model share of a batch from its scoreable records' calibrated ``p_model`` (JSON-ready dict).

    ``alpha`` is EM over the calibrated posteriors (efficient when the calibration holds);
    ``acc`` the adjusted classify-and-count with the pooled error rates. The interval
    ``[ci_low, ci_high]`` covers both: EM's bootstrap interval and the classify-and-count interval
    that combines the bootstrap of the tagged share with the range of error rates across the
    detector's domains. ``status`` is ``unreliable`` (with ``reason``) when that interval is wider
    than ``MAX_WIDTH`` or fewer than ``MIN_SCORED`` records can be scored. With the detector's score
    ``reference``, ``fit`` holds :func:`mixture_fit` and the interval also holds every fitting pair's
    mixture interval (``fit`` is null without a reference).
    """
    p = np.asarray(p_model, float)
    n = int(p.size)
    base = {"method": "em_calibrated_posteriors+adjusted_classify_count", "n": n,
            "error_rates": rates.to_dict(), "threshold": round(float(threshold), 4), "fit": None}
    if n < MIN_SCORED:
        return {**base, "alpha": None, "ci_low": None, "ci_high": None, "acc": None, "em": None,
                "tagged_share": None, "status": "unreliable", "reliable": 0,
                "reason": f"only {n} records long enough to score (< {MIN_SCORED})"}
    tail = (1 - CI) / 2
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    hits = (p >= threshold).astype(float)
    c = float(hits.mean())
    boots_c = counts @ hits / n
    c_lo, c_hi = (float(v) for v in np.quantile(boots_c, [tail, 1 - tail]))
    if c == 0:  # a share of 0 (or 1) still has sampling error: the exact binomial bound
        c_hi = max(c_hi, 1 - tail ** (1 / n))
    if c == 1:
        c_lo = min(c_lo, tail ** (1 / n))
    a_acc = float(acc(c, rates.fpr, rates.tpr))
    acc_lo = float(acc(c_lo, rates.fpr_range[1], rates.tpr_range[1]))
    acc_hi = float(acc(c_hi, rates.fpr_range[0], rates.tpr_range[0]))
    a_em = float(em_estimate(p)[0])
    em_lo, em_hi = (float(v) for v in np.quantile(em_estimate(p, counts), [tail, 1 - tail]))
    lo = min(acc_lo, em_lo, a_em)
    hi = max(acc_hi, em_hi, a_em)
    fit = mixture_fit(p, reference, seed=seed) if reference is not None else None
    if fit is not None:
        base["fit"] = fit
        if fit["alpha_range"]:
            lo, hi = min(lo, fit["alpha_range"][0]), max(hi, fit["alpha_range"][1])
    out = {**base, "alpha": round(a_em, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4),
           "acc": round(a_acc, 4), "em": round(a_em, 4), "tagged_share": round(c, 4),
           "status": "ok", "reliable": 1, "reason": None}
    if hi - lo > MAX_WIDTH:
        out.update(status="unreliable", reliable=0, reason=(
            f"the detector's recall differs by domain ({rates.tpr_range[0]:.1%} on {rates.tpr_domains[0]} to "
            f"{rates.tpr_range[1]:.1%} on {rates.tpr_domains[1]}), so a tagged share of {c:.1%} fits a model "
            f"share anywhere in [{lo:.2f}, {hi:.2f}]"))
    return out


__all__ = [
    "GOF_LEVEL",
    "ErrorRates",
    "ScoreReference",
    "acc",
    "corpus_estimate",
    "detector_error_rates",
    "detector_score_reference",
    "em_estimate",
    "mixture_fit",
    "rates_from_metrics",
    "rates_from_scores",
    "score_reference",
]
