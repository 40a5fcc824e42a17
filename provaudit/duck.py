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

#: memory of the DuckDB steps whose input grows with the scan, per DuckDB thread: past it they spill to a
#: temporary folder. Low enough that a 100,000-row scan already reaches it, so a process's memory is the
#: same for 100,000 rows as for a billion (docs/scale-out.md, memory); a sort of 3 million records with
#: 16 band keys each still runs in it on one thread (DuckDB's minimum for such a sort with two threads
#: lies between 128 and 256 MB).
MEMORY_PER_THREAD_MB = 128
#: ``PROVAUDIT_DUCKDB_MEMORY`` (e.g. ``512MB``) replaces the per-thread budget by a fixed total
SPILL_MEMORY_LIMIT = os.environ.get("PROVAUDIT_DUCKDB_MEMORY")
#: the CPUs a spilling step may use: a Ray task sets this to its ``num_cpus`` (provaudit.engine.tasks),
#: so a one-CPU task runs DuckDB on one thread instead of competing with the tasks beside it
THREADS_ENV = "PROVAUDIT_DUCKDB_THREADS"


def spill_threads() -> int:
    """DuckDB threads of a spilling step: ``$PROVAUDIT_DUCKDB_THREADS`` (a Ray task's CPUs), else every core."""
    try:
        n = int(os.environ.get(THREADS_ENV, ""))
    except ValueError:
        n = 0
    return n if n > 0 else max(1, os.cpu_count() or 1)


def spill_memory(threads: int) -> str:
    """The memory cap of a spilling step on ``threads`` threads."""
    return SPILL_MEMORY_LIMIT or f"{MEMORY_PER_THREAD_MB * max(1, threads)}MB"


def connect(database: str = ":memory:", *, read_only: bool = False, **config: Any) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` with DuckDB's stdout progress bar off; ``config`` entries are DuckDB settings."""
    con = duckdb.connect(database, read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false").fetchall()  # a session setting (not allowed in config)
    return con


def spill_connect(temp_directory: str | Path, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection for a step whose input grows with the scan: ``threads`` threads (default
    :func:`spill_threads`), capped at :func:`spill_memory`, spilling into ``temp_directory``."""
    n = threads or spill_threads()
    return connect(temp_directory=str(temp_directory), threads=n, memory_limit=spill_memory(n))


@contextmanager
def spilling(near: str | Path, threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory connection of ``threads`` threads (default :func:`spill_threads`) capped at
    :func:`spill_memory` that spills to a temporary folder beside ``near`` (removed afterwards): for sorts
    and copies of a whole input (a catalog file of a big dataset)."""
    with tempfile.TemporaryDirectory(prefix=".duck-spill-", dir=Path(near).parent) as tmp:
        con = spill_connect(tmp, threads)
        try:
            yield con
        finally:
            con.close()


__all__ = ["SPILL_MEMORY_LIMIT", "THREADS_ENV", "connect", "spill_connect", "spill_memory", "spill_threads",
           "spilling"]
