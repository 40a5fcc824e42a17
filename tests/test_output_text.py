"""Readable output: headline numbers with their denominator and direction, verdicts against rules, tables
that keep their information."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from provaudit.catalog.store import Catalog
from provaudit.cli import main
from provaudit.origin import load_rules

ROOT = Path(__file__).resolve().parent.parent
FX = ROOT / "fixtures"


def _invoke(args: list[str]):
    r = CliRunner().invoke(main, args)
    assert r.exit_code in (0, 1), r.output
    return r


def test_scan_origin_headline_names_its_denominator(tmp_path):
    out = tmp_path / "o"
    r = _invoke(["scan", str(FX / "scan" / "hc3_texts.parquet"), "--catalog", str(tmp_path / "c.duckdb"),
                 "--out", str(out)])
    origin = pl.read_parquet(out / "records.parquet")["origin"].to_list()
    human, model, unknown = (origin.count(k) for k in ("human", "model", "unknown"))
    assert human + model > 0
    pct = f"{100 * model / (human + model):.1f}%"
    line = next(ln for ln in r.output.splitlines() if ln.startswith("Model-written fraction"))
    assert line == (f"Model-written fraction (per-record tags): {pct} of {human + model} decided records "
                    f"({unknown} undecided; higher = more model text).")


def test_rescanning_an_identical_file_says_it_skipped_itself(tmp_path):
    cat = str(tmp_path / "c.duckdb")
    src = str(FX / "scan" / "trl_pairs.jsonl")
    first = _invoke(["scan", src, "--catalog", cat, "--no-origin", "--json"])
    assert json.loads(first.output)["overlap"]["skipped_identical"] == []
    again = _invoke(["scan", src, "--catalog", cat, "--no-origin"])
    assert "Skipped itself: trl_pairs (same fingerprint as this input, already in the catalog)." in again.output
    assert "No overlap with any other dataset in the catalog." in again.output
    js = json.loads(_invoke(["scan", src, "--catalog", cat, "--no-origin", "--json"]).output)
    assert js["overlap"]["skipped_identical"] == ["trl_pairs"] and js["overlap"]["datasets"] == []


def _diversity(batch: Path, human: Path, rules: Path | None = None, as_json: bool = True):
    args = ["diversity", "--human", str(human), str(batch)] + (["--rules", str(rules)] if rules else [])
    return _invoke(args + (["--json"] if as_json else []))


def test_diversity_flags_a_batch_just_under_its_rule(style_slices, tmp_path):
    """A batch at ratio r is flagged against a rule of r + 0.01 and passes one of r - 0.01 (0.79 vs 0.8)."""
    batch, human = style_slices / "t.jsonl", style_slices / "h.jsonl"
    base = json.loads(_diversity(batch, human).output)[0]
    ratio = base["diversity_floor_ratio"]
    assert base["rule"] == {"min_diversity_ratio": 0.8, "direction": "below is bad"}
    assert base["flagged"] is (ratio < 0.8)
    for delta, flagged in ((0.01, True), (-0.01, False)):
        rules = tmp_path / f"r{delta}.yaml"
        rules.write_text(f"diversity:\n  min_diversity_ratio: {round(ratio + delta, 4)}\n")
        res = json.loads(_diversity(batch, human, rules).output)[0]
        assert res["flagged"] is flagged and res["verdict"].startswith("FLAGGED" if flagged else "ok")
        text = _diversity(batch, human, rules, as_json=False).output
        assert ("FLAGGED: less diverse than human" in text) is flagged
        assert f"flagged below {round(ratio + delta, 4):g}" in text and "below 1 = less diverse" in text


def test_datasets_prints_full_paths(tmp_path):
    deep = tmp_path / ("a_rather_long_folder_name_for_the_raw_exports_of_" + "x" * 30) / "nested"
    deep.mkdir(parents=True)
    f = deep / "alpaca_eval_gpt4_outputs_for_the_review.json"
    shutil.copyfile(FX / "lineage" / "eval_set.json", f)
    cat = str(tmp_path / "c.duckdb")
    _invoke(["register", str(f), "--catalog", cat])
    out = _invoke(["datasets", "--catalog", cat]).output
    assert len(str(f.resolve())) > 100 and str(f.resolve()) in out


def test_trend_without_teacher_scans_says_so_in_one_line(tmp_path):
    cat = str(tmp_path / "c.duckdb")
    _invoke(["scan", str(FX / "scan" / "trl_pairs.jsonl"), "--catalog", cat, "--no-origin"])
    out = _invoke(["trend", "--catalog", cat]).output.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("no scan with a teacher reference among 1 scan(s)")


def test_trend_table_names_datasets_and_json_inputs_are_objects(tmp_path):
    path = tmp_path / "cat.duckdb"
    with Catalog(path) as cat:
        for i, v in enumerate([0.3, 0.5]):
            cat.add_scan(inputs=[{"path": f"/d/round{i}.jsonl", "dataset": f"round{i}", "rows": 10}],
                         summary={"teacher": {"teacher_likeness": v, "ci_low": v - 0.02, "ci_high": v + 0.02}},
                         passed=True)
        cat.add_scan(inputs=[{"path": "/d/plain.jsonl"}], summary={}, passed=True)
    text = _invoke(["trend", "--catalog", str(path)]).output
    header = text.splitlines()[0].split()
    assert header[:3] == ["scan", "started_at", "datasets"]
    assert "round0" in text and "round1" in text and "(1 scan(s) without a teacher reference not shown)" in text
    js = json.loads(_invoke(["trend", "--catalog", str(path), "--json"]).output)
    inputs = js["scans"][0]["inputs"]
    assert isinstance(inputs, list) and inputs[0]["dataset"] == "round0" and inputs[0]["rows"] == 10
    assert js["scans"][2]["inputs"][0]["dataset"] == "plain"  # named from the file when the scan did not say
    assert [p["batch"] for p in js["trend"]["points"]] == ["#1 round0", "#2 round1"]


@pytest.fixture(scope="module")
def style_slices(tmp_path_factory):
    d = tmp_path_factory.mktemp("style")
    for name, src, n in (("t.jsonl", "teacher_gpt4.jsonl", 80), ("h.jsonl", "human.jsonl", 80),
                         ("b1.jsonl", "oasst-sft-pythia-12b.jsonl", 40), ("b2.jsonl", "vicuna-13b.jsonl", 40)):
        (d / name).write_text("".join((FX / "style" / src).read_text().splitlines(True)[:n]))
    return d


def test_converge_no_trend_prints_no_trend_verdict(style_slices):
    d = style_slices
    base = ["converge", "--teacher", str(d / "t.jsonl"), "--human", str(d / "h.jsonl"), "--n-boot", "20",
            str(d / "b1.jsonl"), str(d / "b2.jsonl")]
    with_trend = _invoke(base).output
    assert any(ln.startswith("trend (teacher_likeness)") for ln in with_trend.splitlines())
    without = _invoke([*base, "--no-trend"]).output
    assert "trend" not in without.replace("teacher_likeness", "") and "b2" in without
    js = json.loads(_invoke([*base, "--json", "--trend"]).output)
    assert set(js) == {"batches", "trend"} and js["trend"]["n_steps"] == 2


def test_origin_rules_prints_a_table_and_json_on_request():
    rules = load_rules().rules
    text = _invoke(["origin", "rules"]).output.splitlines()
    assert text[0].split()[:4] == ["rule", "kind", "weight", "file"] and set(text[1]) <= {"-", " "}
    assert sum(1 for ln in text[2:] if ln.split() and ln.split()[0] in {r.id for r in rules}) == len(rules)
    assert not text[0].startswith("{")
    js = json.loads(_invoke(["origin", "rules", "--json"]).output)
    assert [r["id"] for r in js["rules"]] == [r.id for r in rules] and js["test_failures"] == []
