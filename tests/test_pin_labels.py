"""The label-origin rules (provaudit.style.labels) pinned to the module docstring on hand-built pairs.

Each signal is driven across its threshold with pairs whose measures are known by construction (word
counts, teacher scores from a stand-in teacher model, winning slots, labelling times, annotator ids); the
Wilson interval is scipy's; the verdict is recomputed from the documented weights (strong 2, moderate 1)
and ``min_evidence``.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest

from provaudit.errors import InputError
from provaudit.style import labels as lab
from provaudit.style.inputs import load_pairs
from provaudit.style.labels import (
    _assess,
    _homogenisation,
    _seconds,
    _share,
    _throughput,
    label_origin,
    wilson,
)
from provaudit.style.rules import load_rules

RULES = load_rules(None)
R = RULES["label_origin"]


class Teacher:
    """A teacher model whose log ratio of each text is given."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def log_ratio(self, texts: list[str]) -> np.ndarray:
        return np.array([self.scores.get(t, 0.0) for t in texts], dtype=float)


def _text(i: int, n_words: int, tag: str) -> str:
    return " ".join([f"{tag}{i}"] + ["w"] * (n_words - 1))


def _pairs(n: int, *, longer: int = 0, same_length: int = 0, ties: int = 0, **cols) -> pl.DataFrame:
    """n pairs: the chosen response longer (11 vs 10 words) in the first ``longer``, the same length (10) in
    the next ``same_length``, shorter (10 vs 11) in the rest; ``ties`` more pairs marked tie (chosen longer)."""
    chosen, rejected = [], []
    for i in range(n + ties):
        lc, lr = (11, 10) if i < longer or i >= n else (10, 10) if i < longer + same_length else (10, 11)
        chosen.append(_text(i, lc, "c"))
        rejected.append(_text(i, lr, "r"))
    data = {"chosen": chosen, "rejected": rejected, "tie": [False] * n + [True] * ties}
    return load_pairs(pl.DataFrame({**data, **cols}, strict=False,
                                   schema_overrides={"chosen": pl.Utf8, "rejected": pl.Utf8, "tie": pl.Boolean}))


def _signals(out: dict) -> dict[str, tuple[str, int]]:
    return {e["signal"]: (e["points_to"], e["weight"]) for e in out["evidence"]}


def test_the_shipped_thresholds() -> None:
    assert (R["teacher_preference"], R["length_preference"], R["position_bias"], R["ai_words_per_minute"],
            R["human_words_per_minute"], R["min_evidence"], R["min_pairs"]) == (0.58, 0.62, 0.08, 1500, 700, 2, 30)


# ------------------------------------------------------------------------------------------------ helpers

@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 30), (30, 30), (17, 30), (5, 7), (123, 400)])
def test_wilson_is_scipys_wilson_interval(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=2e-4) and hi == pytest.approx(ci.high, abs=2e-4)  # z = 1.96
    z = 1.96
    p = k / n
    mid, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == (pytest.approx(max(0.0, mid - half), abs=1e-15), pytest.approx(min(1.0, mid + half), abs=1e-15))
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_share_rounds_and_has_nothing_without_pairs() -> None:
    lo, hi = wilson(3, 7)
    assert _share(3, 7) == {"share": round(3 / 7, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4), "n": 7}
    assert _share(0, 0) == {"share": None, "ci_low": None, "ci_high": None, "n": 0}


def test_seconds_read_numbers_and_iso_times() -> None:
    assert _seconds(None) is None and _seconds("soon") is None and _seconds([1]) is None
    assert _seconds("12.5") == 12.5 and _seconds(7) == 7.0
    when = "2024-03-01T10:00:30+00:00"
    assert _seconds(when) == datetime(2024, 3, 1, 10, 0, 30, tzinfo=UTC).timestamp()


# ----------------------------------------------------------------------------------------------- throughput

def test_throughput_from_a_duration_field() -> None:
    df = _pairs(10, longer=10, seconds=[6.0] * 8 + [3.0, 12.0])
    t = _throughput(df)
    wpm = np.median(60.0 * 21 / np.array([6.0] * 8 + [3.0, 12.0]))   # 11 + 10 words per pair
    assert t == {"source": "duration field", "n": 10, "median_seconds_per_label": 6.0,
                 "median_words_per_minute": round(float(wpm), 1), "labels_per_hour": 600.0}


