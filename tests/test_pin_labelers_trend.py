"""The homogenizing-labelers rule, pinned to its documented meaning on hand-built batch rows.

Over batches 0..t (t = 2, 3, ...) the agreement (Krippendorff's alpha, or agreement with a reference label when
items carry one label each) is regressed on the batch index by weighted least squares (weights 1/se^2), and so is
the diversity of the chosen responses relative to the candidates; the first t at which the agreement slope's z is
above the one-sided normal threshold at ``level`` while the diversity slope's z is below minus that threshold is
flagged ``homogenizing`` at batch t. Expected values come from numpy's weighted polyfit and the slope's standard
error 1 / sqrt(sum w (x - mean_w x)^2), never from the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close
from scipy import stats as sps

from provaudit.style.labelers import _trend, _wls

Z95 = sps.norm.ppf(0.975)


def _ref_wls(y, se):
    x = np.arange(len(y), dtype=float)
    w = 1.0 / np.maximum(np.asarray(se, dtype=float), 1e-6) ** 2
    slope = float(np.polyfit(x, np.asarray(y, dtype=float), 1, w=np.sqrt(w))[0])  # polyfit weighs residuals
    xm = (w * x).sum() / w.sum()
    return slope, 1.0 / math.sqrt(float((w * (x - xm) ** 2).sum()))


def _rows(agree, agree_se, div, div_se, key="alpha_nominal"):
    se_key = {"alpha_nominal": "alpha_se", "reference_agreement": "reference_agreement_se"}[key]
    return [{"batch": f"b{i}", key: a, se_key: sa, "chosen_diversity_rel": d, "chosen_diversity_rel_se": sd}
            for i, (a, sa, d, sd) in enumerate(zip(agree, agree_se, div, div_se))]


def test_wls_is_the_weighted_least_squares_slope_and_its_standard_error() -> None:
    y, se = [0.2, 0.5, 0.4, 0.9, 1.1], [0.1, 0.2, 0.05, 0.3, 0.1]
    assert _wls(np.array(y), np.array(se)) == pytest.approx(_ref_wls(y, se), rel=1e-9)
    y2, se2 = [1.0, 3.0], [0.0, 0.0]  # standard errors floored at 1e-6
    assert _wls(np.array(y2), np.array(se2)) == pytest.approx(_ref_wls(y2, se2), rel=1e-9)
    assert _wls(np.array([4.0]), np.array([0.1])) == (0.0, float("inf"))  # one batch: no slope
    y3, se3 = [0.1, 0.4, 0.3], [2.0, 2.0, 2.0]  # wide errors: weights 1/4, a weighted spread of 1/2 (under 1)
    assert _wls(np.array(y3), np.array(se3)) == pytest.approx(_ref_wls(y3, se3), rel=1e-9)


def _expected(rows, level, key):
    se_key = {"alpha_nominal": "alpha_se", "reference_agreement": "reference_agreement_se"}[key]
    thr = float(sps.norm.ppf(1 - level))
    ya, sa = [r[key] for r in rows], [r[se_key] for r in rows]
    yd, sd = [r["chosen_diversity_rel"] for r in rows], [r["chosen_diversity_rel_se"] for r in rows]
    looks, first = [], None
    for t in range(2, len(rows)):
        ba, sea = _ref_wls(ya[:t + 1], sa[:t + 1])
        bd, sed = _ref_wls(yd[:t + 1], sd[:t + 1])
        hit = ba / sea > thr and bd / sed < -thr
        looks.append({"through": rows[t]["batch"], "agreement_slope": ba, "agreement_z": ba / sea,
                      "diversity_slope": bd, "diversity_z": bd / sed, "flagged": bool(hit)})  # JSON: a bool
        if hit and first is None:
            first = t
    ba, sea = _ref_wls(ya, sa)
    bd, sed = _ref_wls(yd, sd)
    trend = {"agreement": key, "testable": True, "level": level, "threshold_z": thr, "agreement_slope": ba,
             "agreement_slope_interval": [ba - Z95 * sea, ba + Z95 * sea], "diversity_slope": bd,
             "diversity_slope_interval": [bd - Z95 * sed, bd + Z95 * sed], "looks": looks,
             "first_flagged_batch": rows[first]["batch"] if first is not None else None}
    return trend, first, thr


@pytest.mark.parametrize("key", ["alpha_nominal", "reference_agreement"])
def test_the_first_batch_where_agreement_rises_and_diversity_falls_is_flagged(key: str) -> None:
    agree = [0.50, 0.51, 0.50, 0.56, 0.62, 0.70, 0.78]
    div = [1.00, 0.99, 1.00, 0.97, 0.90, 0.84, 0.80]
    rows = _rows(agree, [0.02] * 7, div, [0.02] * 7, key)
    trend, flag = _trend(rows, 0.05)
    exp, first, thr = _expected(rows, 0.05, key)
    assert_close(trend, exp, strict_types=True)
    assert first is not None and flag["checkpoint"] == rows[first]["batch"]
    assert [lk["flagged"] for lk in trend["looks"]][:first - 2] == [False] * (first - 2)
    lk = exp["looks"][first - 2]
    half = Z95 * lk["agreement_slope"] / lk["agreement_z"]
    assert_close(flag, {
        "id": "homogenizing", "kind": "homogenizing", "checkpoint": rows[first]["batch"],
        "evidence": f"over batches b0..{rows[first]['batch']} labeler agreement ({key}) rose "
                    f"{lk['agreement_slope']:.3g} per batch (z={lk['agreement_z']:.3g}) while the diversity of the "
                    f"chosen responses relative to the candidates fell {-lk['diversity_slope']:.3g} per batch "
                    f"(z={lk['diversity_z']:.3g}; threshold {thr:.3g} each)",
        "interval": [lk["agreement_slope"] - half, lk["agreement_slope"] + half], "metric": key,
        "value": lk["agreement_slope"],
        "p_value": float(max(sps.norm.sf(lk["agreement_z"]), sps.norm.cdf(lk["diversity_z"]))),
        "details": {"diversity_slope": lk["diversity_slope"], "diversity_z": lk["diversity_z"],
                    "batches": [r["batch"] for r in rows[:first + 1]]}}, strict_types=True)


def test_both_movements_are_needed() -> None:
    agree = [0.50, 0.55, 0.60, 0.65, 0.70]
    flat = [1.0, 1.0, 1.0, 1.0, 1.0]
    trend, flag = _trend(_rows(agree, [0.01] * 5, flat, [0.01] * 5), 0.05)
    assert flag is None and trend["first_flagged_batch"] is None and trend["looks"][-1]["agreement_z"] > 10
    trend, flag = _trend(_rows(flat, [0.01] * 5, agree[::-1], [0.01] * 5), 0.05)
    assert flag is None and trend["looks"][-1]["diversity_z"] < -10
    # agreement falling and diversity rising: the opposite movement is no signal either
    trend, flag = _trend(_rows(agree[::-1], [0.01] * 5, agree, [0.01] * 5), 0.05)
    assert flag is None


def test_the_threshold_is_one_sided_at_level_without_a_correction_over_looks() -> None:
    """Slopes of exactly 1.8 standard errors: above the one-sided 5% threshold (1.645), under 1%'s (2.326)."""
    se = 0.1
    # three batches with equal errors: the slope's se is se / sqrt(2); slope 1.8 se / sqrt(2) gives z = 1.8
    step = 1.8 * se / math.sqrt(2)
    rows = _rows([0.0, step, 2 * step], [se] * 3, [1.0, 1.0 - step, 1.0 - 2 * step], [se] * 3)
    trend, flag = _trend(rows, 0.05)
    assert trend["looks"][0]["agreement_z"] == pytest.approx(1.8) and flag is not None
    assert flag["checkpoint"] == "b2" and trend["threshold_z"] == pytest.approx(sps.norm.ppf(0.95))
    trend, flag = _trend(rows, 0.01)
    assert flag is None and trend["threshold_z"] == pytest.approx(sps.norm.ppf(0.99))


def test_untestable_rows() -> None:
    rows = _rows([0.5, 0.6, 0.7], [0.01] * 3, [1.0, 0.9, 0.8], [0.01] * 3)
    assert _trend(rows[:2], 0.05) == ({"agreement": "alpha_nominal", "testable": False}, None)
    no_div = [dict(r, chosen_diversity_rel_se=None) if i == 1 else r for i, r in enumerate(rows)]
    assert _trend(no_div, 0.05) == ({"agreement": "alpha_nominal", "testable": False}, None)
    no_agree = [dict(r, alpha_se=None) if i == 0 else r for i, r in enumerate(rows)]
    assert _trend(no_agree, 0.05) == ({"agreement": None, "testable": False}, None)
    # one row without an alpha standard error: the reference agreement is used where every row has one
    both = [dict(r, reference_agreement=r["alpha_nominal"], reference_agreement_se=0.01) for r in no_agree]
    trend, flag = _trend(both, 0.05)
    assert trend["agreement"] == "reference_agreement" and flag is not None
