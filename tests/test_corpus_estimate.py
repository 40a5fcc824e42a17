"""Corpus-level model share that does not lie: EM over calibrated posteriors with an interval that spans
the detector's per-domain error rates, `unreliable` when it cannot decide, and the gate's "cannot tell"."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from provaudit.gate import Check, evaluate_gate
from provaudit.origin.corpus import ErrorRates, acc, corpus_estimate, em_estimate, rates_from_scores

ROOT = Path(__file__).resolve().parent.parent
HUMAN_GATE = ROOT / "rules" / "gate-human-data.yaml"
LABELLED = ROOT / "fixtures" / "origin" / "labelled.jsonl"  # held out of the shipped detector's training


def _gauss_mix(a: float, n: int, seed: int) -> np.ndarray:
    """Scores whose calibration is known exactly: x ~ N(+1, 1) model, N(-1, 1) human, so the likelihood
    ratio is exp(2x) and p = sigmoid(2x) is the posterior at 1:1 prior odds."""
    g = np.random.default_rng(seed)
    k = round(a * n)
    x = np.r_[g.normal(1, 1, k), g.normal(-1, 1, n - k)]
    return 1 / (1 + np.exp(-2 * x))


def test_acc_is_the_textbook_formula() -> None:
    assert acc(0.3, 0.05, 0.55) == pytest.approx((0.3 - 0.05) / (0.55 - 0.05))
    assert acc(0.01, 0.05, 0.55) == 0.0 and acc(0.9, 0.05, 0.55) == 1.0


@pytest.mark.parametrize("a", [0.0, 0.3, 0.6, 1.0])
def test_em_recovers_known_shares_and_the_interval_covers_them(a: float) -> None:
    # threshold 0.5 on sigmoid(2x): FPR = P(N(-1,1) > 0), TPR = P(N(1,1) > 0)
    from scipy.stats import norm

    fpr, tpr = float(norm.sf(1)), float(norm.cdf(1))
    rates = ErrorRates(fpr, tpr, (fpr, fpr), (tpr, tpr), "exact")
    ests, covered = [], []
    for s in range(20):
        ce = corpus_estimate(_gauss_mix(a, 300, s), 0.5, rates, n_boot=150, seed=s)
        ests.append(ce["alpha"])
        covered.append(ce["ci_low"] <= a <= ce["ci_high"])
        assert ce["status"] == "ok"
    assert abs(np.mean(ests) - a) < 0.05
    assert np.mean(covered) >= 0.9


def test_rates_from_scores_match_a_direct_count() -> None:
    y = np.array([0] * 40 + [1] * 40)
    p = np.r_[np.linspace(0, 0.6, 40), np.linspace(0.3, 1, 40)]
    dom = np.array(["a"] * 20 + ["b"] * 20 + ["a"] * 20 + ["b"] * 20)
    r = rates_from_scores(y, p, 0.5, dom)
    assert r.fpr == pytest.approx((p[:40] >= 0.5).mean()) and r.tpr == pytest.approx((p[40:] >= 0.5).mean())
    # per-domain rates enter the range only with 30+ texts: here only the pooled ones
    assert r.fpr_range == (r.fpr, r.fpr)


def test_wide_error_rate_range_makes_the_estimate_unreliable_with_the_reason() -> None:
    rates = ErrorRates(0.01, 0.4, (0.0, 0.05), (0.08, 0.5), "test", ("news", "instructions"))
    ce = corpus_estimate(np.r_[np.full(90, 0.1), np.full(10, 0.9)], 0.5, rates, seed=0)
    assert ce["status"] == "unreliable" and ce["reliable"] == 0
    assert "news" in ce["reason"] and "instructions" in ce["reason"]
    assert ce["ci_low"] <= ce["alpha"] <= ce["ci_high"]
    few = corpus_estimate(np.full(5, 0.9), 0.5, rates)
    assert few["status"] == "unreliable" and few["alpha"] is None and "5 records" in few["reason"]


def test_em_matches_a_grid_search_of_the_likelihood() -> None:
    p = _gauss_mix(0.4, 300, 3)
    r = p / (1 - p)
    grid = np.linspace(0, 1, 10001)
    ll = [np.log((1 - a) + a * r).sum() for a in grid]
    assert em_estimate(p)[0] == pytest.approx(grid[int(np.argmax(ll))], abs=2e-4)


def test_gate_treats_unreliable_as_cannot_tell_per_the_file_choice() -> None:
    summary = {"origin": {"corpus_estimate": {"ci_low": 0.0, "status": "unreliable", "reason": "too wide"}}}
    for choice, status, passed in (("pass", "unreliable", True), ("fail", "fail", False)):
        (r,) = evaluate_gate(summary, [Check("c", "origin.corpus_estimate.ci_low", max=0.2, when_unreliable=choice)])
        assert r.status == status and r.passed is passed and "cannot tell (too wide)" in r.reason


@pytest.fixture(scope="module")
def labelled() -> pl.DataFrame:
    return pl.read_ndjson(LABELLED)


@pytest.mark.parametrize("domain", ["news", "stories", "abstracts", "student_essays"])
def test_human_data_gate_passes_on_held_out_human_corpora(labelled, domain, tmp_path) -> None:
    from provaudit.pipeline import scan

    f = tmp_path / f"{domain}.jsonl"
    labelled.filter((pl.col("domain") == domain) & (pl.col("label") == 0)).select("text").write_ndjson(f)
    res = scan(f, catalog=tmp_path / "c.duckdb", gate=HUMAN_GATE, record=False, origin_mode="fast")
    ce = res.summary["origin"]["corpus_estimate"]
    assert res.passed, res.summary["gate"]["failed"]
    assert ce["alpha"] <= 0.1 and ce["ci_low"] == 0.0  # near 0, and the interval covers the truth
    if domain == "abstracts":  # the case: CS224N human abstracts read 1.0 [1.0, 1.0] before
        assert res.summary["origin"]["word_mixture"]["alpha"] == 1.0


def test_human_data_gate_fails_on_gpt4_text(tmp_path) -> None:
    from provaudit.pipeline import scan

    rows = pl.read_ndjson(ROOT / "fixtures" / "style" / "teacher_gpt4.jsonl").head(150)
    col = "output" if "output" in rows.columns else "text"
    f = tmp_path / "gpt4.jsonl"
    rows.select(pl.col(col).alias("text")).write_ndjson(f)
    res = scan(f, catalog=tmp_path / "c.duckdb", gate=HUMAN_GATE, record=False, origin_mode="fast")
    ce = res.summary["origin"]["corpus_estimate"]
    assert ce["status"] == "ok" and ce["ci_low"] > 0.2 and ce["alpha"] >= 0.9
    assert "max_corpus_model_fraction" in res.summary["gate"]["failed"] and not res.passed
