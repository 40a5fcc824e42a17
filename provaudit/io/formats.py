"""File formats: detect them and stream raw rows out of them.

Every reader yields ``RawRow(index, line, data)``: the 0-based row index, the position to
name in an error (a physical line for line formats, a record number otherwise) and the row
as a dict. Readers stream: nothing loads a whole file except JSON arrays, which have no
streaming form in the standard library.
"""
from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provaudit.errors import InputError
from provaudit.io.fs import location, open_binary, parquet_file

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "hf_disk", "datasets")

#: A single record larger than this is refused (a 50 MB "record" is almost always a broken file).
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RawRow:
    index: int
    line: int
    data: dict[str, Any]
    unit: str = "line"  # what `line` counts: "line" or "record"


class BadRow(Exception):
    """A row that cannot be read; carries an InputError. Readers yield it in place of the row."""

    def __init__(self, error: InputError) -> None:
        super().__init__(str(error))
        self.error = error


def _open_binary(path: Path):
    return open_binary(location(path))


def is_save_to_disk(path: Path) -> bool:
    """A folder ``datasets.save_to_disk`` wrote (a Dataset or a DatasetDict): read as one input."""
    return any((path / marker).is_file() for marker in ("dataset_info.json", "dataset_dict.json", "state.json"))


def detect_format(path: str | Path) -> str:
    """Name the format of ``path`` from its name, or its first bytes when the name is ambiguous."""
    p = location(path)
    if not p.exists():
        raise InputError("no such file or directory", file=str(path))
    if p.is_dir():
        if is_save_to_disk(p):
            return "hf_disk"
        raise InputError("a directory that is not a datasets.save_to_disk folder "
                         "(no dataset_info.json / dataset_dict.json)", file=str(path))
    name = p.name.lower()
    stem = name.removesuffix(".gz")
    if stem.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if stem.endswith(".csv"):
        return "csv"
    if stem.endswith(".tsv"):
        return "tsv"
    if stem.endswith(".parquet"):
        return "parquet"
    if stem.endswith(".json"):
        return _sniff_json(p)
    raise InputError(f"cannot tell the format from the name; known formats: {', '.join(FORMATS)} "
                     "(use --format)", file=str(path))


def _sniff_json(path: Path) -> str:
    """A .json file is a JSON array, or JSON lines under a .json name."""
    with _open_binary(path) as fh:
        head = fh.read(4096)
    stripped = head.lstrip()
    if stripped[:1] == b"[":
        return "json"
    if stripped[:1] == b"{":
        # one object per line, or a single pretty-printed object: a pretty object's first line is "{"
        first_line = stripped.split(b"\n", 1)[0].strip()
        if first_line == b"{":
            return "json"
        return "jsonl"
    return "json"


def iter_raw_rows(path: str | Path, fmt: str, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                  split: str | None = None) -> Iterator[RawRow]:
    """Yield the rows of ``path`` in file order; a malformed row comes as a ``BadRow`` in its place."""
    p = location(path)
    if fmt == "jsonl":
        yield from _jsonl_rows(p, max_record_bytes)
    elif fmt == "json":
        yield from _json_array_rows(p, max_record_bytes)
    elif fmt in ("csv", "tsv"):
        yield from _csv_rows(p, "\t" if fmt == "tsv" else ",", max_record_bytes)
    elif fmt == "parquet":
        yield from _parquet_rows(p)
    elif fmt == "hf_disk":
        yield from _hf_rows(_load_from_disk(p, split), p)
    elif fmt == "datasets":
        yield from _hf_rows(_load_with_datasets(p, split), p)
    else:
        raise InputError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", file=str(path))


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise InputError("the file is empty", file=str(path))


#: what a damaged gzip stream raises while its lines are read
STREAM_ERRORS = (EOFError, gzip.BadGzipFile, OSError)


def stream_error(exc: BaseException) -> str:
    return f"cannot read compressed stream ({exc})"


