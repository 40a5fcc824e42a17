"""The teacher-convergence trend rule (provaudit.style.trends.trend) pinned on hand-made per-batch results.

By the module's definition: the slope is least squares of the metric on the step index (checked against
numpy's polyfit); its interval redraws each batch's value from a normal whose standard error is its own
95% interval's half-width / 1.959964, refits, and takes the percentile interval (widened to hold the
slope); Kendall's tau is scipy's; ``converging`` needs slope >= ``min_slope_per_step`` and an interval
above 0, ``diverging`` the mirror image; fewer than two points give no trend.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from provaudit.errors import UsageError
from provaudit.style.trends import trend

RULES = {"trend": {"min_slope_per_step": 0.02, "ci": 0.95, "n_boot": 500},
         "teacher": {"max_teacher_likeness": 0.7, "max_teacher_fraction": 0.5}}


def _res(v, lo=None, hi=None, **kw) -> dict:
    return {"teacher_likeness": v, "ci_low": lo, "ci_high": hi, **kw}


def _rules(**trend_kw) -> dict:
    return {"trend": {**RULES["trend"], **trend_kw}, "teacher": RULES["teacher"]}


def test_slope_tau_and_a_point_interval_without_batch_intervals() -> None:
    ys = [0.5, 0.52, 0.55, 0.61]
    out = trend([_res(v, batch=f"b{i}", n=10) for i, v in enumerate(ys)], rules=RULES)
    slope = np.polyfit(np.arange(4), ys, 1)[0]
    tau, p = kendalltau(np.arange(4), ys)
    assert out["slope"] == round(slope, 5) and out["slope_ci_low"] == out["slope_ci_high"] == out["slope"]
    assert (out["kendall_tau"], out["kendall_p"]) == (round(tau, 4), round(p, 4))
    assert out["converging"] is True and out["verdict"] == "converging toward the teacher"
    assert out["points"][0] == {"step": 0, "batch": "b0", "value": 0.5, "ci_low": None, "ci_high": None, "n": 10}
    assert (out["metric"], out["n_steps"], out["threshold_slope_per_step"], out["threshold_value"]) == (
        "teacher_likeness", 4, 0.02, 0.7)


@pytest.mark.parametrize(("min_slope", "converging"), [(0.25, True), (0.25 + 1e-9, False)])
def test_the_minimum_slope_is_inclusive(min_slope: float, converging: bool) -> None:
    out = trend([_res(0.25), _res(0.5), _res(0.75)], rules=_rules(min_slope_per_step=min_slope))
    assert out["slope"] == 0.25 and out["converging"] is converging
    assert out["verdict"] == ("converging toward the teacher" if converging else "no significant trend")


def test_the_slope_interval_is_the_parametric_bootstrap_of_the_batch_intervals() -> None:
    ys, half = [0.40, 0.45, 0.47, 0.55, 0.58], [0.02, 0.03, 0.02, 0.04, 0.03]
    results = [_res(v, v - h, v + h) for v, h in zip(ys, half)]
    out = trend(results, rules=_rules(n_boot=400, ci=0.9), seed=11)
    x = np.arange(5.0)
    se = np.array(half) / 1.959964
    draws = np.array(ys) + np.random.default_rng(11).standard_normal((400, 5)) * se
    slopes = [np.polyfit(x, d, 1)[0] for d in draws]
    lo, hi = np.quantile(slopes, [0.05, 0.95])
    slope = np.polyfit(x, ys, 1)[0]
    assert out["slope"] == round(slope, 5)
    assert (out["slope_ci_low"], out["slope_ci_high"]) == (round(min(lo, slope), 5), round(max(hi, slope), 5))
    assert out["converging"] is True
    assert trend(results, rules=_rules(n_boot=400, ci=0.9), seed=12)["slope_ci_low"] != out["slope_ci_low"]
    # the same rise inside wide batch intervals: the slope passes the minimum, its interval does not clear 0
    wide = trend([_res(v, v - 0.3, v + 0.3) for v in ys], rules=RULES)
    assert wide["slope"] >= 0.02 and wide["slope_ci_low"] < 0 and wide["converging"] is False
    assert wide["verdict"] == "no significant trend"


def test_a_falling_metric_with_tight_intervals_is_diverging() -> None:
    ys = [0.7, 0.65, 0.61, 0.55]
    out = trend([_res(v, v - 0.01, v + 0.01) for v in ys], rules=RULES)
    assert out["slope"] <= -0.02 and out["slope_ci_high"] < 0 and out["converging"] is False
    assert out["verdict"] == "diverging from the teacher"
    # falling, but less than the minimum per step: no trend either way
    flat = trend([_res(v, v - 0.001, v + 0.001) for v in (0.7, 0.69, 0.68, 0.67)], rules=RULES)
    assert flat["slope"] == -0.01 and flat["verdict"] == "no significant trend"


def test_points_keep_their_step_skip_missing_values_and_read_dotted_intervals() -> None:
    results = [{"teacher_fraction": {"alpha": 0.1, "ci_low": 0.05, "ci_high": 0.2}, "started_at": "2026-01-01"},
               {"teacher_fraction": {"ci_low": 0.1}},  # no value: skipped, the next keeps step 2
               {"batch": "third", "teacher_fraction": {"alpha": 0.3, "ci_low": 0.2, "ci_high": 0.4}}]
    out = trend(results, metric="teacher_fraction.alpha", rules=RULES)
    assert [(p["step"], p["batch"], p["value"], p["ci_low"], p["ci_high"]) for p in out["points"]] == [
        (0, "step0", 0.1, 0.05, 0.2), (2, "third", 0.3, 0.2, 0.4)]
    assert out["points"][0]["started_at"] == "2026-01-01" and "started_at" not in out["points"][1]
    assert out["slope"] == round((0.3 - 0.1) / 2, 5) and out["threshold_value"] == 0.5
    assert trend(results, metric="stylometry.position", rules=RULES)["threshold_value"] is None


def test_fewer_than_two_points_give_no_trend_and_a_flat_series_no_tau() -> None:
    one = trend([_res(0.9)], rules=RULES)
    assert one["n_steps"] == 1 and one["converging"] is False and one["slope"] is None
    assert one["verdict"] == "no trend (need at least two steps)"
    assert trend([], rules=RULES)["n_steps"] == 0
    flat = trend([_res(0.5), _res(0.5), _res(0.5)], rules=RULES)
    assert flat["slope"] == 0.0 and flat["kendall_tau"] is None and flat["kendall_p"] is None
    with pytest.raises(UsageError):
        trend(rules=RULES)


def test_interval_keys_and_the_no_trend_answer_in_full() -> None:
    from provaudit.style.trends import _interval_keys

    assert _interval_keys("teacher_likeness") == ("ci_low", "ci_high")
    assert _interval_keys("teacher_fraction.alpha") == ("teacher_fraction.ci_low", "teacher_fraction.ci_high")
    assert _interval_keys("a.b.alpha") == ("a.b.ci_low", "a.b.ci_high")
    one = trend([_res(0.9, batch="only")], rules=RULES)
    assert one == {"metric": "teacher_likeness", "n_steps": 1, "threshold_slope_per_step": 0.02,
                   "threshold_value": 0.7,
                   "points": [{"step": 0, "batch": "only", "value": 0.9, "ci_low": None, "ci_high": None, "n": None}],
                   "slope": None, "slope_ci_low": None, "slope_ci_high": None, "kendall_tau": None, "kendall_p": None,
                   "converging": False, "note": "need at least two steps",
                   "verdict": "no trend (need at least two steps)"}
    with pytest.raises(UsageError, match="^trend needs per-batch results, or batches and a teacher reference$"):
        trend(batches=[["x"]], rules=RULES)
    with pytest.raises(UsageError, match="trend needs per-batch results"):
        trend(teacher=["x"], rules=RULES)


def test_rounding_boundaries_and_half_intervals() -> None:
    out = trend([_res(0.0), _res(1 / 3), _res(2 / 3)], rules=RULES)
    assert out["slope"] == 0.33333 and out["kendall_tau"] == 1.0
    tau = trend([_res(0.1), _res(0.3), _res(0.2)], rules=RULES)
    assert tau["kendall_tau"] == 0.3333
    # a point with only one end of an interval counts as without one (se 0)
    half = trend([_res(0.25, lo=0.2), _res(0.5, hi=0.6), _res(0.75)], rules=_rules(min_slope_per_step=0.25))
    assert half["slope_ci_low"] == half["slope_ci_high"] == 0.25 and half["converging"] is True
    # exactly the negative minimum, no intervals: diverging (inclusive, as the minimum is for converging)
    down = trend([_res(0.75), _res(0.5), _res(0.25)], rules=_rules(min_slope_per_step=0.25))
    assert down["verdict"] == "diverging from the teacher"
    # a minimum of 0 and a flat series: the interval [0, 0] is not above 0, nor below it
    flat = trend([_res(0.5), _res(0.5)], rules=_rules(min_slope_per_step=0.0))
    assert flat["converging"] is False and flat["verdict"] == "no significant trend"
    # falling, but inside wide intervals: the upper end stays above 0
    wide = trend([_res(v, v - 0.3, v + 0.3) for v in (0.6, 0.55, 0.5, 0.45)], rules=RULES)
    assert wide["slope"] <= -0.02 and 0 < wide["slope_ci_high"] < 1 and wide["verdict"] == "no significant trend"


def test_seed_default_and_a_rules_file(tmp_path) -> None:
    results = [_res(v, v - 0.05, v + 0.05) for v in (0.4, 0.45, 0.5)]
    assert trend(results, rules=RULES) == trend(results, rules=RULES, seed=0) != trend(results, rules=RULES, seed=1)
    f = tmp_path / "strict.yaml"
    f.write_text("trend:\n  min_slope_per_step: 0.5\n", encoding="utf-8")
    strict = trend([_res(0.25), _res(0.5)], rules=str(f))
    assert strict["threshold_slope_per_step"] == 0.5 and strict["converging"] is False


def test_batches_and_a_teacher_are_scored_first_with_the_same_seed(fixtures_dir) -> None:
    import json

    from provaudit.style import converge

    def texts(name: str) -> list[str]:
        return [json.loads(x)["text"] for x in (fixtures_dir / "style" / name).read_text(encoding="utf-8").splitlines()]

    teacher, human = texts("teacher_gpt4.jsonl")[:60:2], texts("human.jsonl")[:60:2]
    batches = [texts("human.jsonl")[1:20:2], texts("teacher_gpt4.jsonl")[1:20:2]]
    got = trend(batches=batches, teacher=teacher, human=human, seed=3, n_boot=20, rules=RULES)
    want = trend(converge(batches, teacher, human, seed=3, n_boot=20), seed=3, rules=RULES)
    assert got == want and got["n_steps"] == 2 and got["slope"] > 0
