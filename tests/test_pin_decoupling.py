"""The decoupling rules on hand-built series with known standard errors (so every threshold is a normal
quantile computed here with scipy): a flag needs the proxy to rise while the outcome falls, it names the
FIRST checkpoint where both hold, and a z just inside the threshold does not flag."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

from provaudit.checkpoints.analysis import Ctx, decoupling
from provaudit.checkpoints.stats import noise_sigma, one_sided_threshold, weighted_slope

SE = 0.01
ALPHA = 0.01


def _ctx(proxy: list[float], outcome: list[float], se: float = SE, **thr: float) -> Ctx:
    n = len(proxy)
    frame = pl.DataFrame({"checkpoint": [f"c{i}" for i in range(n)], "step": [100 * (i + 1) for i in range(n)],
                          "proxy": [float(v) for v in proxy], "outcome": [float(v) for v in outcome], "proxy_se": [se] * n, "outcome_se": [se] * n})
    return Ctx(frame, None, {"alpha": ALPHA, **thr}, seed=0)


def _flags(ctx: Ctx, best: int) -> dict[str, object]:
    return {f.kind: f for f in decoupling(ctx, best)}


def test_sustained_flag_names_the_first_checkpoint_below_best_with_proxy_above() -> None:
    # best = c2; c3 ties the outcome (no drop); c4 drops with the proxy higher: the first flag is c4
    proxy = [0, 1, 2, 3, 4, 5]
    outcome = [0, 1, 2, 2, 1.0, 0.5]
    f = _flags(_ctx(proxy, outcome, window=99), best=2)["decoupling"]
    assert f.checkpoint == "c4"
    assert f.details["checkpoints_flagged"] == ["c4", "c5"]
    assert f.details["from"] == "c2"
    assert f.value == pytest.approx(-1.0) and f.details["proxy_change"] == pytest.approx(2.0)
    thr = norm.ppf(1 - ALPHA / (3 * 3))   # union bound over (best + 1) x 3 later checkpoints
    assert f.details["threshold_z"] == pytest.approx(thr)
    se = math.sqrt(2) * SE
    assert f.interval == pytest.approx([-1.0 - 1.959963984540054 * se, -1.0 + 1.959963984540054 * se])
    assert f.p_value == pytest.approx(norm.sf(1.0 / se), abs=1e-12)


def test_sustained_flag_needs_the_proxy_above_the_best_checkpoint() -> None:
    outcome = [0, 1, 2, 2, 1.0, 0.5]
    # at c4 the proxy is below its value at the best checkpoint: the first flag moves to c5
    f = _flags(_ctx([0, 1, 2, 3, 1.5, 5], outcome, window=99), best=2)["decoupling"]
    assert f.checkpoint == "c5" and f.details["checkpoints_flagged"] == ["c5"]
    # the proxy falls with the outcome: no decoupling at all (an ordinary regression)
    assert "decoupling" not in _flags(_ctx([0, 1, 2, 2, 1.0, 0.5], outcome, window=99), best=2)
    # equal proxy is not a rise
    assert "decoupling" not in _flags(_ctx([0, 1, 2, 2, 2, 2], outcome, window=99), best=2)


def test_sustained_flag_threshold_boundary() -> None:
    thr = norm.ppf(1 - ALPHA / (2 * 1))     # best = c1, one later checkpoint
    se = math.sqrt(2) * SE
    for z, want in ((thr * 1.01, True), (thr * 0.99, False)):
        ctx = _ctx([0, 1, 2], [0, 1, 1 - z * se], window=99)
        assert ("decoupling" in _flags(ctx, best=1)) is want, z
    # nothing after the best checkpoint: nothing to flag
    assert "decoupling" not in _flags(_ctx([0, 1, 2], [0, 1, 2], window=99), best=2)


def test_step_flag_needs_both_significant_and_names_the_later_checkpoint() -> None:
    n = 5
    thr = norm.ppf(1 - ALPHA / (n - 1))
    se = math.sqrt(2) * SE
    big = 2 * thr * se
    # c1 -> c2: proxy up significantly, outcome down significantly; c3 -> c4 the same again
    proxy = [0, 0, big, big, 2 * big]
    outcome = [0, 0, -big, -big, -2 * big]
    f = _flags(_ctx(proxy, outcome, window=99), best=4)["decoupling_step"]
    assert f.checkpoint == "c2" and f.details["from"] == "c1"
    assert f.details["checkpoints_flagged"] == ["c2", "c4"]
    assert f.details["threshold_z"] == pytest.approx(thr)
    # a proxy rise just under the threshold is not enough, however far the outcome falls
    small = 0.99 * thr * se
    assert "decoupling_step" not in _flags(_ctx([0, small, 2 * small, 3 * small, 4 * small],
                                                 [0, -1, -2, -3, -4], window=99), best=4)
    # and an outcome drop just under it is not enough however far the proxy rises
    assert "decoupling_step" not in _flags(_ctx([0, 1, 2, 3, 4], [0, -small, -2 * small, -3 * small, -4 * small],
                                                window=99), best=4)


def test_window_flag_uses_per_checkpoint_slopes_and_names_the_window_end() -> None:
    w = 4
    proxy = [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    outcome = [0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0]
    n = len(proxy)
    thr = norm.ppf(1 - ALPHA / (n - w + 1))
    xs = np.arange(w, dtype=float)
    first = None
    for k in range(n - w + 1):
        bp, sp = weighted_slope(xs, np.array(proxy[k:k + w]), np.full(w, SE))
        bo, so = weighted_slope(xs, np.array(outcome[k:k + w]), np.full(w, SE))
        if bp / sp > thr and bo / so < -thr:
            first = k + w - 1
            break
    assert first is not None
    f = _flags(_ctx(proxy, outcome, window=w), best=0)["decoupling_window"]
    assert f.checkpoint == f"c{first}"
    assert f.details["window"] == [f"c{first - w + 1}", f"c{first}"]
    # the slope of a straight line is exact
    assert weighted_slope(np.arange(4.0), np.array([1.0, 3.0, 5.0, 7.0]), np.full(4, 1.0))[0] == pytest.approx(2.0)
    assert weighted_slope(np.arange(4.0), np.zeros(4), np.full(4, 1.0))[1] == pytest.approx(1 / math.sqrt(5))


def test_trend_flag_after_the_best_checkpoint() -> None:
    # outcome falls steadily after the best (c1) while the proxy rises: a trend flag at the first end
    proxy = [0, 1, 2, 3, 4, 5, 6]
    outcome = [0, 5, 4.9, 4.8, 4.7, 4.6, 4.5]
    f = _flags(_ctx(proxy, outcome, window=99), best=1)["decoupling_trend"]
    ends = list(range(1 + 3, 7))
    thr = norm.ppf(1 - ALPHA / len(ends))
    first = None
    for j in ends:
        xs = np.arange(j - 1, dtype=float)
        bo, so = weighted_slope(xs, np.array(outcome[2:j + 1], dtype=float), np.full(j - 1, SE))
        if bo / so < -thr:
            first = j
            break
    assert f.checkpoint == f"c{first}" and f.details["window"] == ["c2", f"c{first}"]
    # the same outcome with a falling proxy: no trend flag
    assert "decoupling_trend" not in _flags(_ctx([6, 5, 4, 3, 2, 1, 0], outcome, window=99), best=1)


def test_no_flag_when_proxy_and_outcome_rise_together() -> None:
    assert _flags(_ctx([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], window=3), best=5) == {}


def test_thresholds_are_bonferroni_normal_or_t_quantiles() -> None:
    assert one_sided_threshold(0.05, 1) == pytest.approx(norm.ppf(0.95))
    assert one_sided_threshold(0.01, 4) == pytest.approx(norm.ppf(1 - 0.0025))
    from scipy.stats import t

    assert one_sided_threshold(0.01, 4, 5) == pytest.approx(t.ppf(1 - 0.0025, 5))
    assert one_sided_threshold(0.01, 0) == pytest.approx(norm.ppf(0.99))


def test_noise_sigma_recovers_the_noise_of_a_linear_trend() -> None:
    rng = np.random.default_rng(0)
    y = 0.3 * np.arange(400) + rng.normal(0, 0.2, 400)
    assert noise_sigma(y) == pytest.approx(0.2, rel=0.1)
    assert math.isnan(noise_sigma(np.array([1.0, 2.0])))
    assert noise_sigma(np.array([0.0, 1.0, 2.0, 3.0])) == 0.0


def test_flag_fields_name_metric_details_and_evidence() -> None:
    proxy = [0, 1, 2, 3, 4, 5]
    outcome = [0, 1, 2, 2, 1.0, 0.5]
    flags = _flags(_ctx(proxy, outcome, window=99), best=2)
    f = flags["decoupling"]
    assert f.metric == "outcome" and f.kind == "decoupling"
    assert set(f.details) == {"from", "proxy_change", "proxy_interval", "paired", "threshold_z", "checkpoints_flagged"}
    assert f.details["paired"] is False
    assert f.details["proxy_interval"] == pytest.approx([2 - 1.959963984540054 * math.sqrt(2) * SE,
                                                         2 + 1.959963984540054 * math.sqrt(2) * SE])
    assert "below the best checkpoint c2" in f.evidence and "-1 below" in f.evidence and "2 higher" in f.evidence
    t = flags["decoupling_trend"]
    assert t.metric == "outcome_slope" and set(t.details) == {"from", "window", "proxy_slope", "threshold_z",
                                                              "checkpoints_flagged"}
    # metrics-only series without given standard errors use t thresholds with n - 3 degrees of freedom
    frame = pl.DataFrame({"checkpoint": [f"c{i}" for i in range(8)], "step": [float(i) for i in range(8)],
                          "proxy": [float(i) for i in range(8)],
                          "outcome": [0.0, 1.05, 1.95, 3.0, 1.0, -1.1, -2.9, -5.2]})
    ctx = Ctx(frame, None, {"alpha": ALPHA, "window": 99}, seed=0)
    assert ctx.df == 5
    got = {f.kind: f for f in decoupling(ctx, 3)}
    from scipy.stats import t as student_t

    thr = student_t.ppf(1 - ALPHA / (4 * 4), 5)
    assert got["decoupling"].details["threshold_z"] == pytest.approx(thr)
    # the flag names the first checkpoint after the best whose drop exceeds the t threshold at the
    # series' noise (sigma: the robust estimate the analysis uses)
    sigma = ctx.sigma["outcome"]
    out = frame["outcome"].to_list()
    first = next(f"c{i}" for i in range(4, 8) if (out[3] - out[i]) / (math.sqrt(2) * sigma) > thr)
    assert got["decoupling"].checkpoint == first
    assert one_sided_threshold(ALPHA, 16, 5) == pytest.approx(student_t.ppf(1 - ALPHA / 16, 5))
