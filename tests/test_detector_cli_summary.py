"""detector train/eval print a readable summary and warn when the per-domain rule moves the threshold."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from click.testing import CliRunner

from provaudit.cli import main
from provaudit.report.detector import MAX_THRESHOLD_SHIFT

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "origin" / "labelled.jsonl"


def _files(tmp_path: Path, relabel: str | None = None) -> tuple[Path, Path]:
    d = pl.read_ndjson(FIX)
    if relabel:  # a model-written domain filed as human (a mislabelled or model-edited "human" source)
        d = d.with_columns(pl.when(pl.col("domain") == relabel).then(0).otherwise(pl.col("label")).alias("label"),
                           pl.when(pl.col("domain") == relabel).then(pl.lit(f"{relabel}_as_human"))
                           .otherwise(pl.col("domain")).alias("domain"))
    h, m = tmp_path / "h.jsonl", tmp_path / "m.jsonl"
    d.filter(pl.col("label") == 0).select("text", "domain").write_ndjson(h)
    d.filter(pl.col("label") == 1).select("text", "domain").write_ndjson(m)
    return h, m


def test_train_prints_a_readable_summary_and_eval_too(tmp_path: Path) -> None:
    h, m = _files(tmp_path)
    r = CliRunner().invoke(main, ["detector", "train", "--human", str(h), "--model", str(m),
                                  "--out", str(tmp_path / "det")])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "det" / "metrics.json").read_text())
    oof = metrics["out_of_fold_min_words"]
    assert f"AUROC {oof['auroc']:.3f}" in r.stdout and f"threshold {metrics['threshold_model']:.3f}" in r.stdout
    assert f"TPR at 5% FPR {100 * oof['tpr_at_5pct_fpr']:.1f}%" in r.stdout
    for row in metrics["per_domain"]:  # one line per domain with its FPR at the threshold
        if row["n_human"]:
            assert any(line.split()[:1] == [row["domain"]] and f"{100 * row['fpr_at_threshold']:.1f}%" in line
                       for line in r.stdout.splitlines())
    assert "warning" not in r.stderr and not r.stdout.lstrip().startswith("{")
    r = CliRunner().invoke(main, ["detector", "eval", "--human", str(h), "--model", str(m),
                                  "--detector", str(tmp_path / "det")])
    assert r.exit_code == 0 and "AUROC" in r.stdout and "news" in r.stdout


def test_warns_naming_the_domain_that_forced_the_threshold(tmp_path: Path) -> None:
    h, m = _files(tmp_path, relabel="abstracts")
    r = CliRunner().invoke(main, ["detector", "train", "--human", str(h), "--model", str(m),
                                  "--out", str(tmp_path / "det"), "--json"])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)
    rule = metrics["threshold_rule"]
    det = json.loads((tmp_path / "det" / "detector.json").read_text())["meta"]
    # the forcing domain's threshold (in-domain or scored unseen) is the highest and equals the final one
    cands = [(v, k) for key in ("domain_thresholds", "unseen_domain_thresholds") for k, v in det[key].items()]
    top, forced = max(cands)
    assert forced == "abstracts_as_human" == rule["forced_by"]
    assert np.isclose(rule["threshold"], top, atol=1e-4) and top > det["pooled_threshold"]
    assert rule["shift"] > MAX_THRESHOLD_SHIFT
    assert "warning: the per-domain rule raised the threshold" in r.stderr
    assert "'abstracts_as_human'" in r.stderr and f"{rule['pooled_threshold']:.3f}" in r.stderr
