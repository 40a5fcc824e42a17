"""Gate bounds pinned at their boundaries: a value exactly at ``min`` or ``max`` passes, one step past fails;
a wildcard check fails on (and names) the worst value; the summary lists exactly the failed checks."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from provaudit.gate import Check, evaluate_gate, gate_summary, load_gate


def _status(value: float, **bounds: float) -> str:
    (res,) = evaluate_gate({"m": {"v": value}}, [Check("c", "m.v", **bounds)])
    return res.status


@pytest.mark.parametrize("bound", [0.0, 0.05, 1.0, 7.0])
def test_min_boundary_value_at_min_passes_just_below_fails(bound: float) -> None:
    assert _status(bound, min=bound) == "pass"
    assert _status(math.nextafter(bound, -math.inf), min=bound) == "fail"
    assert _status(math.nextafter(bound, math.inf), min=bound) == "pass"
    assert _status(bound - 1.0, min=bound) == "fail"


@pytest.mark.parametrize("bound", [0.0, 0.05, 1.0, 7.0])
def test_max_boundary_value_at_max_passes_just_above_fails(bound: float) -> None:
    assert _status(bound, max=bound) == "pass"
    assert _status(math.nextafter(bound, math.inf), max=bound) == "fail"
    assert _status(math.nextafter(bound, -math.inf), max=bound) == "pass"
    assert _status(bound + 1.0, max=bound) == "fail"


def test_min_and_max_together_make_a_closed_interval() -> None:
    for v, want in [(0.1, "pass"), (0.2, "pass"), (0.15, "pass"), (0.09, "fail"), (0.21, "fail")]:
        assert _status(v, min=0.1, max=0.2) == want, v


def test_integer_and_boolean_metrics_count_as_numbers() -> None:
    assert _status(0, max=0) == "pass" and _status(1, max=0) == "fail"
    (res,) = evaluate_gate({"m": {"v": True}}, [Check("c", "m.v", max=0)])
    assert res.status == "fail" and res.value == 1.0


def test_result_carries_value_threshold_and_check_fields() -> None:
    (res,) = evaluate_gate({"dup": {"rate": 0.25}}, [Check("d", "dup.rate", max=0.2, description="dups")])
    assert (res.id, res.metric, res.value, res.where, res.description) == ("d", "dup.rate", 0.25, "dup.rate", "dups")
    assert res.threshold == "<= 0.2" and not res.passed
    (lo,) = evaluate_gate({"x": 0.4}, [Check("f", "x", min=0.5)])
    assert lo.threshold == ">= 0.5" and lo.value == 0.4
    (both,) = evaluate_gate({"x": 0.4}, [Check("b", "x", min=0.1, max=0.9)])
    assert both.threshold == "<= 0.9 and >= 0.1" and both.passed
    d = res.to_dict()
    assert d == {"id": "d", "metric": "dup.rate", "status": "fail", "value": 0.25, "threshold": "<= 0.2",
                 "where": "dup.rate", "description": "dups"}
    line = res.line()
    assert "FAIL" in line and "d" in line and "0.25" in line and "<= 0.2" in line


def test_wildcard_reports_the_worst_value_for_min_and_max_checks() -> None:
    summary = {"o": {"a": {"r": 0.3}, "b": {"r": 0.9}, "c": {"r": 0.1}}}
    (hi,) = evaluate_gate(summary, [Check("hi", "o.*.r", max=0.5)])
    assert (hi.status, hi.value, hi.where) == ("fail", 0.9, "o.b.r")
    (lo,) = evaluate_gate(summary, [Check("lo", "o.*.r", min=0.2)])
    assert (lo.status, lo.value, lo.where) == ("fail", 0.1, "o.c.r")
    # all inside: the reported value is still the one closest to the limit
    (ok,) = evaluate_gate(summary, [Check("ok", "o.*.r", max=1.0)])
    assert (ok.status, ok.value, ok.where) == ("pass", 0.9, "o.b.r")
    (ok_lo,) = evaluate_gate(summary, [Check("ok", "o.*.r", min=0.0)])
    assert (ok_lo.status, ok_lo.value, ok_lo.where) == ("pass", 0.1, "o.c.r")
    # a both-sided check fails on whichever side is further out
    (two,) = evaluate_gate(summary, [Check("two", "o.*.r", min=0.2, max=0.5)])
    assert (two.value, two.where) == (0.9, "o.b.r")
    (two_lo,) = evaluate_gate(summary, [Check("two", "o.*.r", min=0.25, max=0.95)])
    assert (two_lo.status, two_lo.value, two_lo.where) == ("fail", 0.1, "o.c.r")


def test_wildcard_ties_break_on_the_path_and_non_numbers_are_ignored() -> None:
    summary = {"o": {"a": {"r": 0.9}, "b": {"r": 0.9}, "c": {"r": "n/a"}, "d": 5}}
    (res,) = evaluate_gate(summary, [Check("t", "o.*.r", max=0.5)])
    assert (res.value, res.where) == (0.9, "o.b.r")


def test_nested_path_and_a_wildcard_in_the_middle() -> None:
    summary = {"a": {"x": {"b": {"c": 2}}, "y": {"b": {"c": 4}}, "z": {"q": 1}}}
    (res,) = evaluate_gate(summary, [Check("n", "a.*.b.c", max=3)])
    assert (res.status, res.value, res.where) == ("fail", 4.0, "a.y.b.c")
    (exact,) = evaluate_gate(summary, [Check("e", "a.x.b.c", max=3)])
    assert (exact.status, exact.value, exact.where) == ("pass", 2.0, "a.x.b.c")


def test_gate_summary_lists_failed_ids_in_check_order() -> None:
    checks = [Check("a", "x", max=1), Check("b", "x", min=5), Check("c", "x", max=0), Check("d", "x", min=0)]
    results = evaluate_gate({"x": 2}, checks)
    assert [r.status for r in results] == ["fail", "fail", "fail", "pass"]
    s = gate_summary(results)
    assert s["passed"] is False and s["failed"] == ["a", "b", "c"]
    assert [c["id"] for c in s["checks"]] == ["a", "b", "c", "d"]
    assert gate_summary(evaluate_gate({"x": 0.5}, [Check("a", "x", max=1)])) == {
        "passed": True, "failed": [], "checks": [evaluate_gate({"x": 0.5}, [Check("a", "x", max=1)])[0].to_dict()]}


def test_gate_file_round_trip_keeps_every_field(tmp_path: Path) -> None:
    p = tmp_path / "g.yaml"
    p.write_text("checks:\n"
                 "  - {id: lo, metric: a.b, min: 0.5, description: floor, required: true}\n"
                 "  - {id: hi, metric: a.c, max: 2}\n")
    assert load_gate(p) == [Check("lo", "a.b", None, 0.5, "floor", True), Check("hi", "a.c", 2, None, "", False)]
    (lo, hi) = evaluate_gate({"a": {"b": 0.5, "c": 2}}, p)
    assert lo.status == "pass" and hi.status == "pass"
    assert evaluate_gate({"a": {}}, None) == []


def test_missing_metric_is_skipped_unless_required_and_the_line_says_so() -> None:
    checks = [Check("opt", "no.such", max=1, description="o"), Check("req", "no.such", min=0, required=True)]
    opt, req = evaluate_gate({"no": {}}, checks)
    assert opt.to_dict() == {"id": "opt", "metric": "no.such", "status": "skipped", "value": None,
                             "threshold": "<= 1", "where": None, "description": "o"}
    assert (opt.status, opt.value, opt.where, opt.threshold) == ("skipped", None, None, "<= 1")
    assert (req.status, req.value, req.where, req.threshold) == ("fail", None, None, ">= 0")
    assert opt.passed and not req.passed
    # the printed line names status, check, value and threshold (exact layout left to the CLI's taste)
    for res, parts in ((opt, ["SKIPPED", "opt", "n/a", "<= 1"]), (req, ["FAIL", "req", "n/a", ">= 0"])):
        line = res.line()
        assert line.startswith(parts[0]) and all(p in line for p in parts), line


def test_line_names_the_concrete_path_only_for_wildcards() -> None:
    (plain,) = evaluate_gate({"a": {"b": 0.123456789}}, [Check("p", "a.b", max=1)])
    line = plain.line()
    assert line.startswith("PASS") and "0.123457" in line and "<= 1" in line and "a.b" not in line
    (wild,) = evaluate_gate({"a": {"x": 2, "y": 1}}, [Check("w", "a.*", max=1)])
    line = wild.line()
    assert line.startswith("FAIL") and " w" in line and "2" in line and "<= 1" in line and "(a.x)" in line


def test_default_gate_is_the_bundled_rules_file() -> None:
    root = Path(__file__).resolve().parent.parent
    assert load_gate() == load_gate(root / "rules" / "gate.yaml")


@pytest.mark.parametrize("body, field, reason", [
    ("- a list\n", "checks", "expected a mapping"),
    ("checks: {a: 1}\n", "checks", "expected a mapping"),
    ("checks:\n  - 3\n", "checks[0]", "each check must be a mapping"),
    ("checks:\n  - {id: a, metric: m, max: 1}\n  - {id: b, metric: m, max: 1, colour: red}\n", "checks[1]",
     "unknown keys ['colour']"),
    ("checks:\n  - {metric: m, max: 1}\n", "checks[0].id", "'id' must be a string"),
    ("checks:\n  - {id: a, metric: 3, max: 1}\n", "checks[0].metric", "'metric' must be a string"),
    ("checks:\n  - {id: a, metric: m, min: low}\n", "a.min", "'min' must be a number"),
    ("checks:\n  - {id: a, metric: m, max: [1]}\n", "a.max", "'max' must be a number"),
    ("checks:\n  - {id: a, metric: m, description: x}\n", "a", "a check needs 'max' or 'min'"),
])
def test_malformed_gate_names_file_and_field(tmp_path: Path, body: str, field: str, reason: str) -> None:
    from provaudit.errors import InputError

    p = tmp_path / "gate.yaml"
    p.write_text(body)
    with pytest.raises(InputError) as err:
        load_gate(p)
    assert err.value.file == str(p) and err.value.field == field
    assert err.value.reason.startswith(reason)


def test_missing_gate_file_is_named_as_a_gate_file(tmp_path: Path) -> None:
    from provaudit.errors import InputError

    with pytest.raises(InputError) as err:
        load_gate(tmp_path / "nope.yaml")
    assert err.value.reason.startswith("gate file") and err.value.file == str(tmp_path / "nope.yaml")
