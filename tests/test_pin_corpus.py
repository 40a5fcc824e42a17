"""The corpus estimate (provaudit.origin.corpus) pinned to its documented definition.

Each expected value is recomputed here from the module docstring, not by calling the function under test:
error rates and their per-domain range (domains of 30+ texts only), the score reference's quintile bins
(a score on an edge counts in the upper bin) and its smoothed densities, the adjusted classify-and-count,
the EM estimate (the likelihood maximiser, via :func:`provaudit.mixture.mle_alpha`, pinned in its own
tests), and the whole ``corpus_estimate`` and ``mixture_fit`` outputs from the same seeded draws, with a
full-grid search standing in for the coarse-to-fine one.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from provaudit.mixture import mle_alpha
from provaudit.origin import corpus
from provaudit.origin.corpus import (
    CI,
    GOF_BOOT,
    GOF_LEVEL,
    MAX_WIDTH,
    MIN_DOMAIN_TEXTS,
    MIN_SCORED,
    ErrorRates,
    ScoreReference,
    acc,
    corpus_estimate,
    detector_error_rates,
    detector_score_reference,
    em_estimate,
    mixture_fit,
    rates_from_metrics,
    rates_from_scores,
    score_reference,
)

GRID = np.linspace(0.0, 1.0, 201)


def test_the_documented_constants() -> None:
    assert (GOF_LEVEL, GOF_BOOT, corpus.N_BINS, MAX_WIDTH, MIN_SCORED, MIN_DOMAIN_TEXTS, CI) == (
        0.01, 100, 5, 0.5, 20, 30, 0.95)


# ----------------------------------------------------------------------------------------------- error rates

def _dom(name: str, n_h: int, n_m: int, fpr: float | None, tpr: float | None) -> dict:
    return {"domain": name, "n_human": n_h, "n_model": n_m, "fpr_at_threshold": fpr, "tpr_at_threshold": tpr}


def test_rates_from_metrics_take_domains_of_30_texts_into_the_range() -> None:
    pooled = {"fpr_at_threshold": 0.02, "tpr_at_threshold": 0.4}
    per = [_dom("news", 30, 30, 0.05, 0.1), _dom("small", 29, 29, 0.3, 0.99), _dom("qa", 100, 100, 0.0, 0.6),
           _dom("none", 100, 100, None, None)]
    r = rates_from_metrics(pooled, per, "src")
    assert (r.fpr, r.tpr) == (0.02, 0.4)
    assert r.fpr_range == (0.0, 0.05) and r.tpr_range == (0.1, 0.6)   # "small" (29 texts) and "none" left out
    assert r.tpr_domains == ("news", "qa") and r.source == "src"
    # the pooled rate is always inside the range; without domains the range is the pooled rate, named so
    r2 = rates_from_metrics({"fpr_at_threshold": 0.2, "tpr_at_threshold": 0.9}, per[:1], "s")
    assert r2.fpr_range == (0.05, 0.2) and r2.tpr_range == (0.1, 0.9) and r2.tpr_domains == ("news", "news")
    r3 = rates_from_metrics(pooled, [], "s")
    assert r3.fpr_range == (0.02, 0.02) and r3.tpr_range == (0.4, 0.4) and r3.tpr_domains == ("pooled", "pooled")
    # a domain counts for a side only with 30 texts of that class
    r4 = rates_from_metrics(pooled, [_dom("h", 30, 29, 0.1, 0.95), _dom("m", 29, 30, 0.2, 0.3)], "s")
    assert r4.fpr_range == (0.02, 0.1) and r4.tpr_range == (0.3, 0.4) and r4.tpr_domains == ("m", "m")


def test_rates_from_scores_count_scores_at_the_threshold_as_model() -> None:
    y = np.array([0] * 30 + [1] * 30 + [0] * 2)
    p = np.r_[np.full(10, 0.5), np.full(20, 0.1), np.full(15, 0.5), np.full(15, 0.49), [0.9, 0.9]]
    dom = np.array(["a"] * 60 + ["b"] * 2)
    r = rates_from_scores(y, p, 0.5, dom, source="oof")
    assert r.fpr == pytest.approx(12 / 32) and r.tpr == pytest.approx(0.5) and r.source == "oof"
    assert r.fpr_range == (pytest.approx(1 / 3), pytest.approx(12 / 32))   # domain a: 10 of 30; b has 2 texts
    assert r.tpr_range == (0.5, 0.5) and r.tpr_domains == ("a", "a")
    bare = rates_from_scores(y, p, 0.5)
    assert bare.fpr_range == (bare.fpr, bare.fpr) and bare.source == "out-of-fold scores"


def test_error_rates_dict_rounds_to_four_places() -> None:
    r = ErrorRates(0.123456, 0.654321, (0.011111, 0.222226), (0.333333, 0.999999), "s", ("x", "y"))
    assert r.to_dict() == {"fpr": 0.1235, "tpr": 0.6543, "fpr_range": [0.0111, 0.2222],
                           "tpr_range": [0.3333, 1.0], "source": "s", "tpr_domains": ["x", "y"]}


# ------------------------------------------------------------------------------------------ score reference

def test_counts_put_a_score_on_an_edge_in_the_upper_bin() -> None:
    ref = ScoreReference((0.2, 0.4, 0.6, 0.8), {})
    c = ref.counts(np.array([0.0, 0.19, 0.2, 0.39, 0.4, 0.8, 1.0]))
    assert c.tolist() == [2, 2, 1, 0, 2]
    assert ref.counts(np.array([])).tolist() == [0, 0, 0, 0, 0]


def test_score_reference_bins_at_the_pooled_quintiles_per_domain_and_class() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(200)
    y = (np.arange(200) % 2).astype(int)
    dom = np.where(np.arange(200) < 120, "news", "qa").astype(object)
    dom[(dom == "qa") & (y == 0)] = "qa_model_only_elsewhere"
    ref = score_reference(y, p, dom)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, 6)[1:-1]))  # the quintiles
    assert ref.edges == tuple(float(e) for e in edges)

    def hist(sel: np.ndarray) -> tuple[int, ...]:
        return tuple(int(v) for v in np.bincount(np.searchsorted(edges, p[sel], side="right"), minlength=5))

    assert set(ref.hist) == {"pooled", "news", "qa", "qa_model_only_elsewhere"}
    assert ref.hist["pooled"] == (hist(y == 0), hist(y == 1))
    for d in ("news", "qa", "qa_model_only_elsewhere"):
        assert ref.hist[d] == (hist((dom == d) & (y == 0)), hist((dom == d) & (y == 1)))
    assert ref.hist["qa"][0] == (0, 0, 0, 0, 0)  # a one-class domain keeps zeros for the other class
    # repeated scores: the edges are the distinct quantiles
    tied = score_reference(np.array([0, 1] * 10), np.r_[np.zeros(10), np.ones(10)], np.array(["d"] * 20, dtype=object))
    assert tied.edges == tuple(float(e) for e in np.unique(np.quantile(np.r_[np.zeros(10), np.ones(10)],
                                                                          np.linspace(0, 1, 6)[1:-1])))
    back = ScoreReference.from_dict(ref.to_dict())
    assert back.hist == ref.hist and back.edges == tuple(round(e, 6) for e in ref.edges)


def test_density_is_add_a_half_smoothing() -> None:
    c = np.array([[0, 3, 1], [10, 0, 0]])
    assert corpus._density(c) == pytest.approx(np.array([[0.5, 3.5, 1.5], [10.5, 0.5, 0.5]])
                                               / np.array([[5.5], [11.5]]))


# --------------------------------------------------------------------------- classify-and-count and EM

def test_acc_clips_and_floors_its_denominator() -> None:
    assert float(acc(0.3, 0.1, 0.5)) == pytest.approx(0.5)
    assert float(acc(0.05, 0.1, 0.5)) == 0.0 and float(acc(0.9, 0.1, 0.5)) == 1.0
    # a detector no better than chance: the denominator is floored at 1e-6, not divided by 0 or negated
    assert float(acc(0.1 + 2e-7, 0.1, 0.1)) == pytest.approx(0.2)
    assert float(acc(0.1 + 2e-7, 0.1, 0.05)) == pytest.approx(0.2)
    assert acc(np.array([0.1, 0.3, 0.5]), 0.1, 0.5).tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_em_estimate_is_the_likelihood_maximiser_of_the_clipped_posteriors() -> None:
    p = np.array([0.0, 1.0, 0.2, 0.7, 0.9, 0.5, 0.35])
    q = np.clip(p, 1e-6, 1 - 1e-6)
    lr = np.log(q) - np.log1p(-q)
    assert em_estimate(p)[0] == pytest.approx(mle_alpha(lr)[0], abs=1e-12)
    w = np.array([[1, 0, 2, 1, 1, 1, 1], [0, 3, 0, 1, 1, 1, 1]])
    assert em_estimate(p, w) == pytest.approx(mle_alpha(lr, w), abs=1e-12)
    # by grid: sum log((1 - a) + a r)
    ll = [np.log((1 - a) + a * np.exp(lr)).sum() for a in np.linspace(0, 1, 20001)]
    assert em_estimate(p)[0] == pytest.approx(np.linspace(0, 1, 20001)[int(np.argmax(ll))], abs=1e-4)


# ------------------------------------------------------------------------------------- corpus_estimate

def _reference_estimate(p: np.ndarray, threshold: float, rates: ErrorRates, n_boot: int, seed: int) -> dict:
    """corpus_estimate without a score reference, from its docstring and the module docstring."""
    n = p.size
    tail = (1 - CI) / 2
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    hits = (p >= threshold).astype(float)
    c = hits.mean()
    c_lo, c_hi = np.quantile(counts @ hits / n, [tail, 1 - tail])
    if c == 0:
        c_hi = max(c_hi, 1 - tail ** (1 / n))
    if c == 1:
        c_lo = min(c_lo, tail ** (1 / n))

    def cc(v: float, fpr: float, tpr: float) -> float:
        return min(max((v - fpr) / max(tpr - fpr, 1e-6), 0.0), 1.0)

    q = np.clip(p, 1e-6, 1 - 1e-6)
    lr = np.log(q) - np.log1p(-q)
    em = float(mle_alpha(lr)[0])
    em_lo, em_hi = np.quantile(mle_alpha(lr, counts), [tail, 1 - tail])
    lo = min(cc(c_lo, rates.fpr_range[1], rates.tpr_range[1]), em_lo, em)
    hi = max(cc(c_hi, rates.fpr_range[0], rates.tpr_range[0]), em_hi, em)
    return {"alpha": round(em, 4), "em": round(em, 4), "acc": round(cc(c, rates.fpr, rates.tpr), 4),
            "tagged_share": round(c, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4),
            "unreliable": hi - lo > MAX_WIDTH, "lo": lo, "hi": hi, "c": c}


RATES = ErrorRates(0.03, 0.45, (0.0, 0.05), (0.3, 0.5), "test", ("news", "qa"))


@pytest.mark.parametrize(("kind", "n", "seed"), [("mixed", 60, 0), ("mixed", 20, 3), ("human", 40, 1),
                                                  ("model", 25, 2), ("mixed", 200, 5)])
def test_corpus_estimate_equals_its_definition(kind: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    p = {"mixed": rng.random(n), "human": rng.random(n) * 0.4, "model": 0.6 + rng.random(n) * 0.4}[kind]
    got = corpus_estimate(p, 0.5, RATES, n_boot=300, seed=seed)
    ref = _reference_estimate(p, 0.5, RATES, 300, seed)
    for k in ("alpha", "em", "acc", "tagged_share", "ci_low", "ci_high"):
        assert got[k] == pytest.approx(ref[k], abs=1e-9), k
    assert got["n"] == n and got["threshold"] == 0.5 and got["fit"] is None
    assert got["method"] == "em_calibrated_posteriors+adjusted_classify_count"
    assert got["error_rates"] == RATES.to_dict()
    if ref["unreliable"]:
        assert (got["status"], got["reliable"]) == ("unreliable", 0)
        assert got["reason"] == (f"the detector's recall differs by domain (30.0% on news to 50.0% on qa), so a tagged "
                                 f"share of {ref['c']:.1%} fits a model share anywhere in "
                                 f"[{ref['lo']:.2f}, {ref['hi']:.2f}]")
    else:
        assert (got["status"], got["reliable"], got["reason"]) == ("ok", 1, None)


def test_an_all_human_or_all_model_tagging_keeps_the_binomial_bound() -> None:
    n = 40
    none = corpus_estimate(np.full(n, 0.1), 0.5, ErrorRates(0.0, 0.9, (0.0, 0.0), (0.9, 0.9), "s"), n_boot=200)
    bound = 1 - 0.025 ** (1 / n)                    # the exact upper bound of a share of 0 in 40
    # the bootstrap of forty 0s is only 0s; EM's interval is [0, 0]: the bound through the lowest recall decides
    assert none["tagged_share"] == 0.0 and none["ci_low"] == 0.0 and none["ci_high"] == round(bound / 0.9, 4)
    every = corpus_estimate(np.full(n, 0.9), 0.5, ErrorRates(0.0, 1.0, (0.0, 0.0), (1.0, 1.0), "s"), n_boot=200)
    assert every["tagged_share"] == 1.0 and every["ci_low"] == round(0.025 ** (1 / n), 4) and every["ci_high"] == 1.0


def test_twenty_records_are_enough_nineteen_are_not() -> None:
    few = corpus_estimate(np.full(19, 0.7), 0.5, RATES)
    assert few == {"method": "em_calibrated_posteriors+adjusted_classify_count", "n": 19,
                   "error_rates": RATES.to_dict(), "threshold": 0.5, "fit": None, "alpha": None, "ci_low": None,
                   "ci_high": None, "acc": None, "em": None, "tagged_share": None, "status": "unreliable",
                   "reliable": 0, "reason": "only 19 records long enough to score (< 20)"}
    assert corpus_estimate(np.full(20, 0.7), 0.5, RATES)["alpha"] is not None


def test_an_interval_exactly_max_width_wide_is_still_reliable(monkeypatch) -> None:
    p = np.random.default_rng(4).random(50)
    ref = _reference_estimate(p, 0.5, RATES, 200, 0)
    width = ref["hi"] - ref["lo"]
    monkeypatch.setattr(corpus, "MAX_WIDTH", width)
    assert corpus_estimate(p, 0.5, RATES, n_boot=200)["status"] == "ok"
    monkeypatch.setattr(corpus, "MAX_WIDTH", np.nextafter(width, 0))
    assert corpus_estimate(p, 0.5, RATES, n_boot=200)["status"] == "unreliable"


# -------------------------------------------------------------------------------------------- mixture fit

def _full_grid_fit(c: np.ndarray, h: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The binned mixture MLE over all 201 grid points (first maximum), its bin probabilities and G."""
    a = GRID[:, None]
    q = (1 - a) * h[..., None, :] + a * m[..., None, :]                 # (..., 201, bins)
    ll = (c[..., None, :] * np.log(q)).sum(-1)
    j = np.argmax(ll, axis=-1)
    qb = np.take_along_axis(q, j[..., None, None], axis=-2)[..., 0, :]
    n = c.sum(-1, keepdims=True)
    g = 2 * np.where(c > 0, c * np.log(np.maximum(c, 1e-12) / (n * qb)), 0.0).sum(-1)
    return GRID[j], qb, g


