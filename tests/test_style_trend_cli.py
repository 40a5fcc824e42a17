"""Trend over ordered batches and over the catalog's scan history; the style CLI commands."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from provaudit.catalog.store import Catalog
from provaudit.cli import main
from provaudit.errors import UsageError
from provaudit.style import trend
from provaudit.style.trends import history_trend, plot_trend


def _res(vals, half_width=0.02):
    return [{"batch": f"b{i}", "teacher_likeness": v, "ci_low": v - half_width, "ci_high": v + half_width, "n": 100}
            for i, v in enumerate(vals)]


def test_trend_flags_convergence_only_when_significant():
    up = trend(_res([0.30, 0.38, 0.45, 0.55, 0.62]))
    assert up["converging"] and up["slope"] > 0.07 and up["slope_ci_low"] > 0 and up["kendall_tau"] == 1.0
    flat = trend(_res([0.40, 0.42, 0.39, 0.41, 0.40]))
    assert not flat["converging"] and flat["verdict"] == "no significant trend"
    noisy = trend(_res([0.30, 0.34, 0.38], half_width=0.3))  # intervals too wide to call it
    assert noisy["slope"] > 0.02 and noisy["slope_ci_low"] < 0 and not noisy["converging"]
    down = trend(_res([0.7, 0.6, 0.5, 0.4]))
    assert down["verdict"] == "diverging from the teacher"
    assert trend(_res([0.5]))["converging"] is False
    with pytest.raises(UsageError):
        trend()


def test_trend_on_other_metric_and_plot(tmp_path):
    res = [{"batch": f"b{i}", "teacher_fraction": {"alpha": a, "ci_low": a - 0.05, "ci_high": a + 0.05}}
           for i, a in enumerate([0.1, 0.3, 0.5])]
    tr = trend(res, metric="teacher_fraction.alpha")
    assert tr["converging"] and tr["points"][2]["ci_high"] == pytest.approx(0.55)
    png = plot_trend(tr, tmp_path / "t.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture()
def catalog_with_scans(tmp_path):
    path = tmp_path / "cat.duckdb"
    with Catalog(path) as cat:
        for i, v in enumerate([0.35, 0.45, 0.60]):
            summary = {"input": {"records": 10}, "teacher": {"teacher_likeness": v, "ci_low": v - 0.03,
                                                             "ci_high": v + 0.03, "n": 200,
                                                             "teacher_fraction": {"alpha": v}}}
            cat.add_scan(inputs=[{"path": f"batch{i}.jsonl"}], summary=summary, passed=True)
        cat.add_scan(inputs=[{"path": "no_teacher.jsonl"}], summary={"input": {}}, passed=True)
    return path


def test_history_trend_from_catalog(catalog_with_scans, tmp_path):
    hist, tr = history_trend(catalog_with_scans)
    assert hist.height == 4 and hist["teacher_likeness"].null_count() == 1
    assert tr["n_steps"] == 3 and tr["converging"]
    out = CliRunner().invoke(main, ["trend", "--catalog", str(catalog_with_scans), "--plot",
                                    str(tmp_path / "p.png"), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["trend"]["converging"] and len(data["scans"]) == 4 and (tmp_path / "p.png").exists()


def test_cli_converge_json_and_label_origin(fixtures_dir):
    d = fixtures_dir / "style"
    r = CliRunner().invoke(main, ["converge", "--teacher", str(d / "teacher_gpt4.jsonl"), "--n-boot", "50",
                                  "--json", str(d / "oasst-sft-pythia-12b.jsonl"), str(d / "vicuna-13b.jsonl")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [b["batch"] for b in data] == ["oasst-sft-pythia-12b", "vicuna-13b"]
    for b in data:
        assert {"batch", "teacher_likeness", "ci_low", "ci_high", "teacher_fraction", "word_mixture",
                "stylometry", "embedding", "phrases"} <= set(b)
    r2 = CliRunner().invoke(main, ["label-origin", str(d / "alpaca_eval_gpt4_annotations.json")])
    assert r2.exit_code == 0 and "AI-judge-like" in r2.output and "words per minute" in r2.output


def test_cli_errors_are_one_line_exit_2(tmp_path, fixtures_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": \n')
    r = CliRunner().invoke(main, ["converge", "--teacher", str(fixtures_dir / "style" / "teacher_gpt4.jsonl"),
                                  str(bad)])
    assert r.exit_code == 2 and "bad.jsonl" in r.output
    r = CliRunner().invoke(main, ["trend", "--catalog", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 2 and "catalog not found" in r.output