def test_throughput_needs_durations_for_half_the_labels_and_five_of_them() -> None:
    half = _pairs(10, longer=10, seconds=[6.0] * 5 + [None] * 5)
    assert _throughput(half)["n"] == 5                            # 5 of 10: the duration field
    fewer = _pairs(10, longer=10, seconds=[6.0] * 4 + [None] * 6)
    assert _throughput(fewer) is None                             # 4: no timestamps to fall back on
    zero = _pairs(10, longer=10, seconds=[6.0] * 4 + [0.0] * 6)   # a duration of 0 is not a labelling time
    assert _throughput(zero) is None
    big = _pairs(12, longer=12, seconds=[6.0] * 6 + [None] * 6)   # 6 of 12 = max(5, 12 // 2)
    assert _throughput(big)["n"] == 6


def test_throughput_from_timestamp_gaps_per_annotator() -> None:
    # annotator a labels every 30 s (one break of 3601 s), b every 3600 s; a 0 s gap is no labelling time
    ts_a = [0, 30, 60, 3661, 3691, 3691]
    ts_b = [0, 3600, 7200]
    df = _pairs(9, longer=9, timestamp=[float(t) for t in ts_a + ts_b], annotator=["a"] * 6 + ["b"] * 3)
    t = _throughput(df)
    gaps = np.array([30, 30, 30, 3600, 3600], dtype=float)   # a: 30, 30, (3601 break), 30, (0); b: 3600, 3600
    assert t["source"] == "timestamp gaps per annotator" and t["n"] == 5
    assert t["median_seconds_per_label"] == 30.0 and t["labels_per_hour"] == 120.0
    assert t["median_words_per_minute"] == round(float(np.median(60 * 21 / gaps)), 1)
    five = _pairs(5, longer=5, timestamp=[0.0, 10.0, 20.0, 30.0, 40.0], annotator=["a"] * 5)
    assert _throughput(five) is None                              # fewer than 6 timestamps
    iso = _pairs(7, longer=7, timestamp=[f"2024-01-01T00:00:{5 * i:02d}" for i in range(7)], annotator=["a"] * 7)
    assert _throughput(iso)["median_seconds_per_label"] == 5.0 and _throughput(iso)["n"] == 6


# ------------------------------------------------------------------------------------------------ signals

@pytest.mark.parametrize(("longer", "expected"), [(26, "AI-judge"), (17, None), (6, "human")])
def test_length_preference_against_its_threshold(longer: int, expected: str | None) -> None:
    out = _assess(_pairs(30, longer=longer, ties=3), None, RULES)
    lo, hi = wilson(longer, 30)
    assert out["measures"]["length_preference"] == _share(longer, 30)
    assert out["measures"]["n_pairs"] == 33 and out["measures"]["tie_rate"] == round(3 / 33, 4)
    assert (lo > 0.62) == (expected == "AI-judge") and (hi < 0.62) == (expected == "human")
    consistent = {c["signal"] for c in out["consistent_with_human"]}
    if expected == "AI-judge":
        assert _signals(out)["length_preference"] == ("AI-judge", 1) and "length_preference" not in consistent
    elif expected == "human":  # a bias ruled out is consistent with a human, never evidence
        assert "length_preference" not in _signals(out) and "length_preference" in consistent
    else:
        assert "length_preference" not in _signals(out) and "length_preference" not in consistent


def test_length_preference_needs_30_decided_pairs_with_a_difference() -> None:
    few = _assess(_pairs(29, longer=29, ties=5), None, RULES)
    assert "length_preference" not in _signals(few)
    assert {"signal": "length_preference", "reason": "29 decided pairs (< 30) or no length differences"} \
        in few["not_computed"]
    even = _assess(_pairs(30, longer=0, same_length=30), None, RULES)
    assert even["measures"]["length_preference"]["n"] == 0
    assert {"signal": "length_preference", "reason": "no pair with responses of different length"} \
        in even["not_computed"]
    # pairs of equal length are left out of the share, not counted against it
    mixed = _assess(_pairs(40, longer=26, same_length=10), None, RULES)
    assert mixed["measures"]["length_preference"] == _share(26, 30)
    assert _signals(mixed)["length_preference"] == ("AI-judge", 1)


def _teacher_for(df: pl.DataFrame, prefers: int, equal: int = 0) -> Teacher:
    """Scores making the chosen response the more teacher-like in the first ``prefers`` pairs, equally
    teacher-like in the next ``equal``, less in the rest."""
    scores = {}
    for i, (c, r) in enumerate(zip(df["chosen"], df["rejected"])):
        scores[c], scores[r] = (1.0, -1.0) if i < prefers else (0.5, 0.5) if i < prefers + equal else (-2.0, 0.0)
    return Teacher(scores)