def _dens(c: np.ndarray) -> np.ndarray:
    return (c + 0.5) / (c.sum(-1, keepdims=True) + 0.5 * c.shape[-1])


def _reference_fit(p: np.ndarray, ref: ScoreReference, n_boot: int, seed: int) -> dict:
    edges = np.asarray(ref.edges)
    c = np.bincount(np.searchsorted(edges, p, side="right"), minlength=len(edges) + 1).astype(float)
    n = int(c.sum())
    sides = [{d: np.asarray(v[k]) for d, v in sorted(ref.hist.items()) if sum(v[k]) >= MIN_DOMAIN_TEXTS}
             for k in (0, 1)]
    pairs = [(dh, dm) for dh in sides[0] for dm in sides[1]]
    if not pairs or n == 0:
        return {"level": GOF_LEVEL, "bins": len(edges) + 1, "pairs_tested": 0, "pairs_fitting": 0, "best": None,
                "alpha_range": None}
    rng = np.random.default_rng(seed)
    hc = np.stack([sides[0][a] for a, _ in pairs])
    mc = np.stack([sides[1][b] for _, b in pairs])
    h, m = _dens(hc), _dens(mc)
    a, q, g = _full_grid_fit(np.broadcast_to(c, h.shape), h, m)
    size = (n_boot, len(pairs))
    hb = _dens(rng.multinomial(hc.sum(1), h, size=size)).transpose(1, 0, 2)
    mb = _dens(rng.multinomial(mc.sum(1), m, size=size)).transpose(1, 0, 2)
    g_null = _full_grid_fit(rng.multinomial(n, q, size=size).transpose(1, 0, 2).astype(float), hb, mb)[2]
    pv = (np.sum(g_null >= g[:, None], axis=1) + 1) / (n_boot + 1)
    a_boot = _full_grid_fit(rng.multinomial(n, c / n, size=size).transpose(1, 0, 2).astype(float), hb, mb)[0]
    fit = pv >= GOF_LEVEL
    i = int(np.argmax(pv))
    rng_a = None
    if fit.any():
        rng_a = [round(float(np.quantile(a_boot[fit], 0.025, axis=1).min()), 4),
                 round(float(np.quantile(a_boot[fit], 0.975, axis=1).max()), 4)]
    return {"level": GOF_LEVEL, "bins": len(edges) + 1, "pairs_tested": len(pairs), "pairs_fitting": int(fit.sum()),
            "best": {"human": pairs[i][0], "model": pairs[i][1], "alpha": round(float(a[i]), 4),
                     "p_value": round(float(pv[i]), 4)}, "alpha_range": rng_a}


