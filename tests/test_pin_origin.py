"""The origin decision rule pinned to its documented meaning (tag_origin's docstring, docs/origin.md):

- a text of ``min_words``+ words is ``model`` when ``p_model >= threshold_model``, ``human`` when
  ``p_model <= threshold_human``, and ``unknown`` (abstains) in between;
- a shorter text is ``unknown`` unless its rules alone are decisive (summed weight of 3 or more).

Thresholds and ``min_words`` are read straight from the shipped detector JSON (not through the code
under test); word counts are recomputed here with the documented word pattern.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from provaudit.origin import tag_origin
from provaudit.origin.detector import load_detector
from provaudit.origin.tagging import EVIDENCE_DTYPE

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = json.loads((ROOT / "provaudit" / "origin" / "data" / "detector" / "detector.json").read_text())
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _records(texts: list[str]) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame({"record_id": [f"r{i}" for i in range(n)], "role": ["response"] * n, "text": texts,
                         "model": [None] * n, "meta": ["{}"] * n},
                        schema={"record_id": pl.Utf8, "role": pl.Utf8, "text": pl.Utf8, "model": pl.Utf8,
                                "meta": pl.Utf8})


def expected_origin(p: float, n_words: int, t_model: float, t_human: float, min_words: int) -> str | None:
    """The documented rule for a record no rule fired on; None where p_model's 6-digit rounding could
    put it on either side of a threshold."""
    if n_words < min_words:
        return "unknown"
    if min(abs(p - t_model), abs(p - t_human)) < 1e-6:
        return None
    return "model" if p >= t_model else ("human" if p <= t_human else "unknown")


@pytest.fixture(scope="module")
def tagged() -> pl.DataFrame:
    texts = pl.read_ndjson(ROOT / "fixtures" / "origin" / "labelled.jsonl")["text"].to_list()
    # every text, and each one cut to 49 and to exactly min_words words
    cut = [" ".join(t.split()[:k]) for t in texts[::12] for k in (SHIPPED["min_words"] - 1, SHIPPED["min_words"])]
    return tag_origin(_records(texts + cut))


def test_shipped_thresholds_are_ordered_and_the_detector_reads_them() -> None:
    det = load_detector()
    assert det.threshold_model == SHIPPED["threshold_model"] and det.threshold_human == SHIPPED["threshold_human"]
    assert det.min_words == SHIPPED["min_words"] == 50
    assert 0 < SHIPPED["threshold_human"] <= SHIPPED["threshold_model"] < 1


def test_every_record_follows_the_documented_rule_at_the_shipped_thresholds(tagged: pl.DataFrame) -> None:
    tm, th, mw = SHIPPED["threshold_model"], SHIPPED["threshold_human"], SHIPPED["min_words"]
    seen = {"model": 0, "human": 0, "unknown_long": 0, "short": 0}
    checked = 0
    for row in tagged.iter_rows(named=True):
        if row["rules_fired"]:
            continue
        n_words = row["evidence"]["n_words"]
        if row["text"].isascii():
            assert len(WORD.findall(row["text"].lower())) == n_words
        want = expected_origin(row["p_model"], n_words, tm, th, mw)
        if want is None:
            continue
        assert row["origin"] == want, (row["p_model"], n_words, row["text"][:60])
        checked += 1
        key = "short" if n_words < mw else ("unknown_long" if want == "unknown" else want)
        seen[key] += 1
    # the check is not vacuous: long texts land on both sides and in the abstain band, and short ones abstain
    assert checked > 400 and all(v > 0 for v in seen.values()), seen


def test_abstain_band_with_chosen_thresholds(tagged: pl.DataFrame) -> None:
    """With thresholds at the 30% and 70% quantiles of p_model, the three outcomes split the long texts
    exactly as the rule says (the band is wide, so a swapped threshold changes hundreds of tags)."""
    base = load_detector()
    long = tagged.filter(pl.col("evidence").struct.field("n_words") >= base.min_words)
    long = long.filter(pl.col("rules_fired").list.len() == 0)
    p = long["p_model"].to_numpy()
    th, tm = (float(v) for v in np.quantile(p, [0.3, 0.7]))
    det = dataclasses.replace(base, threshold_human=th, threshold_model=tm)
    again = tag_origin(long.select("record_id", "role", "text", "model", "meta"), detector=det)
    assert again["p_model"].to_list() == long["p_model"].to_list()   # thresholds do not move p_model
    want = np.where(p >= tm, "model", np.where(p <= th, "human", "unknown"))
    assert again["origin"].to_list() == want.tolist()
    counts = {k: int((want == k).sum()) for k in ("model", "human", "unknown")}
    assert counts["unknown"] >= 0.35 * len(p) and counts["model"] >= 0.25 * len(p) and counts["human"] >= 0.25 * len(p)


def test_a_record_exactly_at_a_threshold() -> None:
    """``>=`` and ``<=``: a p_model exactly at threshold_model is model, exactly at threshold_human human."""
    base = load_detector()
    text = pl.read_ndjson(ROOT / "fixtures" / "origin" / "labelled.jsonl")["text"][0]
    tagged = tag_origin(_records([text]))
    assert tagged["rules_fired"][0].to_list() == []
    p = float(base.predict_proba([text])[0])   # unrounded: no rule fired, so p_model is the detector's p
    assert round(p, 6) == tagged["p_model"][0]
    # thresholds just around the unrounded p: rebuild with the band placed on either side
    at_model = dataclasses.replace(base, threshold_model=p - 1e-9, threshold_human=p - 1e-3)
    above_model = dataclasses.replace(base, threshold_model=p + 1e-6, threshold_human=p - 1e-3)
    at_human = dataclasses.replace(base, threshold_model=p + 1e-3, threshold_human=p + 1e-9)
    below_human = dataclasses.replace(base, threshold_model=p + 1e-3, threshold_human=p - 1e-6)
    got = [tag_origin(_records([text]), detector=d)["origin"][0] for d in (at_model, above_model, at_human,
                                                                            below_human)]
    assert got == ["model", "unknown", "human", "unknown"]


def test_a_p_model_bit_equal_to_a_threshold(monkeypatch) -> None:
    """The comparisons themselves: thresholds set to the very float the tagger compares (caught from its
    sigmoid) give ``model`` at ``threshold_model`` and ``human`` at ``threshold_human``."""
    from provaudit.origin import tagging

    text = pl.read_ndjson(ROOT / "fixtures" / "origin" / "labelled.jsonl")["text"][0]
    seen: list[np.ndarray] = []
    real = tagging._sigmoid
    monkeypatch.setattr(tagging, "_sigmoid", lambda z: seen.append(real(z)) or seen[-1])
    tag_origin(_records([text]))
    monkeypatch.undo()
    p = float(seen[0][0])   # the first sigmoid of _tag is p_model's (detector + rules), before rounding
    base = load_detector()
    at_model = dataclasses.replace(base, threshold_model=p, threshold_human=p - 1e-3)
    at_human = dataclasses.replace(base, threshold_model=p + 1e-3, threshold_human=p)
    assert [tag_origin(_records([text]), detector=d)["origin"][0] for d in (at_model, at_human)] == ["model", "human"]


def test_short_texts_abstain_unless_rules_are_decisive() -> None:
    det = load_detector()
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "looked", "at", "the", "birds", "outside"]
    short = " ".join((words * 10)[: det.min_words - 1])
    out = tag_origin(_records([short, short + " As an AI language model, I cannot do that."]))
    a, b = out.row(0, named=True), out.row(1, named=True)
    assert a["origin"] == "unknown" and a["rules_fired"] == []
    assert a["evidence"]["abstain"] == f"short text (<{det.min_words} words)"
    assert "sig_as_an_ai" in b["rules_fired"] and b["origin"] == "model"
    # the fired rule's weight moves p_model up by exactly its log-odds
    logit = lambda v: math.log(v / (1 - v))
    p_det = b["evidence"]["p_detector"]
    assert logit(b["p_model"]) - logit(p_det) == pytest.approx(
        sum(r.weight for r in __import__("provaudit.origin.tagging", fromlist=["x"])._default_rules().rules
            if r.id in b["rules_fired"]), abs=0.02)


def _user_rules(tmp_path: Path, weights: dict[str, float]):
    from provaudit.origin.rules import load_rules

    body = "rules:\n" + "".join(
        f"  - id: {rid}\n    kind: content\n    description: x\n    weight: {w}\n"
        f"    match:\n      regex: '\\b{rid}\\b'\n"
        f"    tests:\n      match: ['a {rid} b']\n      no_match: ['nothing']\n" for rid, w in weights.items())
    (tmp_path / "r.yaml").write_text(body)
    return load_rules([tmp_path / "r.yaml"], bundled=False)


def test_short_text_decisiveness_is_a_summed_weight_of_three_either_way(tmp_path: Path) -> None:
    rs = _user_rules(tmp_path, {"tagthree": 3.0, "tagnearly": 2.99, "tagminus": -3.0, "tagone": 1.5})
    texts = ["short text tagthree", "short text tagnearly", "short text tagminus", "short tagone and tagone",
             "short tagone plus tagone tagthree", "short tagminus tagone"]
    out = tag_origin(_records(texts), rules=rs)
    assert out["origin"].to_list() == ["model", "unknown", "human", "unknown", "model", "unknown"]
    assert out["rules_fired"].to_list() == [["tagthree"], ["tagnearly"], ["tagminus"], ["tagone"],
                                            ["tagthree", "tagone"], ["tagminus", "tagone"]]
    # the weights add to the detector's log-odds
    logit = lambda v: math.log(v / (1 - v))
    p_det = load_detector().predict_proba(texts)
    for row, pd, w in zip(out.iter_rows(named=True), p_det, [3.0, 2.99, -3.0, 1.5, 4.5, -1.5]):
        if 1e-3 < row["p_model"] < 1 - 1e-3:   # p_model has 6 decimals: its log-odds are exact enough here
            assert logit(row["p_model"]) - logit(float(pd)) == pytest.approx(w, abs=0.01)


def test_decisive_rules_overrule_the_detector_on_short_texts(tmp_path: Path) -> None:
    """A short text's decisive rules decide by their sign even where the detector's probability, rules
    included, falls on the other side: a detector pushed 60 log-odds down still gives ``model`` for +3."""
    rs = _user_rules(tmp_path, {"tagthree": 3.0, "tagminus": -3.0})
    base = load_detector()
    texts = ["short text tagthree", "short text tagminus"]
    low = tag_origin(_records(texts), rules=rs, detector=dataclasses.replace(base, platt_b=base.platt_b - 60))
    high = tag_origin(_records(texts), rules=rs, detector=dataclasses.replace(base, platt_b=base.platt_b + 60))
    assert low["p_model"].to_list()[0] < 1e-6 and high["p_model"].to_list()[1] > 1 - 1e-6
    assert low["origin"].to_list() == high["origin"].to_list() == ["model", "human"]


def test_p_detector_is_the_detector_probability_to_four_decimals(monkeypatch, tmp_path: Path) -> None:
    """evidence.p_detector: the detector's own probability (rules left out), rounded to 4 decimals."""
    from provaudit.origin import tagging

    rs = _user_rules(tmp_path, {"tagthree": 3.0})
    texts = pl.read_ndjson(ROOT / "fixtures" / "origin" / "labelled.jsonl")["text"].to_list()[:20]
    texts = [t + " tagthree" for t in texts[:10]] + texts[10:]
    seen: list[np.ndarray] = []
    real = tagging._sigmoid
    monkeypatch.setattr(tagging, "_sigmoid", lambda z: seen.append(real(z)) or seen[-1])
    out = tag_origin(_records(texts), rules=rs)
    p_det = seen[1]   # _tag's second sigmoid: the detector's log-odds alone
    got = np.array([e["p_detector"] for e in out["evidence"].to_list()])
    assert np.array_equal(got, np.round(p_det, 4)) and not np.array_equal(got, np.round(p_det, 5))
    assert (np.abs(seen[0][:10] - p_det[:10]) > 1e-3).all()   # the rule moved p_model, not p_detector


