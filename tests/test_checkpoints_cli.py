"""CLI: --gate exit codes, --json content, --out files."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from provaudit.cli import main

FX = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints"


def test_gate_exit_codes() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["checkpoints", str(FX / "trainer_state.json"), "--gate"])
    assert res.exit_code == 1, res.output
    res = runner.invoke(main, ["checkpoints", str(FX / "openrlhf_metrics.csv"), "--gate"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["checkpoints", str(FX / "trainer_state.json")])
    assert res.exit_code == 0  # without --gate a flag is reported, not an error


def test_json_flags_and_best_checkpoint() -> None:
    res = CliRunner().invoke(main, ["checkpoints", str(FX / "trainer_state.json"), "--json"])
    assert res.exit_code == 0
    d = json.loads(res.output)
    assert d["best_checkpoint"] == "step-400" and d["decoupled"] is True
    kinds = {f["kind"] for f in d["flags"]}
    assert "decoupling" in kinds
    # the sustained flag names the FIRST checkpoint after the best where the proxy is above the best's and
    # the outcome drop passes the threshold (Bonferroni t quantile over (best + 1) x later pairs, df = n - 3)
    from scipy.stats import t

    from provaudit.checkpoints import analyze_checkpoints

    series = analyze_checkpoints([FX / "trainer_state.json"]).series
    names, P, O = series["checkpoint"].to_list(), series["proxy"].to_list(), series["outcome"].to_list()
    best, n = names.index("step-400"), len(names)
    flag = next(f for f in d["flags"] if f["kind"] == "decoupling")
    thr = flag["details"]["threshold_z"]
    assert thr == pytest.approx(t.ppf(1 - 0.01 / ((best + 1) * (n - best - 1)), n - 3), abs=1e-5)  # JSON: 6 digits
    lo, hi = flag["interval"]
    se = (hi - lo) / (2 * 1.959963984540054)
    first = next(j for j in range(best + 1, n) if P[j] > P[best] and (O[j] - O[best]) / se < -thr)
    assert flag["checkpoint"] == names[first] == "step-800"
    assert flag["details"]["checkpoints_flagged"] == [nm for j, nm in enumerate(names) if j >= first]
    for f in d["flags"]:
        assert {"kind", "checkpoint", "evidence", "interval"} <= set(f)
    assert d["summary"]["n_decoupling_flags"] >= 1


def test_out_writes_three_reports(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["compare", str(FX / "compare_sft.jsonl"), str(FX / "compare_rlhf.jsonl"),
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "length_confound" in html
    # no external resources: no src/href to a URL, no stylesheet links or imports
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html) and "<link" not in html and "@import" not in html
    assert json.loads((out / "report.json").read_text())["mode"] == "pair"
    assert "# Checkpoint comparison" in (out / "report.md").read_text()
