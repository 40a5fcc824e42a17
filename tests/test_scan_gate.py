"""The gate: YAML checks over dotted summary paths, wildcards, skipped and required metrics."""
from __future__ import annotations

from pathlib import Path

import pytest

from provaudit.errors import InputError
from provaudit.gate import Check, evaluate_gate, gate_summary, load_gate

ROOT = Path(__file__).resolve().parent.parent

SUMMARY = {
    "duplicates": {"exact_rate": 0.02},
    "overlap": {"by_tag": {"eval": {"mmlu": {"exact_records": 0}, "gsm8k": {"exact_records": 3}}}},
    "diversity": {"ratio": 0.4},
}


def test_bundled_gate_file_loads_and_every_check_has_a_threshold() -> None:
    checks = load_gate(ROOT / "rules" / "gate.yaml")
    assert checks and all(c.max is not None or c.min is not None for c in checks)
    assert len({c.id for c in checks}) == len(checks)


def test_wildcard_fails_on_the_worst_dataset_and_names_it() -> None:
    (res,) = evaluate_gate(SUMMARY, [Check("eval", "overlap.by_tag.eval.*.exact_records", max=0)])
    assert res.status == "fail" and res.value == 3
    assert res.where == "overlap.by_tag.eval.gsm8k.exact_records"
    assert "gsm8k" in res.line()


def test_max_min_skipped_and_required() -> None:
    checks = [
        Check("dup", "duplicates.exact_rate", max=0.05),
        Check("dup_strict", "duplicates.exact_rate", max=0.01),
        Check("floor", "diversity.ratio", min=0.5),
        Check("absent", "teacher.teacher_likeness", max=0.5),
        Check("absent_required", "teacher.teacher_likeness", max=0.5, required=True),
    ]
    status = {r.id: r.status for r in evaluate_gate(SUMMARY, checks)}
    assert status == {"dup": "pass", "dup_strict": "fail", "floor": "fail", "absent": "skipped",
                      "absent_required": "fail"}
    summary = gate_summary(evaluate_gate(SUMMARY, checks))
    assert summary["passed"] is False and summary["failed"] == ["dup_strict", "floor", "absent_required"]


def test_malformed_gate_files_name_file_and_check(tmp_path: Path) -> None:
    bad = tmp_path / "g.yaml"
    bad.write_text("checks:\n  - id: a\n    metric: x.y\n    max: lots\n")
    with pytest.raises(InputError) as err:
        load_gate(bad)
    assert "g.yaml" in str(err.value) and "a.max" in str(err.value)
    bad.write_text("checks: [\n")
    with pytest.raises(InputError, match="invalid YAML"):
        load_gate(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(InputError, match="checks"):
        load_gate(bad)
