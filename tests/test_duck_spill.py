"""provaudit.duck: the DuckDB steps whose input grows with the scan get a fixed budget per thread, and a
Ray task's steps run on the task's CPUs (docs/scale-out.md, memory)."""
from __future__ import annotations

import os

import pytest

from provaudit import duck


def _settings(con) -> tuple[int, int]:
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    limit = con.execute("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchone()[0]
    return int(threads), limit


def test_the_budget_is_per_thread_and_a_task_sets_the_threads(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(duck, "SPILL_MEMORY_LIMIT", None)
    monkeypatch.setenv(duck.THREADS_ENV, "1")
    assert duck.spill_threads() == 1 and duck.spill_memory(1) == "128MB"
    with duck.spilling(tmp_path / "x.parquet") as con:
        threads, limit = _settings(con)
    assert threads == 1 and limit == "122.0 MiB"  # 128 MB, as DuckDB prints it
    monkeypatch.setenv(duck.THREADS_ENV, "3")
    assert duck.spill_threads() == 3 and duck.spill_memory(3) == "384MB"
    for bad in ("", "0", "-2", "two"):  # unset or nonsense: every core
        monkeypatch.setenv(duck.THREADS_ENV, bad)
        assert duck.spill_threads() == max(1, os.cpu_count() or 1)
    assert not list(tmp_path.iterdir())  # the spill folder went with the connection


def test_a_fixed_total_replaces_the_per_thread_budget(monkeypatch) -> None:
    monkeypatch.setattr(duck, "SPILL_MEMORY_LIMIT", "512MB")
    assert duck.spill_memory(1) == duck.spill_memory(8) == "512MB"


@pytest.mark.parametrize("cpus", [1, 2])
def test_a_released_task_runs_its_duckdb_steps_on_its_cpus(monkeypatch, cpus) -> None:
    """The trampoline a Ray worker runs (provaudit.engine.tasks) sets the threads before the function."""
    from provaudit.engine import tasks

    monkeypatch.setenv(duck.THREADS_ENV, "7")  # restored after the test
    assert tasks._run_released(duck.spill_threads, cpus) == cpus
