"""Gate laws (hypothesis): loosening a threshold never turns a pass into a fail, and the verdict is exactly
``min <= value <= max`` for every value, including the bounds themselves."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from provaudit.gate import Check, evaluate_gate

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def _passes(value: float, **bounds: float) -> bool:
    (res,) = evaluate_gate({"m": value}, [Check("c", "m", **bounds)])
    return res.status == "pass"


@settings(max_examples=200, deadline=None)
@given(finite, finite, finite)
def test_verdict_is_the_closed_interval(value: float, a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    assert _passes(value, min=lo, max=hi) == (lo <= value <= hi)
    assert _passes(value, max=hi) == (value <= hi)
    assert _passes(value, min=lo) == (value >= lo)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=6), finite, st.floats(min_value=0, max_value=1e3))
def test_monotone_in_thresholds(values: list[float], t: float, slack: float) -> None:
    summary = {"m": {f"k{i}": v for i, v in enumerate(values)}}

    def ok(**b: float) -> bool:
        (res,) = evaluate_gate(summary, [Check("c", "m.*", **b)])
        return res.status == "pass"

    # a higher max / lower min only ever turns fail into pass
    assert ok(max=t) <= ok(max=t + slack)
    assert ok(min=t) <= ok(min=t - slack)
    # a wildcard passes exactly when every value passes
    assert ok(max=t) == all(v <= t for v in values)
    assert ok(min=t) == all(v >= t for v in values)
