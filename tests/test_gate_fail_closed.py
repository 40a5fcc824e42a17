"""Gates fail closed: typos exit 2, skipped checks are listed, --strict fails them, messages read as failures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from provaudit.cli import main
from provaudit.errors import InputError
from provaudit.gate import Check, evaluate_gate, gate_summary, load_gate

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "scan"


def _gate(tmp_path: Path, metric: str, **limit: float) -> Path:
    p = tmp_path / "gate.yaml"
    lim = "".join(f"    {k}: {v}\n" for k, v in limit.items())
    p.write_text(f"checks:\n  - id: my_check\n    metric: {metric}\n{lim}")
    return p


def test_typo_in_metric_path_is_an_input_error_naming_check_and_nearest_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_gate(_gate(tmp_path, "duplicates.exact_rat", max=0.05))
    msg = str(err.value)
    assert "my_check" in msg and "duplicates.exact_rat" in msg and "nearest valid path: duplicates.exact_rate" in msg
    # a Check built in Python (no file) fails the same way at evaluation
    with pytest.raises(InputError, match="nearest valid path: overlap.by_tag"):
        evaluate_gate({"duplicates": {"exact_rate": 0.0}}, [Check("x", "overlap.by_tags.*.*.exact_records", max=0)])


def test_scan_cli_with_a_typo_exits_2_before_reading_data(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["scan", str(FIX / "trl_pairs.jsonl"), "--catalog", str(tmp_path / "c.duckdb"),
                                    "--gate", str(_gate(tmp_path, "duplicates.exact_rat", max=0.05))])
    assert res.exit_code == 2
    assert "my_check" in res.output and "duplicates.exact_rate" in res.output


def test_every_bundled_gate_metric_is_valid() -> None:
    for name in ("gate.yaml", "gate-human-data.yaml"):
        assert load_gate(ROOT / "rules" / name)  # would raise on a path no summary can hold


def test_skipped_checks_are_listed_and_strict_fails_them_on_a_real_scan(tmp_path: Path) -> None:
    from provaudit.pipeline import scan

    gate = ROOT / "rules" / "gate.yaml"
    loose = scan(FIX / "trl_pairs.jsonl", catalog=tmp_path / "c.duckdb", gate=gate, record=False, origin=False)
    g = loose.summary["gate"]
    # no teacher, no eval set registered, origin off: those stages did not run
    assert {"max_teacher_fraction", "no_eval_exact_overlap", "no_llm_judge_annotator"} <= set(g["skipped"])
    assert all(c["status"] == "skipped" for c in g["checks"] if c["id"] in g["skipped"])
    strict = scan(FIX / "trl_pairs.jsonl", catalog=tmp_path / "c.duckdb", gate=gate, record=False, origin=False,
                  strict=True)
    gs = strict.summary["gate"]
    assert gs["passed"] is False and set(gs["skipped"]) == set(g["skipped"]) <= set(gs["failed"])
    assert strict.exit_code == 1
    res = CliRunner().invoke(main, ["scan", str(FIX / "trl_pairs.jsonl"), "--catalog", str(tmp_path / "c.duckdb"),
                                    "--gate", str(gate), "--no-origin", "--no-record", "--json"])
    assert res.exit_code == 0 and "skipped (stage did not run" in res.stderr
    assert json.loads(res.stdout)["gate"]["skipped"] == g["skipped"]


def test_failure_messages_read_as_failures() -> None:
    summary = {"overlap": {"by_tag": {"eval": {"gsm8k": {"exact_records": 8}}}},
               "teacher": {"diversity": {"diversity_floor_ratio": 0.5}}}
    over, under = evaluate_gate(summary, [Check("no_eval_exact_overlap", "overlap.by_tag.eval.*.exact_records", max=0),
                                          Check("min_diversity_ratio", "teacher.diversity.diversity_floor_ratio",
                                                min=0.8)])
    assert over.line().startswith("FAIL    no_eval_exact_overlap: 8 exceeds max 0")
    assert under.line().startswith("FAIL    min_diversity_ratio: 0.5 falls below min 0.8")


def test_value_exactly_at_min_or_max_passes() -> None:
    summary = {"teacher": {"diversity": {"diversity_floor_ratio": 0.8}}, "duplicates": {"exact_rate": 0.05}}
    res = evaluate_gate(summary, [Check("lo", "teacher.diversity.diversity_floor_ratio", min=0.8),
                                  Check("hi", "duplicates.exact_rate", max=0.05)])
    assert [r.status for r in res] == ["pass", "pass"]
    nudged = evaluate_gate({"teacher": {"diversity": {"diversity_floor_ratio": 0.7999}}},
                           [Check("lo", "teacher.diversity.diversity_floor_ratio", min=0.8)])
    assert nudged[0].status == "fail"


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(value=finite, t1=finite, t2=finite)
def test_verdicts_are_monotone_in_the_threshold(value: float, t1: float, t2: float) -> None:
    lo, hi = sorted((t1, t2))
    s = {"duplicates": {"exact_rate": value}}

    def passes(**kw: float) -> bool:
        return evaluate_gate(s, [Check("c", "duplicates.exact_rate", **kw)])[0].passed

    # a looser max never fails where a tighter one passed; likewise a lower min
    assert not passes(max=lo) or passes(max=hi)
    assert not passes(min=hi) or passes(min=lo)
    assert passes(max=hi) == (value <= hi) and passes(min=lo) == (value >= lo)


def test_gate_summary_lists_skipped() -> None:
    res = evaluate_gate({}, [Check("t", "teacher.teacher_fraction.alpha", max=0.5)])
    assert gate_summary(res)["skipped"] == ["t"] and gate_summary(res)["passed"] is True