def test_a_rule_set_with_its_own_apply_gives_the_same_tags(tmp_path: Path) -> None:
    from provaudit.origin.rules import RuleSet

    rs = _user_rules(tmp_path, {"tagthree": 3.0, "tagone": 1.5})

    class Wrapped(RuleSet):
        def apply(self, records):
            return super().apply(records)

    texts = ["short text tagthree", "nothing fires here", "tagone once", "tagone tagthree"]
    assert tag_origin(_records(texts), rules=Wrapped(rs.rules)).equals(tag_origin(_records(texts), rules=rs))


def test_a_rule_set_subclass_with_another_apply_is_used_as_it_is(tmp_path: Path) -> None:
    """A RuleSet subclass that overrides apply() is asked, not bypassed by the built-in fast path."""
    from provaudit.origin.rules import RuleSet

    rs = _user_rules(tmp_path, {"tagthree": 3.0, "tagone": 1.5})

    class Custom(RuleSet):
        def apply(self, records):
            return [["custom_rule"]] * records.height, np.full(records.height, 5.0)

    texts = ["short text tagthree", "nothing fires here", "tagone once"]
    got = tag_origin(_records(texts), rules=Custom(rs.rules))
    assert got["rules_fired"].to_list() == [["custom_rule"]] * 3
    assert got["origin"].to_list() == ["model"] * 3   # short texts, decided by the summed weight 5 >= 3