REF = ScoreReference((0.2, 0.4, 0.6, 0.8), {
    "pooled": ((60, 40, 20, 10, 5), (5, 10, 20, 40, 60)),
    "news": ((20, 10, 5, 3, 2), (10, 8, 6, 4, 2)),          # 40 human, 30 model texts
    "qa": ((0, 0, 0, 0, 0), (1, 2, 5, 10, 12)),              # model only
    "tiny": ((10, 5, 5, 5, 4), (3, 3, 3, 3, 3)),             # 29 human, 15 model texts: in no pair
})


@pytest.mark.parametrize(("share", "n", "seed"), [(0.0, 80, 0), (0.4, 120, 1), (1.0, 60, 2), (0.7, 25, 3)])
def test_mixture_fit_equals_its_definition(share: float, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = round(share * n)
    p = np.r_[rng.beta(2, 5, n - k), rng.beta(5, 2, k)]
    got = mixture_fit(p, REF, n_boot=60, seed=seed)
    assert got == _reference_fit(p, REF, 60, seed)
    assert got["pairs_tested"] == 6  # human: pooled, news; model: news, pooled, qa


def test_mixture_fit_with_no_pair_or_no_score() -> None:
    empty = {"level": 0.01, "bins": 5, "pairs_tested": 0, "pairs_fitting": 0, "best": None, "alpha_range": None}
    assert mixture_fit(np.array([]), REF) == empty
    only_tiny = ScoreReference(REF.edges, {"tiny": REF.hist["tiny"]})
    assert mixture_fit(np.array([0.1, 0.9]), only_tiny) == empty
    # exactly 30 texts of a side make a pair
    thirty = ScoreReference(REF.edges, {"d": ((6, 6, 6, 6, 6), (6, 6, 6, 6, 6))})
    assert mixture_fit(np.array([0.1, 0.9, 0.5]), thirty, n_boot=20)["pairs_tested"] == 1


def test_a_fitting_pairs_range_widens_the_estimate() -> None:
    rng = np.random.default_rng(9)
    p = np.r_[rng.beta(2, 5, 60), rng.beta(5, 2, 40)]
    plain = corpus_estimate(p, 0.5, RATES, n_boot=200, seed=2)
    ce = corpus_estimate(p, 0.5, RATES, n_boot=200, seed=2, reference=REF)
    fit = _reference_fit(p, REF, GOF_BOOT, 2)
    assert ce["fit"] == fit and fit["alpha_range"] is not None
    assert ce["ci_low"] == min(plain["ci_low"], fit["alpha_range"][0])
    assert ce["ci_high"] == max(plain["ci_high"], fit["alpha_range"][1])
    assert ce["status"] == ("unreliable" if ce["ci_high"] - ce["ci_low"] > MAX_WIDTH else "ok")


# ------------------------------------------------------------------------------------ what a detector stores

SHIPPED = Path(corpus.__file__).parent / "data" / "detector"


def test_the_shipped_detectors_rates_are_its_out_of_fold_rates_on_long_texts() -> None:
    m = json.loads((SHIPPED / "metrics.json").read_text(encoding="utf-8"))
    pooled = m["out_of_fold_min_words"]
    fprs = [d["fpr_at_threshold"] for d in m["per_domain"] if d["fpr_at_threshold"] is not None and d["n_human"] >= 30]
    tprs = sorted((d["tpr_at_threshold"], d["domain"]) for d in m["per_domain"]
                  if d["tpr_at_threshold"] is not None and d["n_model"] >= 30)
    expected = ErrorRates(pooled["fpr_at_threshold"], pooled["tpr_at_threshold"],
                          (min([pooled["fpr_at_threshold"], *fprs]), max([pooled["fpr_at_threshold"], *fprs])),
                          (min(pooled["tpr_at_threshold"], tprs[0][0]), max(pooled["tpr_at_threshold"], tprs[-1][0])),
                          "metrics.json (out of fold, per domain)", (tprs[0][1], tprs[-1][1]))
    for where in (None, SHIPPED, str(SHIPPED), SHIPPED / "detector.json"):  # the folder or its detector.json
        assert detector_error_rates(where) == expected
    ref = detector_score_reference(SHIPPED / "detector.json")
    assert ref == ScoreReference.from_dict(m["score_reference"]) == detector_score_reference()


def _detector_dir(tmp_path: Path, metrics: dict | None, training: dict | None = None) -> Path:
    d = tmp_path / "det"
    d.mkdir(parents=True)
    shutil.copyfile(SHIPPED / "detector.json", d / "detector.json")
    if training is not None:
        det = json.loads((d / "detector.json").read_text(encoding="utf-8"))
        det.setdefault("meta", {})["training_metrics"] = training
        (d / "detector.json").write_text(json.dumps(det), encoding="utf-8")
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return d


def test_stored_rates_fall_back_to_the_pooled_out_of_fold_and_then_to_the_detector(tmp_path: Path) -> None:
    per = [_dom("news", 40, 40, 0.04, 0.2)]
    d = _detector_dir(tmp_path, {"out_of_fold": {"fpr_at_threshold": 0.01, "tpr_at_threshold": 0.5},
                                 "per_domain": per})
    r = detector_error_rates(d)
    assert (r.fpr, r.tpr, r.fpr_range, r.tpr_range) == (0.01, 0.5, (0.01, 0.04), (0.2, 0.5))
    assert detector_score_reference(d) is None            # metrics without a score reference
    d2 = _detector_dir(tmp_path / "b", {"out_of_fold": {"fpr_at_threshold": 0.01, "tpr_at_threshold": 0.5}})
    assert detector_error_rates(d2).fpr_range == (0.01, 0.01)   # no per-domain rates: the pooled ones
    d3 = _detector_dir(tmp_path / "c", None, {"fpr_at_threshold": 0.02, "tpr_at_threshold": 0.7})
    r3 = detector_error_rates(d3)
    assert r3 == ErrorRates(0.02, 0.7, (0.02, 0.02), (0.7, 0.7), "detector.json training_metrics (pooled only)",
                            ("pooled", "pooled"))
    assert detector_score_reference(d3) is None
    d4 = _detector_dir(tmp_path / "d", None, {"fpr_at_threshold": 0.02})
    with pytest.raises(ValueError, match=r"^the detector stores no error rates \(fpr/tpr at threshold\)$"):
        detector_error_rates(d4)
    d5 = _detector_dir(tmp_path / "e", None, {"tpr_at_threshold": 0.7})
    with pytest.raises(ValueError, match=r"^the detector stores no error rates \(fpr/tpr at threshold\)$"):
        detector_error_rates(d5)


def test_defaults_are_500_resamples_from_seed_0() -> None:
    p = np.random.default_rng(1).random(80) * 0.6   # an interval whose upper end moves with one more resample
    got = corpus_estimate(p, 0.5, RATES)
    ref = _reference_estimate(p, 0.5, RATES, 500, 0)
    assert (got["ci_low"], got["ci_high"]) == (ref["ci_low"], ref["ci_high"])
    assert (got["ci_low"], got["ci_high"]) != tuple(_reference_estimate(p, 0.5, RATES, 501, 0)[k]
                                                    for k in ("ci_low", "ci_high"))


def test_a_domain_row_without_its_text_counts_is_left_out_of_the_range() -> None:
    pooled = {"fpr_at_threshold": 0.02, "tpr_at_threshold": 0.4}
    r = rates_from_metrics(pooled, [{"domain": "x", "fpr_at_threshold": 0.5, "tpr_at_threshold": 0.9}], "s")
    assert r.fpr_range == (0.02, 0.02) and r.tpr_range == (0.4, 0.4) and r.tpr_domains == ("pooled", "pooled")


#: a reference whose human and model scores are far apart, so intervals are narrow and pairs differ
SHARP = ScoreReference((0.2, 0.4, 0.6, 0.8), {
    "pooled": ((200, 100, 40, 10, 5), (5, 10, 40, 100, 200)),
    "d1": ((100, 30, 10, 3, 2), (2, 5, 20, 60, 100)),
    "d2": ((80, 50, 20, 5, 1), (1, 3, 10, 50, 120)),
})


def _draw(share: float, n: int, seed: int) -> np.ndarray:
    """Scores drawn from SHARP's pooled mixture at ``share`` (a bin, then a uniform place in it)."""
    rng = np.random.default_rng(seed)
    h, m = (np.array(v, float) for v in SHARP.hist["pooled"])
    b = rng.choice(5, size=n, p=(1 - share) * h / h.sum() + share * m / m.sum())
    return (b + rng.random(n)) / 5


@pytest.mark.parametrize(("share", "n", "seed"), [(0.3, 400, 0), (0.6, 300, 1), (0.1, 500, 2)])
def test_mixture_fit_with_its_defaults_on_a_sharp_reference(share: float, n: int, seed: int) -> None:
    p = _draw(share, n, seed)
    got = mixture_fit(p, SHARP)                      # 100 draws from seed 0
    assert got == _reference_fit(p, SHARP, GOF_BOOT, 0)
    assert got["pairs_fitting"] == 9 and got["alpha_range"][0] <= share <= got["alpha_range"][1]


def test_a_goodness_of_fit_p_value_exactly_at_the_level_fits() -> None:
    p = np.full(300, 0.5)   # every score in the middle bin: no bootstrap G reaches the observed one
    at = mixture_fit(p, SHARP, n_boot=99)            # p-value (0 + 1) / (99 + 1) = 0.01 = GOF_LEVEL
    assert at["best"]["p_value"] == 0.01 and at["pairs_fitting"] == at["pairs_tested"] == 9
    under = mixture_fit(p, SHARP, n_boot=100)        # 1 / 101 < 0.01
    assert under["pairs_fitting"] == 0 and under["alpha_range"] is None


@pytest.mark.parametrize("n", [2, 3, 5])
def test_mixture_fit_on_tiny_batches_counts_tied_bootstrap_statistics(n: int) -> None:
    p = _draw(0.5, n, n)
    assert mixture_fit(p, SHARP, n_boot=80, seed=3) == _reference_fit(p, SHARP, 80, 3)


def test_a_flat_likelihood_takes_the_first_grid_point() -> None:
    # an empty histogram: every share has log-likelihood exactly 0; the full grid's first maximum is share 0
    h = corpus._density(np.array([[30, 20, 10, 5, 5]]))
    m = corpus._density(np.array([[5, 5, 10, 20, 30]]))
    c = np.zeros((1, 5))
    with np.errstate(divide="ignore", invalid="ignore"):  # G's 0 * log(0 / 0) terms, discarded by its where
        a, q, g = corpus._fit_alpha(c, h, m)
        ra, rq, _ = _full_grid_fit(c, h, m)
    assert a.tolist() == ra.tolist() == [0.0] and q.tolist() == rq.tolist() == h.tolist() and g.tolist() == [0.0]


@pytest.mark.parametrize(("p", "threshold"), [
    (np.r_[np.full(20, 0.8), np.full(20, 0.3)], 0.9),   # EM's bootstrap reaches higher than the tagged share
    (np.r_[np.full(15, 0.5), np.full(25, 0.2)], 0.5),   # scores exactly at the threshold are tagged model
    (np.r_[np.full(30, 0.123456), np.full(10, 0.7)], 0.123456),
])
def test_corpus_estimate_at_its_edges(p: np.ndarray, threshold: float) -> None:
    rates = ErrorRates(0.0, 0.9, (0.0, 0.0), (0.9, 0.9), "s")
    got = corpus_estimate(p, threshold, rates, n_boot=300, seed=1)
    ref = _reference_estimate(p, threshold, rates, 300, 1)
    for k in ("alpha", "acc", "tagged_share", "ci_low", "ci_high"):
        assert got[k] == pytest.approx(ref[k], abs=1e-9), k
    assert got["threshold"] == round(threshold, 4)
