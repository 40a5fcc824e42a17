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
from conftest import assert_close
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


def _sliced(n_small: int, min_slice: int = 20) -> tuple[Ctx, np.ndarray, np.ndarray, np.ndarray]:
    """300 items; the slices below the median fall (which leaves the median where it was): ``small``, the
    ``n_small`` worst items, by 3; ``big``, the next 100, by 0.5 plus noise; ``rest`` stays."""
    a = _uniform(300)
    rank = np.argsort(np.argsort(a))
    sl = np.where(rank < n_small, "small", np.where(rank < n_small + 100, "big", "rest"))
    b = a.copy()
    b[sl == "big"] -= 0.5 + np.random.default_rng(2).uniform(0, 0.1, 100)
    b[sl == "small"] -= 3.0
    return _ctx([a, b], thresholds={"tail_quantiles": [], "min_slice_size": min_slice}, slice=[sl, sl]), a, b, sl


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
    with np.errstate(divide="ignore", invalid="ignore"):
        outcome = np.where(d > 0, d * (a - b * np.log(np.where(d > 0, d, 1.0))), 0.0)  # R(0) = 0 (d ln d -> 0)
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


# ---- whole outputs against a reference written from the documentation ----------------------------------------
# The reference below follows docs/checkpoints.md step by step. It draws its resamples through the pinned
# bootstrap (provaudit.checkpoints.stats.bootstrap_diff, tests/test_pin_stats.py) from the context's seeded
# streams (Ctx.rng, tests/test_pin_decoupling_ctx.py), keyed as documented: ("median"|"mean", i, j),
# ("q", q, i, j), ("slice", slice, i, j), ("confound", covariate). Every row and every flag field must agree.

def _f(x, digits=3):
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _ref_tails(ctx: Ctx, pairs, quantiles=(0.05, 0.10), min_slice=20):
    from provaudit.checkpoints.stats import bootstrap_diff

    s = ctx.samples
    binary = s["outcome"].n_unique() <= 2
    slices = sorted(s["slice"].drop_nulls().unique().to_list()) if "slice" in s.columns else []
    m_q, m_s = max(len(pairs) * len(quantiles), 1), max(len(pairs) * len(slices), 1)
    thr_q, thr_s = sps.norm.ppf(1 - ctx.alpha / m_q), sps.norm.ppf(1 - ctx.alpha / m_s)
    rows, flags = [], []

    def pair_of(i, j, sl=None):
        a, b = ctx.ckpt(i), ctx.ckpt(j)
        if sl is not None:
            a, b = a.filter(pl.col("slice") == sl), b.filter(pl.col("slice") == sl)
        common = sorted(set(a["sample_id"]) & set(b["sample_id"]))
        paired = len(common) >= 0.8 * max(min(a.height, b.height), 1) and len(common) >= 2
        if paired:
            a, b = (x.filter(pl.col("sample_id").is_in(common)).sort("sample_id") for x in (a, b))
        return a["outcome"].to_numpy(), b["outcome"].to_numpy(), paired

    def boot(key, oa, ob, paired, q=None):
        return bootstrap_diff(oa, ob, ctx.rng(*key), paired=paired, q=q, n_boot=ctx.n_boot, level=ctx.level)

    for i, j in pairs:
        oa, ob, paired = pair_of(i, j)
        med, mean = boot(("median", i, j), oa, ob, paired, 0.5), boot(("mean", i, j), oa, ob, paired)
        flat = med.lo <= 0 <= med.hi or med.value >= 0
        row = {"from": ctx.names[i], "to": ctx.names[j], "slice": "(all)"}
        for stat, d in (("mean", mean), ("median", med)):
            rows.append({**row, "stat": stat, "n": d.n, "delta": d.value, "lo": d.lo, "hi": d.hi, "z": d.z(),
                         "flagged": False})
        for q in ([] if binary else quantiles):
            d = boot(("q", q, i, j), oa, ob, paired, q)
            hit = d.z() < -thr_q and flat and d.hi < 0
            p = f"p{round(q * 100):g}"
            rows.append({**row, "stat": p, "n": d.n, "delta": d.value, "lo": d.lo, "hi": d.hi, "z": d.z(),
                         "flagged": hit})
            if hit:
                flags.append(("tail_regression", ctx.names[j],
                              (f"{p} of the outcome fell {_f(-d.value)} from {ctx.names[i]} to {ctx.names[j]} while "
                              f"the median moved {_f(med.value)} (interval {_f(med.lo)}..{_f(med.hi)})"),
                              [d.lo, d.hi], f"outcome_{p}", d.value, sps.norm.sf(-d.z()),
                              {"slice": "(all)", "from": ctx.names[i], "median_change": med.value,
                               "threshold_z": thr_q, "tests_in_family": m_q}))
        for sl in slices:
            fa, fb, pr = pair_of(i, j, sl)
            if len(fa) < 2 or len(fb) < 2:
                continue
            d = boot(("slice", sl, i, j), fa, fb, pr)
            hit = min(len(fa), len(fb)) >= min_slice and d.z() < -thr_s and flat and d.hi < 0
            rows.append({"from": ctx.names[i], "to": ctx.names[j], "slice": str(sl), "stat": "mean", "n": d.n,
                         "delta": d.value, "lo": d.lo, "hi": d.hi, "z": d.z(), "flagged": hit})
            if hit:
                flags.append(("tail_regression", ctx.names[j],
                              (f"slice {sl!r}: mean outcome fell {_f(-d.value)} from {ctx.names[i]} to {ctx.names[j]} "
                              f"(z={_f(d.z())}, threshold {_f(thr_s)} over {m_s} slice tests) while the overall "
                              f"median moved {_f(med.value)}"), [d.lo, d.hi], "outcome_mean", d.value,
                              sps.norm.sf(-d.z()),
                              {"slice": str(sl), "from": ctx.names[i], "median_change": med.value,
                               "threshold_z": thr_s, "tests_in_family": m_s, "n": d.n}))
    return rows, flags


