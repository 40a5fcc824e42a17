"""DuckDB connections as provaudit opens them.

DuckDB's Python client draws its own progress bar on stdout for queries longer than two seconds,
which would corrupt ``--json`` output (and interleave with provaudit's own bars on stderr), so every
connection provaudit opens goes through ``connect`` with it switched off.
"""
from __future__ import annotations

from typing import Any

import duckdb


def connect(database: str = ":memory:", *, read_only: bool = False, **config: Any) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` with DuckDB's stdout progress bar off; ``config`` entries are DuckDB settings."""
    con = duckdb.connect(database, read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false").fetchall()  # a session setting (not allowed in config)
    return con


__all__ = ["connect"]