def inflate_lines(path: str | Path, dest: str | Path) -> str | None:
    """Write the lines of the gzip file ``path`` to ``dest``, uncompressed, exactly as far as the local
    reader reads them (line by line: a damaged stream ends it at the last whole line read before the
    damage); returns the reason of the error the local reader raises there, or None."""
    with _open_binary(path) as fh, open(dest, "wb") as out:
        lines = iter(fh)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return None
            except STREAM_ERRORS as exc:
                return stream_error(exc)
            out.write(raw)


def _jsonl_rows(path: Path, max_record_bytes: int) -> Iterator[RawRow]:
    _check_not_empty(path)
    seen: list[bool] = []
    with _open_binary(path) as fh:
        try:
            yield from _jsonl_line_rows(fh, path, max_record_bytes, seen=seen)
        except STREAM_ERRORS as exc:
            raise InputError(stream_error(exc), file=str(path)) from exc
    if not seen:
        raise InputError("the file holds no records (only blank lines)", file=str(path))


def _jsonl_line_rows(lines: Iterable[bytes], path: Path, max_record_bytes: int, *, index: int = 0,
                     lineno: int = 0, seen: list[bool] | None = None) -> Iterator[RawRow]:
    """The rows of JSON lines ``lines``, the first being physical line ``lineno + 1`` and row ``index``
    (blank lines count as lines, not rows); appends True to ``seen`` at the first non-blank line."""
    for raw in lines:
        lineno += 1
        if len(raw) > max_record_bytes:
            index += 1
            yield bad_row(f"record of {len(raw) / 1e6:.1f} MB exceeds the {max_record_bytes / 1e6:.0f} MB "
                          "limit", path, lineno)
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            index += 1
            yield bad_row(f"invalid UTF-8 at byte {exc.start}", path, lineno)
            continue
        if not line.strip():
            continue
        if seen is not None and not seen:
            seen.append(True)
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            index += 1
            yield bad_row(f"malformed JSON ({exc.msg} at column {exc.colno})", path, lineno)
            continue
        if not isinstance(data, dict):
            index += 1
            yield bad_row(f"expected a JSON object, got {type(data).__name__}", path, lineno)
            continue
        yield RawRow(index, lineno, data)
        index += 1


def range_lines(path: str | Path, start: int, stop: int) -> Iterator[bytes]:
    """The physical lines of an uncompressed file that start at a byte offset in ``[start, stop)``: byte
    ranges cut anywhere give every line to exactly one range (the one holding its first byte)."""
    with open_binary(location(path)) as fh:
        if start > 0:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":
                fh.readline()  # the rest of a line that began in the previous range
        pos = fh.tell()
        while pos < stop:
            raw = fh.readline()
            if not raw:
                return
            pos += len(raw)
            yield raw


