"""DuckDB connections as provaudit opens them.

DuckDB's Python client draws its own progress bar on stdout for queries longer than two seconds,
which would corrupt ``--json`` output (and interleave with provaudit's own bars on stderr), so every
connection provaudit opens goes through ``connect`` with it switched off.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

#: memory cap of the DuckDB steps whose input grows with the scan (``PROVAUDIT_DUCKDB_MEMORY``): past it
#: they spill to a temporary folder, so a process's memory stays flat in the input size
SPILL_MEMORY_LIMIT = os.environ.get("PROVAUDIT_DUCKDB_MEMORY", "384MB")


def connect(database: str = ":memory:", *, read_only: bool = False, **config: Any) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` with DuckDB's stdout progress bar off; ``config`` entries are DuckDB settings."""
    con = duckdb.connect(database, read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false").fetchall()  # a session setting (not allowed in config)
    return con


@contextmanager
def spilling(near: str | Path, threads: int = 2) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory connection capped at ``SPILL_MEMORY_LIMIT`` that spills to a temporary folder beside
    ``near`` (removed afterwards): for sorts and copies of a whole input (a catalog file of a big dataset)."""
    with tempfile.TemporaryDirectory(prefix=".duck-spill-", dir=Path(near).parent) as tmp:
        con = connect(temp_directory=tmp, memory_limit=SPILL_MEMORY_LIMIT, threads=threads)
        try:
            yield con
        finally:
            con.close()


__all__ = ["SPILL_MEMORY_LIMIT", "connect", "spilling"]
