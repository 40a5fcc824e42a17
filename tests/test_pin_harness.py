"""The harness-health rules of provaudit/checkpoints/harness.py pinned at their documented boundaries, on small
hand-made runs: which sample gets which fault, the truncation pile-up (within max(1, 3%) of the longest output,
open-ended, at least ``harness_min_count``), duplicates (12+ words, two distinct prompts, refusals exempt), echoes,
score faults, finish reasons, error and extraction columns; the Wilson interval and McNemar p against scipy."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from provaudit.checkpoints import harness
from provaudit.checkpoints.io import load_rules
from provaudit.checkpoints.load import load_inputs

TWELVE = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu."  # 12 words, ends a sentence


def _loaded(tmp_path: Path, rows: list[dict]):
    """The rows as one per-sample results file, read by the checkpoint loader (proxy rm_score, outcome win)."""
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return load_inputs([str(path)], load_rules(), proxy="rm_score", outcome="win", checkpoint_names=None)


def _status(tmp_path: Path, rows: list[dict], thresholds: dict | None = None) -> tuple[dict[str, list[str]], dict]:
    """Faults per sample id of checkpoint ``a`` (rows need checkpoint, sample_id, prompt, response, scores; a clean
    checkpoint ``b`` is added where the rows have none: a report needs two)."""
    if not any(r["checkpoint"] == "b" for r in rows):
        rows = rows + _clean(24, "b")
    frame, extra = harness._status(_loaded(tmp_path, rows), thresholds)
    given = {c for r in rows for c in ("prompt", "response") if c in r}
    assert {"checkpoint", "sample_id", "proxy", "outcome", *given} <= set(frame.columns)
    assert frame.schema["faults"] == pl.List(pl.Utf8) and frame.schema["status"] == pl.Utf8
    a = frame.filter(pl.col("checkpoint") == "a")
    assert a["status"].to_list() == [f[0] if f else "ok" for f in a["faults"].to_list()]
    assert a["healthy"].to_list() == [not f for f in a["faults"].to_list()]
    return dict(zip(a["sample_id"].to_list(), a["faults"].to_list())), extra


def _row(i: int, response: str, *, ck: str = "a", prompt: str | None = None, **extra) -> dict:
    return {"checkpoint": ck, "sample_id": f"s{i:02d}", "prompt": prompt or f"Question number {i} about topic {i}?",
            "response": response, "rm_score": 0.5, "win": float(i % 2), **extra}


def _clean(n: int, ck: str = "a") -> list[dict]:
    return [_row(i, f"Answer {i} is short and complete.", ck=ck) for i in range(n)]


def test_a_clean_run_has_no_fault(tmp_path: Path) -> None:
    faults, extra = _status(tmp_path, _clean(24) + _clean(24, "b"))
    assert all(f == [] for f in faults.values()) and len(faults) == 24
    assert extra["truncation"] == {} and extra["extracted_column"] is None


def test_empty_and_whitespace_responses_are_empty(tmp_path: Path) -> None:
    rows = _clean(24)
    rows[3]["response"], rows[4]["response"] = "", "  \n "
    faults, _ = _status(tmp_path, rows)
    assert faults["s03"] == ["empty"] and faults["s04"] == ["empty"] and faults["s05"] == []


@pytest.mark.parametrize("n_cut,min_count,flagged", [(3, 3, True), (2, 3, False), (2, 2, True), (4, 5, False)])
def test_truncation_needs_min_count_open_outputs_at_the_cap(tmp_path: Path, n_cut, min_count, flagged) -> None:
    rows = _clean(24)
    cap = "word " * 80  # 400 characters
    for k in range(n_cut):
        rows[k]["response"] = cap[:300].strip()  # 299 characters, ends mid-sentence: the longest length
    faults, extra = _status(tmp_path, rows, {"harness_min_count": min_count})
    cut = [s for s, f in faults.items() if "truncated" in f]
    assert cut == ([f"s{k:02d}" for k in range(n_cut)] if flagged else [])
    assert extra["truncation"].get("a") == ({"unit": "chars", "cap": 299, "n_at_cap": n_cut} if flagged else None)


def test_the_cap_band_is_three_percent_of_the_longest_or_one_unit() -> None:
    # 200 characters: the band is [194, 200]; 193 is out
    chars = np.array([200.0, 194.0, 193.0, 20.0])
    words = np.array([40.0, 39.0, 38.0, 4.0])
    cut, info = harness._truncated(chars, words, np.array([True, True, True, True]), 2)
    assert cut.tolist() == [True, True, False, False] and info == {"unit": "chars", "cap": 200, "n_at_cap": 2}
    # 10 characters: 3% is 0.3, so the band is one character wide, [9, 10] (and one word, [2, 3]: a tie in
    # outputs flagged keeps the first unit, characters)
    cut, info = harness._truncated(np.array([10.0, 9.0, 8.0]), np.array([3.0, 2.0, 1.0]),
                                   np.array([True, True, True]), 2)
    assert cut.tolist() == [True, True, False] and info == {"unit": "chars", "cap": 10, "n_at_cap": 2}
    # an output that ends a sentence is never cut, and the unit that flags more outputs wins (words here)
    cut, info = harness._truncated(np.array([200.0, 150.0, 140.0, 100.0]), np.array([30.0, 30.0, 30.0, 10.0]),
                                   np.array([True, True, True, False]), 2)
    assert cut.tolist() == [True, True, True, False] and info == {"unit": "words", "cap": 30, "n_at_cap": 3}
    cut, info = harness._truncated(np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([False, False]), 1)
    assert info is None and not cut.any()
    # one-word open answers pile up at a longest length of one word
    cut, info = harness._truncated(np.array([30.0, 5.0, 5.0, 5.0]), np.array([1.0, 1.0, 1.0, 1.0]),
                                   np.array([False, True, True, True]), 3)
    assert cut.tolist() == [False, True, True, True] and info == {"unit": "words", "cap": 1, "n_at_cap": 3}
    cut, info = harness._truncated(np.array([50.0]), np.array([10.0]), np.array([True]), 1)  # a one-sample run
    assert cut.tolist() == [True] and info == {"unit": "chars", "cap": 50, "n_at_cap": 1}


def test_duplicates_need_twelve_words_and_two_prompts_and_spare_refusals(tmp_path: Path) -> None:
    rows = _clean(24)
    rows[0]["response"] = rows[1]["response"] = TWELVE  # 12 words, two prompts: duplicates
    eleven = TWELVE.split(" ", 1)[1]
    rows[2]["response"] = rows[3]["response"] = eleven  # 11 words: a short answer may repeat
    refusal = "I'm sorry, but I cannot help with that request because it asks for something unsafe."
    rows[4]["response"] = rows[5]["response"] = refusal
    rows[6]["response"] = rows[7]["response"] = "Same answer to the same question, " + TWELVE
    rows[7]["prompt"] = rows[6]["prompt"]  # one prompt twice: not a duplicate answer across prompts
    other = "one two three four five six seven eight nine ten eleven twelve."
    rows[8]["response"], rows[9]["response"] = other.replace("one", "ONE  "), other  # case, spacing: the same
    faults, _ = _status(tmp_path, rows)
    assert {s for s, f in faults.items() if "duplicate" in f} == {"s00", "s01", "s08", "s09"}


def test_duplicates_are_counted_within_a_checkpoint(tmp_path: Path) -> None:
    rows = _clean(24) + _clean(24, "b")
    rows[0]["response"] = TWELVE
    rows[24]["response"] = TWELVE  # the same answer in another checkpoint
    faults, _ = _status(tmp_path, rows)
    assert "duplicate" not in faults["s00"]


def test_echo_of_the_prompt(tmp_path: Path) -> None:
    rows = _clean(24)
    long_q = "Please explain in detail how photosynthesis works in plants"
    q25 = "abcdefghijklmnopqrstuvwxy"  # 25 characters: 80% is exactly 20
    q250 = " ".join(["photosynthesis"] * 17)[:250]
    rows[0]["response"] = ""  # an empty answer earlier in the run does not stop the checks of later ones
    rows[1].update(prompt=long_q, response=long_q.upper())                       # the prompt itself
    rows[2].update(prompt=long_q, response=long_q + " and then some more text")  # starts with the prompt
    rows[3].update(prompt=q25, response=q25[:20])                                # exactly 80% of it
    rows[4].update(prompt=q25, response=q25[:19])                                # less: not an echo
    rows[5].update(prompt="Short q?", response="Short q? Yes.")                  # prompt under 20 chars
    rows[6].update(prompt="abcdefghij klmnopqrs", response="abcdefghij klmnopqrs and more")  # exactly 20
    rows[7].update(prompt="abcdefghij klmnopqr", response="abcdefghij klmnopqr and more")    # 19
    rows[8].update(prompt=q250, response=q250[:200] + " then something else entirely")  # its first 200 chars
    faults, _ = _status(tmp_path, rows)
    assert faults["s00"] == ["empty"]
    assert [("echo" in faults[f"s{k:02d}"]) for k in range(1, 9)] == [True, True, True, False, False, True, False,
                                                                     True]


def test_score_faults_missing_non_numeric_and_out_of_declared_scale(tmp_path: Path) -> None:
    rows = _clean(24)
    rows[0]["win"] = None
    rows[1]["win"] = "N/A"
    rows[2]["win"] = 2.0
    rows[3]["win"] = 1.0  # the bounds are inside
    rows[4]["win"] = 0.0
    rows[5]["win"] = " "  # blank text: missing, not non-numeric
    faults, extra = _status(tmp_path, rows, {"harness_scales": {"win": [0, 1]}})
    assert faults["s00"] == ["score_missing"] and faults["s01"] == ["score_non_numeric"]
    assert faults["s02"] == ["score_out_of_scale"] and faults["s03"] == faults["s04"] == []
    assert faults["s05"] == ["score_missing"]
    assert extra["scales"]["win"] == [0.0, 1.0]
    # a declared scale wins over the inferred one (0-1 here): 2.0 is inside 0-10
    faults, extra = _status(tmp_path, rows, {"harness_scales": {"win": [0, 10]}})
    assert faults["s02"] == [] and extra["scales"]["win"] == [0.0, 10.0]


def test_finish_reason_error_and_extraction_columns(tmp_path: Path) -> None:
    rows = _clean(24)
    for r in rows:
        r.update(finish_reason="stop", error=None, extracted_answer="42")
    rows[0]["finish_reason"] = "LENGTH"
    rows[1]["finish_reason"] = "max_tokens"
    rows[2]["error"] = "timeout"
    rows[3]["error"] = "none"
    rows[4]["error"] = "0"
    for k, v in zip(range(8, 15), ("", "NULL", "False", "0.0", "[]", "{}", "NaN")):  # no error either
        rows[k]["error"] = v
    rows[5]["extracted_answer"] = "[invalid]"
    rows[6]["extracted_answer"] = None
    rows[7]["extracted_answer"] = "  N/A "
    faults, extra = _status(tmp_path, rows)
    assert faults["s00"] == faults["s01"] == ["truncated"]
    assert faults["s02"] == ["generation_error"] and faults["s03"] == faults["s04"] == []
    assert faults["s05"] == faults["s06"] == faults["s07"] == ["extraction_failed"]
    assert extra["extracted_column"] == "extracted_answer"
    assert all(faults[f"s{k:02d}"] == [] for k in range(8, 24))


def test_a_sample_keeps_each_fault_once_and_its_first_as_status(tmp_path: Path) -> None:
    rows = _clean(24)
    cap = ("word " * 80)[:300].strip()
    for k in range(3):  # truncated twice over (listed once); distinct texts, so no duplicates
        rows[k].update(response=chr(97 + k) + cap[1:], finish_reason="length")
    for r in rows[3:]:
        r["finish_reason"] = "stop"
    rows[0]["win"] = None
    faults, _ = _status(tmp_path, rows)
    assert faults["s00"] == ["truncated", "score_missing"] and faults["s01"] == ["truncated"]


def test_scale_inference_boundaries() -> None:
    ck = ["a"] * 20 + ["b"] * 20
    assert harness._scale(np.array([0.0, 1.0] * 10), ["a"] * 20, None) == (0.0, 1.0)
    assert harness._scale(np.array([0.0, 1.0] * 9 + [0.0]), ["a"] * 19, None) is None  # under 20 scores
    halves = np.array([0.5] * 2 + [1.0] * 38)  # 5% non-integer: still a scale
    assert harness._scale(halves, ck, None) == (0.0, 1.0)
    assert harness._scale(np.array([0.5] * 3 + [1.0] * 37), ck, None) is None  # 7.5% non-integer
    # one checkpoint of two on 0/1 is half: the 0-1 scale holds
    assert harness._scale(np.array([0.0, 1.0] * 10 + [3.0, 4.0] * 10), ck, None) == (0.0, 1.0)
    three = ["a"] * 20 + ["b"] * 20 + ["c"] * 20
    v = np.array([0.0, 1.0] * 10 + [3.0, 4.0] * 20)  # one of three: not 0-1; 1-5 holds 2/3 only; 0-5 all
    assert harness._scale(v, three, None) == (0.0, 5.0)
    assert harness._scale(np.array([3.0] * 39 + [11.0]), ck, None) == (1.0, 5.0)  # 97.5% in 1-5
    assert harness._scale(np.array([3.0] * 38 + [11.0] * 2), ck, None) == (0.0, 100.0)  # 95% in any smaller
    assert harness._scale(np.array([3.0] * 38 + [500.0] * 2), ck, None) is None
    assert harness._scale(np.array([np.nan] * 5 + [1.0, 0.0] * 10), ["a"] * 25, None) == (0.0, 1.0)
    # 0-1 needs its scores within [0, 1]: checkpoints of 1s and 2s are not on it
    abc = ["a"] * 20 + ["b"] * 20 + ["c"] * 20
    assert harness._scale(np.array([0.0, 1.0] * 10 + [1.0, 2.0] * 20), abc, None) == (0.0, 5.0)
    # exactly 97%: 97 of 100 scores of two checkpoints of three in [0, 1] (the third all 3s) ...
    v = np.array(([0.0, 1.0] * 48 + [1.0, 5.0, 5.0, 5.0]) * 2 + [3.0] * 100)
    assert harness._scale(v, ["a"] * 100 + ["b"] * 100 + ["c"] * 100, None) == (0.0, 1.0)
    # ... and 97 of 100 in 1-5 (3 sevens): 1-5 holds
    assert harness._scale(np.array([3.0] * 97 + [7.0] * 3), ["a"] * 50 + ["b"] * 50, None) == (1.0, 5.0)


# 16 of 16 and 0 of 21: the unclamped bounds round to 1.0000000000000002 and -1.4e-17
@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (1, 1), (17, 250), (16, 16), (0, 21)])
def test_wilson_interval_is_the_score_interval(k: int, n: int) -> None:
    z = sps.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = harness._wilson(k, n)
    assert lo == pytest.approx(max(0.0, centre - half), abs=1e-12) and hi == pytest.approx(min(1.0, centre + half),
                                                                                          abs=1e-12)
    assert 0.0 <= lo <= p + 1e-12 and p - 1e-12 <= hi <= 1.0
    assert harness._wilson(0, 0) == [0.0, 1.0]


@pytest.mark.parametrize("b,c", [(0, 0), (5, 0), (3, 4), (10, 2)])
def test_mcnemar_p_is_the_exact_binomial_test(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue
    assert harness._mcnemar_p(b, c) == pytest.approx(expected, abs=1e-15)


def _pairs(d_healthy: list[float], d_changed: list[float]) -> pl.DataFrame:
    n_h, n_c = len(d_healthy), len(d_changed)
    ids = [f"{i:03d}" for i in range(n_h + n_c)]
    yb = [*d_healthy, *d_changed]
    return pl.DataFrame({"checkpoint": ["a"] * len(ids) + ["b"] * len(ids), "sample_id": ids * 2,
                         "outcome": [0.0] * len(ids) + yb,
                         "healthy": [True] * len(ids) + [True] * n_h + [False] * n_c,
                         "status": ["ok"] * len(ids) + ["ok"] * n_h + ["echo"] * n_c})


def test_health_change_intervals_resample_pairs_and_the_healthy_test_is_a_z_test() -> None:
    rng = np.random.default_rng(3)
    dh = list(rng.normal(0.1, 1.0, 60))
    dc = list(rng.normal(-1.0, 0.2, 20))
    st = _pairs(dh, dc)
    out = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(0), n_boot=400)
    d = np.array(dh + dc)
    assert (out["from"], out["to"], out["metric"]) == ("a", "b", "outcome")
    assert out["n_paired"] == 80 and out["became_unhealthy"] == 20 and out["became_healthy"] == 0
    assert out["total"] == pytest.approx(d.mean()) and out["carried"] == pytest.approx(sum(dc) / 80)
    assert out["share"] == pytest.approx((sum(dc) / 80) / d.mean())
    lo, hi = out["total_interval"]
    se = d.std(ddof=1) / math.sqrt(80)
    assert lo < d.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * se, rel=0.25)  # a real resampling width
    h = out["healthy"]
    z = np.mean(dh) / (np.std(dh, ddof=1) / math.sqrt(60))
    assert h["n"] == 60 and h["z"] == pytest.approx(z) and h["p_value"] == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert h["significant"] is bool(h["p_value"] < 0.05)
    assert h["interval"][0] < h["delta"] < h["interval"][1]
    assert out["new_faults"] == {"echo": 20} and out["fixed_faults"] == {}
    assert out["mcnemar_p"] == pytest.approx(sps.binomtest(20, 20, 0.5).pvalue)


def test_health_change_without_a_change_or_pairs() -> None:
    st = _pairs([0.0] * 30, [])
    out = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(0), n_boot=200)
    assert out["total"] == 0.0 and out["share"] is None and out["mcnemar_p"] == 1.0
    assert out["healthy"]["p_value"] == 1.0 and out["healthy"]["z"] == 0.0 and not out["healthy"]["significant"]
    one = harness.health_change(_pairs([1.0], []), "a", "b", "outcome", np.random.default_rng(0))
    assert "total" not in one and one["n_paired"] == 1


def test_health_change_names_fixed_faults_and_draws_1000_resamples_by_default() -> None:
    """Samples that were broken in a and are healthy in b: counted, their former faults named, McNemar on both
    directions; the default of 1000 resamples (the intervals of an explicit 1000 are the same numbers)."""
    rng = np.random.default_rng(5)
    n = 40
    st = pl.DataFrame({"checkpoint": ["a"] * n + ["b"] * n, "sample_id": [f"{i:02d}" for i in range(n)] * 2,
                       "outcome": list(rng.normal(0, 1, n)) + list(rng.normal(0.3, 1, n)),
                       "healthy": [i >= 6 for i in range(n)] + [i != 10 for i in range(n)],
                       "status": ["empty" if i < 4 else "echo" if i < 6 else "ok" for i in range(n)]
                       + ["duplicate" if i == 10 else "ok" for i in range(n)]})
    out = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(1))
    assert out["became_healthy"] == 6 and out["became_unhealthy"] == 1
    assert out["fixed_faults"] == {"echo": 2, "empty": 4} and out["new_faults"] == {"duplicate": 1}
    assert out["mcnemar_p"] == pytest.approx(sps.binomtest(1, 7, 0.5).pvalue)
    same = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(1), n_boot=1000)
    other = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(1), n_boot=1001)
    assert same == out and other["total_interval"] != out["total_interval"]


def _ref_health_change(st: pl.DataFrame, what: str, seed: int, n_boot: int = 1000, level: float = 0.95) -> dict:
    """health_change from its docstring: pairs by sample id (both scores finite), the mean change, the part
    carried by samples whose health changed, their share; a paired bootstrap of ``n_boot`` resamples (at most
    5,000,000 / n, at least 200) drawn as one (resamples x n) block of uniform sample indices from the seeded
    generator; the healthy-in-both mean change with its z test."""
    a = {r["sample_id"]: r for r in st.filter(pl.col("checkpoint") == "a").iter_rows(named=True)}
    b = {r["sample_id"]: r for r in st.filter(pl.col("checkpoint") == "b").iter_rows(named=True)}
    ids = sorted(set(a) & set(b))
    keep = [i for i in ids if math.isfinite(a[i][what]) and math.isfinite(b[i][what])]
    d = np.array([b[i][what] - a[i][what] for i in keep])
    ch = np.array([a[i]["healthy"] != b[i]["healthy"] for i in keep])
    both = np.array([a[i]["healthy"] and b[i]["healthy"] for i in keep])
    n = len(d)
    nb = max(200, min(n_boot, 5_000_000 // n))
    draws = np.random.default_rng(seed).integers(0, n, size=(nb, n))
    totals = d[draws].mean(axis=1)
    carried = (d * ch)[draws].sum(axis=1) / n
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    q = lambda x: list(np.quantile(x, [lo, hi]))
    ok = np.abs(totals) > 1e-12
    share = carried[ok] / totals[ok]
    dh = d[both]
    se = np.std(dh, ddof=1) / math.sqrt(len(dh))
    hb = (d * both)[draws].sum(axis=1) / np.maximum(both[draws].sum(axis=1), 1)
    return {"n_paired": len(ids), "total": d.mean(), "total_interval": q(totals), "carried": (d * ch).sum() / n,
            "carried_interval": q(carried), "share": (d * ch).sum() / n / d.mean(),
            "share_interval": q(share) if len(share) > 10 else None,
            "healthy": {"n": len(dh), "delta": dh.mean(), "interval": q(hb), "z": dh.mean() / se,
                        "p_value": 2 * sps.norm.sf(abs(dh.mean() / se))}}


@pytest.mark.parametrize("seed,level,healthy_every", [(0, 0.95, 1), (7, 0.8, 1), (2, 0.95, 17)])
def test_health_change_is_its_definition(seed: int, level: float, healthy_every: int) -> None:
    """Also with 2 samples healthy in both of 50 (``healthy_every`` 17): resamples holding one of them or none."""
    rng = np.random.default_rng(11 + seed)
    n = 50
    ya, yb = rng.normal(0, 1, n), rng.normal(0.2, 1, n) + (1.5 if seed == 0 else 0.0)
    ya[3], yb[4] = np.nan, np.inf  # pairs without both scores are left out
    ha = [i % 7 != 0 and i % healthy_every == 0 for i in range(n)]
    hb = [i % 5 != 0 for i in range(n)]
    st = pl.DataFrame({"checkpoint": ["a"] * n + ["b"] * n, "sample_id": [f"{i:02d}" for i in range(n)] * 2,
                       "outcome": [*ya, *yb], "healthy": ha + hb,
                       "status": ["ok" if h else "echo" for h in ha] + ["ok" if h else "empty" for h in hb]})
    out = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(seed), n_boot=300, level=level)
    ref = _ref_health_change(st, "outcome", seed, n_boot=300, level=level)
    assert out["n_paired"] == ref["n_paired"] == n
    for key in ("total", "carried", "share"):
        assert out[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    for key in ("total_interval", "carried_interval", "share_interval"):
        assert out[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    for key in ("n", "delta", "interval", "z", "p_value"):
        assert out["healthy"][key] == pytest.approx(ref["healthy"][key], rel=1e-9, abs=1e-12), key
    assert out["healthy"]["significant"] is bool(ref["healthy"]["p_value"] < 0.05)
    if seed == 0:  # a change of 1.5 standard deviations on 40 healthy pairs
        assert out["healthy"]["significant"] is True


def test_health_change_resamples_are_bounded_and_shared_through_the_cache() -> None:
    """n_boot is capped at 5,000,000 // n (35,460 for 141 pairs) and floored at 200 (26,000 pairs); a cache
    hands the first metric's resamples to the next metric of the pair, whatever generator that one gets."""
    def pairs(n: int) -> pl.DataFrame:
        r = np.random.default_rng(n)
        return pl.DataFrame({"checkpoint": ["a"] * n + ["b"] * n, "sample_id": list(range(n)) * 2,
                             "outcome": [*r.normal(0, 1, n), *r.normal(0, 1, n)],
                             "proxy": [*r.normal(0, 1, n), *r.normal(1, 1, n)],
                             "healthy": [True] * (2 * n), "status": ["ok"] * (2 * n)})
    for n, expected in ((141, 35_460), (26_000, 200)):
        cache: dict = {}
        harness.health_change(pairs(n), "a", "b", "outcome", np.random.default_rng(0), n_boot=10**6, cache=cache)
        w = cache[n]
        assert w.shape == (expected, n) and w.dtype == float and (w.sum(axis=1) == n).all()
    st = pairs(60)
    cache = {}
    first = harness.health_change(st, "a", "b", "proxy", np.random.default_rng(1), n_boot=400, cache=cache)
    shared = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(99), n_boot=400, cache=cache)
    alone = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(1), n_boot=400)
    assert shared == alone and first["total_interval"] != shared["total_interval"]