def count_range_rows(path: str | Path, start: int, stop: int,
                     max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> tuple[int, int]:
    """(physical lines, JSON-lines rows) of the lines starting in ``[start, stop)``: rows are the lines
    that are not blank, exactly as :func:`iter_raw_rows` numbers them (bad lines count as rows)."""
    lines = rows = 0
    for raw in range_lines(path, start, stop):
        lines += 1
        if len(raw) > max_record_bytes:
            rows += 1
            continue
        head = raw.lstrip(b" \t\r\n\x0b\x0c")
        if head and 0x20 < head[0] < 0x80:  # a printable ASCII first character: not blank
            rows += 1
            continue
        try:
            rows += bool(raw.decode("utf-8").strip())
        except UnicodeDecodeError:
            rows += 1
    return lines, rows


def jsonl_range_rows(path: str | Path, start: int, stop: int, *, index: int, lineno: int,
                     max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, file: str | Path | None = None
                     ) -> Iterator[RawRow]:
    """The rows of the lines of a JSON-lines file starting in ``[start, stop)``; ``index`` and ``lineno``
    are the rows and physical lines before ``start`` (:func:`count_range_rows` of the earlier ranges);
    errors name ``file`` (default ``path``; the original of an inflated copy, :func:`inflate_lines`)."""
    yield from _jsonl_line_rows(range_lines(path, start, stop), location(file or path), max_record_bytes, index=index,
                                lineno=lineno)


def bad_row(message: str, path: Path, line: int | None, field: str | None = None) -> BadRow:
    """A marker readers yield for a row they cannot read (raising would end the generator)."""
    return BadRow(InputError(message, file=str(path), line=line, field=field))


def _json_array_rows(path: Path, max_record_bytes: int) -> Iterator[RawRow]:
    _check_not_empty(path)
    with _open_binary(path) as fh:
        try:
            blob = fh.read()
        except STREAM_ERRORS as exc:
            raise InputError(stream_error(exc), file=str(path)) from exc
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = blob[: exc.start].count(b"\n") + 1
        raise InputError(f"invalid UTF-8 at byte {exc.start}", file=str(path), line=line) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})", file=str(path),
                         line=exc.lineno) from exc
    if isinstance(data, dict):
        # {"train": [...]} or a single object; columns-of-lists ({"col": [..], ...}) also occur
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if lists and len(lists) == len(data) and len({len(v) for v in lists.values()}) == 1:
            keys = list(lists)
            n = len(lists[keys[0]])
            data = [{k: lists[k][i] for k in keys} for i in range(n)]
        else:
            data = [data]
    if not isinstance(data, list):
        raise InputError(f"expected a JSON array of objects, got {type(data).__name__}", file=str(path))
    if not data:
        raise InputError("the JSON array is empty", file=str(path))
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            yield bad_row(f"expected a JSON object, got {type(item).__name__}", path, i + 1)
            continue
        yield RawRow(i, i + 1, item, unit="record")


class _LineDecoder:
    """Feeds decoded lines to csv.reader, remembering the physical line number, the bytes read and bad
    lines; ``lineno`` and ``offset`` are the lines and bytes before the first line it reads."""

    def __init__(self, fh, path: Path, max_record_bytes: int, lineno: int = 0, offset: int = 0) -> None:
        self.fh, self.path, self.max = fh, path, max_record_bytes
        self.lineno, self.offset = lineno, offset
        self.problems: dict[int, str] = {}  # physical line -> what is wrong with it

    def __iter__(self):
        for raw in self.fh:
            self.lineno += 1
            self.offset += len(raw)
            if len(raw) > self.max:
                self.problems[self.lineno] = f"line of {len(raw) / 1e6:.1f} MB exceeds the record size limit"
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.problems[self.lineno] = f"invalid UTF-8 at byte {exc.start}"
                yield raw.decode("utf-8", errors="replace")

    def problem_between(self, first: int, last: int) -> tuple[int, str] | None:
        for line in range(first, last + 1):
            if line in self.problems:
                return line, self.problems.pop(line)
        return None


def _csv_header(reader, path: Path) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("the file is empty", file=str(path)) from None
    except csv.Error as exc:
        raise InputError(f"malformed CSV header ({exc})", file=str(path), line=1) from exc
    return [h.lstrip("\ufeff") for h in header]


def _csv_rows(path: Path, delimiter: str, max_record_bytes: int) -> Iterator[RawRow]:
    _check_not_empty(path)
    csv.field_size_limit(max_record_bytes)
    with _open_binary(path) as fh:
        lines = _LineDecoder(fh, path, max_record_bytes)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = _csv_header(reader, path)
            index = yield from _csv_records(lines, reader, header, path)
        except STREAM_ERRORS as exc:  # a damaged gzip stream (EOFError would read as click's "Aborted!")
            raise InputError(stream_error(exc), file=str(path)) from exc
        if index == 0:
            raise InputError("the CSV file has a header but no rows", file=str(path))