def _as_tuple(f):
    return (f.kind, f.checkpoint, f.evidence, f.interval, f.metric, f.value, f.p_value, f.details)


def _assert_tails(ctx, pairs, **ref):
    table, flags = tails(ctx, pairs)
    rows, expected = _ref_tails(ctx, pairs, **ref)
    assert table.columns == list(rows[0])
    assert_close(table.to_dicts(), rows)
    assert_close([_as_tuple(f) for f in flags], expected)
    return flags


def test_tails_whole_output_quantiles_over_two_pairs() -> None:
    a = _uniform(200)
    b = a.copy()
    b[a < 0.2] -= 5.0
    c = b + np.random.default_rng(3).normal(0, 0.01, 200)
    flags = _assert_tails(_ctx([a, b, c]), [(0, 1), (1, 2), (0, 2)])
    assert {f.checkpoint for f in flags} == {"c1", "c2"}  # c0 -> c1 and c0 -> c2, never c1 -> c2


def test_tails_whole_output_one_pair_one_quantile_and_unpaired_samples() -> None:
    a = _uniform(200)
    b = a.copy()
    b[a < 0.4] -= 5.0
    ctx = _ctx([a, b], thresholds={"tail_quantiles": [0.25]})
    flags = _assert_tails(ctx, [(0, 1)], quantiles=(0.25,))
    assert flags and flags[0].details["tests_in_family"] == 1  # one test: the threshold of a single test
    # different items on each side: an unpaired comparison
    s = ctx.samples.with_columns(pl.when(pl.col("checkpoint") == "c1").then(pl.col("sample_id") + 1000)
                                 .otherwise(pl.col("sample_id")).alias("sample_id"))
    _assert_tails(Ctx(ctx.series, s, ctx.thresholds, seed=0), [(0, 1)], quantiles=(0.25,))


