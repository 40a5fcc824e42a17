"""A local process pool over record batches, with ordered results and bounded memory."""
from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from provaudit.pipeline import StageOptions


def _work(batch: pl.DataFrame, options: StageOptions) -> pl.DataFrame:
    from provaudit.pipeline import process_batch

    return process_batch(batch, options)


def run_pool(batches: Iterable[pl.DataFrame], options: StageOptions, workers: int,
             *, max_in_flight: int | None = None) -> Iterator[pl.DataFrame]:
    """Run ``process_batch`` over ``batches`` in ``workers`` processes; yield outputs in input order.

    At most ``max_in_flight`` batches (default ``2 * workers``) are submitted and not yet
    yielded, so memory stays flat however long the input is. Workers are spawned (not
    forked: polars and DuckDB hold threads) and the pool is shut down on exit, also when
    the consumer stops early or a batch fails (the worker's exception is re-raised here).
    """
    workers = max(1, int(workers))
    limit = max_in_flight or 2 * workers
    ctx = mp.get_context("spawn")
    pending: deque[Future] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        try:
            for batch in batches:
                pending.append(pool.submit(_work, batch, options))
                while len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


__all__ = ["run_pool"]
