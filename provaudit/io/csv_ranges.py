"""Cut an uncompressed CSV/TSV file into byte ranges that read exactly like the whole file.

A quoted field may hold newlines, so a record does not always start after a newline. But the reader
(:mod:`csv` over physical lines, as :func:`provaudit.io.formats.iter_raw_rows` reads a file) is, at
every line boundary, in one of two states: at a record start ("outside"), or inside a quoted field
("inside"); and the state after a line is a function of the line and the state before it. So:

1. **one pass per range** (:func:`range_facts`, a worker task; a line belongs to the range holding its
   first byte): for *both* states at the range's first line, the state after its last line, the first
   record start, the lines before it and the rows starting in the range. Lines without a ``"`` keep
   the state (a quote-free line ends a record begun outside and continues a field begun inside); a
   line with one is run through :mod:`csv` itself (a fresh reader; ``"`` prepended for "inside"),
   so a stray quote in an unquoted field (``5" tall``, literal for :mod:`csv`) is judged as the
   reader judges it, where a plain quote-parity count would go wrong;
2. **the driver stitches** (:func:`stitch`, O(ranges)): the state at range ``k`` is the end state of
   range ``k - 1`` for its own start state, beginning "outside" at byte 0 (the header); each shard
   gets its true start offset, first row index and first physical line;
3. **each shard** (:func:`csv_range_rows`) reads the records that start in ``[start, stop)`` with the
   header the driver read once (:func:`read_header`), numbering rows and lines from there, and reports
   the byte where its last record ended, which must be the next shard's start (checked by the driver).

The one case the per-line rule does not follow is a quoted field of more than ``max_record_bytes``
spread over several lines: :mod:`csv` stops it with a "field larger than field limit" error at the
line where it crosses and starts a new record on the next one. The check of step 3 then fails, and
the scan stops with an error naming the file (reading the file in one piece, locally or with a
larger ``PROVAUDIT_RAY_SHARD_BYTES``, gives the local result).
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provaudit.errors import InputError
from provaudit.io.formats import DEFAULT_MAX_RECORD_BYTES, RawRow, _csv_header, _csv_records, _LineDecoder
from provaudit.io.fs import location, open_binary

OUTSIDE, INSIDE = 0, 1
#: single-line records :mod:`csv` reads as no cells at all: blank lines, not rows (a lone "\r", also
#: blank, can only be a file's last line, whose count no later shard needs)
_BLANK = (b"\n", b"\r\n")


@dataclass(frozen=True)
class Header:
    cells: list[str]
    end: int        # byte offset after the header record
    lines: int      # physical lines it spans
    rows: int       # 1, or 0 for a blank first line (which the range pass does not count as a row)


@dataclass(frozen=True)
class RangeFacts:
    """What one byte range holds, for each state (OUTSIDE, INSIDE) at its first line."""

    lines: int                              # physical lines starting in the range
    end: tuple[int, int]                    # state after its last line
    first: tuple[int | None, int | None]    # offset of the first record start (None: none starts here)
    before: tuple[int, int]                 # lines of the range before that record start
    rows: tuple[int, int]                   # rows (records the reader numbers) starting in the range


def delimiter(fmt: str) -> str:
    return "\t" if fmt == "tsv" else ","


def read_header(path: str | Path, delim: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Header:
    """The header record as the local reader reads it, and where it ends."""
    csv.field_size_limit(max_record_bytes)
    with open_binary(location(path)) as fh:
        lines = _LineDecoder(fh, location(path), max_record_bytes)
        cells = _csv_header(csv.reader(lines, delimiter=delim), location(path))
        return Header(cells, lines.offset, lines.lineno, 1 if cells else 0)


def _after(raw: bytes, state: int, delim: str, max_record_bytes: int) -> int:
    """The reader's state after physical line ``raw`` read in ``state``."""
    if len(raw) > max_record_bytes or b'"' not in raw:  # an over-long line is read as a blank one
        return state
    text = ('"' if state == INSIDE else "") + raw.decode("utf-8", errors="replace")
    reader = csv.reader(iter([text, "x"]), delimiter=delim)
    try:
        next(reader)
    except csv.Error:  # the reader drops the rest of the line and starts a record on the next one
        return OUTSIDE
    return INSIDE if reader.line_num == 2 else OUTSIDE  # it read on into the next line: inside quotes