def test_tails_whole_output_slices_with_the_default_minimum_and_a_single_slice() -> None:
    ctx, *_ = _sliced(19)
    ctx = Ctx(ctx.series, ctx.samples, {"bootstrap": 200, "tail_quantiles": []}, seed=0)  # min_slice_size 20
    flags = _assert_tails(ctx, [(0, 1)], quantiles=())
    assert [f.details["slice"] for f in flags] == ["big"]  # 19 worst items: one short of the default 20
    ctx20, *_ = _sliced(20)
    flags = _assert_tails(Ctx(ctx20.series, ctx20.samples, {"bootstrap": 200, "tail_quantiles": []}, seed=0),
                          [(0, 1)], quantiles=())
    assert sorted(f.details["slice"] for f in flags) == ["big", "small"]
    one = ctx.samples.with_columns(pl.when(pl.col("slice") == "big").then(pl.lit("big")).otherwise(None)
                                   .alias("slice"))
    flags = _assert_tails(Ctx(ctx.series, one, ctx.thresholds, seed=0), [(0, 1)], quantiles=())
    assert flags and flags[0].details["tests_in_family"] == 1


def test_tails_three_valued_outcome_has_quantile_rows() -> None:
    a = np.repeat([0.0, 1.0, 2.0], 70)
    b = a.copy()
    b[:50] = 0.0  # still the three values 0, 1, 2
    table, _ = tails(_ctx([a, b]), [(0, 1)])
    assert {"p5", "p10"} <= set(table["stat"])
    _assert_tails(_ctx([a, b]), [(0, 1)])


def _ref_confound(ctx: Ctx, covariate: str, label: str, share_threshold: float, first: int = 0, last=None):
    last = ctx.n - 1 if last is None else last
    a, b = (ctx.ckpt(x).filter(pl.col(covariate).is_not_null()) for x in (first, last))
    pa, ca, pb, cb = (a["proxy"].to_numpy(), a[covariate].to_numpy(), b["proxy"].to_numpy(),
                      b[covariate].to_numpy())
    k = int(ctx.thresholds.get("length_buckets", 5))
    gain, beta, explained, controlled = _expected_confound(pa, ca, pb, cb, k)
    rng = ctx.rng("confound", covariate)
    shares, cshares = [], []
    for _ in range(min(ctx.n_boot, 400)):
        ia, ib = rng.integers(0, len(pa), len(pa)), rng.integers(0, len(pb), len(pb))
        g, _, e, c = _expected_confound(pa[ia], ca[ia], pb[ib], cb[ib], k)
        if g != 0:
            shares.append(e / g)
            cshares.append(1 - c / g)
    share, bucket = explained / gain, 1 - controlled / gain
    tail = (1 - ctx.level) / 2
    share_ci = [np.quantile(shares, tail), np.quantile(shares, 1 - tail)]
    dp = ctx.diff(first, last, "proxy")
    combined = (share + bucket) / 2
    out = {"covariate": covariate, "from": ctx.names[first], "to": ctx.names[last], "proxy_gain": gain,
           "proxy_gain_interval": [dp.lo, dp.hi], "covariate_from": ca.mean(), "covariate_to": cb.mean(),
           "slope_within_checkpoint": beta, "gain_explained": explained, "share": share, "share_interval": share_ci,
           "bucket_controlled_gain": controlled, "bucket_share": bucket,
           "bucket_share_interval": [np.quantile(cshares, tail), np.quantile(cshares, 1 - tail)],
           "combined_share": combined}
    flag = None
    if gain > 0 and dp.z() > sps.norm.ppf(1 - ctx.alpha) and combined >= share_threshold and share_ci[0] > 0:
        flag = (f"{label}_confound", ctx.names[last],
                (f"{label} explains {_f(100 * min(combined, 1.0))}% of the proxy gain {_f(gain)} from "
                f"{ctx.names[first]} to {ctx.names[last]} (regression share {_f(share)}, within-bucket share "
                f"{_f(bucket)}); mean {covariate} {_f(ca.mean())} -> {_f(cb.mean())}"),
                share_ci, f"{label}_share", combined, None, {"bucket_controlled_gain": controlled, "slope": beta})
    return out, flag


@pytest.mark.parametrize("explained,buckets", [(True, None), (False, None), (True, 3)])
def test_confound_whole_output(explained: bool, buckets: int | None) -> None:
    pa, la, pb, lb = _length_data(explained=explained)
    th = {} if buckets is None else {"length_buckets": buckets}
    ctx = _ctx([np.zeros(300)] * 2, [pa, pb], thresholds=th, length=[la, lb])
    out, flags = confound(ctx, "length", "length", 0.5)
    ref, flag = _ref_confound(ctx, "length", "length", 0.5)
    assert_close(out, ref)
    assert_close([_as_tuple(f) for f in flags], [flag] if flag else [])
    assert bool(flags) is explained


