"""The scale-out scan on Ray (``scan(engine="ray")``): workers read, parse and process shards.

The driver only plans: for each input it decides the schema and columns once, from the first
readable row (exactly as :class:`provaudit.io.RecordReader` does on one machine, so ``--map`` and
``--skip-bad`` behave the same), and cuts the input into shards:

* uncompressed JSON lines: byte ranges of about ``shard_bytes``; a line belongs to the range that
  holds its first byte (:func:`provaudit.io.formats.range_lines`). A first pass of Ray tasks counts
  each range's lines and rows (cheap: no parsing) so that every shard knows the row index and the
  physical line number it starts at: record ids and ``file:line`` errors are those of a local scan;
* Parquet: runs of row groups of about ``shard_rows`` rows (row offsets from the footer);
* ``datasets.save_to_disk`` folders: row ranges of the memory-mapped Arrow shards;
* uncompressed CSV/TSV: byte ranges too, although a quoted field may hold newlines: a first pass of
  Ray tasks finds, for both states a range may start in (at a record start, inside a quoted field),
  where its first record starts and how many rows and lines it holds, and the driver stitches the
  ranges in order (:mod:`provaudit.io.csv_ranges`); the header is read once by the driver;
* gzip JSON lines, CSV and TSV of at least half a shard: one task inflates the file into the work
  folder, line by line as the local reader reads it, and the copy is cut like an uncompressed file;
  errors name the original. A damaged stream ends the copy where the local reader stops: for JSON
  lines its error follows the copy's rows; a CSV/TSV file is then read whole (its last record may be
  cut short in the copy, which the local reader never yields);
* anything else (smaller gzip files; JSON arrays: no streaming parser in the standard library): one
  shard per file.

Each shard is one Ray task (:func:`_read_shard`) that reads its rows, normalizes them into record
batches, runs :func:`provaudit.stage.process_batch` and writes the processed batches as Parquet
parts to the scan's work folder, which must be on storage every node sees (the ``--out`` folder).
A record's position ``_idx`` is ``shard << 32 | position in the shard``: sortable in input order
without knowing earlier shards' sizes. The task returns small facts only (row and record counts,
bad rows, the first error, a partial dataset fingerprint), which the driver folds in shard order:
O(shards) work. A bad row without ``--skip-bad`` is returned, not raised; the driver raises the
first one in input order, so the message and exit code are those of a local scan.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from provaudit.engine.tasks import Task
from provaudit.errors import InputError
from provaudit.fingerprint import DatasetDigest
from provaudit.io import RecordReader, csv_ranges
from provaudit.io.formats import (
    BadRow,
    count_range_rows,
    hf_range_rows,
    inflate_lines,
    iter_raw_rows,
    jsonl_range_rows,
    parquet_range_rows,
)
from provaudit.io.fs import location, parquet_file
from provaudit.stage import StageOptions, process_batch

#: most bytes of JSON lines per shard (``PROVAUDIT_RAY_SHARD_BYTES``); smaller, down to
#: ``MIN_SHARD_BYTES``, where that gives each cluster CPU two shards (:func:`shard_bytes_for`). A shard
#: task's memory follows its shard's size: 32 MiB (about 22,000 preference rows) keeps it near a worker's
#: fixed footprint, and is reached at 100,000 rows on two CPUs (docs/scale-out.md, run 5)
SHARD_BYTES = int(os.environ.get("PROVAUDIT_RAY_SHARD_BYTES", str(32 << 20)))
MIN_SHARD_BYTES = 4 << 20
GZIP_RATIO = 3  # about what gzip makes of text: sizes the shards of inflated copies (shard_bytes_for)
#: rows of Parquet / save_to_disk input per shard (``PROVAUDIT_RAY_SHARD_ROWS``)
SHARD_ROWS = int(os.environ.get("PROVAUDIT_RAY_SHARD_ROWS", "100000"))
POLL_S = 0.2  # seconds between checks for signals while waiting on Ray
CANCEL_WAIT_S = 10.0  # at most this long for cancelled tasks to stop (cancel)
POS_BITS = 32  # _idx = shard << POS_BITS | position of the record in its shard


@dataclass(frozen=True)
class InputSpec:
    """What the driver decided once for one input; every shard task of it gets a copy."""

    n: int
    path: str
    name: str
    fmt: str
    schema: str
    mapping: dict[str, str] | None
    columns: list[str]
    skip_bad: bool
    batch_size: int
    max_record_bytes: int
    split: str | None
    csv_header: csv_ranges.Header | None = None  # a CSV/TSV file cut in byte ranges: its header, read once


@dataclass(frozen=True)
class Shard:
    seq: int                       # global position of the shard in input order
    input: int
    kind: str                      # lines | csv | parquet | hf | file | gz (inflated first) | fail
    start: int = 0                 # byte (lines, csv) or row (hf) offset
    stop: int = 0
    row_groups: tuple[int, ...] = ()
    index: int = 0                 # row index of the file at the shard's start
    lineno: int = 0                # physical lines before the shard's start (lines, csv)
    source: str = ""               # the file read instead of the input's own: an inflated gzip copy
    fail: str = ""                 # fail: the error that ends the input here (a damaged gzip stream)


@dataclass
class ShardResult:
    seq: int
    input: int
    n_rows: int = 0
    n_records: int = 0
    bad_rows: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    digest: DatasetDigest = field(default_factory=DatasetDigest)
    parts: int = 0
    cpu_s: float = 0.0
    tail: dict[str, int] = field(default_factory=dict)  # csv: where its last record ended (csv_range_rows)


def _error(d: dict[str, Any]) -> InputError:
    return InputError(d["reason"], file=d["file"], line=d["line"], field=d["field"])


# ---------------------------------------------------------------- driver: decide once, plan shards

def decide(reader: RecordReader) -> tuple[str, list[str]]:
    """The schema name and columns of ``reader``'s input from its first readable row, with the local
    reader's errors: a bad row before it (without ``skip_bad``), no known schema, no readable rows."""
    rows = iter_raw_rows(reader.path, str(reader.fmt), max_record_bytes=reader.max_record_bytes, split=reader.split)
    bad = 0
    try:
        for raw in rows:
            if isinstance(raw, BadRow):
                if not reader.skip_bad:
                    raise raw.error
                bad += 1
                continue
            reader.first_row(raw)
            assert reader.schema is not None
            return reader.schema.name, list(reader.columns_seen)
    finally:
        rows.close()
    raise InputError(f"no readable rows ({bad} bad)", file=reader.file)


