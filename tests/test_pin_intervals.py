"""Bootstrap intervals cover the truth at about their nominal level, and never collapse to a point.

The mixture estimate is checked in a world where its model is exactly true: documents are sets of words
drawn independently with known human (p_w) and model (q_w) occurrence probabilities, and the reference
holds those probabilities. The checkpoint intervals are checked on normal samples with a known mean
difference. 100 seeded trials each; a nominal 95% interval must cover the truth in at least 88 of them
(the chance that a true 95% interval covers fewer than 88 of 100 is under 0.5%).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import binom

from provaudit.checkpoints.stats import Diff, bootstrap_ci, bootstrap_diff
from provaudit.mixture import MixtureReference, estimate_mixture, fit_reference, mle_alpha

TRIALS = 100
MIN_COVERED = 88
VOCAB = [f"w{chr(97 + i)}" for i in range(16)]
P = np.linspace(0.15, 0.6, 16)          # human occurrence probability of each word
Q = P[::-1].copy()                      # model occurrence probability


def _reference() -> MixtureReference:
    return MixtureReference(vocab=VOCAB, log_p=np.log(P).tolist(), log_1mp=np.log1p(-P).tolist(),
                            log_q=np.log(Q).tolist(), log_1mq=np.log1p(-Q).tolist(), n_human=0, n_model=0,
                            options={"unit": "document", "max_words": 0, "clip": 30.0})


def _docs(rng: np.random.Generator, n: int, alpha: float) -> tuple[list[str], np.ndarray]:
    is_model = rng.random(n) < alpha
    probs = np.where(is_model[:, None], Q[None, :], P[None, :])
    present = rng.random((n, len(VOCAB))) < probs
    texts = [" ".join(w for w, keep in zip(VOCAB, row) if keep) or "none" for row in present]
    return texts, present


def test_threshold_of_the_coverage_check() -> None:
    assert binom.cdf(MIN_COVERED - 1, TRIALS, 0.95) < 0.005


def test_doc_log_ratio_is_the_bernoulli_likelihood_ratio() -> None:
    rng = np.random.default_rng(0)
    texts, present = _docs(rng, 50, 0.5)
    want = (np.where(present, np.log(Q), np.log1p(-Q)) - np.where(present, np.log(P), np.log1p(-P))).sum(1)
    assert _reference().doc_log_ratios(texts) == pytest.approx(want, abs=1e-9)
    # calibration scales and shifts; clipping bounds
    ref = _reference()
    ref.calibration = {"scale": 0.5, "shift": 0.25}
    assert ref.doc_log_ratios(texts) == pytest.approx(0.5 * want + 0.25, abs=1e-9)
    ref.options["clip"] = 0.1
    assert np.abs(ref.doc_log_ratios(texts)).max() == pytest.approx(0.1)


def test_mle_alpha_is_the_likelihood_maximiser() -> None:
    rng = np.random.default_rng(1)
    for alpha in (0.0, 0.2, 0.7, 1.0):
        lr = _reference().doc_log_ratios(_docs(rng, 300, alpha)[0])
        def nll(a: float, lr: np.ndarray = lr) -> float:
            return -float(np.sum(np.log((1 - a) + a * np.exp(lr))))

        ref = minimize_scalar(nll, bounds=(0, 1), method="bounded", options={"xatol": 1e-10}).x
        got = float(mle_alpha(lr)[0])
        assert got == pytest.approx(ref, abs=1e-5) or nll(got) <= nll(ref) + 1e-9
    # bounds: all-human evidence gives 0, all-model gives 1; weights act as repeated units
    assert mle_alpha(np.full(5, -2.0))[0] == 0.0 and mle_alpha(np.full(5, 2.0))[0] == 1.0
    lr = np.array([1.0, -1.0, 0.5])
    w = np.array([[2, 0, 1], [1, 1, 1]])
    assert mle_alpha(lr, w) == pytest.approx([mle_alpha(np.array([1.0, 1.0, 0.5]))[0], mle_alpha(lr)[0]])


def test_mixture_interval_covers_the_true_fraction() -> None:
    alpha, ref = 0.3, _reference()
    covered, widths, estimates = 0, [], []
    for seed in range(TRIALS):
        texts, _ = _docs(np.random.default_rng(10_000 + seed), 300, alpha)
        est = estimate_mixture(texts, ref, n_boot=100, seed=seed)
        assert est.ci_low <= est.alpha <= est.ci_high and est.n == 300
        covered += est.ci_low <= alpha <= est.ci_high
        widths.append(est.ci_high - est.ci_low)
        estimates.append(est.alpha)
    assert covered >= MIN_COVERED, covered
    assert min(widths) > 0.02                     # data vary: the interval never collapses to a point
    assert abs(np.mean(estimates) - alpha) < 0.02  # the MLE is (nearly) unbiased here
    # and it is about as wide as the normal interval from the Fisher information says
    lr = ref.doc_log_ratios(_docs(np.random.default_rng(5), 5_000, alpha)[0])
    r = np.exp(lr)
    info = np.mean(((r - 1) / ((1 - alpha) + alpha * r)) ** 2)
    assert np.median(widths) == pytest.approx(2 * 1.96 / math.sqrt(300 * info), rel=0.25)


def test_mixture_without_bootstrap_and_empty_input() -> None:
    texts, _ = _docs(np.random.default_rng(3), 100, 0.3)
    est = estimate_mixture(texts, _reference(), n_boot=0)
    assert est.ci_low == est.alpha == est.ci_high
    assert estimate_mixture(texts, _reference(), seed=4).to_dict() == estimate_mixture(texts, _reference(),
                                                                                        seed=4).to_dict()
    empty = estimate_mixture([], _reference())
    assert empty.n == 0 and math.isnan(empty.alpha)


def test_fitted_reference_recovers_the_occurrence_probabilities() -> None:
    rng = np.random.default_rng(7)
    human, hp = _docs(rng, 3000, 0.0)
    model, mp = _docs(rng, 3000, 1.0)
    ref = fit_reference(human, model, min_df=0.02, calibrate=False, max_words=0)
    assert sorted(ref.vocab) == sorted(VOCAB)
    idx = [ref.vocab.index(w) for w in VOCAB]
    # Laplace smoothing (count + 1) / (n + 2), from the documents' word sets
    assert np.exp(np.array(ref.log_p)[idx]) == pytest.approx((hp.sum(0) + 1) / (3000 + 2), abs=1e-9)
    assert np.exp(np.array(ref.log_q)[idx]) == pytest.approx((mp.sum(0) + 1) / (3000 + 2), abs=1e-9)
    assert np.exp(np.array(ref.log_1mq)[idx]) == pytest.approx(1 - (mp.sum(0) + 1) / (3000 + 2), abs=1e-9)
    assert (ref.n_human, ref.n_model) == (3000, 3000)


@pytest.mark.parametrize("paired", [False, True])
def test_checkpoint_difference_interval_covers_the_true_difference(paired: bool) -> None:
    delta, covered, widths = -0.3, 0, []
    for seed in range(TRIALS):
        rng = np.random.default_rng(seed)
        item = rng.normal(0, 1, 120)
        a = (item if paired else rng.normal(0, 1, 120)) + rng.normal(0, 0.5, 120)
        b = (item if paired else rng.normal(0, 1, 120)) + delta + rng.normal(0, 0.5, 120)
        d = bootstrap_diff(a, b, np.random.default_rng(1000 + seed), paired=paired, n_boot=300)
        assert isinstance(d, Diff) and d.paired is paired and d.n == 120
        assert d.value == pytest.approx(b.mean() - a.mean())
        se = (np.std(b - a, ddof=1) / math.sqrt(120) if paired
              else math.sqrt(np.var(a, ddof=1) / 120 + np.var(b, ddof=1) / 120))
        assert d.se == pytest.approx(se)
        assert d.lo < d.value < d.hi
        covered += d.lo <= delta <= d.hi
        widths.append(d.hi - d.lo)
    assert covered >= MIN_COVERED, covered
    # pairing removes the item variance: the paired interval is about sqrt(0.5) / sqrt(2.5) as wide
    expected = 2 * 1.96 * math.sqrt((0.5 if paired else 2.5) / 120)
    assert np.median(widths) == pytest.approx(expected, rel=0.15)


def test_quantile_difference_and_single_sample_intervals() -> None:
    covered = 0
    for seed in range(TRIALS):
        rng = np.random.default_rng(seed)
        x = rng.normal(2.0, 1.0, 150)
        lo, hi = bootstrap_ci(x, np.random.default_rng(seed + 1), n_boot=300)
        assert hi - lo > 0.1
        covered += lo <= 2.0 <= hi
    assert covered >= MIN_COVERED, covered
    # a quantile difference: the 10% quantile of N(0,1) and N(-0.5,1) differ by -0.5
    rng = np.random.default_rng(3)
    d = bootstrap_diff(rng.normal(0, 1, 2000), rng.normal(-0.5, 1, 2000), np.random.default_rng(4), paired=False,
                       q=0.1, n_boot=300)
    assert d.lo < -0.5 < d.hi and d.hi - d.lo > 0.05
    assert bootstrap_ci(np.array([3.0]), np.random.default_rng(0)) == (3.0, 3.0)


def _percentile_reference(boots: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2
    lo, hi = np.quantile(boots, [tail, 1 - tail])
    return float(lo), float(hi)


def test_bootstrap_intervals_are_the_percentile_bootstrap() -> None:
    """Same generator, same draws: the intervals are exactly the percentile bootstrap written out here."""
    x = np.array([100.0] + [0.0] * 9 + [1.0, 2.0])
    lo, hi = bootstrap_ci(x, np.random.default_rng(5), n_boot=400)
    idx = np.random.default_rng(5).integers(0, len(x), size=(400, len(x)))
    assert (lo, hi) == _percentile_reference(x[idx].mean(axis=1))
    q_lo, q_hi = bootstrap_ci(x, np.random.default_rng(5), q=0.9, n_boot=400, level=0.8)
    assert (q_lo, q_hi) == _percentile_reference(np.quantile(x[idx], 0.9, axis=1), 0.8)
    assert bootstrap_ci(np.array([1.0, 3.0]), np.random.default_rng(0), n_boot=50) != (1.0, 1.0)
    default = bootstrap_ci(x, np.random.default_rng(6))                 # 1000 resamples by default
    idx = np.random.default_rng(6).integers(0, len(x), size=(1000, len(x)))
    assert default == _percentile_reference(x[idx].mean(axis=1))
    empty = bootstrap_ci(np.array([]), np.random.default_rng(0))
    assert math.isnan(empty[0]) and math.isnan(empty[1])


@pytest.mark.parametrize("q, n_boot_used", [(None, 500), (0.5, 200)])
def test_bootstrap_difference_resample_budget(q: float | None, n_boot_used: int) -> None:
    """Resamples are capped at 5e6 (means) or 1e6 (quantiles) values per side, never below 200: with
    10,000 items and 1,000 requested, a mean uses 500 and a quantile 200."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 10_000), rng.normal(0.1, 1, 9_000)
    d = bootstrap_diff(a, b, np.random.default_rng(2), paired=False, q=q, n_boot=1000)
    g = np.random.default_rng(2)
    ia = g.integers(0, len(a), size=(n_boot_used, len(a)))
    ib = g.integers(0, len(b), size=(n_boot_used, len(b)))
    stat = (lambda v: v.mean(axis=1)) if q is None else (lambda v: np.quantile(v, q, axis=1))
    assert (d.lo, d.hi) == _percentile_reference(stat(b[ib]) - stat(a[ia]))
    if q is not None:
        assert d.se == pytest.approx(float(np.std(stat(b[ib]) - stat(a[ia]), ddof=1)))


