"""Harness health on real AlpacaEval outputs: each injected fault is flagged, a clean rerun is not."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from provaudit.checkpoints import compare, harness
from provaudit.checkpoints.faults import inject_fault, rerun, simulate_run
from provaudit.checkpoints.io import load_rules
from provaudit.checkpoints.load import load_inputs
from provaudit.cli import main

FX = Path(__file__).resolve().parent.parent / "fixtures" / "integrity"
SEED = 15  # scripts/build_integrity_fixtures.py
EXPECTED = {"empty": "harness_empty", "truncated": "harness_truncated", "echo": "harness_echo",
            "duplicate": "harness_duplicate", "extraction": "harness_extraction_failed",
            "scores": "harness_score_missing"}


def _items() -> list[dict]:
    return [json.loads(line) for line in (FX / "outputs.jsonl").read_text(encoding="utf-8").splitlines()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _assess(tmp_path: Path, a: list[dict], b: list[dict], seed: int = 0) -> tuple[dict, list]:
    pa, pb = _write(tmp_path / "a.jsonl", a), _write(tmp_path / "b.jsonl", b)
    rules = load_rules()
    loaded = load_inputs([str(pa), str(pb)], rules, proxy=None, outcome=None, checkpoint_names=["a", "b"])
    th = {**rules["thresholds"], "bootstrap": 400}
    return harness.assess(loaded, ["a", "b"], th, seed)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_fault_fixture_is_flagged_with_its_samples(kind: str) -> None:
    rep = compare(FX / "run_a.jsonl", FX / f"fault_{kind}.jsonl", bootstrap=300)
    kinds = {f.kind for f in rep.flags}
    assert EXPECTED[kind] in kinds and "harness_change" in kinds
    assert rep.harness_flagged and rep.gate_failed
    # the flagged ids are exactly the injected ones (recomputed from the same seeded process)
    _, broken = inject_fault(rerun(_items(), seed=SEED + 1, item_seed=SEED, checkpoint="A"), kind, 0.25,
                             seed=SEED + 2)
    change = next(f for f in rep.flags if f.kind == "harness_change")
    assert change.details["became_unhealthy"] == len(broken) == 30
    fault = next(f for f in rep.flags if f.kind == EXPECTED[kind])
    assert set(fault.details["sample_ids"]) <= set(broken)
    per = next(r for r in rep.harness["per_checkpoint"] if r["checkpoint"] == "fault_" + kind)
    share = per["score_missing"] + per["score_non_numeric"] if kind == "scores" else fault.value
    assert fault.details["examples"] and share == pytest.approx(0.25)


def test_template_and_settings_change_is_flagged() -> None:
    rep = compare(FX / "run_a.jsonl", FX / "fault_template.jsonl", bootstrap=200)
    by = {f.kind: f for f in rep.flags}
    assert by["harness_settings"].details["changes"]["temperature"] == {"from": ["0.7"], "to": ["1.0"]}
    assert by["harness_template"].value == 1.0
    assert "### Instruction" in by["harness_template"].details["example"]["to"]


def test_clean_rerun_fixture_raises_no_harness_flag() -> None:
    rep = compare(FX / "run_a.jsonl", FX / "rerun_a.jsonl", bootstrap=300)
    assert not rep.harness_flagged and not rep.gate_failed
    assert all(r["healthy_share"] == 1.0 for r in rep.harness["per_checkpoint"])


@pytest.mark.slow
def test_clean_reruns_over_seeds_rarely_flag(tmp_path: Path) -> None:
    items = _items()
    flagged = 0
    seeds = 60  # 200 seeds in bench/integrity.py
    for s in range(seeds):
        rng = np.random.default_rng(s)
        sub = [items[i] for i in sorted(rng.choice(len(items), 100, replace=False))]
        a = simulate_run(sub, seed=s, item_seed=s)
        b = rerun(sub, seed=s + 500, item_seed=s)
        _, flags = _assess(tmp_path, a, b, seed=s)
        flagged += bool(flags)
    assert flagged <= 0.05 * seeds, flagged


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_faults_of_20_to_30_percent_are_harness_not_model(tmp_path: Path, kind: str) -> None:
    items = _items()
    not_significant = 0
    seeds = 20
    for s in range(seeds):
        rate = 0.2 + 0.1 * s / (seeds - 1)
        a = simulate_run(items, seed=s, item_seed=s)
        b, broken = inject_fault(rerun(items, seed=s + 500, item_seed=s), kind, rate, seed=s)
        out, flags = _assess(tmp_path, a, b, seed=s)
        assert "harness_change" in {f.kind for f in flags}
        o = out["pairs"][0]["outcome"]
        # a cut that happens to land on a sentence end cannot be told from a complete answer
        assert 0.9 * len(broken) <= o["became_unhealthy"] <= len(broken) and o["became_healthy"] == 0
        # the broken samples carry a significant drop; the healthy ones do not move significantly
        assert o["carried_interval"][1] < 0
        not_significant += not o["healthy"]["significant"]
    assert not_significant >= 0.85 * seeds


def test_health_change_decomposition_by_hand() -> None:
    # a: all healthy; b: samples 2 and 3 broke and lost 1.0; sample 0 improved 0.5 while healthy in both
    st = pl.DataFrame({"checkpoint": ["a"] * 4 + ["b"] * 4, "sample_id": ["0", "1", "2", "3"] * 2,
                       "outcome": [0.0, 1.0, 1.0, 1.0, 0.5, 1.0, 0.0, 0.0],
                       "healthy": [True] * 4 + [True, True, False, False],
                       "status": ["ok"] * 4 + ["ok", "ok", "empty", "empty"]})
    out = harness.health_change(st, "a", "b", "outcome", np.random.default_rng(0), n_boot=200)
    assert out["total"] == pytest.approx((0.5 - 2.0) / 4)
    assert out["carried"] == pytest.approx(-2.0 / 4)
    assert out["share"] == pytest.approx(-0.5 / -0.375)
    assert out["healthy"]["delta"] == pytest.approx(0.25) and out["healthy"]["n"] == 2
    assert out["became_unhealthy"] == 2 and out["new_faults"] == {"empty": 2}
    assert out["mcnemar_p"] == pytest.approx(sps.binomtest(2, 2, 0.5).pvalue)


def test_out_of_scale_and_nonnumeric_scores(tmp_path: Path) -> None:
    items = _items()[:60]
    a = simulate_run(items, seed=1, item_seed=1)
    b = simulate_run(items, seed=2, item_seed=1)
    for r in b[:6]:
        r["outcome_judge_win"] = 100.0  # a percentage where the scale is 0/1
    b[6]["outcome_judge_win"] = "N/A"
    out, flags = _assess(tmp_path, a, b)
    kinds = {f.kind for f in flags}
    assert "harness_score_out_of_scale" in kinds
    assert out["scales"]["outcome_judge_win"] == [0.0, 1.0]
    per = {r["checkpoint"]: r for r in out["per_checkpoint"]}
    assert per["b"]["score_out_of_scale"] == pytest.approx(6 / 60)
    assert per["b"]["score_non_numeric"] == pytest.approx(1 / 60)


def _cut(texts: list[str]) -> tuple:
    stripped = [t.strip() for t in texts]
    return harness._truncated(np.array([len(t) for t in stripped], dtype=float),
                              np.array([len(t.split()) for t in stripped], dtype=float),
                              np.array([bool(t) and not harness._TERMINAL.search(t) for t in stripped]), 3)


def test_truncation_needs_a_pile_up_at_the_cap() -> None:
    texts = [f"Sentence number {i} is complete." for i in range(20)]
    cut, info = _cut(texts)
    assert info is None and not cut.any()
    long = "word " * 60  # 300 characters
    texts += [long[:201], ("x" * 150 + " " + long)[:201], ("y" * 10 + " " + long)[:201], long[:150] + "done."]
    cut, info = _cut(texts)
    # three outputs end mid-word within 3% of the 201-character maximum; the fourth ends a sentence
    assert info == {"unit": "chars", "cap": 201, "n_at_cap": 3}
    assert cut.tolist() == [False] * 20 + [True, True, True, False]


def test_cli_gate_and_json_flag_ids() -> None:
    res = CliRunner().invoke(main, ["compare", str(FX / "run_a.jsonl"), str(FX / "fault_empty.jsonl"), "--json",
                                    "--gate"])
    assert res.exit_code == 1, res.output
    d = json.loads(res.output)
    ids = [f["id"] for f in d["flags"]]
    assert "harness_change" in ids and d["gate_failed"]
    assert all(k.startswith("harness") for k in ids)
    res = CliRunner().invoke(main, ["compare", str(FX / "run_a.jsonl"), str(FX / "rerun_a.jsonl"), "--gate"])
    assert res.exit_code == 0, res.output


def test_canned_refusals_are_not_duplicates(tmp_path: Path) -> None:
    items = _items()[:40]
    a = simulate_run(items, seed=1, item_seed=1)
    b = simulate_run(items, seed=2, item_seed=1)
    for r in b[:10]:
        r["response"] = "I'm sorry, but I cannot help with that request."
    out, flags = _assess(tmp_path, a, b)
    assert {r["checkpoint"]: r["duplicate"] for r in out["per_checkpoint"]} == {"a": 0.0, "b": 0.0}
    for r in b[:10]:
        r["response"] = items[20]["output"]  # one real answer pasted for ten prompts
    out, flags = _assess(tmp_path, a, b)
    per = {r["checkpoint"]: r for r in out["per_checkpoint"]}
    assert per["b"]["duplicate"] == pytest.approx(11 / 40)  # the ten copies and the original
    assert "harness_duplicate" in {f.kind for f in flags}


def test_finish_reason_errors_metadata_and_missing_samples(tmp_path: Path) -> None:
    items = _items()[:60]
    a = simulate_run(items, seed=1, item_seed=1)
    b = simulate_run(items, seed=2, item_seed=1)
    for r in a:
        r["metadata"] = {"temperature": 0.7, "stop": ["</s>"], "latency_ms": 90}  # per-sample keys are ignored
        r["finish_reason"], r["error"] = "stop", None
    for k, r in enumerate(b):
        r["metadata"] = {"temperature": 0.7, "stop": ["###"], "latency_ms": 100 + k}  # the stop sequence changed
        r["finish_reason"] = "length" if k < 8 else "stop"
        r["error"] = "TimeoutError: upstream 504" if 8 <= k < 12 else None
    b = b[:-6]  # six samples vanished from B
    out, flags = _assess(tmp_path, a, b)
    by = {f.kind: f for f in flags}
    assert by["harness_settings"].details["changes"] == {"metadata.stop": {"from": ['["</s>"]'], "to": ['["###"]']}}
    per = {r["checkpoint"]: r for r in out["per_checkpoint"]}
    assert per["b"]["truncated"] == pytest.approx(8 / 54) and per["b"]["generation_error"] == pytest.approx(4 / 54)
    assert {"harness_truncated", "harness_generation_error"} <= set(by)
    miss = by["harness_missing_samples"]
    assert miss.details["n_affected"] == 6 and set(miss.details["sample_ids"]) == {r["sample_id"] for r in a[-6:]}


def test_harness_health_api_is_deterministic() -> None:
    import provaudit

    files = [FX / "run_a.jsonl", FX / "fault_echo.jsonl"]
    one, two = provaudit.harness_health(files, bootstrap=200), provaudit.harness_health(files, bootstrap=200)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert "harness_echo" in {f["kind"] for f in one["flags"]}


def test_a_drop_caused_by_the_harness_is_marked_on_other_flags(tmp_path: Path) -> None:
    # a series where the last checkpoint's harness empties half the outputs: the outcome falls, and the
    # flags at that checkpoint say the drop may belong to the measurement
    from provaudit.checkpoints import analyze_checkpoints

    items = _items()
    rows = []
    for k in range(4):
        run = simulate_run(items, seed=k, item_seed=7, checkpoint=f"ckpt-{k}")
        for r in run:
            r["rm_score"] += 0.5 * k  # the proxy keeps rising
        if k == 3:
            before = {r["sample_id"]: r["rm_score"] for r in run}
            run, _ = inject_fault(run, "empty", 0.5, seed=k)
            for r in run:
                r["rm_score"] = before[r["sample_id"]]  # a reward logged before the harness broke
        rows += run
    p = _write(tmp_path / "series.jsonl", rows)
    rep = analyze_checkpoints([p], bootstrap=200)
    at_last = [f for f in rep.flags if f.checkpoint == "ckpt-3"]
    assert "harness_change" in {f.kind for f in at_last}
    others = [f for f in at_last if not f.kind.startswith("harness")]
    assert any(f.decoupling for f in others)  # the harness drop looks like decoupling ...
    assert all(f.details.get("harness_confounded") and "harness" in f.evidence for f in others)  # ... and says so
    assert all(not f.details.get("harness_confounded") for f in rep.flags if f.checkpoint != "ckpt-3")


def test_scale_inference_percent_switch_and_weak_likert() -> None:
    ck = ["a"] * 40 + ["b"] * 40
    frac_then_percent = np.array([0.0, 1.0] * 20 + [0.0, 100.0] * 20)
    assert harness._scale(frac_then_percent, ck, None) == (0.0, 1.0)  # B's percentages fall outside
    weak_then_strong = np.array([1.0, 2.0, 3.0, 4.0] * 10 + [3.0, 6.0, 8.0, 10.0] * 10)
    assert harness._scale(weak_then_strong, ck, None) == (1.0, 10.0)  # 1-5 is not imposed on B
    assert harness._scale(np.linspace(-2, 2, 80), ck, None) is None  # continuous rewards: no scale
    assert harness._scale(np.linspace(-2, 2, 80), ck, [-1, 1]) == (-1.0, 1.0)  # declared
