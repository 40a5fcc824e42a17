"""The analysis context behind the decoupling rules, pinned to its documented meaning.

What the context reads from the series (names, steps or positions, defaults of ``alpha``, ``bootstrap`` and
``interval_level``), where its standard errors come from (reported ones, the series' own noise with a t
threshold on n - 3 degrees of freedom, or per-sample data), the per-sample differences (mean difference,
paired by sample id when the checkpoints share items, seeded bootstrap intervals), the rank correlation and
one-sided p-values (scipy), and every field of each decoupling flag. Expected values are computed here from
definitions (numpy/scipy), never by calling the code under test with the same inputs."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from provaudit.checkpoints.analysis import Ctx, _p_one_sided, correlation, decoupling
from provaudit.checkpoints.stats import noise_sigma_local

Z95 = sps.norm.ppf(0.975)
ALPHA = 0.01


def _g(x: float) -> str:
    return f"{x:.3g}"


def _series(proxy: list[float], outcome: list[float], steps: list[float | None] | None = None,
            **cols: list[float | None]) -> pl.DataFrame:
    n = len(proxy)
    data: dict[str, list] = {"checkpoint": [f"c{i}" for i in range(n)], "proxy": [float(v) for v in proxy],
                             "outcome": [float(v) for v in outcome]}
    if steps is not None:
        data["step"] = steps
    data.update(cols)
    return pl.DataFrame(data, schema_overrides={k: pl.Float64 for k in data if k != "checkpoint"})


def _slope(y: np.ndarray) -> tuple[float, float]:
    """OLS slope of y on 0..k-1 (numpy polyfit) and its se for unit per-point se: 1 / sqrt(Sxx)."""
    x = np.arange(len(y), dtype=float)
    return float(np.polyfit(x, y, 1)[0]), 1 / math.sqrt(float(((x - x.mean()) ** 2).sum()))


# ---- what the context reads ---------------------------------------------------------------------------------

def test_context_reads_names_values_steps_and_documented_defaults() -> None:
    s = _series([1, 2, 3, 4], [4, 3, 2, 1], steps=[10.0, 20.0, 40.0, 80.0])
    ctx = Ctx(s, None, {}, seed=0)
    assert ctx.names == ["c0", "c1", "c2", "c3"] and ctx.n == 4
    assert ctx.P.tolist() == [1, 2, 3, 4] and ctx.O.tolist() == [4, 3, 2, 1]
    assert ctx.P.dtype == np.float64 and ctx.x.dtype == np.float64
    assert ctx.x.tolist() == [10, 20, 40, 80]
    # documented defaults (docs/checkpoints.md: alpha 0.01; 1000 resamples; 95% intervals)
    assert (ctx.alpha, ctx.n_boot, ctx.level) == (0.01, 1000, 0.95)
    ctx = Ctx(s, None, {"alpha": 0.05, "bootstrap": 300, "interval_level": 0.9}, seed=0)
    assert (ctx.alpha, ctx.n_boot, ctx.level) == (0.05, 300, 0.9)
    # no step column, or a step missing: positions 0..n-1
    assert Ctx(s.drop("step"), None, {}, seed=0).x.tolist() == [0, 1, 2, 3]
    holed = s.with_columns(pl.Series("step", [10.0, None, 40.0, 80.0]))
    assert Ctx(holed, None, {}, seed=0).x.tolist() == [0, 1, 2, 3]


def test_metrics_only_noise_is_the_local_estimate_at_the_steps_with_n_minus_3_df() -> None:
    proxy = [0.0, 1.1, 1.9, 3.2, 3.9, 5.1, 6.0, 7.2]
    outcome = [0.0, 0.9, 2.1, 2.8, 4.2, 4.9, 6.1, 6.8]
    steps = [1.0, 2.0, 4.0, 8.0, 9.0, 10.0, 20.0, 21.0]
    ctx = Ctx(_series(proxy, outcome, steps), None, {}, seed=0)
    sp = noise_sigma_local(np.array(proxy), np.array(steps))
    so = noise_sigma_local(np.array(outcome), np.array(steps))
    assert sp != pytest.approx(noise_sigma_local(np.array(proxy)))   # the steps matter to the estimate
    assert ctx.df == 8 - 3
    assert ctx.seP.tolist() == pytest.approx([sp] * 8) and ctx.seO.tolist() == pytest.approx([so] * 8)
    assert ctx.sigma == {"proxy": pytest.approx(sp), "outcome": pytest.approx(so)}
    # three checkpoints: still one degree of freedom; two: no noise estimate, nothing can be significant
    assert Ctx(_series([0, 1, 3], [0, 1, 3]), None, {}, seed=0).df == 1
    two = Ctx(_series([0, 1], [1, 0]), None, {}, seed=0)
    assert two.df == 1 and np.isinf(two.seP).all() and np.isinf(two.seO).all()
    assert decoupling(two, 0) == []


def test_reported_standard_errors_replace_the_estimate_and_outcome_ones_switch_to_z() -> None:
    proxy, outcome = [0.0, 1.1, 1.9, 3.2, 3.9, 5.1], [0.0, 0.9, 2.1, 2.8, 4.2, 4.9]
    pse, ose = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    est = noise_sigma_local(np.array(outcome), np.arange(6.0))
    ctx = Ctx(_series(proxy, outcome, proxy_se=pse), None, {}, seed=0)
    assert ctx.seP.tolist() == pse and ctx.seO.tolist() == pytest.approx([est] * 6) and ctx.df == 3
    ctx = Ctx(_series(proxy, outcome, outcome_se=ose), None, {}, seed=0)
    assert ctx.seO.tolist() == ose and ctx.df is None
    # a column with a missing value is not a set of reported errors
    ctx = Ctx(_series(proxy, outcome, proxy_se=[0.1, None, 0.3, 0.4, 0.5, 0.6],
                      outcome_se=[0.6, 0.5, 0.4, None, 0.2, 0.1]), None, {}, seed=0)
    assert ctx.df == 3 and ctx.seO.tolist() == pytest.approx([est] * 6)
    assert ctx.seP.tolist() == pytest.approx([noise_sigma_local(np.array(proxy), np.arange(6.0))] * 6)


def test_metrics_only_difference_uses_each_metrics_own_errors() -> None:
    ctx = Ctx(_series([1.0, 4.0, 2.0], [5.0, 3.0, 0.0], proxy_se=[0.3, 0.4, 0.1], outcome_se=[1.0, 2.0, 2.0]),
              None, {}, seed=0)
    d = ctx.diff(0, 1, "proxy")
    assert (d.value, d.se, d.n, d.paired) == (3.0, pytest.approx(0.5), 1, False)
    assert [d.lo, d.hi] == pytest.approx([3 - Z95 * 0.5, 3 + Z95 * 0.5])
    d = ctx.diff(1, 2, "outcome")
    assert (d.value, d.se) == (-3.0, pytest.approx(math.sqrt(8)))
    assert [d.lo, d.hi] == pytest.approx([-3 - Z95 * math.sqrt(8), -3 + Z95 * math.sqrt(8)])


# ---- per-sample data ----------------------------------------------------------------------------------------

def _samples(n: int = 40, shared: bool = True, seed: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    ids_a = [f"s{k:03d}" for k in range(n)]
    ids_b = ids_a if shared else [f"t{k:03d}" for k in range(n)]
    base = rng.normal(0, 1, n)
    pa, pb = base + rng.normal(0, 0.3, n), base + 0.5 + rng.normal(0, 0.3, n)
    oa, ob = base + rng.normal(0, 0.3, n), base - 0.4 + rng.normal(0, 0.3, n)
    order = rng.permutation(n)  # rows of the second checkpoint in another order: pairing is by id
    rows = pl.concat([
        pl.DataFrame({"checkpoint": "c0", "sample_id": ids_a, "proxy": pa, "outcome": oa}),
        pl.DataFrame({"checkpoint": "c1", "sample_id": [ids_b[k] for k in order], "proxy": pb[order],
                      "outcome": ob[order]})])
    per = {"c0": (pa, oa), "c1": (pb, ob)}
    series = pl.DataFrame({"checkpoint": ["c0", "c1"], "step": [1.0, 2.0],
                           "proxy": [float(per[c][0].mean()) for c in ("c0", "c1")],
                           "outcome": [float(per[c][1].mean()) for c in ("c0", "c1")],
                           "proxy_se": [0.05, None], "outcome_se": [None, 0.07]})
    return series, rows


def test_per_sample_context_keeps_sorted_samples_and_fills_missing_errors_with_zero() -> None:
    series, rows = _samples()
    ctx = Ctx(series, rows, {}, seed=0)
    assert ctx.df is None
    assert ctx.seP.tolist() == [0.05, 0.0] and ctx.seO.tolist() == [0.0, 0.07]
    c1 = ctx.ckpt(1)
    assert c1["sample_id"].to_list() == sorted(c1["sample_id"].to_list()) and set(c1["checkpoint"]) == {"c1"}
    assert ctx.ckpt(0).height == 40


def test_paired_difference_is_the_mean_difference_by_sample_id() -> None:
    series, rows = _samples()
    ctx = Ctx(series, rows, {}, seed=0)
    a = rows.filter(pl.col("checkpoint") == "c0").sort("sample_id")
    b = rows.filter(pl.col("checkpoint") == "c1").sort("sample_id")
    for what in ("proxy", "outcome"):
        dd = b[what].to_numpy() - a[what].to_numpy()
        d = ctx.diff(0, 1, what)
        assert d.paired is True and d.n == 40
        assert d.value == pytest.approx(dd.mean())
        assert d.se == pytest.approx(dd.std(ddof=1) / math.sqrt(40))
        # the percentile interval of a mean of 40 is close to the normal one
        assert d.lo == pytest.approx(d.value - Z95 * d.se, abs=0.35 * d.se)
        assert d.hi == pytest.approx(d.value + Z95 * d.se, abs=0.35 * d.se)
    med = ctx.diff(0, 1, "proxy", q=0.5)
    assert med.value == pytest.approx(float(np.median(b["proxy"])) - float(np.median(a["proxy"])))


def test_unpaired_difference_when_the_checkpoints_share_no_items() -> None:
    series, rows = _samples(shared=False)
    ctx = Ctx(series, rows, {}, seed=0)
    a, b = (rows.filter(pl.col("checkpoint") == c)["outcome"].to_numpy() for c in ("c0", "c1"))
    d = ctx.diff(0, 1, "outcome")
    assert d.paired is False
    assert d.value == pytest.approx(b.mean() - a.mean())
    assert d.se == pytest.approx(math.sqrt(a.var(ddof=1) / 40 + b.var(ddof=1) / 40))


def test_bootstrap_settings_and_seed_are_honoured() -> None:
    series, rows = _samples()

    def iv(seed: int = 0, what: str = "proxy", **thr: float) -> tuple[float, float]:
        d = Ctx(series, rows, dict(thr), seed=seed).diff(0, 1, what)
        return d.lo, d.hi

    assert iv() == iv()                                  # seeded: the same run gives the same interval
    assert iv(seed=1) != iv()                            # the run seed drives the resampling
    assert iv(bootstrap=200) != iv(bootstrap=5000)       # the number of resamples is the configured one
    lo, hi = iv(interval_level=0.5)
    lo95, hi95 = iv()
    d = Ctx(series, rows, {}, seed=0).diff(0, 1, "proxy")
    assert hi - lo == pytest.approx(2 * sps.norm.ppf(0.75) * d.se, rel=0.3)
    assert hi - lo < 0.5 * (hi95 - lo95)
    # proxy and outcome are resampled on their own streams: identical columns, different draws
    same = rows.with_columns(pl.col("proxy").alias("outcome"))
    ctx = Ctx(series, same, {}, seed=0)
    dp, do = ctx.diff(0, 1, "proxy"), ctx.diff(0, 1, "outcome")
    assert dp.value == do.value and (dp.lo, dp.hi) != (do.lo, do.hi)
    # and so is each pair of checkpoints: c1 and c2 hold the same samples, yet c0 -> c1 and c0 -> c2 (and
    # c1 -> c0 and c2 -> c0) are drawn on their own streams
    rows3 = pl.concat([rows, rows.filter(pl.col("checkpoint") == "c1").with_columns(pl.lit("c2").alias("checkpoint"))])
    series3 = pl.concat([series, series.tail(1).with_columns(pl.lit("c2").alias("checkpoint"))])
    ctx = Ctx(series3, rows3, {}, seed=0)
    d01, d02 = ctx.diff(0, 1, "proxy"), ctx.diff(0, 2, "proxy")
    d10, d20 = ctx.diff(1, 0, "proxy"), ctx.diff(2, 0, "proxy")
    assert d01.value == d02.value and (d01.lo, d01.hi) != (d02.lo, d02.hi)
    assert d10.value == d20.value == -d01.value and (d10.lo, d10.hi) != (d20.lo, d20.hi)


def test_sustained_flag_from_per_sample_data_is_paired_and_uses_z_thresholds() -> None:
    rng = np.random.default_rng(3)
    n = 60
    ids = [f"s{k:02d}" for k in range(n)]
    base = rng.normal(0, 1, n)
    means_p, means_o = [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 0.0, -1.0]
    frames = [pl.DataFrame({"checkpoint": f"c{c}", "sample_id": ids, "proxy": base + means_p[c] + rng.normal(0, .2, n),
                            "outcome": base + means_o[c] + rng.normal(0, .2, n)}) for c in range(4)]
    rows = pl.concat(frames)
    series = _series(means_p, means_o, steps=[1.0, 2.0, 3.0, 4.0], proxy_se=[None] * 4, outcome_se=[None] * 4)
    f = {x.kind: x for x in decoupling(Ctx(series, rows, {"window": 99}, seed=0), 1)}["decoupling"]
    thr = sps.norm.ppf(1 - ALPHA / (2 * 2))
    assert f.checkpoint == "c2" and f.details["paired"] is True
    assert f.details["threshold_z"] == pytest.approx(thr)
    dd = (frames[2]["outcome"] - frames[1]["outcome"]).to_numpy()
    assert f.value == pytest.approx(dd.mean())
    z = dd.mean() / (dd.std(ddof=1) / math.sqrt(n))
    assert f.p_value == pytest.approx(sps.norm.sf(abs(z)))
    assert f.details["checkpoints_flagged"] == ["c2", "c3"]


# ---- correlation and p-values -------------------------------------------------------------------------------

def test_correlation_is_spearman_and_kendall_across_checkpoints() -> None:
    p, o = [0.0, 1.0, 3.0, 2.0, 5.0, 4.0], [1.0, 0.5, 2.0, 3.0, 2.5, 0.0]
    out = correlation(Ctx(_series(p, o), None, {}, seed=0))
    rho, rp = sps.spearmanr(p, o)
    tau, tp = sps.kendalltau(p, o)
    assert out == {"spearman": pytest.approx(rho), "spearman_p": pytest.approx(rp), "kendall": pytest.approx(tau),
                   "kendall_p": pytest.approx(tp), "n_checkpoints": 6}


def test_one_sided_p_value_is_normal_or_student_t_of_the_absolute_z() -> None:
    assert _p_one_sided(-2.5, None) == pytest.approx(sps.norm.sf(2.5))
    assert _p_one_sided(2.5, None) == pytest.approx(sps.norm.sf(2.5))
    assert _p_one_sided(-2.5, 4) == pytest.approx(sps.t.sf(2.5, 4))
    assert _p_one_sided(-2.5, 4) > _p_one_sided(-2.5, None)


# ---- every field of each decoupling flag --------------------------------------------------------------------

SE = 0.01


def _given(proxy: list[float], outcome: list[float]) -> Ctx:
    n = len(proxy)
    return Ctx(_series(proxy, outcome, proxy_se=[SE] * n, outcome_se=[SE] * n), None, {"alpha": ALPHA, "window": 4},
               seed=0)


def test_every_field_of_the_sustained_and_step_flags() -> None:
    proxy = [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]
    outcome = [0.0, 1.0, 1.0, 0.0, -1.0, -2.0]
    got = {f.kind: f for f in decoupling(_given(proxy, outcome), 1)}
    se2 = math.sqrt(2) * SE
    # sustained: best c1, later c2..c5; c2 has no proxy rise; first with the proxy up and outcome down: c3
    f = got["decoupling"]
    thr = sps.norm.ppf(1 - ALPHA / (2 * 4))
    z = -1.0 / se2
    assert (f.checkpoint, f.metric, f.value) == ("c3", "outcome", pytest.approx(-1.0))
    assert f.interval == pytest.approx([-1 - Z95 * se2, -1 + Z95 * se2])
    assert f.p_value == pytest.approx(sps.norm.sf(abs(z)))
    assert f.evidence == (f"outcome {_g(-1.0)} below the best checkpoint c1 (z={_g(z)}, threshold {_g(thr)}) "
                          f"while the proxy is {_g(1.0)} higher")
    assert f.details == {"from": "c1", "proxy_change": pytest.approx(1.0),
                         "proxy_interval": pytest.approx([1 - Z95 * se2, 1 + Z95 * se2]), "paired": False,
                         "threshold_z": pytest.approx(thr), "checkpoints_flagged": ["c3", "c4", "c5"]}
    # step: c2 -> c3 is the first neighbour pair with the proxy up and the outcome down, both significant
    f = got["decoupling_step"]
    thr = sps.norm.ppf(1 - ALPHA / 5)
    assert (f.checkpoint, f.metric, f.value) == ("c3", "outcome", pytest.approx(-1.0))
    assert f.interval == pytest.approx([-1 - Z95 * se2, -1 + Z95 * se2])
    assert f.p_value == pytest.approx(sps.norm.sf(1 / se2))
    assert f.evidence == (f"from c2 to c3 the proxy rose {_g(1.0)} (z={_g(1 / se2)}) while the outcome fell "
                          f"{_g(1.0)} (z={_g(-1 / se2)})")
    assert f.details == {"from": "c2", "proxy_change": pytest.approx(1.0),
                         "proxy_interval": pytest.approx([1 - Z95 * se2, 1 + Z95 * se2]),
                         "threshold_z": pytest.approx(thr), "checkpoints_flagged": ["c3", "c4", "c5"]}


def test_every_field_of_the_trend_and_window_flags() -> None:
    proxy = [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    outcome = [0.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    got = {f.kind: f for f in decoupling(_given(proxy, outcome), 1)}
    # trend after best c1: windows c2..c4, c2..c5, c2..c6; the first already falls significantly
    f = got["decoupling_trend"]
    thr = sps.norm.ppf(1 - ALPHA / 3)
    bo, unit = _slope(np.array(outcome[2:5]))
    bp, _ = _slope(np.array(proxy[2:5]))
    so = unit * SE
    assert (f.checkpoint, f.metric, f.value) == ("c4", "outcome_slope", pytest.approx(bo))
    assert bo == pytest.approx(-0.1) and bp == pytest.approx(0.5)
    assert f.interval == pytest.approx([bo - Z95 * so, bo + Z95 * so])
    assert f.p_value == pytest.approx(sps.norm.sf(abs(bo / so)))
    assert f.evidence == (f"after the best checkpoint c1, over c2..c4 the outcome falls {_g(-bo)} per checkpoint "
                          f"(z={_g(bo / so)}, threshold {_g(thr)}) while the proxy rises {_g(bp)} per checkpoint")
    assert f.details == {"from": "c1", "window": ["c2", "c4"], "proxy_slope": pytest.approx(bp),
                         "threshold_z": pytest.approx(thr), "checkpoints_flagged": ["c4", "c5", "c6"]}
    # window of 4: c0..c3 has the outcome rising; c1..c4 is the first with the proxy up and the outcome down
    f = got["decoupling_window"]
    thr = sps.norm.ppf(1 - ALPHA / 4)
    bo, unit = _slope(np.array(outcome[1:5]))
    bp, _ = _slope(np.array(proxy[1:5]))
    so = unit * SE
    assert (f.checkpoint, f.metric, f.value) == ("c4", "outcome_slope", pytest.approx(bo))
    assert f.interval == pytest.approx([bo - Z95 * so, bo + Z95 * so])
    assert f.p_value == pytest.approx(sps.norm.sf(abs(bo / so)))
    assert f.evidence == (f"over c1..c4 the proxy trend is +{_g(bp)} per checkpoint while the outcome trend is "
                          f"{_g(bo)} per checkpoint (z={_g(bo / so)}, threshold {_g(thr)})")
    assert f.details == {"window": ["c1", "c4"], "proxy_slope": pytest.approx(bp), "threshold_z": pytest.approx(thr),
                         "checkpoints_flagged": ["c4", "c5", "c6"]}


def test_metrics_only_flags_use_t_thresholds_and_p_values_with_n_minus_3_df() -> None:
    # reported proxy errors only: the outcome's noise is estimated, so every family uses t with n - 3 df.
    # 20 checkpoints, small noise, proxy up and outcome down by 3 at c12: all four rules flag c12
    n = 20
    proxy = [0.1 * i + (3.0 if i >= 12 else 0.0) for i in range(n)]
    outcome = [0.006, -0.007, 0.032, 0.005, -0.027, 0.018, 0.065, 0.047, -0.035, -0.063, -0.031, 0.002,
               -3.116, -3.011, -3.062, -3.037, -3.027, -3.016, -2.979, -2.948]
    ctx = Ctx(_series(proxy, outcome, proxy_se=[SE] * n), None, {"alpha": ALPHA, "window": 4}, seed=0)
    df = n - 3
    assert ctx.df == df
    best = 5
    got = {f.kind: f for f in decoupling(ctx, best)}
    families = {"decoupling": (best + 1) * (n - best - 1), "decoupling_trend": n - best - 3,
                "decoupling_step": n - 1, "decoupling_window": n - 4 + 1}
    assert set(got) == set(families)
    for kind, f in got.items():
        assert f.checkpoint == "c12", kind
        assert f.details["threshold_z"] == pytest.approx(sps.t.ppf(1 - ALPHA / families[kind], df)), kind
        z = (f.value / ((f.interval[1] - f.interval[0]) / (2 * Z95)))
        # abs=0: the p-values are tiny (z of tens), where pytest's default absolute tolerance would let the
        # normal's p (underflowing to 0) pass for the t's
        assert f.p_value > 0 and f.p_value == pytest.approx(sps.t.sf(abs(z), df), rel=1e-6, abs=0), kind


def test_a_z_exactly_at_the_threshold_does_not_flag() -> None:
    """Strict inequalities: with standard errors 0 and 0.25 the difference's se is exactly 0.25, so a change of
    exactly threshold / 4 has z exactly at the threshold (no rounding) and must not flag."""
    thr = sps.norm.ppf(1 - ALPHA / 1)      # step family: one neighbour pair; sustained: best c0, one later
    for scale, flagged in ((1.0, False), (1.0 + 1e-9, True)):
        v = thr * scale / 4
        ctx = Ctx(_series([0.0, v], [0.0, -v], proxy_se=[0.0, 0.25], outcome_se=[0.0, 0.25]), None,
                  {"alpha": ALPHA, "window": 99}, seed=0)
        assert ctx.diff(0, 1, "outcome").z() == (-thr if scale == 1.0 else pytest.approx(-thr * scale))
        kinds = {f.kind for f in decoupling(ctx, 0)}
        assert ("decoupling" in kinds) is flagged and ("decoupling_step" in kinds) is flagged, scale
    # the proxy rise alone at exactly the threshold: no step flag even with a large outcome drop
    v = thr / 4
    ctx = Ctx(_series([0.0, v], [0.0, -1.0], proxy_se=[0.0, 0.25], outcome_se=[0.0, 0.25]), None,
              {"alpha": ALPHA, "window": 99}, seed=0)
    assert "decoupling_step" not in {f.kind for f in decoupling(ctx, 0)}
    # and the outcome drop alone at exactly the threshold: no step flag even with a large proxy rise
    ctx = Ctx(_series([0.0, 1.0], [0.0, -v], proxy_se=[0.0, 0.25], outcome_se=[0.0, 0.25]), None,
              {"alpha": ALPHA, "window": 99}, seed=0)
    assert "decoupling_step" not in {f.kind for f in decoupling(ctx, 0)}


def test_trend_needs_a_rising_proxy_and_a_significant_fall() -> None:
    # after the best checkpoint c0: a flat proxy (slope exactly 0) with a falling outcome is no trend flag
    falling = [10.0, 9.0, 8.0, 7.0, 6.0]
    assert "decoupling_trend" not in {f.kind for f in decoupling(_given([0.0, 1.0, 1.0, 1.0, 1.0], falling), 0)}
    assert "decoupling_trend" in {f.kind for f in decoupling(_given([0.0, 1.0, 2.0, 3.0, 4.0], falling), 0)}
    # a rising proxy with a flat outcome is no trend flag either
    assert "decoupling_trend" not in {f.kind for f in decoupling(_given([0.0, 1.0, 2.0, 3.0, 4.0],
                                                                       [10.0, 5.0, 5.0, 5.0, 5.0]), 0)}
    # exactly at the threshold (exact arithmetic: slope over c1..c3 = (y3 - y1) / 2, its se = 0.5 * 0.5 = 0.25
    # with outcome errors 0, 1, 0.5 there) does not flag; just past it does
    thr = sps.norm.ppf(1 - ALPHA)          # best c0 of four checkpoints: one trend window, c1..c3
    for scale, flagged in ((1.0, False), (1.0 + 1e-9, True)):
        outcome = [10.0, 0.0, 0.0, -thr * scale / 2]
        ctx = Ctx(_series([0.0, 1.0, 2.0, 3.0], outcome, proxy_se=[SE] * 4, outcome_se=[0.0, 0.0, 1.0, 0.5]),
                  None, {"alpha": ALPHA, "window": 99}, seed=0)
        assert ("decoupling_trend" in {f.kind for f in decoupling(ctx, 0)}) is flagged, scale


def test_zero_standard_errors_make_nothing_significant() -> None:
    # per-sample runs whose series has no standard errors: slopes have se 0, so no trend or window flag
    n = 6
    series = _series([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0], proxy_se=[None] * n,
                     outcome_se=[None] * n)
    rows = pl.concat([pl.DataFrame({"checkpoint": f"c{i}", "sample_id": ["a", "b", "c"],
                                    "proxy": [float(i)] * 3, "outcome": [5.0 - i] * 3}) for i in range(n)])
    ctx = Ctx(series, rows, {"alpha": ALPHA, "window": 3}, seed=0)
    assert ctx.seO.tolist() == [0.0] * n
    kinds = {f.kind for f in decoupling(ctx, 0)}
    assert "decoupling_trend" not in kinds and "decoupling_window" not in kinds


def _first_window(proxy: list[float], outcome: list[float], w: int) -> int | None:
    thr = sps.norm.ppf(1 - ALPHA / (len(proxy) - w + 1))
    for k in range(len(proxy) - w + 1):
        bp, unit = _slope(np.array(proxy[k:k + w]))
        bo, _ = _slope(np.array(outcome[k:k + w]))
        if bp / (unit * SE) > thr and bo / (unit * SE) < -thr:
            return k + w - 1
    return None


def test_window_size_is_configured_default_4_and_may_equal_the_series_length() -> None:
    proxy = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    outcome = [0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0]
    n = len(proxy)
    ends = {w: _first_window(proxy, outcome, w) for w in (3, 4, 5)}
    assert ends == {3: 2, 4: 3, 5: 4}     # the first window already flags: its end depends on the size

    def window_flag(thr: dict) -> str | None:
        ctx = Ctx(_series(proxy, outcome, proxy_se=[SE] * n, outcome_se=[SE] * n), None, {"alpha": ALPHA, **thr},
                  seed=0)
        return next((f.checkpoint for f in decoupling(ctx, n - 1) if f.kind == "decoupling_window"), None)

    assert window_flag({"window": 3}) == f"c{ends[3]}"
    assert window_flag({}) == f"c{ends[4]}"
    assert window_flag({"window": 5}) == f"c{ends[5]}"
    assert window_flag({"window": 2}) is None     # under 3 checkpoints a window has no slope test
    # a window as long as the series: one window, tested
    up, down = [0.0, 1.0, 2.0, 3.0], [0.0, -1.0, -2.0, -3.0]
    ctx = Ctx(_series(up, down, proxy_se=[SE] * 4, outcome_se=[SE] * 4), None, {"alpha": ALPHA, "window": 4}, seed=0)
    assert [f.checkpoint for f in decoupling(ctx, 3) if f.kind == "decoupling_window"] == ["c3"]


def test_window_flag_at_exactly_the_threshold_and_with_a_flat_outcome() -> None:
    """One window of 3 (slope = (y2 - y0) / 2; its se = 0.5 * 0.5 = 0.25 with errors 0, 1, 0.5): exactly at the
    threshold on either side does not flag, just past it does; a rising proxy over a flat outcome never does."""
    thr = sps.norm.ppf(1 - ALPHA)
    se = [0.0, 1.0, 0.5]

    def window(proxy: list[float], outcome: list[float]) -> bool:
        ctx = Ctx(_series(proxy, outcome, proxy_se=se, outcome_se=se), None, {"alpha": ALPHA, "window": 3}, seed=0)
        return "decoupling_window" in {f.kind for f in decoupling(ctx, 2)}

    assert not window([0.0, 0.0, thr / 2], [0.0, 0.0, -100.0])
    assert window([0.0, 0.0, thr * (1 + 1e-9) / 2], [0.0, 0.0, -100.0])
    assert not window([0.0, 0.0, 100.0], [0.0, 0.0, -thr / 2])
    assert window([0.0, 0.0, 100.0], [0.0, 0.0, -thr * (1 + 1e-9) / 2])
    assert not window([0.0, 0.0, 100.0], [0.0, 0.0, 0.0])


def test_a_proxy_slope_without_a_standard_error_is_never_significant() -> None:
    # per-sample run: no proxy errors in the series (0), reported outcome errors; even at level 0.5 (threshold 0)
    # the window rule does not count the proxy trend as significant
    series = _series([0.0, 1.0, 2.0], [0.0, -1.0, -2.0], proxy_se=[None] * 3, outcome_se=[SE] * 3)
    rows = pl.concat([pl.DataFrame({"checkpoint": f"c{i}", "sample_id": ["a", "b"], "proxy": [float(i)] * 2,
                                    "outcome": [-float(i)] * 2}) for i in range(3)])
    ctx = Ctx(series, rows, {"alpha": 0.5, "window": 3}, seed=0)
    assert ctx.seP.tolist() == [0.0] * 3
    assert "decoupling_window" not in {f.kind for f in decoupling(ctx, 0)}
    # with a proxy error the same series flags
    ctx = Ctx(series.with_columns(pl.lit(SE).alias("proxy_se")), rows, {"alpha": 0.5, "window": 3}, seed=0)
    assert "decoupling_window" in {f.kind for f in decoupling(ctx, 0)}
