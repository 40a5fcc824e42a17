"""Ray tasks that hand their memory back when they end.

A Ray worker process runs many tasks one after another (shard reads, shuffle maps and reduces, record
writes). Each task's frames are freed when it returns, but the allocators keep the pages: glibc's
``malloc`` arenas (Python objects, DuckDB), Arrow's memory pool (Parquet reads and writes). The worker's
resident memory then creeps up with the number of tasks it has run, so with more input (more tasks) every
process peaks higher though no task needs more (``docs/scale-out.md``, memory). A task started through
:class:`Task` returns the free pages to the OS when it ends, so its worker starts the
next one from the same footing. The function runs unchanged; Ray still names the process ``ray::<function>``.
Its DuckDB steps run on as many threads as the task has CPUs (:func:`provaudit.duck.spill_threads`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable
from typing import Any

from provaudit.duck import THREADS_ENV


@functools.cache
def _malloc_trim() -> Callable[[int], Any] | None:
    """glibc's ``malloc_trim`` (None on a C library without it, such as musl)."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def release_memory() -> None:
    """Hand the allocators' free pages back to the OS (best effort). No ``gc.collect()``: the frames a task
    drops are freed by reference counting, and a full collection inside a Ray worker cost about a second
    per task here (a two-node test cluster's scan went from 3 to 29 s)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _run_released(fn: Callable[..., Any], cpus: int, *args: Any) -> Any:
    os.environ[THREADS_ENV] = str(cpus)  # DuckDB steps of the task use its CPUs, not the node's
    try:
        return fn(*args)
    finally:
        release_memory()


class Task:
    """``fn`` as a Ray task that releases its memory when it ends: ``Task(ray, fn, num_cpus=1).remote(*args)``."""

    def __init__(self, ray: Any, fn: Callable[..., Any], *, num_cpus: int = 1, **options: Any) -> None:
        self.fn = fn
        self.cpus = num_cpus
        self._remote = ray.remote(_run_released).options(name=fn.__name__, num_cpus=num_cpus, **options)

    def remote(self, *args: Any) -> Any:
        return self._remote.remote(self.fn, self.cpus, *args)

    def map(self, calls: list[tuple]) -> list[Any]:
        """One task per argument tuple; their results in order (:func:`provaudit.engine.ray_scan.get_all`:
        interruptible, the rest cancelled on a failure)."""
        from provaudit.engine.ray_scan import get_all

        return get_all([self.remote(*c) for c in calls])


__all__ = ["Task", "release_memory"]