def _lines_from(fh, start: int) -> int:
    """Position ``fh`` at the first line starting at or after byte ``start``; return that offset."""
    if start > 0:
        fh.seek(start - 1)
        if fh.read(1) != b"\n":
            fh.readline()
    return fh.tell()


def range_facts(path: str | Path, start: int, stop: int, delim: str,
                max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> RangeFacts:
    """The pass of one byte range ``[start, stop)`` (module docstring, step 1)."""
    csv.field_size_limit(max_record_bytes)  # the reader's limit (csv's default is 128 kB), in any process
    state = [OUTSIDE, INSIDE]
    first: list[int | None] = [None, None]
    before = [0, 0]
    rows = [0, 0]
    n = 0
    with open_binary(location(path)) as fh:
        pos = _lines_from(fh, start)
        while pos < stop:
            raw = fh.readline()
            if not raw:
                break
            for s in (OUTSIDE, INSIDE):
                if state[s] == OUTSIDE:
                    if first[s] is None:
                        first[s], before[s] = pos, n
                    rows[s] += raw not in _BLANK
            a = _after(raw, state[0], delim, max_record_bytes)
            state[1] = a if state[1] == state[0] else _after(raw, state[1], delim, max_record_bytes)
            state[0] = a
            n += 1
            pos += len(raw)
    return RangeFacts(lines=n, end=(state[0], state[1]), first=(first[0], first[1]), before=(before[0], before[1]),
                      rows=(rows[0], rows[1]))


@dataclass(frozen=True)
class Cut:
    """A shard of a cut CSV file: the records that start in ``[start, stop)``."""

    start: int
    stop: int
    index: int    # row index of its first record
    lineno: int   # physical lines before ``start``


def stitch(facts: list[RangeFacts], header: Header, size: int) -> list[Cut] | None:
    """The shards of a file cut in ``len(facts)`` ranges (module docstring, step 2), without the empty
    ones; None when the ranges disagree with the header (a record start inside it: read it whole)."""
    starts: list[tuple[int, int, int]] = [(header.end, 0, header.lines)]  # (offset, row index, lines before)
    state = OUTSIDE
    lines = rows = 0
    for k, f in enumerate(facts):
        first = f.first[state]
        if k > 0 and first is not None:
            if first < header.end:
                return None
            if first > header.end:
                starts.append((first, rows - header.rows, lines + f.before[state]))
        lines += f.lines
        rows += f.rows[state]
        state = f.end[state]
    stops = [s[0] for s in starts[1:]] + [size]  # starts increase strictly: no shard is empty
    return [Cut(a, b, index, lineno) for (a, index, lineno), b in zip(starts, stops)]


def csv_range_rows(path: str | Path, delim: str, cut: Cut, header: list[str], tail: dict[str, Any],
                   max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, file: str | Path | None = None
                   ) -> Iterator[RawRow]:
    """The rows of the records starting in ``[cut.start, cut.stop)``, numbered as in the whole file;
    at the end ``tail`` gets ``end`` (the byte after the last record read) and ``index`` (the row
    index after it). Errors name ``file`` (default ``path``; the original of an inflated gzip copy)."""
    csv.field_size_limit(max_record_bytes)
    shown = location(file or path)
    with open_binary(location(path)) as fh:
        fh.seek(cut.start)
        lines = _LineDecoder(fh, shown, max_record_bytes, lineno=cut.lineno, offset=cut.start)
        reader = csv.reader(lines, delimiter=delim)
        index = yield from _csv_records(lines, reader, header, shown, index=cut.index, stop=cut.stop)
        tail["end"], tail["index"] = lines.offset, index


def check_joined(path: str, cut: Cut, tail: dict[str, Any], next_cut: Cut) -> None:
    """The shard of ``cut`` ended where the next begins, at the row index the plan gave it (module
    docstring, step 3); ``tail`` is empty when it stopped at a bad row (that error comes first)."""
    end, index = tail.get("end"), tail.get("index")
    if end is not None and (end != next_cut.start or index != next_cut.index):
        raise InputError(f"a record read from byte {cut.start} ends at byte {end}, not at the next cut "
                         f"({next_cut.start}): a quoted field over the record size limit spanning lines? "
                         "Scan this file with a larger PROVAUDIT_RAY_SHARD_BYTES or without --engine ray",
                         file=path)


__all__ = ["Cut", "Header", "RangeFacts", "check_joined", "csv_range_rows", "range_facts", "read_header", "stitch"]
