"""The per-batch scan stages on Ray Data (``provaudit scan --engine ray``).

The driver reads the input (schema detection, bad-row handling and record ids stay in one
place), hands windows of record batches to Ray Data, which runs ``process_batch`` on each one
with ``map_batches`` on whatever cluster ``ray.init`` connects to, and yields the processed
batches back in input order. Duplicate groups, summaries and the catalog write stay in the
driver, once, at the end. A window holds ``window`` batches, so driver memory stays flat.

Cluster selection follows Ray: an already initialised Ray session is used as is; otherwise
``ray.init()`` connects to ``RAY_ADDRESS`` when set (e.g. ``ray://head:10001`` or ``auto``)
and starts a local single-node cluster when not. A local cluster that provaudit starts has Ray's usage
statistics off (``RAY_USAGE_STATS_ENABLED=0`` unless set): nothing leaves the machine, and Ray Data starts
no usage-collection actor (a process of its own, about 5 CPU-seconds to start here).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

if TYPE_CHECKING:
    from provaudit.stage import StageOptions

SEQ = "__provaudit_seq"
ROW = "__provaudit_row"


def _stage(table: pa.Table, options: StageOptions) -> pa.Table:
    """The Ray Data UDF: record batches in (tagged with their sequence number), processed forms out."""
    from provaudit.stage import process_batch

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    outs = []
    for s in sorted(frame[SEQ].unique().to_list()):  # Ray may coalesce blocks: process each batch whole
        part = frame.filter(pl.col(SEQ) == s).sort(ROW)
        out = process_batch(part.drop(SEQ, ROW), options)
        outs.append(out.with_columns(pl.lit(s, dtype=pl.Int64).alias(SEQ),
                                     pl.int_range(0, out.height, dtype=pl.Int64).alias(ROW)))
    return pl.concat(outs, how="vertical").to_arrow()


def _ensure_ray(init_kwargs: dict[str, Any] | None) -> Any:
    import ray

    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "ignore_reinit_error": True}
        if not os.environ.get("RAY_ADDRESS"):
            kwargs["num_cpus"] = os.cpu_count() or 1
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs.update(init_kwargs or {})
        ray.init(**kwargs)
    return ray


def run_ray(batches: Iterable[pl.DataFrame], options: StageOptions, *, window: int | None = None,
            init_kwargs: dict[str, Any] | None = None) -> Iterator[pl.DataFrame]:
    """Run ``process_batch`` over ``batches`` with Ray Data ``map_batches``; yield outputs in input order.

    ``window`` batches (default: 2 per cluster CPU, at least 2) are sent per Ray Data job.
    Each batch is processed whole (never split or merged), so the result is identical to
    ``process_batch`` applied batch by batch in one process.
    """
    _ensure_ray(init_kwargs)
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one INFO line per window otherwise
    if window is None:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        window = max(2, 2 * cpus)

    def flush(buf: list[pl.DataFrame], first_seq: int) -> Iterator[pl.DataFrame]:
        tables = [b.with_columns(pl.lit(first_seq + i, dtype=pl.Int64).alias(SEQ),
                                 pl.int_range(0, b.height, dtype=pl.Int64).alias(ROW)).to_arrow()
                  for i, b in enumerate(buf)]
        ds = ray.data.from_arrow(tables).map_batches(
            _stage, fn_kwargs={"options": options}, batch_format="pyarrow", batch_size=None,
            zero_copy_batch=True)
        frames = [pl.from_arrow(t) for t in ray.get(ds.to_arrow_refs())]
        frames = [f for f in frames if isinstance(f, pl.DataFrame) and f.height]
        merged = pl.concat(frames, how="vertical") if frames else None
        for i, b in enumerate(buf):
            seq = first_seq + i
            if merged is None or b.height == 0:
                out = process_batch_local(b, options)
            else:
                out = merged.filter(pl.col(SEQ) == seq).sort(ROW).drop(SEQ, ROW)
                if out.height != b.height:
                    raise RuntimeError(f"ray engine: batch {seq} came back with {out.height} of {b.height} rows")
            yield out

    buf: list[pl.DataFrame] = []
    seq = 0
    for batch in batches:
        buf.append(batch)
        if len(buf) >= window:
            yield from flush(buf, seq)
            seq += len(buf)
            buf = []
    if buf:
        yield from flush(buf, seq)


def process_batch_local(batch: pl.DataFrame, options: StageOptions) -> pl.DataFrame:
    from provaudit.stage import process_batch

    return process_batch(batch, options)


__all__ = ["run_ray"]