def test_a_batch_where_no_rule_fires_keeps_the_column_types() -> None:
    """rules_fired stays a list of strings (not of nulls) when every record's list is empty."""
    out = tag_origin(_records(["A plain sentence about the weather today.", "Another plain one."]),
                     rules=_no_rules())
    assert out["rules_fired"].to_list() == [[], []]
    assert out.schema["rules_fired"] == pl.List(pl.Utf8) and out.schema["origin"] == pl.Utf8
    assert out.schema["p_model"] == pl.Float64


def _no_rules():
    from provaudit.origin.rules import RuleSet

    return RuleSet([])


def test_empty_batch_and_missing_text_column() -> None:
    from provaudit.errors import InputError

    empty = tag_origin(_records([]))
    assert empty.height == 0
    assert {c: empty.schema[c] for c in ("origin", "p_model", "rules_fired", "evidence")} == {
        "origin": pl.Utf8, "p_model": pl.Float64, "rules_fired": pl.List(pl.Utf8), "evidence": EVIDENCE_DTYPE}
    with pytest.raises(InputError) as err:
        tag_origin(pl.DataFrame({"body": ["x"]}))
    assert err.value.field == "text"


def test_evidence_lists_the_three_largest_contributions(tagged: pl.DataFrame) -> None:
    det = load_detector()
    from provaudit.origin.features import FEATURE_NAMES, feature_matrix

    rows = tagged.head(20)
    x, n_words = feature_matrix(rows["text"])
    contrib = det.contributions(x)
    for i, row in enumerate(rows.iter_rows(named=True)):
        ev = row["evidence"]
        order = np.argsort(-np.abs(contrib[i]), kind="stable")[:3]
        assert [f["name"] for f in ev["features"]] == [FEATURE_NAMES[j] for j in order]
        assert [f["value"] for f in ev["features"]] == pytest.approx([round(float(x[i, j]), 4) for j in order])
        assert [f["contribution"] for f in ev["features"]] == pytest.approx(
            [round(float(contrib[i, j]), 3) for j in order])
        logit = contrib[i].sum() + det.platt_a * det.intercept + det.platt_b
        assert ev["p_detector"] == round(1 / (1 + math.exp(-logit)), 4)
        assert ev["n_words"] == int(n_words[i]) and ev["rules"] == list(row["rules_fired"])
        assert (ev["abstain"] is not None) == (n_words[i] < det.min_words) and ev["lm"] is False


