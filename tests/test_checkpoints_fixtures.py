"""The demo fixtures (real responses, documented score processes) produce the expected flags."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from provaudit.checkpoints import analyze_checkpoints, compare
from provaudit.report import render_html, render_json, render_markdown

FX = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints"


def kinds(report) -> list[str]:
    return [f.kind for f in report.flags]


def test_gao_samples_with_kl_table() -> None:
    rep = analyze_checkpoints([FX / "gao_rl_samples.jsonl", FX / "gao_rl_kl.csv"], bootstrap=300)
    assert rep.proxy == "proxy_reward" and rep.outcome == "gold_reward"
    assert rep.decoupled
    assert rep.overoptimization["gao_form"] in ("rl", "bon") and rep.overoptimization["peak_kl"] is not None
    first = min(rep.checkpoints.index(f.checkpoint) for f in rep.flags if f.decoupling)
    assert first > rep.checkpoints.index(rep.best_checkpoint)
    for f in rep.flags:
        if f.decoupling:
            assert f.interval is not None and f.interval[1] < 0 and f.evidence


def test_length_gamed_gain_attributed_to_length() -> None:
    rep = analyze_checkpoints([FX / "length_gamed_samples.jsonl"], bootstrap=300)
    assert "length_confound" in kinds(rep)
    assert not rep.decoupled
    assert rep.length["combined_share"] >= 0.5
    assert rep.length["covariate_to"] > 3 * rep.length["covariate_from"]


def _synthetic_length(tmp_path: Path, length_driven: bool) -> Path:
    rng = np.random.default_rng(7)
    rows = []
    for k in range(5):
        for i in range(150):
            q = rng.normal()
            length = float(np.exp(4 + 0.35 * k + rng.normal(0, 0.4)))
            gain = 0.004 * length if length_driven else 0.6 * k
            rows.append({"checkpoint": f"c{k}", "sample_id": i, "length": length,
                         "reward": gain + 0.3 * q + rng.normal(0, 0.3), "outcome": q + rng.normal(0, 0.3)})
    path = tmp_path / f"len_{length_driven}.jsonl"
    pl.DataFrame(rows).write_ndjson(path)
    return path


def test_length_only_gain_flagged_and_control_not(tmp_path: Path) -> None:
    rep = analyze_checkpoints([_synthetic_length(tmp_path, True)], bootstrap=200)
    assert "length_confound" in kinds(rep)
    assert rep.length["share"] > 0.7
    control = analyze_checkpoints([_synthetic_length(tmp_path, False)], bootstrap=200)
    assert "length_confound" not in kinds(control)
    assert control.length["combined_share"] < 0.3


def test_tail_drop_names_slice_under_flat_median() -> None:
    rep = analyze_checkpoints([FX / "tail_drop_samples.jsonl"], bootstrap=400)
    tail = [f for f in rep.flags if f.kind == "tail_regression"]
    assert any(f.details["slice"] == "koala" and f.checkpoint == "v3-int4" for f in tail)
    assert all(f.details["slice"] in ("koala", "(all)") for f in tail)
    med = rep.tails.filter((pl.col("to") == "v3-int4") & (pl.col("slice") == "(all)") & (pl.col("stat") == "median"))
    assert med["lo"][0] <= 0 <= med["hi"][0]  # the median is flat
    assert not rep.decoupled


def test_seesaw_pair_and_independent_control(tmp_path: Path) -> None:
    rep = analyze_checkpoints([FX / "seesaw_metrics.csv"])
    saw = [f for f in rep.flags if f.kind == "see_saw"]
    assert len(saw) == 1 and "refusal_rate_unsafe" in saw[0].evidence and "completion_rate_legit" in saw[0].evidence
    assert not rep.decoupled
    rng = np.random.default_rng(0)
    fired = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        frame = pl.DataFrame({"release": [f"r{k}" for k in range(8)], "step": list(range(8)),
                              "reward": np.arange(8) * 0.2 + rng.normal(0, 0.02, 8),
                              "task_success": np.arange(8) * 0.03 + rng.normal(0, 0.01, 8),
                              "refusal_rate_unsafe": 0.8 + rng.normal(0, 0.03, 8),
                              "completion_rate_legit": 0.8 + rng.normal(0, 0.03, 8)})
        path = tmp_path / f"n{seed}.csv"
        frame.write_csv(path)
        fired += "see_saw" in kinds(analyze_checkpoints([path]))
    assert fired <= 1


def test_trainer_state_and_openrlhf_detection() -> None:
    rep = analyze_checkpoints([FX / "trainer_state.json"])
    assert rep.proxy == "objective/scores" and rep.outcome == "eval_task_success"
    assert rep.columns["kl"] == "objective/kl" and rep.columns["length"] == "completions/mean_length"
    assert rep.decoupled and rep.best_checkpoint == "step-400"
    assert "overoptimization" in kinds(rep)
    orl = analyze_checkpoints([FX / "openrlhf_metrics.csv"])
    assert orl.proxy == "rollout/reward_mean" and orl.outcome == "eval_gsm8k_pass1"
    assert not orl.decoupled
    assert orl.correlation["spearman"] > 0.8


def test_compare_pair_paired_tests() -> None:
    rep = compare(FX / "compare_sft.jsonl", FX / "compare_rlhf.jsonl", bootstrap=300)
    assert rep.checkpoints == ["compare_sft", "compare_rlhf"]
    assert rep.pair["paired"] and rep.pair["n_paired"] == 120
    assert rep.pair["outcome"]["wilcoxon_p"] is not None and rep.pair["proxy"]["sign_test_p"] < 0.001
    assert "length_confound" in kinds(rep)
    wr = rep.win_rates
    assert wr is not None and wr["checkpoint"].to_list() == ["compare_sft", "compare_rlhf"]
    for row in wr.iter_rows(named=True):
        raw = pl.read_ndjson(FX / f"{row['checkpoint']}.jsonl")
        resp, base = (raw[c].str.split(" ").list.len().cast(pl.Float64) for c in ("response", "baseline_response"))
        assert row["n"] == raw.height == 120
        assert row["win_rate"] == pytest.approx(raw["preference"].mean())
        assert row["mean_length_diff"] == pytest.approx((resp - base).mean())  # lengths in words, as documented
    sft, rlhf = wr.row(0, named=True), wr.row(1, named=True)
    # the RLHF answers are 83 words longer on average and longer answers win more: length control lowers
    # its win rate (0.52 raw), while the SFT answers, as long as the baseline's, keep theirs
    assert rlhf["length_coef"] > 0 and rlhf["lc_win_rate"] < rlhf["win_rate"] - 0.05
    assert sft["lc_win_rate"] == pytest.approx(sft["win_rate"], abs=0.01)
    assert not rep.decoupled


def test_compare_decoupled_pair(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    q = rng.normal(size=200)
    for name, dp, do in (("a", 0.0, 0.0), ("b", 0.5, -0.3)):
        pl.DataFrame({"sample_id": np.arange(200), "reward": q + dp + rng.normal(0, 0.3, 200),
                      "outcome": q + do + rng.normal(0, 0.3, 200)}).write_csv(tmp_path / f"{name}.csv")
    rep = compare(tmp_path / "a.csv", tmp_path / "b.csv", bootstrap=200)
    assert rep.decoupled and rep.best_checkpoint == "a"


def test_outputs_deterministic() -> None:
    a = analyze_checkpoints([FX / "tail_drop_samples.jsonl"], seed=3, bootstrap=200)
    b = analyze_checkpoints([FX / "tail_drop_samples.jsonl"], seed=3, bootstrap=200)
    assert render_json(a) == render_json(b)
    assert render_html(a) == render_html(b)
    assert render_markdown(a) == render_markdown(b)
    d = json.loads(render_json(a))
    assert d["best_checkpoint"] == a.best_checkpoint
    for f in d["flags"]:
        assert set(f) >= {"kind", "checkpoint", "evidence", "interval"}
        assert all(isinstance(v, float) and math.isfinite(v) for v in f["interval"])


@pytest.mark.parametrize("fname", ["seesaw_metrics.csv", "trainer_state.json"])
def test_markdown_lists_flags(fname: str) -> None:
    rep = analyze_checkpoints([FX / fname])
    md = render_markdown(rep)
    for f in rep.flags:
        assert f"**{f.kind}** at `{f.checkpoint}`" in md


@pytest.mark.slow
def test_teacher_confound_uses_style_similarity() -> None:
    teacher = FX / "teacher_reference.jsonl"
    rep = analyze_checkpoints([FX / "teacher_drift_samples.jsonl"], teacher=teacher, bootstrap=300)
    assert "teacher_confound" in kinds(rep)
    assert rep.teacher["covariate_to"] > rep.teacher["covariate_from"] and rep.teacher["share_interval"][0] > 0
    plain = analyze_checkpoints([FX / "teacher_drift_samples.jsonl"], bootstrap=300)
    assert "teacher_confound" not in kinds(plain) and not plain.teacher
    # control: a length-driven gain is not attributed to teacher-likeness
    control = analyze_checkpoints([FX / "length_gamed_samples.jsonl"], teacher=teacher, bootstrap=300)
    assert "teacher_confound" not in kinds(control) and "length_confound" in kinds(control)


def test_reported_stderr_and_lower_is_better(tmp_path: Path) -> None:
    # eval error rate (lower is better) falls, then rises while the reward keeps rising
    err = [0.40, 0.33, 0.28, 0.25, 0.24, 0.26, 0.30, 0.35, 0.41]
    frame = pl.DataFrame({"step": [100 * (k + 1) for k in range(9)], "reward": [0.2 * k for k in range(9)],
                          "eval_error_rate": err, "eval_error_rate_stderr": [0.01] * 9})
    path = tmp_path / "m.csv"
    frame.write_csv(path)
    rep = analyze_checkpoints([path], outcome="eval_error_rate")
    assert any("lower-is-better" in n for n in rep.notes) and any("standard errors" in n for n in rep.notes)
    assert rep.best_checkpoint == "step-500"
    assert rep.decoupled
    first = min(rep.checkpoints.index(f.checkpoint) for f in rep.flags if f.decoupling)
    assert first >= 4


def test_dpo_trainer_state_needs_declared_outcome(tmp_path: Path) -> None:
    hist = [{"step": s, "loss": 0.6, "rewards/chosen": 0.1 * s, "rewards/margins": 0.2 * s,
             "rewards/accuracies": 0.7} for s in range(1, 6)]
    hist += [{"step": s, "eval_loss": 0.6, "eval_rewards/chosen": 0.1 * s, "eval_rewards/margins": 0.1}
             for s in range(1, 6)]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": hist}))
    from provaudit.errors import InputError

    with pytest.raises(InputError) as exc:
        analyze_checkpoints([path])
    assert exc.value.field == "outcome" and "--outcome" in str(exc.value)
