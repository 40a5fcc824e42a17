"""Render a scan summary as Markdown (summary.md) and as the terminal summary."""
from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _origin_headline(org: dict[str, Any]) -> str:
    """The model-written share with its denominator: tags abstain on short or borderline texts."""
    counts = org.get("counts") or {}
    decided = counts.get("human", 0) + counts.get("model", 0)
    undecided = counts.get("unknown", 0)
    if org.get("model_fraction") is None:
        return f"Model-written fraction (per-record tags): n/a, no record decided ({undecided} undecided)."
    share = counts["model"] / decided if decided else org["model_fraction"]  # from counts: no double rounding
    return (f"Model-written fraction (per-record tags): {_pct(share)} of {decided} decided "
            f"records ({undecided} undecided; higher = more model text).")


def render_scan_markdown(summary: dict[str, Any]) -> str:
    """A readable report of one scan: inputs, duplicates, overlap, origin, teacher, gate."""
    lines = ["# provaudit scan", ""]
    inp = summary.get("input", {})
    lines += ["## Inputs", ""]
    lines += _table(["dataset", "format", "schema", "rows", "records", "bad rows", "fingerprint"],
                    [[f["dataset"], f["format"], f["schema"], f["rows"], f["records"], f["bad_rows"],
                      f"`{f['fingerprint'][:16]}`"] for f in inp.get("files", [])])
    for b in inp.get("bad_row_list", [])[:20]:
        where = f"{b['file']}:{b['line']}" if b.get("line") else b["file"]
        fld = f" field '{b['field']}'" if b.get("field") else ""
        lines.append(f"- skipped {where}{fld}: {b['reason']}")
    dup = summary.get("duplicates", {})
    if dup:
        lines += ["", "## Duplicates", "",
                  (f"{dup['exact_duplicates']} exact ({_pct(dup['exact_rate'])}) and {dup['near_duplicates']} near "
                   f"({_pct(dup['near_rate'])}) duplicates among {dup['records']} output records."), ""]
        lines += _table(["role", "records", "exact", "near"],
                        [[r, v["records"], f"{v['exact_duplicates']} ({_pct(v['exact_rate'])})",
                          f"{v['near_duplicates']} ({_pct(v['near_rate'])})"] for r, v in dup["by_role"].items()])
    ov = summary.get("overlap", {})
    lines += ["", "## Overlap with the catalog", ""]
    if ov.get("datasets"):
        lines += _table(["dataset", "tags", "exact records", "near records", "exact rate", "near rate"],
                        [[o["dataset"], ", ".join(o.get("tags") or []), o["exact_records"], o["near_records"],
                          _pct(o["exact_rate"]), _pct(o["near_rate"])] for o in ov["datasets"]])
    else:
        lines.append("No overlap with any other dataset in the catalog.")
    if ov.get("skipped_identical"):
        lines.append("Skipped itself: " + ", ".join(ov["skipped_identical"])
                     + " (same fingerprint as this input, already in the catalog).")
    er = summary.get("erased", {})
    if er.get("reintroduced"):
        lines += ["", f"**{er['reintroduced']} records match erased data.**"]
    org = summary.get("origin", {})
    if org:
        lines += ["", "## Origin", ""]
        if "model_fraction" in org:
            lines.append(_origin_headline(org))
        ce = org.get("corpus_estimate") or {}
        if ce:
            lines.append(f"Corpus-level estimate (distributional MLE): {_pct(ce.get('alpha'))} "
                         f"[{_pct(ce.get('ci_low'))}, {_pct(ce.get('ci_high'))}] of {ce.get('n')} texts "
                         "model-written (higher = more model text).")
        counts = org.get("counts") or {}
        if counts:
            lines.append("Records by origin: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".")
        rc = {k: v for k, v in (org.get("rule_counts") or {}).items() if v}
        if rc:
            lines += ["", "Rules fired:", ""]
            lines += _table(["rule", "records"], [[k, v] for k, v in sorted(rc.items(), key=lambda kv: (-kv[1], kv[0]))])
    teacher = summary.get("teacher", {})
    if teacher:
        lines += ["", "## Teacher likeness", ""]
        tl = teacher.get("teacher_likeness")
        if tl is not None:
            lines.append(f"Teacher likeness {tl:.3f} [{teacher.get('ci_low', 0):.3f}, {teacher.get('ci_high', 0):.3f}]"
                         " (mean P(teacher | text): 0.5 = undecided, higher = more like the teacher).")
    gate = summary.get("gate", {})
    lines += ["", "## Gate", ""]
    checks = gate.get("checks", [])
    if not checks:
        lines.append("No gate checks were configured (use --gate rules/gate.yaml).")
    else:
        lines.append("**PASSED**" if gate.get("passed") else "**FAILED**: " + ", ".join(gate.get("failed", [])))
        if gate.get("skipped"):
            lines.append(f"Skipped (stage did not run{'' if gate.get('strict') else '; --strict fails them'}): "
                         + ", ".join(gate["skipped"]))
        lines.append("")
        lines += _table(["check", "status", "value", "threshold", "why", "where"],
                        [[c["id"], c["status"], "n/a" if c["value"] is None else f"{c['value']:.6g}", c["threshold"],
                          c.get("reason") or "", c.get("where") or ""] for c in checks])
    return "\n".join(lines) + "\n"
