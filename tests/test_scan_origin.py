"""Scan with origin tagging: per-record origin with evidence, and a batch fraction with its interval."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl

import provaudit

ROOT = Path(__file__).resolve().parent.parent
SCAN = ROOT / "fixtures" / "scan"


def test_scan_of_a_mixed_batch_tags_each_record_and_estimates_the_batch(tmp_path: Path) -> None:
    result = provaudit.scan([SCAN / "hc3_texts.parquet"], catalog=tmp_path / "c.duckdb", out=tmp_path / "o",
                            gate=ROOT / "rules" / "gate.yaml")
    df = result.records()
    assert {"origin", "p_model", "rules_fired", "evidence"} <= set(df.columns)
    assert set(df["origin"].unique()) <= {"human", "model", "unknown"}
    ev = json.loads(df["evidence"][0])
    assert "rules" in ev and "features" in ev and ev["features"]
    # labels are in the metadata: model texts must score higher on average than human ones
    labels = df["meta"].map_elements(lambda m: json.loads(m)["label"], return_dtype=pl.Int64)
    p_model = df["p_model"]
    assert p_model.filter(labels == 1).mean() > p_model.filter(labels == 0).mean() + 0.1
    org = result.summary["origin"]
    assert 0.0 <= org["model_fraction"] <= 1.0
    ce = org["corpus_estimate"]
    assert ce["ci_low"] <= ce["alpha"] <= ce["ci_high"]
    assert sum(org["counts"].values()) == df.height
    md = (tmp_path / "o" / "summary.md").read_text()
    assert "## Origin" in md and "Corpus-level estimate" in md


def test_user_rules_fire_and_can_gate(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.yaml").write_text(
        "rules:\n"
        "  - id: my_source_is_vicuna\n"
        "    kind: metadata\n"
        "    description: rows whose id says they came from vicuna\n"
        "    weight: 3.0\n"
        "    match:\n"
        "      key: '^id$'\n"
        "      value: '^vicuna-'\n"
        "    tests:\n"
        "      match: [{meta: {id: vicuna-1}}]\n"
        "      no_match: [{meta: {id: human-1}}]\n")
    gate = tmp_path / "gate.yaml"
    gate.write_text("checks:\n  - id: no_vicuna\n    metric: origin.rule_counts.my_source_is_vicuna\n    max: 0\n")
    result = provaudit.scan([SCAN / "sharegpt_vicuna.jsonl"], catalog=tmp_path / "c.duckdb", rules_dirs=[rules],
                            gate=gate)
    assert result.summary["origin"]["rule_counts"]["my_source_is_vicuna"] == 80
    assert not result.passed


def test_scan_with_a_teacher_reports_likeness_and_the_label_signature(tmp_path: Path) -> None:
    style = ROOT / "fixtures" / "style"
    result = provaudit.scan([SCAN / "alpaca_eval_judgements.json"], catalog=tmp_path / "c.duckdb",
                            teacher=style / "teacher_gpt4.jsonl", gate=ROOT / "rules" / "gate.yaml", origin=False)
    teacher = result.summary["teacher"]
    assert teacher["ci_low"] <= teacher["teacher_likeness"] <= teacher["ci_high"]
    assert {"teacher_fraction", "stylometry", "embedding", "phrases", "diversity"} <= set(teacher)
    lo = teacher["label_origin"]
    assert lo["verdict"] == "AI-judge-like" and lo["evidence"]
    checks = {c["id"]: c for c in result.summary["gate"]["checks"]}
    assert checks["max_ai_judge_signature"]["status"] == "fail"
    assert checks["max_teacher_fraction"]["status"] in ("pass", "fail")


def test_large_scans_summarize_a_deterministic_content_hash_sample(tmp_path: Path, monkeypatch) -> None:
    """Past ORIGIN_SAMPLE output records the corpus-level summary uses a sample picked by content hash:
    the same records a plain ORDER BY hash(...) LIMIT n over records.parquet picks."""
    import duckdb

    from provaudit import pipeline
    from provaudit.origin import summarize_origin

    monkeypatch.setattr(pipeline, "ORIGIN_SAMPLE", 60)
    result = provaudit.scan([SCAN / "trl_pairs.jsonl"], catalog=tmp_path / "c.duckdb", out=tmp_path / "o")
    org = result.summary["origin"]
    assert org["sampled"] is True and org["sample_size"] == org["n"] == 60
    expected = duckdb.sql(f"""
        SELECT * EXCLUDE (band_keys, exact_dup_of, near_dup_of) FROM read_parquet('{result.records_path}')
        WHERE role <> 'prompt' ORDER BY hash(text_hash, record_id), record_id LIMIT 60""").pl()
    want = summarize_origin(expected, seed=0)
    assert org["counts"] == want["counts"] and org["corpus_estimate"] == want["corpus_estimate"]
    assert org["word_mixture"]["alpha"] == round(want["word_mixture"]["alpha"], 4)
    assert org["mean_p_model"] == want["mean_p_model"]