@pytest.mark.parametrize(("prefers", "expected"), [(25, "AI-judge"), (18, None), (9, "human")])
def test_teacher_preference_against_its_threshold(prefers: int, expected: str | None) -> None:
    df = _pairs(34, longer=17)
    out = _assess(df, _teacher_for(df, prefers, equal=4), RULES)
    tp = out["measures"]["teacher_preference"]
    sc = np.array([1.0] * prefers + [0.5] * 4 + [-2.0] * (30 - prefers))
    sr = np.array([-1.0] * prefers + [0.5] * 4 + [0.0] * (30 - prefers))
    assert tp == {**_share(prefers, 30), "mean_score_chosen": round(float(np.mean(1 / (1 + np.exp(-sc)))), 4),
                  "mean_score_rejected": round(float(np.mean(1 / (1 + np.exp(-sr)))), 4)}
    lo, hi = wilson(prefers, 30)
    assert (lo > 0.58) == (expected == "AI-judge") and (hi < 0.58) == (expected == "human")
    consistent = {c["signal"] for c in out["consistent_with_human"]}
    assert _signals(out).get("teacher_preference") == (("AI-judge", 1) if expected == "AI-judge" else None)
    assert ("teacher_preference" in consistent) == (expected == "human")


def test_teacher_preference_without_a_reference_or_enough_pairs() -> None:
    none = _assess(_pairs(30, longer=15), None, RULES)
    assert {"signal": "teacher_preference", "reason": "no teacher reference given"} in none["not_computed"]
    assert "teacher_preference" not in none["measures"]
    df = _pairs(20, longer=10)
    few = _assess(df, _teacher_for(df, 20), RULES)
    assert {"signal": "teacher_preference", "reason": "20 decided pairs (< 30)"} in few["not_computed"]
    assert few["measures"]["teacher_preference"]["share"] == 1.0 and "teacher_preference" not in _signals(few)


@pytest.mark.parametrize(("first", "expected"), [(25, True), (5, True), (19, False), (11, False)])
def test_position_bias_either_way_past_its_margin(first: int, expected: bool) -> None:
    out = _assess(_pairs(30, longer=15, chosen_position=[1] * first + [2] * (30 - first)), None, RULES)
    lo, hi = wilson(first, 30)
    assert out["measures"]["position_first"] == _share(first, 30)
    assert expected == (lo > 0.58 or hi < 0.42)
    assert (_signals(out).get("position_bias") == ("AI-judge", 1)) == expected


def test_position_bias_needs_the_slot_for_30_pairs() -> None:
    out = _assess(_pairs(30, longer=15, chosen_position=[1] * 29 + [None]), None, RULES)
    assert {"signal": "position_bias", "reason": "slot known for 29 pairs (< 30)"} in out["not_computed"]
    assert out["measures"]["position_first"] == _share(29, 29) and "position_bias" not in _signals(out)
    bare = _assess(_pairs(30, longer=15), None, RULES)
    assert {"signal": "position_bias", "reason": "the winning response's slot is not recorded"} in bare["not_computed"]
    assert "position_first" not in bare["measures"]


@pytest.mark.parametrize(("seconds", "expected"), [(0.5, ("AI-judge", 2)), (0.84 * 0.9999, ("AI-judge", 2)),
                                                    (0.84, None), (1.8, None), (1.8 * 1.0001, ("human", 2))])
def test_throughput_evidence_at_its_two_speeds(seconds: float, expected) -> None:
    # 21 words per pair: exactly 1500 words per minute at 0.84 s, 700 at 1.8 s (neither beyond its bound)
    out = _assess(_pairs(30, longer=15, seconds=[seconds] * 30), None, RULES)
    wpm = round(60 * 21 / seconds, 1)
    assert out["measures"]["throughput"]["median_words_per_minute"] == wpm
    assert _signals(out).get("throughput") == expected
    if expected == ("human", 2):  # reading speed is the one signal that is evidence for a human
        assert out["human_evidence"] == 2 and "throughput" not in {c["signal"] for c in out["consistent_with_human"]}


