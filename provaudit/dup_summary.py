"""The shape of ``summary["duplicates"]``, shared by the local (DuckDB) and the Ray duplicate steps."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _rate(num: int, den: int) -> float:
    return round(num / den, 6) if den else 0.0


def method() -> str:
    from provaudit.contamination import RULE

    return ("exact: xxh3-128 of NFKC, whitespace-folded text; near: MinHash 128 perms over word 3-grams, LSH 16 "
            f"bands x 8 rows (a shared band key); only substantive texts count as duplicates ({RULE})")


def by_role(counts: Mapping[str, Sequence[int]]) -> dict[str, dict[str, Any]]:
    """Per role from (records, exact, near, trivial, empty) counts."""
    out = {}
    for role in sorted(counts):
        n, e, nd, tr, em = counts[role]
        out[role] = {"records": n, "exact_duplicates": e, "near_duplicates": nd, "exact_rate": _rate(e, n),
                     "near_rate": _rate(nd, n), "trivial_records": tr, "empty_records": em}
    return out


def outputs_only(roles: Mapping[str, Any]) -> bool:
    """Prompts repeat by design (several responses per prompt): headline rates and examples count
    outputs only, unless the input holds nothing but prompts."""
    return any(k != "prompt" for k in roles)


def assemble(roles: dict[str, dict[str, Any]], exact: Sequence[Sequence[Any]], near: Sequence[Sequence[Any]],
             trivial: Sequence[Sequence[Any]], empty: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """``summary["duplicates"]`` from :func:`by_role` and the first five examples of each kind."""
    counted = [r for k, r in roles.items() if k != "prompt"] or list(roles.values())
    n, e, nd, tr, em = (sum(r[k] for r in counted) for k in ("records", "exact_duplicates", "near_duplicates",
                                                              "trivial_records", "empty_records"))
    return {"records": n, "exact_duplicates": e, "near_duplicates": nd, "exact_rate": _rate(e, n),
            "near_rate": _rate(nd, n), "by_role": roles,
            "trivial_records": tr, "trivial_rate": _rate(tr, n), "empty_records": em, "empty_rate": _rate(em, n),
            "exact_examples": [{"record_id": a, "duplicate_of": b} for a, b in exact],
            "near_examples": [{"record_id": a, "near_duplicate_of": b} for a, b in near],
            "trivial_examples": [{"record_id": a, "duplicate_of": b, "reason": w, "text": t} for a, b, w, t in trivial],
            "empty_examples": [r[0] for r in empty],
            "method": method()}
