"""The data gate: threshold checks over a scan summary, configured in YAML.

A check names a dotted path into ``summary.json`` and a ``max`` and/or ``min``::

    checks:
      - id: max_exact_duplicate_rate
        metric: duplicates.exact_rate
        max: 0.05
        description: share of records that repeat an earlier record exactly

A path segment ``*`` matches every key at that level, so ``overlap.by_tag.eval.*.exact_rate``
checks every dataset tagged eval; the check fails on the worst one and names it.

Gates fail closed:

* a metric path no scan summary can hold (a typo such as ``duplicates.exact_rat``) is an input
  error (exit 2) naming the check and the nearest valid path, both when the gate file is loaded
  and when it is evaluated;
* a valid metric the summary does not have (its stage did not run: no ``--teacher``, no eval set
  registered) is ``skipped`` and listed under ``gate.skipped``; ``required: true`` or
  ``strict=True`` (``scan --strict``) turn a skipped check into a failure;
* failure lines read ``no_eval_exact_overlap: 8 exceeds max 0``; a value exactly at a limit passes;
* a metric inside an estimate that reports ``status: unreliable`` (``origin.corpus_estimate``) cannot
  tell: the check is ``unreliable`` and passes or fails as its ``when_unreliable`` says (default
  ``fail``); each gate file documents its choice.

A gate file may also name the origin mode its checks need (``origin_mode: sampled`` in
``rules/gate-human-data.yaml``: the language-model estimate on a bounded sample); ``scan`` uses it
when the caller names no mode (:func:`gate_origin_mode`).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provaudit.errors import InputError
from provaudit.yamlfile import load_yaml

#: Every metric path a scan summary can hold. ``*`` stands for a key that depends on the data
#: (a role, a tag, a dataset, a rule id, a feature). A summary's own paths are valid too.
KNOWN_METRICS: tuple[str, ...] = (
    "version", "catalog.recorded", "erased.reintroduced",
    "input.rows", "input.records", "input.bad_rows",
    *(f"duplicates.{k}" for k in ("records", "exact_duplicates", "near_duplicates", "exact_rate", "near_rate",
                                   "substantive_records", "trivial_records", "trivial_rate",
                                   "empty_records", "empty_rate")),
    *(f"duplicates.by_role.*.{k}" for k in ("records", "exact_duplicates", "near_duplicates", "exact_rate",
                                            "near_rate", "empty_records", "trivial_records")),
    *(f"overlap.by_tag.*.*.{k}" for k in ("exact_records", "near_records", "exact_rate", "near_rate",
                                          "trivial_records", "batch_records")),
    *(f"origin.{k}" for k in ("n", "model_fraction", "model_fraction_all", "mean_p_model", "sampled",
                              "sample_size", "counts.human", "counts.model", "counts.unknown", "rule_counts.*")),
    *(f"origin.by_role.*.{k}" for k in ("n", "human", "model", "unknown", "model_fraction", "mean_p_model")),
    *(f"origin.detector.{k}" for k in ("min_words", "nominal_fpr", "threshold_human", "threshold_model",
                                       "fpr", "tpr")),
    *(f"origin.lm_sample.{k}" for k in ("available", "n_eligible", "n", "tagged_model_fraction", "model_fraction",
                                        "ci_low", "ci_high", "detector.threshold_model", "detector.tpr",
                                        "detector.fpr")),
    *(f"origin.corpus_estimate.{k}" for k in ("alpha", "ci_low", "ci_high", "n", "reliable", "acc", "em",
                                              "tagged_share", "threshold")),
    *(f"origin.word_mixture.{k}" for k in ("alpha", "ci_low", "ci_high", "n")),
    *(f"teacher.{k}" for k in ("n", "ci_low", "ci_high", "teacher_likeness", "teacher_fraction.alpha",
                               "teacher_fraction.ci_low", "teacher_fraction.ci_high", "word_mixture.alpha",
                               "word_mixture.ci_low", "word_mixture.ci_high", "word_mixture.n",
                               "embedding.cos_to_human", "embedding.cos_to_teacher", "embedding.position",
                               "stylometry.delta_to_human", "stylometry.delta_to_teacher",
                               "stylometry.position", "stylometry.formatting.*.*",
                               "phrases.*", "reference.n_human", "reference.n_teacher", "reference.weights.*",
                               "diversity.*", "diversity.budget.*", "diversity.human.*", "diversity.relative.*",
                               "label_origin.ai_evidence", "label_origin.human_evidence",
                               "label_origin.ai_evidence_net", "label_origin.measures.*",
                               "label_origin.measures.*.*", "label_origin.measures.*.*.*")),
)


def _segments_match(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) and all(x == y or x == "*" or y == "*" for x, y in zip(a, b))


def _summary_paths(obj: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _summary_paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (int, float)):
        yield prefix


def metric_error(metric: str, summary: dict[str, Any] | None = None,
                 known: tuple[str, ...] = KNOWN_METRICS, what: str = "a scan summary") -> str | None:
    """None when ``metric`` can exist in ``what`` (one of the ``known`` paths, or a path ``summary``
    has); otherwise a message naming the nearest valid path."""
    parts = metric.split(".")
    own = list(_summary_paths(summary)) if summary else []
    if any(_segments_match(parts, k.split(".")) for k in (*known, *own)):
        return None
    candidates = sorted(set(known) | set(own))
    near = difflib.get_close_matches(metric, candidates, n=1, cutoff=0.0)
    hint = f"; nearest valid path: {near[0]}" if near else ""
    return f"metric {metric!r} cannot exist in {what}{hint}"


@dataclass(frozen=True)
class Check:
    id: str
    metric: str
    max: float | None = None
    min: float | None = None
    description: str = ""
    required: bool = False
    when_unreliable: str = "fail"


@dataclass(frozen=True)
class CheckResult:
    id: str
    metric: str
    status: str            # "pass", "fail" or "skipped"
    value: float | None
    threshold: str
    where: str | None      # the concrete path of the worst value for wildcard metrics
    description: str
    reason: str = ""       # why: "8 exceeds max 0", "0.1 falls below min 0.8", "not in the summary ..."

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "metric": self.metric, "status": self.status, "value": self.value,
                "threshold": self.threshold, "where": self.where, "description": self.description,
                "reason": self.reason}

    def line(self) -> str:
        where = f" ({self.where})" if self.where and self.where != self.metric else ""
        return f"{self.status.upper():7} {self.id}: {self.reason}{where}"


def load_gate(path: str | Path | None = None, *, known: tuple[str, ...] = KNOWN_METRICS,
              what: str = "a scan summary") -> list[Check]:
    """Read gate checks from YAML (safe loading); a malformed file names the check at fault. ``known``
    lists the metric paths the gated summary can hold (``what`` names it in errors): scan summaries by
    default, ``provaudit.coverage.COVERAGE_METRICS`` for coverage gates."""
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
        unknown = set(item) - {"id", "metric", "max", "min", "description", "required", "when_unreliable"}
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
        if item.get("when_unreliable", "fail") not in ("pass", "fail"):
            raise InputError("'when_unreliable' must be pass or fail", file=str(p),
                             field=f"{item['id']}.when_unreliable")
        bad = metric_error(item["metric"], known=known, what=what)
        if bad:
            raise InputError(f"check {item['id']}: {bad}", file=str(p), field=f"{item['id']}.metric")
        checks.append(Check(item["id"], item["metric"], item.get("max"), item.get("min"),
                            str(item.get("description", "")), bool(item.get("required", False)),
                            str(item.get("when_unreliable", "fail"))))
    return checks


ORIGIN_MODES = ("fast", "full", "sampled")


def gate_origin_mode(path: str | Path | None) -> str | None:
    """The gate file's top-level ``origin_mode`` (one of ``ORIGIN_MODES``), or None when it names none."""
    if path is None:
        return None
    doc = load_yaml(Path(path), what="gate file")
    mode = doc.get("origin_mode") if isinstance(doc, dict) else None
    if mode is not None and mode not in ORIGIN_MODES:
        raise InputError(f"'origin_mode' must be one of {list(ORIGIN_MODES)}, not {mode!r}", file=str(path),
                         field="origin_mode")
    return mode


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