def test_annotator_ids_all_naming_a_model() -> None:
    named = _assess(_pairs(30, longer=15, annotator=["gpt-4-judge"] * 15 + ["Claude"] * 15), None, RULES)
    assert _signals(named)["annotator_id"] == ("AI-judge", 2)
    assert named["measures"]["annotator_ids"] == ["Claude", "gpt-4-judge"]
    mixed = _assess(_pairs(30, longer=15, annotator=["gpt-4"] * 15 + ["alice"] * 15), None, RULES)
    assert "annotator_id" not in _signals(mixed)
    many = _assess(_pairs(30, longer=15, annotator=[f"ann{i:02d}" for i in range(30)]), None, RULES)
    assert many["measures"]["annotator_ids"] == [f"ann{i:02d}" for i in range(20)]
    none = _assess(_pairs(30, longer=15), None, RULES)
    assert {"signal": "annotator_id", "reason": "no annotator / judge id column"} in none["not_computed"]


@pytest.mark.parametrize(("signals", "verdict"), [
    ({"fast"}, "AI-judge-like"),                                  # ai 2
    ({"slow"}, "human-like"),                                     # hu 2
    ({"length"}, "unknown"),                                      # ai 1
    ({"length", "position"}, "AI-judge-like"),                    # ai 2
    ({"slow", "named", "length"}, "unknown"),                     # ai 3, hu 2
    ({"slow", "named", "length", "position"}, "AI-judge-like"),   # ai 4, hu 2
    ({"slow", "length"}, "unknown"),                              # ai 1, hu 2
    ({"slow", "position"}, "unknown"),
    (set(), "unknown"),
])
def test_verdict_needs_min_evidence_and_a_lead_as_large(signals: set[str], verdict: str) -> None:
    cols = {}
    if "fast" in signals or "slow" in signals:
        cols["seconds"] = [0.5 if "fast" in signals else 5.0] * 30
    if "named" in signals:
        cols["annotator"] = ["judge"] * 30
    if "position" in signals:
        cols["chosen_position"] = [1] * 30
    out = _assess(_pairs(30, longer=30 if "length" in signals else 15, **cols), None, RULES)
    ai = sum(w for to, w in _signals(out).values() if to == "AI-judge")
    hu = sum(w for to, w in _signals(out).values() if to == "human")
    assert (out["ai_evidence"], out["human_evidence"]) == (ai, hu)
    assert out["verdict"] == verdict
    assert set(out) == {"verdict", "ai_evidence", "human_evidence", "evidence", "measures", "consistent_with_human",
                        "not_computed"}


def test_min_evidence_is_read_from_the_rules() -> None:
    rules = {**RULES, "label_origin": {**R, "min_evidence": 1}}
    out = _assess(_pairs(30, longer=30), None, rules)
    assert out["verdict"] == "AI-judge-like" and out["ai_evidence"] == 1
    out3 = _assess(_pairs(30, longer=30, seconds=[0.5] * 30), None, {**RULES, "label_origin": {**R, "min_evidence": 4}})
    assert out3["ai_evidence"] == 3 and out3["verdict"] == "unknown"


# ------------------------------------------------------------------------------------------- homogenisation

def _homog_pairs(early: dict[str, list[int]], late: dict[str, list[int]]) -> tuple[pl.DataFrame, Teacher]:
    """Per annotator, its teacher-preferring (1) or not (0) labels in the early and the late half of time."""
    rows, scores, t = [], {}, 0.0
    for half in (early, late):
        for ann, prefs in half.items():
            for p in prefs:
                c, r = f"c{t}", f"r{t}"
                scores[c], scores[r] = (1.0, 0.0) if p else (0.0, 1.0)
                rows.append({"chosen": c, "rejected": r, "annotator": ann, "timestamp": t})
                t += 1.0
    return load_pairs(pl.DataFrame(rows)), Teacher(scores)


def test_homogenisation_compares_the_spread_of_annotators_early_and_late() -> None:
    df, teacher = _homog_pairs({"a": [1] * 10, "b": [0] * 6 + [1] * 4}, {"a": [1] * 10, "b": [1] * 9 + [0]})
    out = _homogenisation(df, teacher)
    # early: a 1.0, b 0.4 (mean 0.7, population std 0.3); late: a 1.0, b 0.9 (mean 0.95, std 0.05)
    assert out == {"early": {"annotators": 2, "mean_teacher_preference": 0.7, "spread": 0.3},
                   "late": {"annotators": 2, "mean_teacher_preference": 0.95, "spread": 0.05},
                   "homogenising_toward_teacher": True}
    # spreading out, or converging away from the teacher, is not homogenising toward it
    df2, t2 = _homog_pairs({"a": [1] * 10, "b": [1] * 9 + [0]}, {"a": [1] * 10, "b": [0] * 6 + [1] * 4})
    assert _homogenisation(df2, t2)["homogenising_toward_teacher"] is False
    df3, t3 = _homog_pairs({"a": [1] * 10, "b": [0] * 10}, {"a": [1] * 5 + [0] * 5, "b": [0] * 5 + [1] * 5})
    assert _homogenisation(df3, t3)["late"]["spread"] == 0.0
    assert _homogenisation(df3, t3)["homogenising_toward_teacher"] is False   # mean 0.5 both halves