def test_health_change_at_two_pairs_and_a_total_of_exactly_1e_12() -> None:
    two = harness.health_change(_pairs([0.5, 1.5], []), "a", "b", "outcome", np.random.default_rng(0), n_boot=200)
    assert two["total"] == 1.0 and two["healthy"]["n"] == 2
    tiny = harness.health_change(_pairs([1e-12, 1e-12], []), "a", "b", "outcome", np.random.default_rng(0))
    assert tiny["total"] == 1e-12 and tiny["share"] is None  # a share needs a total above 1e-12
    assert tiny["share_interval"] is None  # so does each resampled share (every resampled total is 1e-12 here)


def test_runs_without_prompts_or_without_responses(tmp_path: Path) -> None:
    """No prompt column: echoes cannot be told, duplicates are grouped by sample id; no response column: only
    the score, finish, error and extraction rules apply."""
    rows = _clean(24)
    rows[0]["response"] = rows[1]["response"] = TWELVE
    for r in rows:
        del r["prompt"]
    faults, _ = _status(tmp_path, rows + [{k: v for k, v in r.items() if k != "prompt"} for r in _clean(24, "b")])
    assert faults["s00"] == faults["s01"] == ["duplicate"] and faults["s02"] == []
    rows = _clean(24)
    rows[0]["response"] = ""
    rows[1]["win"] = None
    for r in rows:
        del r["response"]
    faults, extra = _status(tmp_path, rows + [{k: v for k, v in r.items() if k != "response"} for r in _clean(24, "b")])
    assert faults["s00"] == [] and faults["s01"] == ["score_missing"] and extra["truncation"] == {}


