"""The checkpoint rules beyond decoupling, pinned to their documented meaning (docs/checkpoints.md):

* ``tails``: a low quantile (p5, p10 by default) or a slice's mean that falls significantly, by a Bonferroni
  threshold over its family of tests, while the overall median stays flat, is a ``tail_regression`` at the
  later checkpoint; a binary outcome has no quantile rows; a slice under ``min_slice_size`` is reported,
  never flagged.
* ``confound``: the share of the proxy gain that a per-sample covariate (length, teacher-likeness)
  explains, by a pooled within-checkpoint regression and by covariate-quantile buckets; a flag needs a
  significant gain, a combined share at the threshold or above, and a bootstrap share interval above 0.
* ``overoptimization`` (no KL): the best checkpoint by outcome and how far the proxy went on rising past it.

Expected values are computed here from the definitions (numpy, scipy), never by calling the code under test
with the same inputs.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from provaudit.checkpoints.analysis import Ctx, confound, overoptimization, tails

ALPHA = 0.01


def _ctx(outcomes: list[np.ndarray], proxies: list[np.ndarray] | None = None, thresholds: dict | None = None,
         **cols: list[np.ndarray]) -> Ctx:
    """Per-sample data of len(outcomes) checkpoints c0, c1, ... (sample ids 0..n-1 on each: paired)."""
    frames = []
    for i, o in enumerate(outcomes):
        data = {"checkpoint": [f"c{i}"] * len(o), "sample_id": list(range(len(o))),
                "outcome": np.asarray(o, dtype=float),
                "proxy": np.asarray(proxies[i] if proxies else np.zeros(len(o)), dtype=float)}
        for k, v in cols.items():
            data[k] = list(v[i])
        frames.append(pl.DataFrame(data, schema_overrides={k: pl.Float64 for k in cols if k != "slice"}))
    samples = pl.concat(frames)
    series = (samples.group_by("checkpoint", maintain_order=True)
              .agg(pl.col("proxy").mean(), pl.col("outcome").mean())
              .with_columns(pl.lit(None, dtype=pl.Float64).alias("proxy_se"),
                            pl.lit(None, dtype=pl.Float64).alias("outcome_se")))
    # 200 resamples (the floor of bootstrap_diff) instead of the default 1000: the same rules, a fifth of the time
    return Ctx(series, samples, {"bootstrap": 200, **(thresholds or {})}, seed=0)


def _uniform(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.linspace(0.0, 1.0, n))


# ---- tails --------------------------------------------------------------------------------------------------

def test_a_tail_that_falls_under_an_unchanged_median_is_flagged_at_each_low_quantile() -> None:
    a = _uniform(200)
    b = a.copy()
    b[a < 0.2] -= 5.0  # the worst 20% collapse; the median (and 80% of the items) stay as they were
    table, flags = tails(_ctx([a, b]), [(0, 1)])
    thr = sps.norm.ppf(1 - ALPHA / 2)  # Bonferroni over 1 pair x 2 quantiles
    assert [f.metric for f in flags] == ["outcome_p5", "outcome_p10"]
    for f, q in zip(flags, (0.05, 0.10)):
        assert f.kind == "tail_regression" and f.checkpoint == "c1"
        assert f.value == pytest.approx(np.quantile(b, q) - np.quantile(a, q))
        assert f.interval[1] < 0 and f.interval[0] <= f.value <= f.interval[1]
        assert f.details["from"] == "c0" and f.details["slice"] == "(all)"
        assert f.details["median_change"] == pytest.approx(0.0, abs=1e-12)
        assert f.details["threshold_z"] == pytest.approx(thr) and f.details["tests_in_family"] == 2
    rows = {r["stat"]: r for r in table.iter_rows(named=True)}
    assert set(rows) == {"mean", "median", "p5", "p10"}
    assert rows["mean"]["delta"] == pytest.approx(b.mean() - a.mean())
    assert rows["median"]["delta"] == pytest.approx(np.median(b) - np.median(a), abs=1e-12)
    assert rows["p5"]["flagged"] and rows["p10"]["flagged"] and not rows["mean"]["flagged"]
    for f, stat in zip(flags, ("p5", "p10")):
        assert f.p_value == pytest.approx(sps.norm.sf(-rows[stat]["z"]))  # one-sided, normal
        assert rows[stat]["z"] < -thr
    assert {r["n"] for r in rows.values()} == {200} and {r["from"] for r in rows.values()} == {"c0"}


def test_no_tail_flag_when_the_median_falls_too() -> None:
    a = _uniform(200)
    b = a - 0.3  # everything falls: the tails with it, but so does the median (a shift, not a tail)
    b[a < 0.1] -= 5.0
    table, flags = tails(_ctx([a, b]), [(0, 1)])
    assert flags == []
    rows = {r["stat"]: r for r in table.iter_rows(named=True)}
    assert rows["median"]["hi"] < 0 and rows["p5"]["z"] < -10  # the tail fell; the median rule stops the flag


def test_a_median_that_rises_still_counts_as_flat() -> None:
    """A median that went up is no shift down: the tail below it is still a regression."""
    a = _uniform(200)
    b = a + 0.05
    b[a < 0.2] -= 5.0
    _, flags = tails(_ctx([a, b]), [(0, 1)])
    assert [f.metric for f in flags] == ["outcome_p5", "outcome_p10"]


def test_a_small_tail_wobble_is_not_flagged() -> None:
    a = _uniform(200)
    b = a + np.random.default_rng(1).normal(0, 0.002, 200)
    table, flags = tails(_ctx([a, b]), [(0, 1)])
    assert flags == [] and not any(table["flagged"])


def test_tail_quantiles_and_the_family_size_come_from_the_thresholds() -> None:
    a = _uniform(200)
    b = a.copy()
    b[a < 0.4] -= 5.0  # p25 well inside the collapse (a resample's p25 stays there)
    c = b.copy()
    table, flags = tails(_ctx([a, b, c], thresholds={"tail_quantiles": [0.25]}), [(0, 1), (1, 2)])
    assert sorted(set(table["stat"])) == ["mean", "median", "p25"]
    assert [(f.checkpoint, f.metric) for f in flags] == [("c1", "outcome_p25")]
    (f,) = flags
    assert f.details["tests_in_family"] == 2  # 2 pairs x 1 quantile
    assert f.details["threshold_z"] == pytest.approx(sps.norm.ppf(1 - ALPHA / 2))
    assert f.value == pytest.approx(np.quantile(b, 0.25) - np.quantile(a, 0.25))


def test_a_binary_outcome_has_no_quantile_rows() -> None:
    a = (np.arange(200) % 2).astype(float)
    b = a.copy()
    b[:60] = 0.0
    table, flags = tails(_ctx([a, b]), [(0, 1)])
    assert sorted(set(table["stat"])) == ["mean", "median"]
    assert not any(f.metric.startswith("outcome_p") for f in flags)


def _sliced(n_small: int) -> tuple[Ctx, np.ndarray, np.ndarray, np.ndarray]:
    """300 items; the slices below the median fall (which leaves the median where it was): ``small``, the
    ``n_small`` worst items, by 3; ``big``, the next 100, by 0.5 plus noise; ``rest`` stays."""
    a = _uniform(300)
    rank = np.argsort(np.argsort(a))
    sl = np.where(rank < n_small, "small", np.where(rank < n_small + 100, "big", "rest"))
    b = a.copy()
    b[sl == "big"] -= 0.5 + np.random.default_rng(2).uniform(0, 0.1, 100)
    b[sl == "small"] -= 3.0
    return _ctx([a, b], thresholds={"tail_quantiles": [], "min_slice_size": 20}, slice=[sl, sl]), a, b, sl


def test_a_slice_that_falls_under_a_flat_median_is_flagged_and_a_small_one_only_reported() -> None:
    ctx, a, b, sl = _sliced(12)
    table, flags = tails(ctx, [(0, 1)])
    med = table.filter((pl.col("slice") == "(all)") & (pl.col("stat") == "median")).row(0, named=True)
    assert med["delta"] == 0.0  # the overall median did not move
    assert [f.details["slice"] for f in flags] == ["big"]
    (f,) = flags
    thr = sps.norm.ppf(1 - ALPHA / 3)  # 1 pair x 3 slices
    assert f.kind == "tail_regression" and f.checkpoint == "c1" and f.metric == "outcome_mean"
    assert f.value == pytest.approx(b[sl == "big"].mean() - a[sl == "big"].mean())
    assert f.details["threshold_z"] == pytest.approx(thr) and f.details["tests_in_family"] == 3
    assert f.details["n"] == 100
    d = b[sl == "big"] - a[sl == "big"]
    assert f.p_value == pytest.approx(sps.norm.sf(-(d.mean() / (d.std(ddof=1) / math.sqrt(len(d))))))
    rows = {r["slice"]: r for r in table.filter(pl.col("slice") != "(all)").iter_rows(named=True)}
    assert set(rows) == {"big", "small", "rest"}
    assert rows["small"]["delta"] == pytest.approx(-3.0) and not rows["small"]["flagged"]  # 12 < 20 items
    assert rows["big"]["flagged"] and not rows["rest"]["flagged"]


def test_a_slice_at_the_minimum_size_can_be_flagged() -> None:
    ctx, *_ = _sliced(20)
    _, flags = tails(ctx, [(0, 1)])
    assert sorted(f.details["slice"] for f in flags) == ["big", "small"]


def test_no_tails_without_per_sample_data() -> None:
    series = pl.DataFrame({"checkpoint": ["a", "b"], "proxy": [0.0, 1.0], "outcome": [1.0, 0.0]})
    assert tails(Ctx(series, None, {}, seed=0), [(0, 1)]) == (None, [])


# ---- confound -----------------------------------------------------------------------------------------------

def _expected_confound(pa, ca, pb, cb, k=5):
    gain = pb.mean() - pa.mean()
    x = np.concatenate([ca - ca.mean(), cb - cb.mean()])
    y = np.concatenate([pa - pa.mean(), pb - pb.mean()])
    beta = float(np.linalg.lstsq(x[:, None], y, rcond=None)[0][0])  # pooled within-checkpoint slope
    explained = beta * (cb.mean() - ca.mean())
    edges = np.quantile(np.concatenate([ca, cb]), np.linspace(0, 1, k + 1))
    num = den = 0.0
    for q in range(k):
        lo, hi = edges[q], edges[q + 1]
        ina = (ca >= lo) & ((ca < hi) if q < k - 1 else np.ones_like(ca, bool))
        inb = (cb >= lo) & ((cb < hi) if q < k - 1 else np.ones_like(cb, bool))
        if ina.sum() >= 2 and inb.sum() >= 2:
            w = ina.sum() + inb.sum()
            num += w * (pb[inb].mean() - pa[ina].mean())
            den += w
    controlled = num / den
    return gain, beta, explained, controlled


def _length_data(explained: bool, n: int = 300):
    rng = np.random.default_rng(4)
    la = rng.uniform(100, 300, n)
    lb = la + (150.0 if explained else 0.0)
    pa = 0.01 * la + rng.normal(0, 0.2, n)
    pb = 0.01 * lb + rng.normal(0, 0.2, n) + (0.0 if explained else 1.5)
    return pa, la, pb, lb


def test_a_gain_that_length_explains_is_flagged_with_both_shares() -> None:
    pa, la, pb, lb = _length_data(explained=True)
    ctx = _ctx([np.zeros(300), np.zeros(300)], [pa, pb], length=[la, lb])
    out, flags = confound(ctx, "length", "length", 0.5)
    gain, beta, explained, controlled = _expected_confound(pa, la, pb, lb)
    assert out["proxy_gain"] == pytest.approx(gain)
    assert out["slope_within_checkpoint"] == pytest.approx(beta)
    assert out["gain_explained"] == pytest.approx(explained)
    assert out["share"] == pytest.approx(explained / gain)
    assert out["bucket_controlled_gain"] == pytest.approx(controlled)
    assert out["bucket_share"] == pytest.approx(1 - controlled / gain)
    assert out["combined_share"] == pytest.approx((explained / gain + 1 - controlled / gain) / 2)
    assert out["covariate_from"] == pytest.approx(la.mean()) and out["covariate_to"] == pytest.approx(lb.mean())
    assert (out["from"], out["to"], out["covariate"]) == ("c0", "c1", "length")
    lo, hi = out["share_interval"]
    assert lo < explained / gain < hi and lo > 0
    (f,) = flags
    assert f.kind == "length_confound" and f.checkpoint == "c1" and f.metric == "length_share"
    assert f.value == pytest.approx(out["combined_share"]) and f.interval == out["share_interval"]
    assert f.details == {"bucket_controlled_gain": pytest.approx(controlled), "slope": pytest.approx(beta)}


def test_a_gain_length_does_not_explain_is_not_flagged() -> None:
    pa, la, pb, lb = _length_data(explained=False)
    out, flags = confound(_ctx([np.zeros(300)] * 2, [pa, pb], length=[la, lb]), "length", "length", 0.5)
    assert flags == [] and abs(out["share"]) < 0.1 and abs(out["bucket_share"]) < 0.2


def test_the_share_threshold_is_inclusive_and_a_label_names_the_flag() -> None:
    pa, la, pb, lb = _length_data(explained=True)
    ctx = _ctx([np.zeros(300)] * 2, [pa, pb], teacher=[la, lb])
    out, _ = confound(ctx, "teacher", "teacher", 0.5)
    share = out["combined_share"]
    _, at = confound(ctx, "teacher", "teacher", share)
    _, above = confound(ctx, "teacher", "teacher", share + 1e-9)
    assert [f.kind for f in at] == ["teacher_confound"] and above == []


def test_a_proxy_that_falls_is_never_a_confound() -> None:
    pa, la, pb, lb = _length_data(explained=True)
    # the covariate still moves the proxy, but the proxy fell overall: nothing to explain away
    out, flags = confound(_ctx([np.zeros(300)] * 2, [pb, pa], length=[lb, la]), "length", "length", 0.5)
    assert out["proxy_gain"] < 0 and out["share"] > 0.5 and flags == []


def test_an_insignificant_gain_is_not_flagged() -> None:
    rng = np.random.default_rng(5)
    la = rng.uniform(100, 300, 30)
    lb = la + 2.0
    pa = 0.01 * la + rng.normal(0, 1.0, 30)
    pb = pa + 0.02 + 0.01 * 2.0  # a gain of 0.04 against per-item noise of 1: not significant
    out, flags = confound(_ctx([np.zeros(30)] * 2, [pa, pb], length=[la, lb]), "length", "length", 0.0)
    assert out["proxy_gain"] > 0 and flags == []


def test_too_few_or_no_covariate_values_give_nothing() -> None:
    pa, la, pb, lb = _length_data(explained=True, n=6)
    lb_missing = [None, None, *lb[2:].tolist()]  # 4 values left on the later checkpoint: fewer than 5
    ctx = _ctx([np.zeros(6)] * 2, [pa, pb], length=[la, lb_missing])
    assert confound(ctx, "length", "length", 0.5) == ({}, [])
    assert confound(ctx, "teacher", "teacher", 0.5) == ({}, [])  # no such column
    ok = _ctx([np.zeros(6)] * 2, [pa, pb], length=[la, lb])
    assert confound(ok, "length", "length", 0.5)[0]["covariate"] == "length"  # 5 or more: estimated


def test_the_bucket_count_comes_from_the_thresholds() -> None:
    pa, la, pb, lb = _length_data(explained=True)
    ctx = _ctx([np.zeros(300)] * 2, [pa, pb], thresholds={"length_buckets": 3}, length=[la, lb])
    out, _ = confound(ctx, "length", "length", 0.5)
    assert out["bucket_controlled_gain"] == pytest.approx(_expected_confound(pa, la, pb, lb, k=3)[3])


# ---- overoptimization without KL ----------------------------------------------------------------------------

def test_best_checkpoint_and_the_proxy_past_it() -> None:
    proxy = [0.0, 1.0, 2.0, 5.0, 4.0]
    outcome = [0.1, 0.6, 0.4, 0.3, 0.2]
    series = pl.DataFrame({"checkpoint": [f"c{i}" for i in range(5)], "proxy": proxy, "outcome": outcome,
                           "step": [0.0, 10.0, 20.0, 30.0, 45.0]})
    out, flags = overoptimization(Ctx(series, None, {}, seed=0), None)
    assert flags == []
    assert (out["best_index"], out["best_checkpoint"], out["checkpoints_past_best"]) == (1, "c1", 3)
    assert out["proxy_rise_past_best"] == pytest.approx(5.0 - 1.0)
    assert out["proxy_change_past_best"] == pytest.approx(4.0 - 1.0)
    assert out["outcome_drop_from_best"] == pytest.approx(0.6 - 0.2)
    assert out["proxy_rise_past_best_share"] == pytest.approx(4.0 / 5.0)
    assert out["steps_past_best"] == pytest.approx(35.0)
    assert out["gao_fits"] is None
    med = np.array(outcome)
    med[1:-1] = np.median(np.stack([med[:-2], med[1:-1], med[2:]]), axis=0)
    sm = med.copy()
    sm[1:-1] = (med[:-2] + med[1:-1] + med[2:]) / 3
    assert out["smoothed_outcome"] == pytest.approx(sm.tolist())
    assert out["smoothed_peak_checkpoint"] == f"c{int(np.argmax(sm))}"


def test_a_flat_proxy_has_no_rise_share() -> None:
    series = pl.DataFrame({"checkpoint": ["a", "b", "c"], "proxy": [1.0, 1.0, 1.0], "outcome": [0.0, 1.0, 0.5]})
    out, _ = overoptimization(Ctx(series, None, {}, seed=0), None)
    assert out["proxy_rise_past_best_share"] == 0.0 and out["best_checkpoint"] == "b"


# ---- overoptimization with KL (Gao et al. 2023 forms) ---------------------------------------------------------

def _rl_series(kl: list[float], a: float = 1.0, b: float = 0.5) -> tuple[Ctx, np.ndarray]:
    """An outcome that follows the RL form R(d) = d (a - b ln d), d = sqrt(KL), exactly: its peak is at
    d* = exp(a / b - 1), KL* = d*^2 (e^2 = 7.39 here)."""
    k = np.asarray(kl, dtype=float)
    d = np.sqrt(k)
    outcome = d * (a - b * np.log(d))
    series = pl.DataFrame({"checkpoint": [f"c{i}" for i in range(len(k))], "proxy": np.linspace(0, 1, len(k)),
                           "outcome": outcome})
    return Ctx(series, None, {}, seed=0), k


def test_a_fitted_peak_inside_the_observed_kl_is_flagged_at_the_nearest_checkpoint() -> None:
    ctx, kl = _rl_series([0.5, 2, 4, 6, 8, 10, 14, 18])
    out, flags = overoptimization(ctx, kl)
    peak = math.exp(2 * (1.0 / 0.5 - 1))
    assert out["gao_form"] == "rl" and out["peak_kl"] == pytest.approx(peak, rel=1e-3)
    assert out["peak_checkpoint_fit"] == "c4" and out["peak_inside_observed_kl"] is True  # KL 8 is nearest
    (f,) = flags
    assert (f.kind, f.checkpoint, f.metric) == ("overoptimization", "c4", "kl")
    assert f.value == pytest.approx(peak, rel=1e-3) and f.details["form"] == "rl"
    assert f.details["a"] == pytest.approx(1.0, rel=1e-3) and f.details["b"] == pytest.approx(0.5, rel=1e-3)


def test_no_overoptimization_flag_when_the_peak_is_outside_the_kl_or_at_the_last_checkpoint() -> None:
    ctx, kl = _rl_series([0.5, 1, 2, 3, 4, 5, 6])  # still rising at KL 6: the peak (7.39) lies beyond
    out, flags = overoptimization(ctx, kl)
    assert out["peak_inside_observed_kl"] is False and flags == []
    ctx, kl = _rl_series([0.5, 1, 2, 3, 4, 5, 6, 7.5])  # inside, but the nearest checkpoint is the last one
    out, flags = overoptimization(ctx, kl)
    assert out["peak_inside_observed_kl"] is True and out["peak_checkpoint_fit"] == "c7" and flags == []


def test_fewer_than_four_kl_values_fit_nothing() -> None:
    ctx, kl = _rl_series([0.5, 2, 8, 18])
    kl[0] = np.nan
    out, flags = overoptimization(ctx, kl)
    assert out["gao_fits"] is None and flags == [] and len(out["smoothed_outcome"]) == 4
    out, _ = overoptimization(_rl_series([0.5, 2, 8, 18])[0], np.array([0.5, 2, 8, 18]))
    assert out["gao_fits"] is not None  # four are enough
