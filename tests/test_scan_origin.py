"""Scan with origin tagging: per-record origin with evidence, and a batch fraction with its interval."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl

import provaudit
from provaudit.origin.tagging import EVIDENCE_DTYPE

ROOT = Path(__file__).resolve().parent.parent
SCAN = ROOT / "fixtures" / "scan"


def test_scan_of_a_mixed_batch_tags_each_record_and_estimates_the_batch(tmp_path: Path) -> None:
    result = provaudit.scan([SCAN / "hc3_texts.parquet"], catalog=tmp_path / "c.duckdb", out=tmp_path / "o",
                            gate=ROOT / "rules" / "gate.yaml")
    df = result.records()
    assert {"origin", "p_model", "rules_fired", "evidence"} <= set(df.columns)
    assert set(df["origin"].unique()) <= {"human", "model", "unknown"}
    assert df.schema["evidence"] == EVIDENCE_DTYPE  # a struct in records.parquet, not JSON text
    ev = df["evidence"][0]
    assert "rules" in ev and "features" in ev and ev["features"] and "name" in ev["features"][0]
    # labels are in the metadata: model texts must score higher on average than human ones
    labels = df["meta"].map_elements(lambda m: json.loads(m)["label"], return_dtype=pl.Int64)
    p_model = df["p_model"]
    assert p_model.filter(labels == 1).mean() > p_model.filter(labels == 0).mean() + 0.1
    org = result.summary["origin"]
    tagged = {k: int((df["origin"] == k).sum()) for k in ("model", "human", "unknown")}
    assert org["counts"] == tagged
    assert org["model_fraction"] == round(tagged["model"] / (tagged["model"] + tagged["human"]), 4)
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
    import yaml

    limit = next(c["max"] for c in yaml.safe_load((ROOT / "rules" / "gate.yaml").read_text())["checks"]
                 if c["id"] == "max_teacher_fraction")
    fraction = teacher["teacher_fraction"]["alpha"]
    assert checks["max_teacher_fraction"]["value"] == fraction
    assert checks["max_teacher_fraction"]["status"] == ("fail" if fraction > limit else "pass")


def test_large_scans_summarize_a_deterministic_content_hash_sample(tmp_path: Path, monkeypatch) -> None:
    """Past ORIGIN_SAMPLE output records the corpus-level summary uses a sample picked by content hash:
    the same records a plain ORDER BY hash(...) LIMIT n over records.parquet picks."""
    import duckdb

    from provaudit import pipeline
    from provaudit.mixture import MixtureReference, estimate_mixture
    from provaudit.origin.tagging import DEFAULT_REFERENCE

    monkeypatch.setattr(pipeline, "ORIGIN_SAMPLE", 60)
    result = provaudit.scan([SCAN / "trl_pairs.jsonl"], catalog=tmp_path / "c.duckdb", out=tmp_path / "o")
    org = result.summary["origin"]
    assert org["sampled"] is True and org["sample_size"] == org["n"] == 60
    expected = duckdb.sql(f"""
        SELECT * EXCLUDE (band_keys, exact_dup_of, near_dup_of) FROM read_parquet('{result.records_path}')
        WHERE role <> 'prompt' ORDER BY hash(text_hash, record_id), record_id LIMIT 60""").pl()
    # computed from the sampled rows directly, not through summarize_origin
    assert org["counts"] == {k: int((expected["origin"] == k).sum()) for k in ("human", "model", "unknown")}
    assert org["mean_p_model"] == round(float(expected["p_model"].mean()), 4)
    est = estimate_mixture(expected["text"].to_list(), MixtureReference.load(DEFAULT_REFERENCE), seed=0)
    assert org["word_mixture"]["alpha"] == round(est.alpha, 4)
    from provaudit.origin import summarize_origin

    assert org["corpus_estimate"] == summarize_origin(expected, seed=0)["corpus_estimate"]
