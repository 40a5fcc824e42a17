"""The checkpoint statistics the decoupling rules rest on, against their definitions and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from provaudit.checkpoints.stats import (
    Diff,
    bootstrap_diff,
    fit_gao,
    noise_sigma,
    rank_correlation,
    robust_peak,
    sign_test_p,
    smooth3,
    wilcoxon_p,
)


def test_diff_z_is_value_over_se_with_a_signed_cap_at_zero_se() -> None:
    assert Diff(-0.3, 0.1, 0, 0, 5, False).z() == pytest.approx(-3.0)
    assert Diff(0.0, 0.0, 0, 0, 5, False).z() == 0.0
    assert Diff(0.2, 0.0, 0, 0, 5, False).z() == 1e9 and Diff(-0.2, 0.0, 0, 0, 5, False).z() == -1e9
    assert Diff(0.2, -1.0, 0, 0, 5, False).z() == 1e9


def test_noise_sigma_short_series_never_far_below_the_rms() -> None:
    y = np.zeros(9)
    y[8] = 3.0           # 7 second differences, one non-zero: MAD 0, RMS 3 / sqrt(7)
    assert noise_sigma(y) == pytest.approx(0.5 * (3 / math.sqrt(7)) / math.sqrt(6))
    long = np.zeros(12)
    long[11] = 3.0       # 10 second differences: the robust MAD alone (0 here)
    assert noise_sigma(long) == 0.0
    z = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    d2 = z[2:] - 2 * z[1:-1] + z[:-2]
    mad = float(np.median(np.abs(d2 - np.median(d2)))) / 0.6745
    assert noise_sigma(z) == pytest.approx(mad / math.sqrt(6))


def test_smoother_and_peak() -> None:
    y = np.array([0.0, 1.0, 9.0, 2.0, 3.0, 4.0, 3.5, 3.0])   # a one-point spike at 2, a real peak at 5
    med = y.copy()
    med[1:-1] = np.median(np.stack([y[:-2], y[1:-1], y[2:]]), axis=0)
    want = med.copy()
    want[1:-1] = (med[:-2] + med[1:-1] + med[2:]) / 3
    assert smooth3(y) == pytest.approx(want)
    assert robust_peak(y) == int(np.argmax(want)) == 5
    assert smooth3(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]


def test_rank_correlation_matches_scipy_and_needs_variation() -> None:
    x = np.array([1.0, 2, 3, 4, 5, 6])
    y = np.array([2.0, 1, 4, 3, 6, 5])
    got = rank_correlation(x, y)
    rho, p = sps.spearmanr(x, y)
    tau, tp = sps.kendalltau(x, y)
    assert got == pytest.approx({"spearman": rho, "spearman_p": p, "kendall": tau, "kendall_p": tp})
    none = {"spearman": None, "spearman_p": None, "kendall": None, "kendall_p": None}
    assert rank_correlation(x[:2], y[:2]) == none
    assert rank_correlation(np.ones(5), y[:5]) == none and rank_correlation(x[:5], np.ones(5)) == none
    assert rank_correlation(x[:3], y[:3])["spearman"] is not None


def test_paired_tests_match_scipy() -> None:
    d = np.array([0.5, -0.2, 0.3, 0.0, 0.8, 0.1, -0.4, 0.6])
    assert wilcoxon_p(d) == pytest.approx(sps.wilcoxon(d[d != 0]).pvalue)
    assert wilcoxon_p(np.array([1.0, 0.0, 2.0, 3.0, 0.0, 4.0])) is None     # 4 non-zero differences
    assert wilcoxon_p(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) is not None
    assert sign_test_p(d) == pytest.approx(sps.binomtest(5, 7, 0.5).pvalue)
    assert sign_test_p(np.zeros(4)) is None
    assert sign_test_p(np.array([1.0])) == pytest.approx(1.0)


@pytest.mark.parametrize("form", ["rl", "bon"])
def test_gao_fit_recovers_the_generating_coefficients_and_peak(form: str) -> None:
    d = np.linspace(0.2, 4.0, 12)
    c, a, b = 0.1, 1.2, 0.4       # peaks e^2 (rl) and 1.5 (bon): no value where a/(2b) = 2ab or log(peak) = 1
    y = c + (d * (a - b * np.log(d)) if form == "rl" else d * (a - b * d))
    fit = fit_gao(d, y, form)
    assert (fit["c"], fit["a"], fit["b"]) == pytest.approx((c, a, b), abs=1e-8)
    peak = math.exp(a / b - 1) if form == "rl" else a / (2 * b)
    assert fit["peak_d"] == pytest.approx(peak) and fit["peak_kl"] == pytest.approx(peak ** 2)
    top = c + (peak * (a - b * math.log(peak)) if form == "rl" else peak * (a - b * peak))
    assert fit["peak_value"] == pytest.approx(top)
    assert fit["r2"] == pytest.approx(1.0) and fit["sse"] == pytest.approx(0.0, abs=1e-12)
    assert fit["form"] == form
    convex = c + d + 0.3 * (d * np.log(d) if form == "rl" else d * d)   # b = -0.3: no turn, no peak
    rising = fit_gao(d, convex, form)
    assert rising["b"] == pytest.approx(-0.3) and rising["peak_d"] is None and rising["peak_value"] is None
    # a straight line: b is 0 up to rounding; a tiny positive b must not overflow the rl peak exp(a/b - 1)
    line = fit_gao(d, c + d, form)
    assert line is not None and line["b"] == pytest.approx(0.0, abs=1e-9)
    if form == "rl" and line["b"] > 0:
        assert line["peak_d"] is None
    # a turn before d = 1 is still a peak; a turn at negative d is none
    early = fit_gao(d, c + d * (0.4 - 0.5 * d), "bon")
    assert early["peak_d"] == pytest.approx(0.4)
    assert fit_gao(d, c + d * (-0.5 - 0.5 * d), "bon")["peak_d"] is None
    # R^2 needs variation in y, however small
    tiny = fit_gao(d, 0.01 * y, form)
    assert tiny["r2"] == pytest.approx(1.0)
    assert fit_gao(d, np.full(d.size, 0.5), form)["r2"] is None
    assert fit_gao(d[:3], y[:3], form) is None
    with pytest.raises(ValueError):
        fit_gao(d, y, "ppo")


def test_aic_of_a_noisy_fit() -> None:
    rng = np.random.default_rng(0)
    d = np.linspace(0.2, 4.0, 20)
    y = d * (1 - 0.5 * d) + rng.normal(0, 0.05, 20)
    fit = fit_gao(d, y, "bon")
    assert fit["aic"] == pytest.approx(20 * math.log(fit["sse"] / 20) + 6)
    assert fit["r2"] == pytest.approx(1 - fit["sse"] / float(((y - y.mean()) ** 2).sum()))


def test_bootstrap_resample_count_is_bounded_but_never_below_200() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 50), rng.normal(0.5, 1, 50)
    # 10 requested resamples are raised to 200: the interval is the same as asking for 200
    few = bootstrap_diff(a, b, np.random.default_rng(1), paired=False, n_boot=10)
    two_hundred = bootstrap_diff(a, b, np.random.default_rng(1), paired=False, n_boot=200)
    assert (few.lo, few.hi) == (two_hundred.lo, two_hundred.hi)
    q = bootstrap_diff(a, b, np.random.default_rng(1), paired=True, q=0.5, n_boot=300)
    assert q.value == pytest.approx(np.median(b) - np.median(a)) and q.paired
    boots = q.se
    assert 0 < boots < 1


def test_smoother_on_three_points_and_integer_input() -> None:
    assert smooth3(np.array([0.0, 5.0, 1.0])).tolist() == pytest.approx([0.0, 2 / 3, 1.0])
    ints = np.array([0, 3, 1, 4, 2, 7, 1])
    assert smooth3(ints) == pytest.approx(smooth3(ints.astype(float)))
    assert robust_peak(np.array([0, 1, 5, 6, 5, 1, 0])) == 3


def test_gao_fit_uses_every_valid_point_and_only_those() -> None:
    rng = np.random.default_rng(2)
    d = np.array([0.0, 0.3, 0.6, 1.0, 1.5, 2.0, 2.6, 3.2])
    y = 0.2 + d * (1 - 0.4 * d) + rng.normal(0, 0.05, d.size)
    for form in ("rl", "bon"):
        dlog = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
        X = np.column_stack([np.ones_like(d), d, -(dlog if form == "rl" else d * d)])
        coef = np.linalg.lstsq(X, y, rcond=None)[0]
        fit = fit_gao(d, y, form)
        assert (fit["c"], fit["a"], fit["b"]) == pytest.approx(tuple(coef))   # d = 0 included, d log d = 0 there
        # NaN values and negative d are dropped, nothing else
        dirty = fit_gao(np.append(d, [np.nan, -1.0, 1.2]), np.append(y, [0.5, 0.5, np.inf]), form)
        assert (dirty["c"], dirty["a"], dirty["b"]) == pytest.approx(tuple(coef))
    four = fit_gao(d[:4], y[:4], "bon")
    assert four is not None                                   # 4 points are enough
    assert fit_gao(np.array([1.0, 1.5, 1.75, 2.0]), y[:4], "bon") is not None   # spread exactly 1
    assert fit_gao(np.full(5, 1.0), y[:5], "bon") is None     # no spread
    with pytest.raises(ValueError, match="ppo"):
        fit_gao(d, y, "ppo")


def test_threshold_falls_back_to_normal_without_usable_degrees_of_freedom() -> None:
    from provaudit.checkpoints.stats import one_sided_threshold

    z = sps.norm.ppf(1 - 0.01 / 3)
    for df in (None, 0, -2.0, float("nan"), float("inf")):
        assert one_sided_threshold(0.01, 3, df) == pytest.approx(z), df
    assert one_sided_threshold(0.01, 3, 0.5) == pytest.approx(sps.t.ppf(1 - 0.01 / 3, 0.5))
    assert one_sided_threshold(0.01, 3, 1) == pytest.approx(sps.t.ppf(1 - 0.01 / 3, 1))


def test_noise_sigma_edges() -> None:
    assert math.isfinite(noise_sigma(np.array([0.0, 1.0, 0.0])))       # 3 points: one second difference
    y = np.zeros(10)
    y[9] = 3.0                                                          # 8 second differences: MAD alone
    assert noise_sigma(y) == 0.0
    assert noise_sigma(np.arange(20.0) ** 2) == 0.0                     # a smooth curve is not noise


def test_weighted_slope_edges() -> None:
    from provaudit.checkpoints.stats import weighted_slope

    # x centred with sum of squares exactly 1
    b, se = weighted_slope(np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 2.0, 0.0, 2.0]), np.full(4, 2.0))
    assert b == pytest.approx(2.0) and se == pytest.approx(math.sqrt(4 * 0.25 * 4))
    assert weighted_slope(np.ones(3), np.array([1.0, 2.0, 3.0]), np.ones(3)) == (0.0, float("inf"))
    # per-point standard errors: se = sqrt(sum w_i^2 se_i^2) with w = xc / sxx
    x, s = np.arange(5.0), np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    assert weighted_slope(x, x * 0, s)[1] == pytest.approx(math.sqrt(float((w ** 2 * s ** 2).sum())))


def test_sign_test_with_balanced_signs() -> None:
    assert sign_test_p(np.array([1.0, -1.0])) == pytest.approx(1.0)
    assert sign_test_p(np.array([1.0, -1.0, 2.0, -2.0, 0.0])) == pytest.approx(1.0)


def test_bootstrap_difference_edges_and_defaults() -> None:
    one = bootstrap_diff(np.array([1.0]), np.array([3.0]), np.random.default_rng(0), paired=True)
    assert (one.value, one.se) == (2.0, 0.0)
    un = bootstrap_diff(np.array([1.0]), np.array([3.0, 5.0]), np.random.default_rng(0), paired=False)
    assert un.se == pytest.approx(math.sqrt(np.var([3.0, 5.0], ddof=1) / 2))
    un2 = bootstrap_diff(np.array([1.0, 2.0]), np.array([3.0]), np.random.default_rng(0), paired=False)
    assert un2.se == pytest.approx(math.sqrt(np.var([1.0, 2.0], ddof=1) / 2))
    two = bootstrap_diff(np.array([1.0, 2.0]), np.array([4.0, 4.0]), np.random.default_rng(0), paired=True)
    assert two.se == pytest.approx(np.std([3.0, 2.0], ddof=1) / math.sqrt(2))
    # default: 1000 paired resamples of item indices (the first item included)
    a = np.array([50.0, 0.0, 1.0, 0.0, 2.0, 1.0])
    b = np.array([0.0, 1.0, 1.0, 0.0, 2.0, 2.0])
    d = bootstrap_diff(a, b, np.random.default_rng(3), paired=True)
    idx = np.random.default_rng(3).integers(0, 6, size=(1000, 6))
    boots = b[idx].mean(axis=1) - a[idx].mean(axis=1)
    assert (d.lo, d.hi) == pytest.approx(tuple(float(v) for v in np.quantile(boots, [0.025, 0.975])), rel=1e-12)
    # the budget is set by the longer side, whichever it is
    rng = np.random.default_rng(1)
    small, big = rng.normal(0, 1, 9_000), rng.normal(0, 1, 10_000)
    swapped = bootstrap_diff(small, big, np.random.default_rng(2), paired=False, n_boot=1000)
    g = np.random.default_rng(2)
    ia, ib = g.integers(0, 9_000, size=(500, 9_000)), g.integers(0, 10_000, size=(500, 10_000))
    ref = np.quantile(big[ib].mean(axis=1) - small[ia].mean(axis=1), [0.025, 0.975])
    assert (swapped.lo, swapped.hi) == pytest.approx((float(ref[0]), float(ref[1])), rel=1e-12)
