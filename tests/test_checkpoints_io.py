"""Bad input gives one clear InputError naming file, line/record and field (CLI exit 2)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from provaudit.checkpoints import analyze_checkpoints, compare
from provaudit.cli import main
from provaudit.errors import InputError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_non_numeric_metric_names_line_and_field(tmp_path: Path) -> None:
    p = write(tmp_path / "m.csv", "checkpoint,step,reward,outcome\na,1,0.1,0.2\nb,2,0.2,oops\nc,3,0.3,0.1\n")
    with pytest.raises(InputError) as exc:
        analyze_checkpoints([p])
    assert exc.value.file == str(p) and exc.value.line == 3 and exc.value.field == "outcome"


def test_invalid_jsonl_line(tmp_path: Path) -> None:
    good = json.dumps({"checkpoint": "a", "sample_id": 1, "reward": 1.0, "outcome": 1.0})
    p = write(tmp_path / "s.jsonl", good + "\n\n{not json}\n")
    with pytest.raises(InputError) as exc:
        analyze_checkpoints([p])
    assert exc.value.line == 3 and "invalid JSON" in str(exc.value)


def test_missing_outcome_value_in_samples(tmp_path: Path) -> None:
    # a score the harness did not produce is a harness fault (reported), not unreadable input
    rows = [{"checkpoint": c, "sample_id": i, "reward": 0.5 + i, "outcome": 0.1 * i} for c in "ab" for i in range(3)]
    rows[4]["outcome"] = None
    rows[5]["outcome"] = "error"
    p = write(tmp_path / "s.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    rep = analyze_checkpoints([p], bootstrap=200)
    per = {r["checkpoint"]: r for r in rep.harness["per_checkpoint"]}
    assert per["b"]["score_missing"] == pytest.approx(1 / 3) and per["b"]["score_non_numeric"] == pytest.approx(1 / 3)
    assert rep.series.filter(rep.series["checkpoint"] == "b")["n"][0] == 1
    assert any("without a proxy or outcome score" in n for n in rep.notes)
    rows[5]["outcome"] = "oops"  # not a harness failure marker: unreadable input
    p = write(tmp_path / "s.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(InputError) as exc:
        analyze_checkpoints([p])
    assert exc.value.line == 6 and exc.value.field == "outcome"


def test_duplicate_sample(tmp_path: Path) -> None:
    rows = [{"checkpoint": "a", "sample_id": 1, "reward": 0.5, "outcome": 0.1}] * 2 + [
        {"checkpoint": "b", "sample_id": 1, "reward": 0.5, "outcome": 0.1}]
    p = write(tmp_path / "s.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(InputError) as exc:
        analyze_checkpoints([p])
    assert exc.value.line == 2 and exc.value.field == "sample_id"


def test_trainer_state_without_log_history(tmp_path: Path) -> None:
    p = write(tmp_path / "trainer_state.json", json.dumps({"log_history": {"step": 1}}))
    with pytest.raises(InputError) as exc:
        analyze_checkpoints([p])
    assert exc.value.field == "log_history"


def test_undetectable_and_unknown_columns(tmp_path: Path) -> None:
    p = write(tmp_path / "m.csv", "checkpoint,alpha,beta\na,1,2\nb,2,3\nc,3,1\n")
    with pytest.raises(InputError) as exc:
        analyze_checkpoints([p])
    assert exc.value.field == "proxy" and "--proxy" in str(exc.value)
    rep = analyze_checkpoints([p], proxy="alpha", outcome="beta")
    assert rep.proxy == "alpha" and rep.best_checkpoint == "b"
    with pytest.raises(InputError) as exc:
        analyze_checkpoints([p], proxy="gamma", outcome="beta")
    assert "gamma" in str(exc.value)


def test_compare_needs_per_sample_files(tmp_path: Path) -> None:
    p = write(tmp_path / "m.csv", "checkpoint,reward,outcome\na,1,2\nb,2,3\n")
    with pytest.raises(InputError):
        compare(p, p)


def test_cli_exit_2_one_line(tmp_path: Path) -> None:
    p = write(tmp_path / "m.csv", "checkpoint,step,reward,outcome\na,1,0.1,0.2\nb,2,x,0.3\n")
    res = CliRunner().invoke(main, ["checkpoints", str(p)])
    assert res.exit_code == 2
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{p}:3" in lines[0] and "reward" in lines[0]
    res = CliRunner().invoke(main, ["checkpoints", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2


def test_parquet_samples_and_compare_names_from_files(tmp_path: Path) -> None:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(0)
    for name in ("before", "after"):
        pl.DataFrame({"checkpoint": ["model"] * 50, "id": np.arange(50), "reward": rng.normal(size=50),
                      "outcome": rng.normal(size=50)}).write_parquet(tmp_path / f"{name}.parquet")
    rep = compare(tmp_path / "before.parquet", tmp_path / "after.parquet", bootstrap=100)
    assert rep.checkpoints == ["before", "after"] and rep.pair["paired"]
    assert not rep.decoupled


def test_metrics_rows_without_sample_id(tmp_path: Path) -> None:
    p = write(tmp_path / "m.csv", "checkpoint,reward,outcome\na,1,2\na,2,3\nb,1,1\n")
    with pytest.raises(InputError) as exc:
        analyze_checkpoints([p])
    assert exc.value.line == 3 and "sample id" in str(exc.value)


@pytest.mark.parametrize(("proxy", "outcome"), [("rm_reward", "gold_reward"), ("reward_model_score", "human_eval"),
                                                ("judge_score", "pass_rate"), ("rollout/reward_mean", "eval_gsm8k_pass1"),
                                                ("objective/scores", "eval_task_success")])
def test_name_detection(tmp_path: Path, proxy: str, outcome: str) -> None:
    # the outcome column comes first so that detection cannot rely on column order
    p = write(tmp_path / "m.csv", f"step,{outcome},{proxy}\n1,0.1,0.1\n2,0.2,0.3\n3,0.25,0.5\n4,0.3,0.6\n")
    rep = analyze_checkpoints([p])
    assert (rep.proxy, rep.outcome) == (proxy, outcome)