def test_confound_between_chosen_checkpoints_and_a_covariate_that_explains_more_than_all() -> None:
    """``first``/``last`` pick the pair; a share above 1 is reported as is and said as 100% in words."""
    rng = np.random.default_rng(6)
    ls = [rng.uniform(100, 300, 300) + 80.0 * i for i in range(3)]
    ps = [0.012 * ls[i] - 0.3 * i + rng.normal(0, 0.2, 300) for i in range(3)]  # length gains more than all
    ctx = _ctx([np.zeros(300)] * 3, ps, length=ls)
    for first, last in ((0, 2), (1, 2), (0, 1)):
        out, flags = confound(ctx, "length", "length", 0.5, first=first, last=last)
        ref, flag = _ref_confound(ctx, "length", "length", 0.5, first=first, last=last)
        assert_close(out, ref)
        assert_close([_as_tuple(f) for f in flags], [flag] if flag else [])
    assert out["share"] > 1 and "explains 100% of" in flags[0].evidence


def test_overoptimization_flag_fields_and_evidence() -> None:
    ctx, kl = _rl_series([0.5, 2, 4, 6, 8, 10])  # the nearest checkpoint (KL 8) is the second to last
    out, (f,) = overoptimization(ctx, kl)
    fit = out["gao_fits"]["rl"]
    assert out["method"] == "argmax of outcome; robust smoothed peak alongside"
    assert f.checkpoint == "c4" and f.interval is None and f.p_value is None
    assert f.details == {"form": "rl", "a": fit["a"], "b": fit["b"], "c": fit["c"]}
    assert f.evidence == (
        f"Gao et al. RL form (R^2={_f(fit['r2'])}) peaks at KL={_f(fit['peak_kl'])} (nearest checkpoint c4); "
        f"training continued to KL={_f(10.0)} and the proxy rose {_f(out['proxy_rise_past_best'])} past the best "
        f"checkpoint {out['best_checkpoint']}")
    # the proxy spans 0.5 here: the rise past the best as a share of that span
    assert out["proxy_rise_past_best_share"] == pytest.approx(out["proxy_rise_past_best"] / 1.0)
    half = Ctx(ctx.series.with_columns(pl.col("proxy") * 0.5), None, {}, seed=0)
    out_half, _ = overoptimization(half, kl)
    assert out_half["proxy_rise_past_best"] == pytest.approx(out["proxy_rise_past_best"] * 0.5)
    assert out_half["proxy_rise_past_best_share"] == pytest.approx(out["proxy_rise_past_best_share"])


def test_a_missing_kl_value_is_left_out_of_the_fit() -> None:
    ctx, kl = _rl_series([0.5, 2, 4, 6, 8, 10, 14, 18])
    kl_gap = kl.copy()
    kl_gap[2] = np.nan
    out, flags = overoptimization(ctx, kl_gap)
    assert out["peak_kl"] == pytest.approx(math.exp(2), rel=1e-3) and [f.checkpoint for f in flags] == ["c4"]
    assert out["gao_fits"]["rl"]["r2"] == pytest.approx(1.0, abs=1e-6)


def test_the_minimum_slice_size_comes_from_the_thresholds() -> None:
    _, flags = tails(_sliced(14, min_slice=15)[0], [(0, 1)])
    assert [f.details["slice"] for f in flags] == ["big"]
    _, flags = tails(_sliced(15, min_slice=15)[0], [(0, 1)])
    assert sorted(f.details["slice"] for f in flags) == ["big", "small"]


