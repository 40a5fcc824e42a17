"""Label-origin verdicts on human-labelled HH-RLHF vs GPT-4-judged AlpacaEval pairs, and the rules file."""
from __future__ import annotations

import polars as pl
import pytest

from provaudit.errors import InputError
from provaudit.style import label_origin
from provaudit.style.labels import wilson
from provaudit.style.rules import load_rules


@pytest.fixture(scope="module")
def paths(fixtures_dir):
    d = fixtures_dir / "style"
    return {"hh": d / "hh_rlhf_harmless.jsonl", "ae": d / "alpaca_eval_gpt4_annotations.json",
            "teacher": d / "teacher_gpt4.jsonl"}


def test_human_and_ai_judge_labels_get_different_verdicts(paths):
    hh = label_origin(paths["hh"], teacher=paths["teacher"])
    ae = label_origin(paths["ae"], teacher=paths["teacher"])
    # HH-RLHF pairs carry no timing or annotator columns: no signal points to humans, so "unknown"
    # (its ruled-out biases are listed as consistent with human labels, not counted as evidence)
    assert hh["verdict"] == "unknown" and hh["human_evidence"] == 0, hh["evidence"]
    assert {c["signal"] for c in hh["consistent_with_human"]} >= {"length_preference"}
    assert {n["signal"] for n in hh["not_computed"]} >= {"throughput", "annotator_id", "position_bias"}
    assert ae["verdict"] == "AI-judge-like", ae["evidence"]
    assert {e["signal"] for e in ae["evidence"] if e["points_to"] == "AI-judge"} >= {"throughput"}
    assert ae["measures"]["throughput"]["median_words_per_minute"] > 1500
    assert ae["measures"]["position_first"]["n"] > 250  # AlpacaEval records the winning slot
    assert hh["measures"]["tie_rate"] == 0.0 and ae["measures"]["tie_rate"] > 0.0
    for e in hh["evidence"] + ae["evidence"]:
        assert e["detail"] and e["weight"] in (1, 2)


def test_content_only_evidence_without_metadata(paths):
    # strip the metadata: the AlpacaEval verdict must then rest on content signals only
    from provaudit.style.inputs import load_pairs

    df = load_pairs(paths["ae"]).with_columns(pl.lit(None, dtype=pl.Utf8).alias("seconds"),
                                              pl.lit(None, dtype=pl.Utf8).alias("annotator"))
    res = label_origin(df, teacher=paths["teacher"])
    assert res["ai_evidence"] == 0 or all(e["signal"] not in ("throughput", "annotator_id")
                                          for e in res["evidence"])
    # GPT-4-judged pairs without their metadata: no evidence points to humans (ruled-out biases are not
    # evidence), so the verdict is "unknown", never "human-like"; the missing signals are named
    assert res["verdict"] != "human-like" and res["human_evidence"] == 0
    if res["ai_evidence"] < 2:
        assert res["verdict"] == "unknown"
    missing = {n["signal"]: n["reason"] for n in res["not_computed"]}
    assert {"throughput", "annotator_id"} <= set(missing) and "teacher_preference" not in missing
    assert "annotator" in missing["annotator_id"] and "time" in missing["throughput"]
    bare = label_origin(df)  # without a teacher reference that signal is named as not computed too
    assert "teacher_preference" in {n["signal"] for n in bare["not_computed"]} and bare["verdict"] == "unknown"
    # the evidence sums are the weights listed
    ai = sum(e["weight"] for e in res["evidence"] if e["points_to"] == "AI-judge")
    hu = sum(e["weight"] for e in res["evidence"] if e["points_to"] == "human")
    assert (res["ai_evidence"], res["human_evidence"]) == (ai, hu)


def test_per_annotator_throughput_from_timestamps(paths):
    from provaudit.style.inputs import load_pairs

    base = load_pairs(paths["hh"]).head(120)
    # annotator "fast" labels every 2 s, "slow" every 90 s: only the first is faster than reading
    rows = []
    for i, r in enumerate(base.iter_rows(named=True)):
        ann = "fast" if i % 2 == 0 else "slow"
        t = 1_700_000_000 + (i // 2) * (2 if ann == "fast" else 90)
        rows.append({**r, "annotator": ann, "timestamp": str(t), "seconds": None})
    df = pl.DataFrame(rows, schema=base.schema)
    res = label_origin(df)
    per = {a["annotator"]: a for a in res["annotators"]}
    assert per["fast"]["measures"]["throughput"]["source"] == "timestamp gaps per annotator"
    assert per["fast"]["measures"]["throughput"]["median_seconds_per_label"] == 2.0
    assert any(e["signal"] == "throughput" and e["points_to"] == "AI-judge" for e in per["fast"]["evidence"])
    assert any(e["signal"] == "throughput" and e["points_to"] == "human" for e in per["slow"]["evidence"])


def test_wilson_interval():
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9
    assert wilson(0, 10)[0] == 0.0


def test_rules_file_and_errors(tmp_path):
    rules = load_rules("rules/converge.yaml")
    assert rules["label_origin"]["min_evidence"] == 2 and rules["diversity"]["min_diversity_ratio"] == 0.8
    bad = tmp_path / "r.yaml"
    bad.write_text("trend:\n  min_slope_per_step: fast\n")
    with pytest.raises(InputError, match=r"r.yaml: field 'trend.min_slope_per_step'"):
        load_rules(bad)
    bad.write_text("nonsense:\n  a: 1\n")
    with pytest.raises(InputError, match="unknown section"):
        load_rules(bad)


def test_bad_pairs_input(tmp_path):
    f = tmp_path / "texts.jsonl"
    f.write_text('{"text": "just a text"}\n')
    with pytest.raises(InputError, match="pairs"):
        label_origin(f)