# ------------------------------------------------------------------------------------------- assess: the flags

def _assess(tmp_path: Path, rows: list[dict], th: dict | None = None):
    return harness.assess(_loaded(tmp_path, rows), ["a", "b"], th or {}, seed=0)


def _ids(flags, fid: str) -> list[str]:
    return [f.checkpoint for f in flags if f.kind == fid]


@pytest.mark.parametrize("n,n_empty,th,flagged", [
    (100, 5, {}, True), (100, 4, {}, False),                       # max(3, 5% of 100) = 5
    (40, 3, {}, True), (40, 2, {}, False),                         # max(3, 5% of 40 = 2) = 3
    (40, 4, {"harness_min_share": 0.1}, True), (40, 3, {"harness_min_share": 0.1}, False),
    (40, 2, {"harness_min_count": 2}, True), (40, 1, {"harness_min_count": 1, "harness_min_share": 0.05}, False),
])
def test_a_fault_is_flagged_from_max_of_min_count_and_min_share(tmp_path: Path, n, n_empty, th, flagged) -> None:
    rows = _clean(n) + _clean(n, "b")
    for k in range(n_empty):
        rows[n + k]["response"] = ""                               # in checkpoint b
    out, flags = _assess(tmp_path, rows, th)
    assert _ids(flags, "harness_empty") == (["b"] if flagged else [])
    row_b = next(r for r in out["per_checkpoint"] if r["checkpoint"] == "b")
    assert row_b["n"] == n and row_b["empty"] == n_empty / n and row_b["healthy_share"] == 1 - n_empty / n
    assert out["thresholds"] == {"min_share": th.get("harness_min_share", 0.05),
                                 "min_count": th.get("harness_min_count", 3), "alpha": 0.01}
    if flagged:
        f = next(f for f in flags if f.kind == "harness_empty")
        assert f.value == n_empty / n and f.details["n_affected"] == n_empty and f.details["n"] == n
        assert f.details["sample_ids"] == [f"s{k:02d}" for k in range(n_empty)]
        assert f.interval == harness._wilson(n_empty, n)
        assert out["flagged"] is True