def test_slices_of_one_item_are_skipped_and_of_two_reported() -> None:
    a = _uniform(200)
    rank = np.argsort(np.argsort(a))
    sl = np.where(rank < 1, "a_one", np.where(rank < 3, "b_two", "c_rest"))  # the one-item slice sorts first
    b = a.copy()
    b[rank < 3] -= 1.0
    ctx = _ctx([a, b], thresholds={"tail_quantiles": [], "min_slice_size": 2}, slice=[sl, sl])
    table, _ = tails(ctx, [(0, 1)])
    assert table.filter(pl.col("slice") != "(all)")["slice"].to_list() == ["b_two", "c_rest"]
    _assert_tails(ctx, [(0, 1)], quantiles=(), min_slice=2)
    # different items on each side (unpaired): a slice with one item on either side is skipped too
    s = ctx.samples.with_columns(
        pl.when(pl.col("checkpoint") == "c1").then(pl.col("sample_id") + 1000).otherwise(pl.col("sample_id"))
        .alias("sample_id"),
        pl.when((pl.col("checkpoint") == "c1") & (pl.col("slice") == "b_two")).then(pl.lit("a_one"))
        .otherwise(pl.col("slice")).alias("slice"))
    table, _ = tails(Ctx(ctx.series, s, ctx.thresholds, seed=0), [(0, 1)])
    assert table.filter(pl.col("slice") != "(all)")["slice"].to_list() == ["c_rest"]  # a_one: 1 vs 3 items


def test_a_slice_drop_between_the_95_interval_and_the_bonferroni_threshold_is_not_flagged() -> None:
    """z = -2.2: the 95% interval excludes 0, but 2 slice tests at alpha 0.01 need z below -2.58."""
    a = _uniform(300)
    rank = np.argsort(np.argsort(a))
    sl = np.where(rank < 100, "s", "rest")
    e = np.random.default_rng(7).normal(size=100)
    e = (e - e.mean()) / e.std(ddof=1)  # mean 0, sd 1 exactly
    b = a.copy()
    b[sl == "s"] += 0.05 * (-0.22 + e)  # z = -0.22 / (1 / sqrt(100)) = -2.2; all still under the median
    ctx = _ctx([a, b], thresholds={"tail_quantiles": []}, slice=[sl, sl])
    table, flags = tails(ctx, [(0, 1)])
    row = table.filter(pl.col("slice") == "s").row(0, named=True)
    assert row["z"] == pytest.approx(-2.2) and row["hi"] < 0 and flags == []


def test_a_significant_quantile_drop_whose_interval_reaches_zero_is_not_flagged() -> None:
    """30% collapse read at p25: the resamples' p25 sometimes lands above the collapse, so the interval's
    upper end is 0 although z is far below the threshold; a flag needs both."""
    a = _uniform(200)
    b = a.copy()
    b[a < 0.3] -= 5.0
    table, flags = tails(_ctx([a, b], thresholds={"tail_quantiles": [0.25]}), [(0, 1)])
    row = table.filter(pl.col("stat") == "p25").row(0, named=True)
    assert row["z"] < -sps.norm.ppf(1 - ALPHA) and row["hi"] == 0.0 and flags == []


def test_tails_at_another_interval_level_and_stat_names() -> None:
    a = _uniform(200)
    b = a + np.random.default_rng(9).normal(0, 0.05, 200)  # noise: resamples that differ, intervals that move
    b[a < 0.2] -= 5.0
    ctx = _ctx([a, b], thresholds={"interval_level": 0.8, "tail_quantiles": [0.05, 0.99]},
               slice=[np.where(a < 0.5, "low", "high")] * 2)
    _assert_tails(ctx, [(0, 1)], quantiles=(0.05, 0.99))
    assert set(tails(ctx, [(0, 1)])[0]["stat"]) == {"mean", "median", "p5", "p99"}
    assert tails(ctx, []) == (None, [])


def test_confound_with_the_default_resamples_and_a_covariate_on_a_small_scale() -> None:
    """400 resamples at most (of the default 1000); teacher-likeness lives in [0, 1]: a within-checkpoint sum
    of squares under 1 still gives a slope."""
    pa, la, pb, lb = _length_data(explained=True, n=40)
    ctx = _ctx([np.zeros(40)] * 2, [pa, pb], thresholds={"bootstrap": 1000}, teacher=[la / 1000, lb / 1000])
    out, flags = confound(ctx, "teacher", "teacher", 0.5)
    ref, flag = _ref_confound(ctx, "teacher", "teacher", 0.5)
    assert_close(out, ref)
    assert_close([_as_tuple(f) for f in flags], [flag] if flag else [])
    assert out["slope_within_checkpoint"] > 1  # 0.01 per unit of length: 10 per unit of length / 1000