def test_homogenisation_needs_a_teacher_20_times_two_annotators_and_5_labels_each() -> None:
    df, teacher = _homog_pairs({"a": [1] * 10, "b": [0] * 9}, {})
    assert _homogenisation(df, teacher) is None                  # 19 timestamps
    assert _homogenisation(*_homog_pairs({"a": [1] * 20}, {"a": [0] * 20})) is None   # one annotator
    df4, _ = _homog_pairs({"a": [1] * 10, "b": [0] * 10}, {"a": [1] * 10, "b": [0] * 10})
    assert _homogenisation(df4, None) is None
    # an annotator with 4 labels in a half is left out of that half
    df5, t5 = _homog_pairs({"a": [1] * 10, "b": [0] * 4, "c": [1] * 6}, {"a": [1] * 10, "b": [0] * 10})
    early = _homogenisation(df5, t5)["early"]
    assert early["annotators"] == 2 and early["mean_teacher_preference"] == 1.0 and early["spread"] == 0.0


def test_label_origin_reports_each_annotator_and_names_the_batch(monkeypatch) -> None:
    df = _pairs(30, longer=30, annotator=["judge-a"] * 15 + ["judge-b"] * 15)
    out = label_origin(df, name="b1")
    assert out["batch"] == "b1" and out["teacher_reference"] is False and out["verdict"] == "AI-judge-like"
    assert [a["annotator"] for a in out["annotators"]] == ["judge-a", "judge-b"]
    assert out["annotators"][0]["measures"]["n_pairs"] == 15 and "homogenisation" not in out
    single = label_origin(_pairs(30, longer=30, annotator=["judge-a"] * 30), name="b2")
    assert "annotators" not in single
    monkeypatch.setattr(lab, "get_teacher_model", lambda t, h, **k: _teacher_for(df, 30))
    with_t = label_origin(df, teacher=["a teacher answer"], name="b3")
    assert with_t["teacher_reference"] is True and with_t["measures"]["teacher_preference"]["share"] == 1.0


# ------------------------------------------------------------------------------------------- the words shown

def test_evidence_and_reasons_read_as_documented() -> None:
    df = _pairs(30, longer=26, seconds=[0.5] * 30, chosen_position=[1] * 25 + [2] * 5,
                annotator=["gpt-judge-1"] * 15 + ["claude-judge"] * 15)
    out = _assess(df, _teacher_for(df, 25), RULES)
    length, teacher, pos = wilson(26, 30), wilson(25, 30), wilson(25, 30)
    assert out["evidence"] == [
        {"signal": "length_preference", "points_to": "AI-judge", "weight": 1,
         "detail": f"chosen is longer in 87% of pairs (CI {length[0]:.2f}-{length[1]:.2f} > 0.62): LLM-judge verbosity bias"},
        {"signal": "teacher_preference", "points_to": "AI-judge", "weight": 1,
         "detail": f"chosen is the more teacher-like response in 83% of pairs (CI {teacher[0]:.2f}-{teacher[1]:.2f} > 0.58)"},
        {"signal": "position_bias", "points_to": "AI-judge", "weight": 1,
         "detail": f"slot 1 wins 83% of pairs (CI {pos[0]:.2f}-{pos[1]:.2f}, beyond 0.5 +/- 0.08); note: slots may also "
                   "differ by source model"},
        {"signal": "throughput", "points_to": "AI-judge", "weight": 2,
         "detail": "0.5 s per label = 2520 words per minute of both responses (> 1500: faster than humans read)"},
        {"signal": "annotator_id", "points_to": "AI-judge", "weight": 2,
         "detail": "annotator id names a model: claude-judge, gpt-judge-1"},
    ]
    assert out["consistent_with_human"] == [] and out["not_computed"] == []
    assert (out["ai_evidence"], out["human_evidence"], out["verdict"]) == (7, 0, "AI-judge-like")