def plan(readers: Sequence[RecordReader], *, shard_bytes: int | None = None,
         shard_rows: int | None = None) -> tuple[list[InputSpec], list[Shard]]:
    """Input specs and shards (line counts of JSON-lines ranges not yet filled in); shard sizes default
    to the module's ``SHARD_BYTES`` / ``SHARD_ROWS``."""
    shard_bytes = shard_bytes or SHARD_BYTES
    shard_rows = shard_rows or SHARD_ROWS
    specs: list[InputSpec] = []
    shards: list[Shard] = []
    for n, r in enumerate(readers):
        schema, columns = decide(r)
        header = None
        if _cut_bytes(r) and r.fmt in ("csv", "tsv") and location(r.path).stat().st_size > shard_bytes:
            header = csv_ranges.read_header(r.path, csv_ranges.delimiter(str(r.fmt)), r.max_record_bytes)
        specs.append(InputSpec(n=n, path=str(r.path), name=str(r.name), fmt=str(r.fmt), schema=schema,
                               mapping=dict(r.mapping) if r.mapping else None, columns=columns,
                               skip_bad=r.skip_bad, batch_size=r.batch_size, max_record_bytes=r.max_record_bytes,
                               split=r.split, csv_header=header))
        for kind, kw in _cuts(r, shard_bytes, shard_rows):
            shards.append(Shard(seq=len(shards), input=n, kind=kind, **kw))
    return specs, shards