def test_summary_counts_by_role_and_detector_block() -> None:
    from provaudit.origin import summarize_origin

    texts = pl.read_ndjson(ROOT / "fixtures" / "origin" / "labelled.jsonl")["text"].to_list()[:40]
    recs = _records(texts).with_columns(pl.Series("role", ["chosen"] * 25 + ["rejected"] * 15))
    tagged = tag_origin(recs)
    s = summarize_origin(tagged.drop("text"), n_boot=0)
    counts = {k: int((tagged["origin"] == k).sum()) for k in ("human", "model", "unknown")}
    assert s["counts"] == counts and s["n"] == 40
    assert s["model_fraction_all"] == round(counts["model"] / 40, 4)
    assert s["mean_p_model"] == round(float(tagged["p_model"].mean()), 4)
    for role, sub in (("chosen", tagged.head(25)), ("rejected", tagged.tail(15))):
        m, h = int((sub["origin"] == "model").sum()), int((sub["origin"] == "human").sum())
        assert s["by_role"][role] == {"n": sub.height, "model": m, "human": h, "unknown": sub.height - m - h,
                                      "model_fraction": round(m / (m + h), 4) if m + h else None,
                                      "mean_p_model": round(float(sub["p_model"].mean()), 4)}
    assert s["detector"] == {"threshold_model": round(SHIPPED["threshold_model"], 4),
                             "threshold_human": round(SHIPPED["threshold_human"], 4),
                             "nominal_fpr": SHIPPED["meta"]["nominal_fpr"], "min_words": SHIPPED["min_words"],
                             "mode": "fast"}
    # no text column: no word-frequency (Liang) estimate; the corpus estimate works from the detector's
    # posteriors of the records long enough to score
    assert s["word_mixture"] is None
    long = int((tagged["evidence"].struct.field("n_words") >= SHIPPED["min_words"]).sum())
    assert s["corpus_estimate"]["n"] == long
    assert set(s["rule_counts"].values()) >= {0}