def test_a_gain_of_exactly_zero_has_no_share_and_a_constant_covariate_no_slope() -> None:
    pa, la, pb, lb = _length_data(explained=True, n=50)
    out, flags = confound(_ctx([np.zeros(50)] * 2, [pa, pa], length=[la, lb]), "length", "length", 0.5)
    assert out["proxy_gain"] == 0 and math.isnan(out["share"]) and math.isnan(out["bucket_share"])
    assert out["combined_share"] is None and flags == []
    const = np.full(50, 7.0)
    out, flags = confound(_ctx([np.zeros(50)] * 2, [np.full(50, 1.0), np.full(50, 1.0)], length=[const, const]),
                          "length", "length", 0.5)
    assert out["slope_within_checkpoint"] == 0.0 and out["gain_explained"] == 0.0
    assert out["share_interval"] is None and out["bucket_share_interval"] is None and flags == []
    out, _ = confound(_ctx([np.zeros(50)] * 2, [pa, pb], length=[const, const + 1]), "length", "length", 0.5)
    assert out["slope_within_checkpoint"] == 0.0  # no spread inside either checkpoint: no slope to read


def test_five_values_a_side_are_enough() -> None:
    pa, la, pb, lb = _length_data(explained=True, n=5)
    out, _ = confound(_ctx([np.zeros(5)] * 2, [pa, pb], length=[la, lb]), "length", "length", 0.5)
    assert out["covariate"] == "length"
    # 10 values in 5 buckets: no bucket holds 2 of each side, so the bucket share is missing and the
    # combined share is the regression share alone
    assert math.isnan(out["bucket_share"]) and out["combined_share"] == pytest.approx(out["share"])
    short = [None, *lb[1:].tolist()]
    assert confound(_ctx([np.zeros(5)] * 2, [pa, pb], length=[la, short]), "length", "length", 0.5) == ({}, [])
    assert confound(_ctx([np.zeros(5)] * 2, [pa, pb], length=[short, lb]), "length", "length", 0.5) == ({}, [])


def test_a_confound_gain_is_tested_once_at_alpha() -> None:
    """z = 2.45 lies between the one-test threshold (2.33 at alpha 0.01) and a two-test one (2.58). The
    covariate spans one unit inside each checkpoint, so the share's bootstrap interval stays above 0."""
    n = 100
    rng = np.random.default_rng(1)
    la = rng.uniform(100, 101, n)
    lb = la + 0.5
    pa = 0.01 * la + rng.normal(0, 0.001, n)
    e = rng.normal(size=n)
    e = (e - e.mean()) / e.std(ddof=1)
    pb = pa + 0.005 + (0.005 / 2.45 * math.sqrt(n)) * e  # paired differences: mean 0.005, z exactly 2.45
    ctx = _ctx([np.zeros(n)] * 2, [pa, pb], length=[la, lb])
    assert ctx.diff(0, 1, "proxy").z() == pytest.approx(2.45)
    out, flags = confound(ctx, "length", "length", -10.0)
    ref, flag = _ref_confound(ctx, "length", "length", -10.0)
    assert_close(out, ref)
    assert out["share_interval"][0] > 0 and flag is not None and [f.kind for f in flags] == ["length_confound"]


def test_a_kl_of_zero_at_the_start_counts_in_the_fit() -> None:
    ctx, kl = _rl_series([0.0, 2, 4, 6, 8, 10, 14, 18])
    out, _ = overoptimization(ctx, kl)
    from provaudit.checkpoints.stats import fit_gao

    d = np.sqrt(kl)
    assert np.isfinite(ctx.O).all()
    assert out["gao_fits"]["rl"] == fit_gao(d, ctx.O, "rl") and out["gao_fits"]["bon"] == fit_gao(d, ctx.O, "bon")
    assert out["gao_fits"]["bon"] != fit_gao(d[1:], ctx.O[1:], "bon")  # the KL-0 checkpoint changes the fit
