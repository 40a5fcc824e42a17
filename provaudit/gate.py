"""The data gate: threshold checks over a scan summary, configured in YAML.

A check names a dotted path into ``summary.json`` and a ``max`` and/or ``min``::

    checks:
      - id: max_exact_duplicate_rate
        metric: duplicates.exact_rate
        max: 0.05
        description: share of records that repeat an earlier record exactly

A path segment ``*`` matches every key at that level, so ``overlap.by_tag.eval.*.exact_rate``
checks every dataset tagged eval; the check fails on the worst one and names it. A metric the
summary does not have is reported as ``skipped`` (the stage did not run), unless the check
says ``required: true``.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provaudit.errors import InputError
from provaudit.yamlfile import load_yaml


@dataclass(frozen=True)
class Check:
    id: str
    metric: str
    max: float | None = None
    min: float | None = None
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class CheckResult:
    id: str
    metric: str
    status: str            # "pass", "fail" or "skipped"
    value: float | None
    threshold: str
    where: str | None      # the concrete path of the worst value for wildcard metrics
    description: str

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "metric": self.metric, "status": self.status, "value": self.value,
                "threshold": self.threshold, "where": self.where, "description": self.description}

    def line(self) -> str:
        where = f" ({self.where})" if self.where and self.where != self.metric else ""
        value = "n/a" if self.value is None else f"{self.value:.6g}"
        return f"{self.status.upper():7} {self.id}: {value} {self.threshold}{where}"


def load_gate(path: str | Path | None = None) -> list[Check]:
    """Read gate checks from YAML (safe loading); a malformed file names the check at fault."""
    from provaudit.paths import default_gate

    p = Path(path) if path else default_gate()
    doc = load_yaml(p, what="gate file")
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        raise InputError("expected a mapping with a 'checks' list", file=str(p), field="checks")
    checks = []
    for i, item in enumerate(doc["checks"]):
        label = f"checks[{i}]"
        if not isinstance(item, dict):
            raise InputError("each check must be a mapping", file=str(p), field=label)
        unknown = set(item) - {"id", "metric", "max", "min", "description", "required"}
        if unknown:
            raise InputError(f"unknown keys {sorted(unknown)}", file=str(p), field=label)
        for key in ("id", "metric"):
            if not isinstance(item.get(key), str):
                raise InputError(f"'{key}' must be a string", file=str(p), field=f"{label}.{key}")
        for key in ("max", "min"):
            if key in item and not isinstance(item[key], (int, float)):
                raise InputError(f"'{key}' must be a number", file=str(p), field=f"{item['id']}.{key}")
        if "max" not in item and "min" not in item:
            raise InputError("a check needs 'max' or 'min'", file=str(p), field=item["id"])
        checks.append(Check(item["id"], item["metric"], item.get("max"), item.get("min"),
                            str(item.get("description", "")), bool(item.get("required", False))))
    return checks


def _resolve(obj: Any, parts: list[str], prefix: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        yield prefix, obj
        return
    head, rest = parts[0], parts[1:]
    if not isinstance(obj, dict):
        return
    keys = sorted(obj) if head == "*" else ([head] if head in obj else [])
    for k in keys:
        yield from _resolve(obj[k], rest, f"{prefix}.{k}" if prefix else k)


def _badness(check: Check, value: float) -> float:
    """How far ``value`` is past the check's limits (larger is worse; negative when inside)."""
    over = (value - check.max) if check.max is not None else float("-inf")
    under = (check.min - value) if check.min is not None else float("-inf")
    return max(over, under)


def _threshold_text(check: Check) -> str:
    parts = []
    if check.max is not None:
        parts.append(f"<= {check.max:g}")
    if check.min is not None:
        parts.append(f">= {check.min:g}")
    return " and ".join(parts)


def evaluate_gate(summary: dict[str, Any], checks: list[Check] | str | Path | None = None) -> list[CheckResult]:
    """Evaluate each check against ``summary``; returns results in check order."""
    if checks is None:
        checks = []
    elif not isinstance(checks, list):
        checks = load_gate(checks)
    results = []
    for c in checks:
        # numbers (booleans count as 0/1); anything else at the path is not a metric
        values = [(w, float(v)) for w, v in _resolve(summary, c.metric.split("."), "") if isinstance(v, (int, float))]
        if not values:
            status = "fail" if c.required else "skipped"
            results.append(CheckResult(c.id, c.metric, status, None, _threshold_text(c), None, c.description))
            continue

        where, value = max(values, key=lambda it: (_badness(c, it[1]), it[0]))
        failed = (c.max is not None and value > c.max) or (c.min is not None and value < c.min)
        results.append(CheckResult(c.id, c.metric, "fail" if failed else "pass", value, _threshold_text(c),
                                   where, c.description))
    return results


def gate_summary(results: list[CheckResult]) -> dict[str, Any]:
    return {"passed": all(r.passed for r in results),
            "failed": [r.id for r in results if r.status == "fail"],
            "checks": [r.to_dict() for r in results]}
