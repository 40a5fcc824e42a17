"""Labeler homogenization: agreement statistics against published values, drift detection on real pairs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score

from provaudit.cli import main
from provaudit.style.labelers import (
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    labeler_homogenization,
    simulate_pool,
)

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "fixtures" / "style" / "alpaca_eval_gpt4_annotations.json"
DRIFT = ROOT / "fixtures" / "integrity" / "labels_drift.jsonl.gz"

# Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12 units
# (None = missing). Published: nominal 0.743, ordinal 0.815, interval 0.849.
RELIABILITY = [[1, 1, None, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
               [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [None, 5, 5, 5], [None, None, 1, 1], [None, None, 3, None]]


def _units() -> list[list[int]]:
    return [[v for v in u if v is not None] for u in RELIABILITY]


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_matches_published_example(level: str, published: float) -> None:
    assert krippendorff_alpha(_units(), level) == pytest.approx(published, abs=5e-4)


def test_krippendorff_alpha_by_hand_two_coders() -> None:
    # 4 units, two coders, labels a/b: units (a,a) (a,b) (b,b) (b,b). Coincidences: o_aa = 2, o_ab = o_ba = 1,
    # o_bb = 4; n_a = 3, n_b = 5, n = 8. D_o = 2/8, D_e = 2*3*5 / (8*7); alpha = 1 - (2/8) / (30/56) = 8/15
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b"], ["b", "b"]]) == pytest.approx(1 - (2 / 8) / (30 / 56))
    assert krippendorff_alpha([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert krippendorff_alpha([["a", "a"], ["a"]]) is None  # no variation


def test_fleiss_kappa_wikipedia_example() -> None:
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    t = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(t) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa(np.array([[2, 0], [1, 2]])) is None  # unequal numbers of ratings


def test_cohen_kappa_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, 200)
    b = np.where(rng.random(200) < 0.6, a, rng.integers(0, 3, 200))
    assert cohen_kappa(a.tolist(), b.tolist()) == pytest.approx(cohen_kappa_score(a, b))


def _pairs() -> list[dict]:
    return json.loads(PAIRS.read_text(encoding="utf-8"))


def _run(df, cache):
    return labeler_homogenization(df, by="batch", detail=False, embeddings=cache, n_boot=200)


@pytest.mark.slow
def test_drifting_pools_flagged_within_two_batches() -> None:
    pairs, cache = _pairs(), {}
    for s in range(6):
        start = 3 + s % 2
        res = _run(simulate_pool(pairs, drift_start=start, seed=s), cache)
        assert res["homogenizing"], s
        first = int(res["trend"]["first_flagged_batch"][1:])
        assert start <= first <= start + 2, (s, first)
        assert res["trend"]["agreement_slope_interval"][0] > 0 > res["trend"]["diversity_slope_interval"][1]


@pytest.mark.slow
def test_stable_pools_rarely_flag() -> None:
    pairs, cache = _pairs(), {}
    flagged = sum(_run(simulate_pool(pairs, drift_start=None, seed=100 + s), cache)["homogenizing"] for s in range(20))
    assert flagged <= 1  # <= 5% of 20 seeded trials (200 seeds in bench/integrity.py)


def test_agreement_toward_reference_when_one_label_per_item() -> None:
    # one annotator per batch: agreement is measured against the reference judge (GPT-4's real labels)
    pairs = _pairs()[:120]
    rows = []
    rng = np.random.default_rng(0)
    for t in range(3):
        for i, p in enumerate(pairs[t * 40:(t + 1) * 40]):
            ref = int(p["preference"]) if p["preference"] in (1, 2) else 1
            follow = (0.5, 0.75, 1.0)[t]
            rows.append({"item_id": f"p{t}-{i}", "label": ref if rng.random() < follow else 3 - ref, "batch": t,
                         "reference_label": ref, "output_1": p["output_1"], "output_2": p["output_2"]})
    import polars as pl

    res = labeler_homogenization(pl.DataFrame(rows), by="batch", detail=False, n_boot=100)
    agree = [b["reference_agreement"] for b in res["batches"]]
    assert agree[2] == 1.0 and agree[0] < agree[1] < agree[2]
    assert res["trend"]["agreement"] == "reference_agreement"


def test_cli_labelers_on_fixture(tmp_path: Path) -> None:
    page = tmp_path / "lab.html"
    res = CliRunner().invoke(main, ["labelers", str(DRIFT), "--by", "batch", "--json", "--html", str(page),
                                    "--gate"])
    assert res.exit_code == 1, res.output
    d = json.loads(res.output)
    assert d["homogenizing"] and d["flags"][0]["kind"] == "homogenizing"
    assert d["flags"][0]["checkpoint"] in ("b03", "b04", "b05")  # drift starts at b03
    assert [b["batch"] for b in d["batches"]] == [f"b{i:02d}" for i in range(6)]
    assert all(b["label_origin"]["verdict"] in ("human-like", "AI-judge-like", "unknown") for b in d["batches"])
    assert "<svg" in page.read_text(encoding="utf-8")


def test_cli_labelers_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    p.write_text(json.dumps({"item_id": 1, "annotator": "a"}) + "\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["labelers", str(p)])
    assert res.exit_code == 2 and str(p) in res.output and "label" in res.output


def test_time_column_batches_reference_file_and_scores(tmp_path: Path) -> None:
    import polars as pl

    df = simulate_pool(_pairs(), n_batches=3, items_per_batch=30, seed=4)
    n = df.height
    # a timestamp per judgment (ISO, in order): cut into 3 equal-count batches
    df = df.with_columns(pl.Series("created_at", [f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00"
                                                  for i in range(n)])).drop("batch")
    labels = tmp_path / "labels.jsonl"
    df.write_ndjson(labels)
    ref = tmp_path / "judge.csv"
    pl.DataFrame({"item_id": df["item_id"].unique().sort(), "label": 1}).write_csv(ref)
    scores = tmp_path / "scores.csv"
    pl.DataFrame({"batch": ["t0", "t0", "t1", "t1", "t2", "t2"], "checkpoint": ["a", "b"] * 3,
                  "score": [0.5, 0.7, 0.6, 0.6, 0.61, 0.62]}).write_csv(scores)
    res = labeler_homogenization([labels], by="created_at", n_batches=3, reference=ref, scores=scores,
                                 detail=False, n_boot=100)
    rows = res["batches"]
    assert [r["batch"] for r in rows] == ["t0", "t1", "t2"] and [r["n_judgments"] for r in rows] == [n // 3] * 3
    # variance across checkpoints: sample variance of the two checkpoint means, by hand
    assert rows[0]["score_variance_across_checkpoints"] == pytest.approx(np.var([0.5, 0.7], ddof=1))
    assert rows[1]["score_variance_across_checkpoints"] == pytest.approx(0.0)
    part = df.with_row_index().filter(pl.col("index") < n // 3)
    assert rows[0]["reference_agreement"] == pytest.approx(float((part["label"] == 1).mean()))


def test_report_with_labels_is_byte_identical() -> None:
    from provaudit.checkpoints import compare
    from provaudit.report import render_json, render_markdown

    fx = ROOT / "fixtures" / "integrity"
    kw = {"bootstrap": 200, "labels": [DRIFT], "label_opts": {"by": "batch", "n_boot": 100, "detail": False}}
    one = compare(fx / "run_a.jsonl", fx / "fault_echo.jsonl", **kw)
    two = compare(fx / "run_a.jsonl", fx / "fault_echo.jsonl", **kw)
    assert render_json(one) == render_json(two) and render_markdown(one) == render_markdown(two)
    d = json.loads(render_json(one))
    assert d["labelers"]["homogenizing"] and d["summary"]["homogenizing"] and d["summary"]["harness_flagged"]
