"""Coverage runs in the catalog (table ``coverage_runs``, migration 6), for ``provaudit trend``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from provaudit.errors import InputError

COLUMNS = {
    "run_id": pl.Int64,
    "created_at": pl.Utf8,
    "eval_fingerprint": pl.Utf8,
    "production_fingerprints": pl.Utf8,
    "coverage": pl.Float64,
    "coverage_ci_low": pl.Float64,
    "coverage_ci_high": pl.Float64,
    "uncovered_top_share": pl.Float64,
    "stale_share": pl.Float64,
    "drift_p_value": pl.Float64,
    "drift_effect": pl.Float64,
    "drift_detected": pl.Boolean,
    "passed": pl.Boolean,
}


def record_run(summary: dict[str, Any], catalog: Any = None) -> int:
    """Store one coverage run (fingerprints, figures, the summary) in one transaction; returns run_id."""
    from provaudit.catalog.store import _dumps, _now, open_catalog

    ins = summary["inputs"]
    gate = summary.get("gate")
    with open_catalog(catalog) as cat, cat.transaction():
        rid = int(cat.con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM coverage_runs").fetchone()[0])
        cat.con.execute(
            "INSERT INTO coverage_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                rid,
                _now(),
                ins["eval"][0]["fingerprint"],
                _dumps([p["fingerprint"] for p in ins["production"]]),
                summary["coverage"],
                summary["coverage_ci"][0],
                summary["coverage_ci"][1],
                summary["uncovered_top_share"],
                summary["stale"]["share"],
                summary["drift"]["p_value"],
                summary["drift"]["effect"],
                summary["drift"]["detected"],
                None if gate is None else bool(gate["passed"]),
                _dumps(summary),
            ],
        )
    return rid


def coverage_history(catalog: Any = None) -> pl.DataFrame:
    """Coverage runs in run order (no summary column; see ``coverage_summary``)."""
    from provaudit.catalog.store import open_catalog

    if catalog is not None and not hasattr(catalog, "con") and not Path(catalog).exists():
        raise InputError("catalog not found", file=str(catalog))
    if catalog is None:
        from provaudit.catalog.store import DEFAULT_PATH

        if not DEFAULT_PATH.exists():
            return pl.DataFrame(schema=COLUMNS)
    with open_catalog(catalog, read_only=True) as cat:
        rows = cat.con.execute(f"SELECT {', '.join(COLUMNS)} FROM coverage_runs ORDER BY run_id").fetchall()
    return pl.DataFrame(
        [dict(zip(COLUMNS, (str(v) if k == "created_at" else v for k, v in zip(COLUMNS, r)))) for r in rows],
        schema=COLUMNS,
    )


def coverage_summary(run_id: int, catalog: Any = None) -> dict[str, Any]:
    """The full stored summary of one coverage run."""
    from provaudit.catalog.store import open_catalog

    with open_catalog(catalog, read_only=True) as cat:
        row = cat.con.execute("SELECT summary FROM coverage_runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise InputError(f"no coverage run {run_id} in the catalog", field="run_id")
    return json.loads(row[0])