def test_what_rules_out_a_bias_and_what_is_missing_read_as_documented() -> None:
    df = _pairs(30, longer=6, seconds=[5.0] * 30)
    out = _assess(df, _teacher_for(df, 9), RULES)
    length, teacher = wilson(6, 30), wilson(9, 30)
    assert out["consistent_with_human"] == [
        {"signal": "length_preference",
         "detail": f"chosen is longer in 20% of pairs (CI {length[0]:.2f}-{length[1]:.2f} < 0.62): no verbosity bias"},
        {"signal": "teacher_preference",
         "detail": f"chosen is the more teacher-like response in 30% of pairs (CI {teacher[0]:.2f}-{teacher[1]:.2f} "
                   "< 0.58): no preference for the teacher's voice"},
    ]
    assert out["evidence"] == [{"signal": "throughput", "points_to": "human", "weight": 2,
                                "detail": "5.0 s per label = 252 words per minute (< 700: reading speed)"}]
    assert out["not_computed"] == [
        {"signal": "position_bias", "reason": "the winning response's slot is not recorded"},
        {"signal": "annotator_id", "reason": "no annotator / judge id column"},
    ]
    bare = _assess(_pairs(30, longer=15), None, RULES)
    assert {"signal": "throughput", "reason": "no labelling-time field (time_per_example, seconds) or annotator "
                                              "timestamps for at least 5 labels"} in bare["not_computed"]
    assert [n["signal"] for n in bare["not_computed"]] == ["teacher_preference", "position_bias", "throughput",
                                                           "annotator_id"]


# ----------------------------------------------------------------------------------------------- boundaries

def _shift_rules(**over: float) -> dict:
    return {**RULES, "label_origin": {**R, **over}}


def test_a_bound_exactly_at_its_threshold_is_not_beyond_it() -> None:
    # each threshold set to the very (rounded) bound the rule compares: not beyond it; a hair lower, beyond
    hi_len, lo_len = _share(26, 30), _share(6, 30)
    for rules, signal in ((_shift_rules(length_preference=hi_len["ci_low"]), None),
                          (_shift_rules(length_preference=hi_len["ci_low"] - 1e-9), ("AI-judge", 1))):
        assert _signals(_assess(_pairs(30, longer=26), None, rules)).get("length_preference") == signal
    for thr, ruled_out in ((lo_len["ci_high"], False), (lo_len["ci_high"] + 1e-9, True)):
        out = _assess(_pairs(30, longer=6), None, _shift_rules(length_preference=thr))
        assert ("length_preference" in {c["signal"] for c in out["consistent_with_human"]}) == ruled_out
    df = _pairs(30, longer=15)
    hi_t, lo_t = _share(25, 30), _share(9, 30)
    for thr, signal in ((hi_t["ci_low"], None), (hi_t["ci_low"] - 1e-9, ("AI-judge", 1))):
        assert _signals(_assess(df, _teacher_for(df, 25), _shift_rules(teacher_preference=thr))).get(
            "teacher_preference") == signal
    for thr, ruled_out in ((lo_t["ci_high"], False), (lo_t["ci_high"] + 1e-9, True)):
        out = _assess(df, _teacher_for(df, 9), _shift_rules(teacher_preference=thr))
        assert ("teacher_preference" in {c["signal"] for c in out["consistent_with_human"]}) == ruled_out
    # position: slot 1 winning 25 of 30 (low bound above 0.5 + margin) or 2 of 30 (high bound under 0.5 - margin)
    for first, bound in ((25, _share(25, 30)["ci_low"] - 0.5), (2, 0.5 - _share(2, 30)["ci_high"])):
        assert 0.5 + bound == _share(first, 30)["ci_low"] or 0.5 - bound == _share(first, 30)["ci_high"]
        cols = {"chosen_position": [1] * first + [2] * (30 - first)}
        at = _assess(_pairs(30, longer=15, **cols), None, _shift_rules(position_bias=bound))
        below = _assess(_pairs(30, longer=15, **cols), None, _shift_rules(position_bias=bound - 1e-9))
        assert "position_bias" not in _signals(at) and _signals(below)["position_bias"] == ("AI-judge", 1)


def test_wilson_bounds_are_clamped_where_rounding_passes_0_or_1() -> None:
    # 5 of 5: the formula's upper bound is 1 + 2e-16 in floating point; 0 of 5: its lower bound is just under 0
    assert wilson(5, 5)[1] == 1.0 and wilson(0, 5)[0] == 0.0