def _cut_bytes(r: RecordReader) -> bool:
    """Files cut into byte ranges: uncompressed JSON lines, CSV and TSV."""
    return r.fmt in ("jsonl", "csv", "tsv") and not location(r.path).name.endswith(".gz")


def shard_bytes_for(readers: Sequence[RecordReader], cpus: int) -> int:
    """``SHARD_BYTES``, or less where the text files to cut would give fewer than two shards per CPU
    (but not under ``MIN_SHARD_BYTES``, or ``SHARD_BYTES`` if that is smaller); a gzip file counts as
    ``GZIP_RATIO`` times its size (it is cut once inflated)."""
    total = sum(location(r.path).stat().st_size * (1 if _cut_bytes(r) else GZIP_RATIO) for r in readers
                if r.fmt in ("jsonl", "csv", "tsv"))
    return max(min(SHARD_BYTES, MIN_SHARD_BYTES), min(SHARD_BYTES, total // max(1, 2 * cpus)))


def _cuts(r: RecordReader, shard_bytes: int, shard_rows: int) -> Iterator[tuple[str, dict[str, Any]]]:
    p = location(r.path)
    size = p.stat().st_size if _cut_bytes(r) else 0
    if r.fmt == "jsonl" and _cut_bytes(r):
        for start in range(0, size, max(1, shard_bytes)):
            yield "lines", {"start": start, "stop": min(size, start + shard_bytes)}
    elif _cut_bytes(r) and size > shard_bytes:  # CSV/TSV: true starts found by _first_pass
        for start in range(0, size, max(1, shard_bytes)):
            yield "csv", {"start": start, "stop": min(size, start + shard_bytes)}
    elif r.fmt in ("jsonl", "csv", "tsv") and 2 * p.stat().st_size >= shard_bytes:  # gzip: see _inflate_gz
        yield "gz", {}
    elif r.fmt == "parquet":
        meta = parquet_file(p).metadata
        groups: list[int] = []
        first = rows = 0
        for g in range(meta.num_row_groups):
            groups.append(g)
            rows += meta.row_group(g).num_rows
            if rows - first >= shard_rows or g == meta.num_row_groups - 1:
                yield "parquet", {"row_groups": tuple(groups), "index": first}
                groups, first = [], rows
    elif r.fmt == "hf_disk":
        from provaudit.io.formats import _load_from_disk

        n = len(_load_from_disk(p, r.split))  # memory-mapped: reads the Arrow footers only
        for start in range(0, n, max(1, shard_rows)):
            yield "hf", {"start": start, "stop": min(n, start + shard_rows), "index": start}
    else:
        yield "file", {}


# ---------------------------------------------------------------- worker tasks

def _count(spec: InputSpec, shard: Shard) -> tuple[int, int]:
    return count_range_rows(shard.source or spec.path, shard.start, shard.stop, spec.max_record_bytes)


def _inflate(spec: InputSpec, dest: str) -> tuple[str, int, str | None, csv_ranges.Header | None]:
    """The uncompressed copy of a gzip input, its size, the stream error that ended it and, for CSV/TSV,
    its header (:func:`csv_ranges.read_header`)."""
    error = inflate_lines(spec.path, dest)
    header = None
    if spec.fmt in ("csv", "tsv") and error is None:
        header = csv_ranges.read_header(dest, csv_ranges.delimiter(spec.fmt), spec.max_record_bytes)
    return dest, Path(dest).stat().st_size, error, header


def _range_facts(spec: InputSpec, shard: Shard) -> csv_ranges.RangeFacts:
    return csv_ranges.range_facts(shard.source or spec.path, shard.start, shard.stop, csv_ranges.delimiter(spec.fmt),
                                  spec.max_record_bytes)


def _shard_rows(spec: InputSpec, shard: Shard, tail: dict[str, int]):
    if shard.kind == "csv":
        assert spec.csv_header is not None
        return csv_ranges.csv_range_rows(shard.source or spec.path, csv_ranges.delimiter(spec.fmt), _cut(shard),
                                         spec.csv_header.cells, tail, spec.max_record_bytes, file=spec.path)
    if shard.kind == "lines":
        return jsonl_range_rows(shard.source or spec.path, shard.start, shard.stop, index=shard.index,
                                lineno=shard.lineno, max_record_bytes=spec.max_record_bytes, file=spec.path)
    if shard.kind == "parquet":
        return parquet_range_rows(spec.path, list(shard.row_groups), shard.index)
    if shard.kind == "hf":
        return hf_range_rows(spec.path, shard.start, shard.stop, spec.split)
    return iter_raw_rows(spec.path, spec.fmt, max_record_bytes=spec.max_record_bytes, split=spec.split)


def part_name(spec_n: int, seq: int, k: int) -> str:
    """Parts sort by name in input order (input, shard, batch)."""
    return f"part-{spec_n:04d}-{seq:08d}-{k:05d}.parquet"


def _read_shard(spec: InputSpec, shard: Shard, options: StageOptions, parts_dir: str) -> ShardResult:
    """Read, normalize, fingerprint and tag one shard; write its processed batches as Parquet parts."""
    t0 = time.process_time()
    res = ShardResult(seq=shard.seq, input=shard.input)
    if shard.kind == "fail":
        res.error = {"reason": shard.fail, "file": spec.path, "line": None, "field": None}
        return res
    reader = RecordReader(spec.path, name=spec.name, mapping=spec.mapping, fmt=spec.fmt,
                          schema_name=None if spec.mapping else spec.schema, skip_bad=spec.skip_bad,
                          batch_size=spec.batch_size, max_record_bytes=spec.max_record_bytes, split=spec.split)
    reader.columns_seen = list(spec.columns)
    pos = 0
    base = shard.seq << POS_BITS
    try:
        for k, batch in enumerate(reader.batches(_shard_rows(spec, shard, res.tail))):
            out = process_batch(batch, options)
            out = out.with_columns((pl.int_range(pos, pos + out.height, dtype=pl.Int64) + base).alias("_idx"))
            pos += out.height
            res.digest.update(out)
            out.write_parquet(Path(parts_dir) / part_name(spec.n, shard.seq, k), compression="lz4")
            res.parts += 1
    except InputError as exc:
        res.error = {"reason": exc.reason, "file": exc.file, "line": exc.line, "field": exc.field}
    res.n_rows, res.n_records = reader.n_rows, reader.n_records
    res.bad_rows = [b.to_dict() for b in reader.bad_rows]
    res.cpu_s = time.process_time() - t0
    return res


# ---------------------------------------------------------------- driver: run and fold

def ensure_ray(init_kwargs: dict[str, Any] | None = None) -> Any:
    from provaudit.engine.ray_engine import _ensure_ray

    return _ensure_ray(init_kwargs)


def get_all(refs: list[Any]) -> list[Any]:
    """``ray.get(refs)`` in short polls, so that SIGINT / SIGTERM interrupt it; on any exception the
    tasks not finished yet are cancelled."""
    import ray

    try:
        left = list(refs)
        while left:
            _, left = ray.wait(left, num_returns=len(left), timeout=POLL_S)
        return ray.get(list(refs))
    except BaseException:
        cancel(refs)
        raise


def cancel(refs: list[Any]) -> None:
    """Cancel the tasks of ``refs`` that are not finished (cancelling a finished task can crash the
    Ray 2.x driver: "Tried to complete task that was not pending"), and wait, in short polls and at most
    ``CANCEL_WAIT_S``, until they have stopped: a running task stops at its next Python instruction and
    may finish writing a part first, which the scan's clean-up of its work folder must not race."""
    import ray

    if not refs:
        return
    _, running = ray.wait(list(refs), num_returns=len(refs), timeout=0)
    for ref in running:
        ray.cancel(ref)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while running and time.monotonic() < deadline:
        _, running = ray.wait(running, num_returns=len(running), timeout=POLL_S)


def _inflate_gz(ray: Any, specs: list[InputSpec], shards: list[Shard], work: Path, shard_bytes: int) -> list[Shard]:
    """Each ``gz`` shard becomes the byte ranges of its input's uncompressed copy in ``work`` (one Ray task
    per file inflates it): JSON lines followed by a ``fail`` shard where the stream was damaged, CSV/TSV
    (``specs`` gets its header) or, damaged, one shard reading the whole file as the local reader does."""
    gz = [s for s in shards if s.kind == "gz"]
    if not gz:
        return shards
    work.mkdir(parents=True, exist_ok=True)
    task = Task(ray, _inflate, num_cpus=1, max_retries=1)
    copies = dict(zip([s.seq for s in gz], get_all([task.remote(specs[s.input], str(work / f"input-{s.input:04d}"))
                                                    for s in gz])))
    out = []
    for s in shards:
        if s.kind != "gz":
            out.append(s)
            continue
        copy, size, error, header = copies[s.seq]
        spec = specs[s.input]
        if spec.fmt in ("csv", "tsv") and error is not None:
            out.append(Shard(seq=0, input=s.input, kind="file"))
            continue
        if header is not None:
            specs[s.input] = replace(spec, csv_header=header)
        step = max(1, shard_bytes)
        kind = "lines" if spec.fmt == "jsonl" else "csv"
        out.extend(Shard(seq=0, input=s.input, kind=kind, start=a, stop=min(size, a + step), source=copy)
                   for a in range(0, size, step))
        if error is not None:
            out.append(Shard(seq=0, input=s.input, kind="fail", fail=error))
    return [replace(s, seq=k) for k, s in enumerate(out)]


def _first_pass(ray: Any, specs: list[InputSpec], shards: list[Shard]) -> list[Shard]:
    """Row index and line number at the start of each JSON-lines range of a file cut in several, and the
    true starts (row index, line number) of the ranges of cut CSV/TSV files: one Ray task per range, all
    at once; the driver adds up in shard order. Shards are numbered anew (CSV ranges where no record
    starts are dropped)."""
    need = [s for s in shards[:-1] if s.kind == "lines" and shards[s.seq + 1].kind == "lines"
            and shards[s.seq + 1].start > 0]
    ranges = [s for s in shards if s.kind == "csv"]
    if not need and not ranges:
        return shards
    count = Task(ray, _count, num_cpus=1, max_retries=1)
    facts = Task(ray, _range_facts, num_cpus=1, max_retries=1)
    got = get_all([count.remote(specs[s.input], s) for s in need] + [facts.remote(specs[s.input], s) for s in ranges])
    counts = dict(zip([s.seq for s in need], got[:len(need)]))
    range_facts = dict(zip([s.seq for s in ranges], got[len(need):]))
    out = []
    lines = rows = 0
    for s in shards:
        if s.kind == "csv":
            if s.start == 0:
                out.extend(_csv_shards(specs[s.input], [range_facts[r.seq] for r in ranges if r.input == s.input],
                                       s.source))
            continue
        if s.kind == "lines" and s.start > 0:
            prev = counts[s.seq - 1]
            lines, rows = lines + prev[0], rows + prev[1]
            s = replace(s, index=rows, lineno=lines)
        else:
            lines = rows = 0
        out.append(s)
    return [replace(s, seq=k) for k, s in enumerate(out)]


def _csv_shards(spec: InputSpec, facts: list[csv_ranges.RangeFacts], source: str) -> list[Shard]:
    """The shards of a CSV/TSV file (``source``: its inflated copy) cut in ``len(facts)`` ranges."""
    assert spec.csv_header is not None
    cuts = csv_ranges.stitch(facts, spec.csv_header, location(source or spec.path).stat().st_size)
    if cuts is None:  # the ranges disagree with the header (csv_ranges.stitch): read the file whole
        return [Shard(seq=0, input=spec.n, kind="file")]
    return [Shard(seq=0, input=spec.n, kind="csv", start=c.start, stop=c.stop, index=c.index, lineno=c.lineno,
                  source=source) for c in cuts]


def _cut(shard: Shard) -> csv_ranges.Cut:
    return csv_ranges.Cut(shard.start, shard.stop, shard.index, shard.lineno)


def read_inputs(readers: Sequence[RecordReader], options: StageOptions, parts_dir: Path, *,
                on_shard: Callable[[ShardResult, int], None] | None = None,
                shard_bytes: int | None = None, shard_rows: int | None = None) -> list[dict[str, Any]]:
    """Read and process every input on the Ray cluster; parts land in ``parts_dir``.

    Returns, per input, the facts a local scan gathers (``rows``, ``records``, ``fingerprint``,
    ``bad_rows``, ``columns``, ``schema``), or raises the first input error in input order."""
    ray = ensure_ray()
    if shard_bytes is None:
        shard_bytes = shard_bytes_for(readers, int(ray.cluster_resources().get("CPU", 1)))
    specs, shards = plan(readers, shard_bytes=shard_bytes, shard_rows=shard_rows)
    shards = _inflate_gz(ray, specs, shards, Path(parts_dir).parent / "inflated", shard_bytes)
    shards = _first_pass(ray, specs, shards)
    task = Task(ray, _read_shard, num_cpus=1, max_retries=1)
    pending = {task.remote(specs[s.input], s, options, str(parts_dir)): s.seq for s in shards}
    results: dict[int, ShardResult] = {}
    try:
        while pending:
            # short polls: a signal handler (Ctrl-C, provaudit.interrupt) runs only between them
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in done:
                res = ray.get(ref)
                del pending[ref]
                results[res.seq] = res
                if on_shard:
                    on_shard(res, len(shards))
            _raise_first_error(results, shards, specs)
    finally:
        cancel(list(pending))
    _raise_first_error(results, shards, specs)
    return _fold(results, shards, specs)


def _raise_first_error(results: dict[int, ShardResult], shards: list[Shard], specs: list[InputSpec]) -> None:
    """Raise the error a local scan would meet first, once every shard before it is done."""
    for s in shards:
        res = results.get(s.seq)
        if res is None:
            return
        prev = shards[s.seq - 1] if s.seq else None
        if s.kind == "csv" and prev is not None and prev.input == s.input:
            csv_ranges.check_joined(specs[s.input].path, _cut(prev), results[prev.seq].tail, _cut(s))
        if res.error is not None:
            raise _error(res.error)
        last = s.seq + 1 == len(shards) or shards[s.seq + 1].input != s.input
        if last and sum(results[t.seq].n_rows for t in shards if t.input == s.input) == 0:
            bad = sum(len(results[t.seq].bad_rows) for t in shards if t.input == s.input)
            raise InputError(f"no readable rows ({bad} bad)", file=specs[s.input].path)


def _fold(results: dict[int, ShardResult], shards: list[Shard], specs: list[InputSpec]) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        mine = [results[s.seq] for s in shards if s.input == spec.n]
        digest = DatasetDigest()
        for r in mine:
            digest.merge(r.digest)
        out.append({"rows": sum(r.n_rows for r in mine), "records": sum(r.n_records for r in mine),
                    "fingerprint": digest.fingerprint(), "bad_rows": [b for r in mine for b in r.bad_rows],
                    "columns": spec.columns, "schema": spec.schema, "shards": len(mine),
                    "cpu_s": sum(r.cpu_s for r in mine)})
    return out


__all__ = ["InputSpec", "Shard", "ShardResult", "decide", "plan", "read_inputs"]