def test_mixture_estimate_is_the_documented_percentile_bootstrap() -> None:
    texts, _ = _docs(np.random.default_rng(8), 120, 0.4)
    ref = _reference()
    lr = ref.doc_log_ratios(texts)
    for kw, n_boot, seed, ci in (({}, 200, 0, 0.95), ({"n_boot": 1, "seed": 3}, 1, 3, 0.95),
                                 ({"n_boot": 50, "seed": 2, "ci": 0.8}, 50, 2, 0.8)):
        est = estimate_mixture(texts, ref, **kw)
        alpha = float(mle_alpha(lr)[0])
        counts = np.random.default_rng(seed).multinomial(len(lr), np.full(len(lr), 1 / len(lr)), size=n_boot)
        boots = mle_alpha(lr, counts)
        lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
        assert (est.alpha, est.ci_low, est.ci_high, est.n) == (alpha, min(lo, alpha), max(hi, alpha), 120), kw
    point = estimate_mixture(texts, ref, n_boot=0)
    assert point.n == 120
    empty = estimate_mixture([], ref)
    assert math.isnan(empty.ci_low) and math.isnan(empty.ci_high)


def test_mle_alpha_near_the_ends() -> None:
    assert mle_alpha(np.array([0.01, 0.02])).tolist() == [1.0]      # all evidence for the model, weakly
    assert mle_alpha(np.array([-0.01, -0.02])).tolist() == [0.0]
    lr = np.array([0.5, -0.45])                                      # a small gradient at 0: interior optimum
    best = minimize_scalar(lambda a: -np.sum(np.log((1 - a) + a * np.exp(lr))), bounds=(0, 1), method="bounded",
                           options={"xatol": 1e-10}).x
    assert mle_alpha(lr)[0] == pytest.approx(best, abs=1e-6) and 0 < best < 1
    assert mle_alpha(lr).shape == (1,)