def _verdict(check: Check, value: float) -> tuple[bool, str]:
    """(failed, reason) of one value; a value exactly at a limit passes."""
    if check.max is not None and value > check.max:
        return True, f"{value:.6g} exceeds max {check.max:g}"
    if check.min is not None and value < check.min:
        return True, f"{value:.6g} falls below min {check.min:g}"
    return False, f"{value:.6g} within {_threshold_text(check)}"


def evaluate_gate(summary: dict[str, Any], checks: list[Check] | str | Path | None = None, *,
                  strict: bool = False, known: tuple[str, ...] = KNOWN_METRICS,
                  what: str = "a scan summary") -> list[CheckResult]:
    """Evaluate each check against ``summary``; returns results in check order.

    A metric no summary can hold raises :class:`InputError` (exit 2) naming the check and the
    nearest valid path. A metric this summary lacks is ``skipped``, or ``fail`` when the check is
    ``required`` or ``strict`` is set.
    """
    if checks is None:
        checks = []
    elif not isinstance(checks, list):
        checks = load_gate(checks, known=known, what=what)
    results = []
    for c in checks:
        # numbers (booleans count as 0/1); anything else at the path is not a metric
        values = [(w, float(v)) for w, v in _resolve(summary, c.metric.split("."), "") if isinstance(v, (int, float))]
        if not values:
            bad = metric_error(c.metric, summary, known=known, what=what)
            if bad:
                raise InputError(f"check {c.id}: {bad}", field=f"{c.id}.metric")
            fail = c.required or strict
            why = "required" if c.required else "--strict"
            reason = (f"not in the summary (its stage did not run); fails: {why}" if fail
                      else "not in the summary (its stage did not run)")
            results.append(CheckResult(c.id, c.metric, "fail" if fail else "skipped", None, _threshold_text(c),
                                       None, c.description, reason))
            continue

        where, value = max(values, key=lambda it: (_badness(c, it[1]), it[0]))
        parent = _parent(summary, where)
        if isinstance(parent, dict) and parent.get("status") == "unreliable":
            why = f"cannot tell ({parent.get('reason') or 'the estimate reports itself unreliable'})"
            results.append(CheckResult(c.id, c.metric, "unreliable" if c.when_unreliable == "pass" else "fail",
                                       value, _threshold_text(c), where, c.description,
                                       f"{why}; when_unreliable: {c.when_unreliable}"))
            continue
        failed, reason = _verdict(c, value)
        results.append(CheckResult(c.id, c.metric, "fail" if failed else "pass", value, _threshold_text(c),
                                   where, c.description, reason))
    return results


def _parent(summary: dict[str, Any], where: str) -> Any:
    obj: Any = summary
    for part in where.split(".")[:-1]:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def gate_summary(results: list[CheckResult], *, strict: bool = False) -> dict[str, Any]:
    return {"passed": all(r.passed for r in results),
            "unreliable": [r.id for r in results if r.reason.startswith("cannot tell")],
            "failed": [r.id for r in results if r.status == "fail"],
            "skipped": [r.id for r in results if r.status == "skipped" or (r.status == "fail" and r.value is None)],
            "strict": strict,
            "checks": [r.to_dict() for r in results]}