def _csv_records(lines: _LineDecoder, reader, header: list[str], path: Path, index: int = 0,
                 stop: int | None = None) -> Iterator[RawRow]:
    """The rows of ``reader`` (over ``lines``) that start before byte ``stop``; returns the row index
    after the last (blank lines are not rows; bad rows are)."""
    while stop is None or lines.offset < stop:
        start = lines.lineno + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            index += 1
            yield bad_row(f"malformed CSV ({exc})", path, start)
            continue
        problem = lines.problem_between(start, lines.lineno)
        if problem is not None:
            index += 1
            yield bad_row(problem[1], path, problem[0])
            continue
        if not cells:
            continue
        if len(cells) != len(header):
            index += 1
            yield bad_row(f"expected {len(header)} columns, found {len(cells)}", path, start)
            continue
        yield RawRow(index, start, dict(zip(header, cells)))
        index += 1
    return index


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    _check_not_empty(path)
    try:
        pf = parquet_file(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"not a readable Parquet file ({exc})", file=str(path)) from exc
    if pf.metadata.num_rows == 0:
        raise InputError("the Parquet file has no rows", file=str(path))
    index = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield RawRow(index, index + 1, row, unit="record")
            index += 1


def parquet_range_rows(path: str | Path, row_groups: list[int], index: int) -> Iterator[RawRow]:
    """The rows of some row groups of a Parquet file, the first being row ``index`` of the file."""
    pf = parquet_file(path)
    for batch in pf.iter_batches(batch_size=4096, row_groups=row_groups):
        for row in batch.to_pylist():
            yield RawRow(index, index + 1, row, unit="record")
            index += 1


def hf_range_rows(path: str | Path, start: int, stop: int, split: str | None) -> Iterator[RawRow]:
    """Rows ``[start, stop)`` of a ``datasets.save_to_disk`` folder (memory-mapped Arrow shards)."""
    ds = _load_from_disk(location(path), split)
    yield from _hf_rows(ds.select(range(start, stop)), location(path), index=start)


def _load_from_disk(path: Path, split: str | None):
    import datasets

    try:
        obj = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise InputError(f"cannot load the datasets folder ({exc})", file=str(path)) from exc
    return _pick_split(obj, split, path)


def _load_with_datasets(path: Path, split: str | None):
    """Load a local file with ``datasets.load_dataset`` (its builders: json, csv, parquet, arrow, text)."""
    import datasets

    name = path.name.lower().removesuffix(".gz")
    builder = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".csv": "csv", ".tsv": "csv",
               ".parquet": "parquet", ".arrow": "arrow", ".txt": "text"}
    kind = next((b for ext, b in builder.items() if name.endswith(ext)), None)
    if kind is None and not path.is_dir():
        raise InputError("datasets.load_dataset cannot read this file type", file=str(path))
    kwargs = {"delimiter": "\t"} if name.endswith(".tsv") else {}
    try:
        if path.is_dir():
            obj = datasets.load_dataset(str(path))
        else:
            obj = datasets.load_dataset(kind, data_files=str(path), **kwargs)
    except Exception as exc:
        raise InputError(f"datasets.load_dataset failed ({type(exc).__name__}: {exc})".split("\n")[0],
                         file=str(path)) from exc
    return _pick_split(obj, split, path)


def _pick_split(obj, split: str | None, path: Path):
    import datasets

    if isinstance(obj, datasets.DatasetDict):
        if split is None:
            split = "train" if "train" in obj else min(obj)
        if split not in obj:
            raise InputError(f"no split {split!r}; splits: {', '.join(sorted(obj))}", file=str(path))
        return obj[split]
    return obj


def _hf_rows(ds, path: Path, index: int = 0) -> Iterator[RawRow]:
    if len(ds) == 0:
        raise InputError("the dataset has no rows", file=str(path))
    for batch in ds.iter(batch_size=2048):
        cols = list(batch)
        n = len(batch[cols[0]]) if cols else 0
        for i in range(n):
            yield RawRow(index, index + 1, {c: batch[c][i] for c in cols}, unit="record")
            index += 1


def read_text_bytes(path: str | Path) -> str:
    """Whole file as text (small reference files); names the file on bad UTF-8."""
    p = location(path)
    with _open_binary(p) as fh:
        blob = fh.read()
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start}", file=str(path)) from exc


__all__ = ["FORMATS", "BadRow", "RawRow", "detect_format", "iter_raw_rows", "read_text_bytes"]