@pytest.mark.parametrize("n_a,n_lost,flagged", [
    (60, 3, True), (60, 2, False),                                  # max(3, 5% of 60 = 3)
    (100, 5, True), (100, 4, False),                                # 5% of 100
    (20, 10, True),                                                 # half still shared: the same eval set
    (20, 11, False),                                                # fewer shared than half: another eval set
])
def test_samples_missing_from_the_next_checkpoint(tmp_path: Path, n_a, n_lost, flagged) -> None:
    rows = _clean(n_a) + [r for r in _clean(n_a, "b") if int(r["sample_id"][1:]) >= n_lost]
    out, flags = _assess(tmp_path, rows)
    assert out["pairs"][0]["missing_in_to"] == n_lost
    assert _ids(flags, "harness_missing_samples") == (["b"] if flagged else [])
    if flagged:
        f = next(f for f in flags if f.kind == "harness_missing_samples")
        assert f.value == n_lost / n_a and f.details["sample_ids"] == [f"s{k:02d}" for k in range(n_lost)]


def test_no_samples_means_no_assessment() -> None:
    class Bare:
        samples = None

    assert harness.assess(Bare(), ["a", "b"], {}, seed=0) == ({}, [])


@pytest.mark.parametrize("n,n_bad,th,flagged", [
    (60, 8, {}, True),      # McNemar exact p for 8-0 discordant = 2 / 2^8 < 0.01, 8 >= max(3, 2% of 60)
    (60, 7, {}, False),     # 2 / 2^7 = 0.0156 is not below alpha 0.01
    (60, 7, {"alpha": 0.02}, True),
    (300, 8, {"harness_min_count": 7}, True),    # max(7, 2% of 300 = 6) = 7 <= 8
    (300, 8, {"harness_min_count": 9}, False),   # 9 > 8 moved
])
def test_a_health_change_needs_mcnemar_below_alpha_and_enough_moved(tmp_path: Path, n, n_bad, th, flagged) -> None:
    rows = _clean(n) + _clean(n, "b")
    for k in range(n_bad):
        rows[n + k]["response"] = ""
    out, flags = _assess(tmp_path, rows, {**th, "bootstrap": 200})
    o = out["pairs"][0]["outcome"]
    assert o["became_unhealthy"] == n_bad and o["became_healthy"] == 0
    assert o["mcnemar_p"] == pytest.approx(sps.binomtest(0, n_bad).pvalue)
    assert _ids(flags, "harness_change") == (["b"] if flagged else [])
    if flagged:
        f = next(f for f in flags if f.kind == "harness_change")
        assert f.p_value == o["mcnemar_p"] and f.details["sample_ids"] == [f"s{k:02d}" for k in range(n_bad)]


def test_a_health_change_needs_two_percent_of_the_pairs_to_move(tmp_path: Path) -> None:
    # 8 moved of 500 pairs: McNemar p = 0.0078 < 0.01, but 8 < 2% of 500 = 10
    rows = _clean(500) + _clean(500, "b")
    for k in range(8):
        rows[500 + k]["response"] = ""
    out, flags = _assess(tmp_path, rows, {"harness_min_share": 0.5, "bootstrap": 200})
    assert out["pairs"][0]["outcome"]["mcnemar_p"] < 0.01 and "harness_change" not in {f.kind for f in flags}
    for k in range(8, 10):
        rows[500 + k]["response"] = ""
    _, flags = _assess(tmp_path, rows, {"harness_min_share": 0.5, "bootstrap": 200})
    assert _ids(flags, "harness_change") == ["b"]