def test_no_pairs_no_tie_rate_and_six_model_names_show_five() -> None:
    empty = _assess(_pairs(0), None, RULES)
    assert empty["measures"]["n_pairs"] == 0 and empty["measures"]["tie_rate"] is None
    assert empty["verdict"] == "unknown"
    names = [f"gpt-{i}" for i in range(6)]
    out = _assess(_pairs(30, longer=15, annotator=[names[i % 6] for i in range(30)]), None, RULES)
    assert out["evidence"][-1]["detail"] == "annotator id names a model: gpt-0, gpt-1, gpt-2, gpt-3, gpt-4"


def test_throughput_rounding_unreadable_durations_and_odd_counts() -> None:
    t = _throughput(_pairs(10, longer=10, seconds=[7.123456] * 10))
    assert t["median_seconds_per_label"] == 7.123 and t["labels_per_hour"] == round(3600 / 7.123456, 1) == 505.4
    assert t["median_words_per_minute"] == round(60 * 21 / 7.123456, 1)
    unreadable = _throughput(_pairs(10, longer=10, seconds=["6.0"] * 8 + ["soon", "later"]))
    assert unreadable["n"] == 8 and unreadable["source"] == "duration field"
    assert _throughput(_pairs(11, longer=11, seconds=[6.0] * 5 + [None] * 6))["n"] == 5     # 5 >= max(5, 11 // 2)
    assert _throughput(_pairs(14, longer=14, seconds=[6.0] * 6 + [None] * 8)) is None       # 6 < 14 // 2
    six = _pairs(6, longer=6, timestamp=[0.0, 10.0, 20.0, 30.0, 40.0, 50.0], annotator=["a"] * 6)
    assert _throughput(six)["n"] == 5                                # 6 timestamps (the fewest): 5 gaps
    seven = _pairs(7, longer=7, timestamp=[0.5 * i for i in range(7)], annotator=["a"] * 7)
    fast = _throughput(seven)                                        # gaps of half a second count
    assert fast["n"] == 6 and fast["median_seconds_per_label"] == 0.5


def test_homogenisation_at_its_edges() -> None:
    # exactly 20 timestamps and exactly 5 labels per annotator and half: assessed, everyone counted
    df, t = _homog_pairs({"a": [1] * 5, "b": [0, 0, 0, 1, 1]}, {"a": [1] * 5, "b": [1, 1, 1, 1, 0]})
    out = _homogenisation(df, t)
    assert out == {"early": {"annotators": 2, "mean_teacher_preference": 0.7, "spread": 0.3},
                   "late": {"annotators": 2, "mean_teacher_preference": 0.9, "spread": 0.1},
                   "homogenising_toward_teacher": True}
    # 4 decimals: thirds
    df3, t3 = _homog_pairs({"a": [1] * 6, "b": [1, 0, 0, 0, 0, 0]}, {"a": [1] * 6, "b": [1, 1, 0, 0, 0, 0]})
    o3 = _homogenisation(df3, t3)
    assert o3["late"]["mean_teacher_preference"] == round((1 + 1 / 3) / 2, 4) == 0.6667
    assert o3["late"]["spread"] == round(1 / 3, 4) == 0.3333
    # one annotator with 5 labels in a half: its mean, no spread; none: neither
    df1, t1 = _homog_pairs({"a": [1] * 5, "b": [0] * 4, "c": [0] * 4}, {"a": [1] * 5, "b": [0] * 5, "c": [1] * 5})
    e1 = _homogenisation(df1, t1)["early"]
    assert e1 == {"annotators": 1, "mean_teacher_preference": 1.0, "spread": None}
    df0, t0 = _homog_pairs({"a": [1] * 4, "b": [0] * 4, "c": [1] * 4}, {"a": [1] * 6, "b": [0] * 6})
    assert _homogenisation(df0, t0)["early"] == {"annotators": 0, "mean_teacher_preference": None, "spread": None}
    # equal spreads are not a convergence; a late mean of 0 is not above an early 0.5
    de, te = _homog_pairs({"a": [1] * 5 + [0] * 5, "b": [0] * 10}, {"a": [1] * 10, "b": [1] * 5 + [0] * 5})
    assert _homogenisation(de, te)["early"]["spread"] == _homogenisation(de, te)["late"]["spread"] == 0.25
    assert _homogenisation(de, te)["homogenising_toward_teacher"] is False
    dz, tz = _homog_pairs({"a": [1] * 10, "b": [0] * 10}, {"a": [0] * 10, "b": [0] * 10})
    oz = _homogenisation(dz, tz)
    assert oz["late"] == {"annotators": 2, "mean_teacher_preference": 0.0, "spread": 0.0}
    assert oz["homogenising_toward_teacher"] is False


