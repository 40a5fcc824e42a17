"""Full-mode tagging without the language model: the rows the full detector scores and the rows that fall back to
the fast detector each follow their own detector's log-odds, thresholds and ``min_words`` (tagging._tag with a
fallback, fed hand-made feature rows), and the evidence's top features are the k largest |contributions| with
ties broken as argpartition + stable argsort defines them. Expected values are computed here with numpy from
the detectors' parameters."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from provaudit.origin.detector import FEATURE_NAMES, FULL_FEATURE_NAMES, Detector
from provaudit.origin.rules import RuleSet
from provaudit.origin.tagging import _tag, _top_k_order


def _detector(names: tuple[str, ...], seed: int, t_model: float, t_human: float, min_words: int) -> Detector:
    rng = np.random.default_rng(seed)
    k = len(names)
    return Detector(feature_names=list(names), mean=rng.normal(0, 0.3, k), scale=rng.uniform(0.5, 2.0, k),
                    coef=rng.normal(0, 1.0, k), intercept=float(rng.normal()), platt_a=0.9, platt_b=0.1,
                    threshold_model=t_model, threshold_human=t_human, min_words=min_words)


def _p(det: Detector, x: np.ndarray) -> np.ndarray:
    z = (np.sign(x) * np.log1p(np.abs(x)) - det.mean) / det.scale
    return 1 / (1 + np.exp(-(det.platt_a * (z @ det.coef + det.intercept) + det.platt_b)))


def test_fallback_rows_follow_the_fast_detector_and_its_thresholds() -> None:
    n, k, big = 40, len(FEATURE_NAMES), len(FULL_FEATURE_NAMES)
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(0, 2, size=(n, big)))
    full = _detector(FULL_FEATURE_NAMES, 1, 0.6, 0.4, 50)
    fast = _detector(FEATURE_NAMES, 2, 0.55, 0.45, 30)
    use_full = np.arange(n) % 2 == 0
    n_words = np.where(np.arange(n) % 4 < 2, 100, 40)      # 40 words: short for the full detector only
    recs = pl.DataFrame({"record_id": [f"r{i}" for i in range(n)], "role": ["response"] * n,
                         "text": [f"t{i}" for i in range(n)]})
    pf, ps = _p(full, x), _p(fast, x[:, :k])
    # thresholds inside each detector's own score range, so every outcome occurs on both sides
    full.threshold_model, full.threshold_human = (float(np.quantile(pf[use_full], q)) for q in (0.6, 0.3))
    fast.threshold_model, fast.threshold_human = (float(np.quantile(ps[~use_full], q)) for q in (0.7, 0.4))
    out = _tag(recs, RuleSet(rules=[]), full, x, n_words, (fast, use_full))
    p = np.where(use_full, pf, ps)
    assert out["p_model"].to_numpy() == pytest.approx(np.round(p, 6), abs=1e-6)
    t_model = np.where(use_full, full.threshold_model, fast.threshold_model)
    t_human = np.where(use_full, full.threshold_human, fast.threshold_human)
    short = n_words < np.where(use_full, 50, 30)
    want = np.where(short, "unknown", np.where(p >= t_model, "model", np.where(p <= t_human, "human", "unknown")))
    assert out["origin"].to_list() == want.tolist()
    assert len(set(want[~short & ~use_full])) == 3 and len(set(want[~short & use_full])) == 3
    ev = out["evidence"].to_list()
    assert [e["lm"] for e in ev] == use_full.tolist()
    assert [e["abstain"] for e in ev] == ["short text (<50 words)" if s else None for s in short]
    for i, e in enumerate(ev):
        det = full if use_full[i] else fast
        logit = math.log(p[i] / (1 - p[i]))
        assert e["p_detector"] == pytest.approx(round(1 / (1 + math.exp(-logit)), 4), abs=1e-4)
        z = (np.sign(x[i, :len(det.feature_names)]) * np.log1p(np.abs(x[i, :len(det.feature_names)])) - det.mean) \
            / det.scale
        c = z * det.coef * det.platt_a
        top = np.argsort(-np.abs(c), kind="stable")[:3]
        assert [f["name"] for f in e["features"]] == [det.feature_names[j] for j in top]
        assert [f["contribution"] for f in e["features"]] == pytest.approx([round(float(c[j]), 3) for j in top])
        assert [f["value"] for f in e["features"]] == pytest.approx([round(float(x[i, j]), 4) for j in top])


def _reference_order(a: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-a, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(-np.take_along_axis(a, part, 1), axis=1, kind="stable"), 1)


def test_top_k_order_matches_its_definition_with_ties_and_nan() -> None:
    rng = np.random.default_rng(5)
    a = np.round(rng.uniform(0, 1, size=(300, 7)), 1)      # many ties
    a[3, 2] = np.nan
    a[4] = 0.5
    a[5, :] = [0.9, 0.8, 0.7, 0.7, 0.1, 0.0, 0.0]          # tie right after the top k
    before = a.copy()
    for k in (1, 2, 3, 7):
        got = _top_k_order(a, k)
        assert got.dtype == np.int64 and got.shape == (300, k)
        assert np.array_equal(got, _reference_order(a, k)), k
        assert np.array_equal(a, before, equal_nan=True)     # the input is left unchanged
    distinct = rng.permutation(np.arange(28, dtype=float)).reshape(4, 7)
    assert np.array_equal(_top_k_order(distinct, 3), np.argsort(-distinct, axis=1)[:, :3])
    assert _top_k_order(distinct, 0).shape == (4, 0) and _top_k_order(distinct, 0).dtype == np.int64
    assert _top_k_order(np.zeros((0, 7)), 3).shape == (0, 3) and _top_k_order(np.zeros((0, 7)), 3).dtype == np.int64


def test_top_k_order_on_wide_rows_that_take_the_exact_path() -> None:
    """40 columns: rows with a NaN far below the top (distinct values otherwise) go to the argpartition path,
    whose k-th pick must be the k-th largest; with k = 20 and many ties, the stable sort decides the order."""
    rng = np.random.default_rng(11)
    a = np.stack([rng.permutation(40).astype(float) for _ in range(50)])
    a[:, 0] = np.where(a[:, 0] < 30, np.nan, a[:, 0])      # a NaN (never in the top 3) in most rows
    for k in (2, 3, 5):
        got = _top_k_order(a, k)
        assert np.array_equal(got, np.argsort(-np.nan_to_num(a, nan=-1.0), axis=1, kind="stable")[:, :k]), k
        assert np.array_equal(got, _reference_order(a, k)), k
    ties = np.round(rng.uniform(0, 1, size=(200, 40)), 1)
    assert np.array_equal(_top_k_order(ties, 20), _reference_order(ties, 20))


def _tagged(origin: list[str], p: list[float], fired: list[list[str]], role: list[str | None]) -> pl.DataFrame:
    from provaudit.origin.tagging import EVIDENCE_DTYPE

    n = len(origin)
    ev = pl.Series("evidence", [{"abstain": None, "features": [], "n_words": 60, "p_detector": p[i], "rules": fired[i],
                                 "lm": False} for i in range(n)], dtype=EVIDENCE_DTYPE)
    return pl.DataFrame({"record_id": [f"r{i}" for i in range(n)], "role": role, "origin": origin, "p_model": p,
                         "rules_fired": fired}, schema_overrides={"role": pl.Utf8, "origin": pl.Utf8, "p_model": pl.Float64,
                                                                  "rules_fired": pl.List(pl.Utf8)}
                        ).with_columns(ev)


def test_summary_counts_fractions_rules_and_roles_by_hand() -> None:
    from provaudit.errors import InputError
    from provaudit.origin.tagging import _default_rules, summarize_origin

    ids = _default_rules().ids
    r1, r2 = ids[0], ids[1]
    origin = ["model", "model", "human", "unknown", "human", "model", "unknown"]
    p = [0.91, 0.8, 0.1, 0.5, 0.05, 0.95, 0.4]
    fired = [[r1], [r1, r2], [], [r2], [], [], [r1]]
    role = ["chosen", "chosen", "rejected", None, "rejected", "prompt", "prompt"]
    s = summarize_origin(_tagged(origin, p, fired, role), n_boot=0)
    assert s["n"] == 7 and s["counts"] == {"human": 2, "model": 3, "unknown": 2}
    assert s["model_fraction"] == 0.6 and s["model_fraction_all"] == round(3 / 7, 4)
    assert s["mean_p_model"] == round(sum(p) / 7, 4)
    assert s["rule_counts"] == {**{i: 0 for i in ids}, r1: 3, r2: 2}
    assert s["by_role"] == {
        "chosen": {"n": 2, "model": 2, "human": 0, "unknown": 0, "model_fraction": 1.0, "mean_p_model": 0.855},
        "prompt": {"n": 2, "model": 1, "human": 0, "unknown": 1, "model_fraction": 1.0, "mean_p_model": 0.675},
        "rejected": {"n": 2, "model": 0, "human": 2, "unknown": 0, "model_fraction": 0.0, "mean_p_model": 0.075}}
    assert s["word_mixture"] is None and s["corpus_estimate"]["n"] == 7
    # nothing decided: no fraction; a role where nothing was decided: none either
    s = summarize_origin(_tagged(["unknown", "unknown"], [0.5, 0.6], [[], []], ["a", "a"]), n_boot=0)
    assert s["model_fraction"] is None and s["model_fraction_all"] == 0.0
    assert s["by_role"]["a"]["model_fraction"] is None and s["by_role"]["a"]["unknown"] == 2
    empty = summarize_origin(_tagged([], [], [], []), n_boot=0)
    assert (empty["n"], empty["model_fraction"], empty["model_fraction_all"], empty["mean_p_model"],
            empty["corpus_estimate"]) == (0, None, None, None, None)
    for col in ("origin", "p_model", "rules_fired"):
        with pytest.raises(InputError, match="not origin-tagged") as e:
            summarize_origin(_tagged(origin, p, fired, role).drop(col))
        assert e.value.field == col