def test_homogenisation_counts_equal_teacher_scores_as_no_preference() -> None:
    df, t = _homog_pairs({"a": [1] * 10, "b": [0] * 10}, {"a": [1] * 10, "b": [1] * 10})
    eq = Teacher({k: 0.5 for k in t.scores})
    assert _homogenisation(df, eq)["late"] == {"annotators": 2, "mean_teacher_preference": 0.0, "spread": 0.0}


def test_label_origin_passes_the_teacher_human_backend_and_seed_and_reports_homogenisation(monkeypatch) -> None:
    df, teacher = _homog_pairs({"judge-a": [1] * 10, "judge-b": [0] * 10}, {"judge-a": [1] * 10, "judge-b": [1] * 10})
    calls, steps = [], []
    monkeypatch.setattr(lab, "get_teacher_model", lambda t, h, **k: calls.append((t, h, k)) or teacher)
    monkeypatch.setattr(lab.progress, "step", steps.append)
    out = label_origin(df, teacher=["a teacher answer"], human=["a human answer"], backend="minilm", seed=4, name="b9")
    assert calls == [(["a teacher answer"], ["a human answer"], {"backend": "minilm", "seed": 4})]
    assert steps == ["reading preference pairs b9", "fitting the teacher model (minilm embeddings)", "assessing 40 labels"]
    assert out["homogenisation"] == _homogenisation(df, teacher) and out["homogenisation"]["homogenising_toward_teacher"]
    assert all("teacher_preference" in a["measures"] for a in out["annotators"])
    calls.clear()
    steps.clear()
    label_origin(df, teacher=["a teacher answer"])
    assert calls == [(["a teacher answer"], None, {"backend": "static", "seed": 0})]
    assert steps[0] == "reading preference pairs"


def test_label_origin_names_the_batch(tmp_path) -> None:
    path = tmp_path / "prefs.jsonl"
    _pairs(30, longer=15).select(pl.lit("A question?").alias("prompt"), "chosen", "rejected").write_ndjson(path)
    assert label_origin(str(path))["batch"] == str(path)
    assert label_origin(path)["batch"] == "prefs.jsonl"                  # a Path: its file name
    assert label_origin(_pairs(30, longer=15))["batch"] == "pairs"       # a frame: no name


def test_label_origin_names_bad_references_and_reads_its_rules(tmp_path) -> None:
    df = _pairs(30, longer=30)
    with pytest.raises(InputError, match="teacher reference item 0 is int"):
        label_origin(df, teacher=[1])
    with pytest.raises(InputError, match="human reference item 1 is NoneType"):
        label_origin(df, teacher=["t"], human=["h", None])
    rules = tmp_path / "r.yaml"
    rules.write_text("label_origin:\n  min_evidence: 1\n", encoding="utf-8")
    assert label_origin(df)["verdict"] == "unknown"                      # length alone: 1 of the 2 needed
    assert label_origin(df, rules=str(rules))["verdict"] == "AI-judge-like"
    assert label_origin(df, rules=_shift_rules(min_evidence=1))["verdict"] == "AI-judge-like"


def test_homogenisation_leaves_tied_labels_out_and_keeps_the_median_label_early() -> None:
    df, t = _homog_pairs({"a": [1] * 10, "b": [0] * 10}, {"a": [1] * 10, "b": [1] * 10})
    # b's early labels (no teacher preference) again, as a's ties in the late half: left out, nothing moves
    ties = df.slice(10, 8).with_columns(pl.lit(True).alias("tie"), pl.lit("a").alias("annotator"),
                                        pl.col("timestamp") + 20.25)
    assert _homogenisation(pl.concat([df, ties]), t) == _homogenisation(df, t)
    # 21 labels: the 11th (time 10, b's fifth early label) is at the median and counts in the early half
    odd, t_odd = _homog_pairs({"a": [1] * 6, "b": [0] * 5}, {"a": [1] * 5, "b": [1] * 5})
    assert _homogenisation(odd, t_odd)["early"] == {"annotators": 2, "mean_teacher_preference": 0.5, "spread": 0.5}
