"""Read any supported file into batches of the normalized record table (polars)."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from provaudit.errors import InputError, UsageError
from provaudit.io.formats import DEFAULT_MAX_RECORD_BYTES, BadRow, RawRow, detect_format, iter_raw_rows
from provaudit.io.fs import location
from provaudit.io.schemas import (
    FieldError,
    Schema,
    detect_schema,
    known_schemas_line,
    mapped_schema,
    schema_by_name,
)

RECORD_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.Utf8,
    "dataset": pl.Utf8,
    "source_file": pl.Utf8,
    "source_row": pl.Int64,
    "pair_id": pl.Utf8,
    "role": pl.Utf8,
    "text": pl.Utf8,
    "model": pl.Utf8,
    "rating": pl.Float64,
    "schema": pl.Utf8,
    "meta": pl.Utf8,
}


def empty_records() -> pl.DataFrame:
    return pl.DataFrame(schema=RECORD_SCHEMA)


@dataclass
class BadRowInfo:
    file: str
    line: int | None
    field: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason}


def _json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


def _meta_json(row: Mapping[str, Any], consumed: set[str]) -> str:
    rest = {k: v for k, v in row.items() if k not in consumed}
    if not rest:  # most rows of most schemas: nothing left over
        return "{}"
    return json.dumps(rest, sort_keys=True, ensure_ascii=False, default=_json_default)


@dataclass
class RecordReader:
    """Streams one file as record batches and remembers what it saw (format, schema, bad rows).

    Example::

        reader = RecordReader("pairs.jsonl")
        for batch in reader.batches():
            ...
        reader.schema.name, reader.n_rows, reader.bad_rows
    """

    path: str | Path
    name: str | None = None
    mapping: Mapping[str, str] | None = None
    fmt: str | None = None
    schema_name: str | None = None
    skip_bad: bool = False
    batch_size: int = 10_000
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    split: str | None = None
    bad_rows: list[BadRowInfo] = field(default_factory=list)
    n_rows: int = 0
    n_records: int = 0
    columns_seen: list[str] = field(default_factory=list)
    schema: Schema | None = None

    def __post_init__(self) -> None:
        p = location(self.path)
        self.file = str(self.path)
        if self.fmt is None:
            self.fmt = detect_format(p)
        elif not p.exists():
            raise InputError("no such file or directory", file=self.file)
        if self.name is None:
            n = p.name
            for suffix in (".gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet"):
                n = n.removesuffix(suffix)
            self.name = n
        if self.mapping:
            try:
                self.schema = mapped_schema(dict(self.mapping))
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
        elif self.schema_name:
            self.schema = schema_by_name(self.schema_name)
            if self.schema is None:
                raise UsageError(f"unknown schema {self.schema_name!r}; known: {known_schemas_line()}")

    # ------------------------------------------------------------------
    def _fail(self, err: InputError) -> None:
        if not self.skip_bad:
            raise err
        self.bad_rows.append(BadRowInfo(self.file, err.line, err.field, err.reason))

    def first_row(self, raw: RawRow) -> None:
        """Decide the schema (unless given) and the columns from the first readable row."""
        if self.schema is None:
            self.columns_seen = list(raw.data)
            self.schema = detect_schema(raw.data)
            if self.schema is None:
                cols_seen = ", ".join(self.columns_seen) or "(none)"
                raise InputError(
                    f"no known schema fits the columns [{cols_seen}]; known schemas: {known_schemas_line()}; "
                    "use --map role=column (e.g. --map prompt=question --map response=answer)",
                    file=self.file, line=raw.line if raw.unit == "line" else None)
        elif not self.columns_seen:
            self.columns_seen = list(raw.data)

    def batches(self, rows: Iterator[RawRow | BadRow] | None = None) -> Iterator[pl.DataFrame]:
        """Yield polars DataFrames of at most ``batch_size`` source rows each.

        ``rows``: the raw rows of one shard of the file (:mod:`provaudit.engine.ray_scan`) instead of the
        whole file; the schema (and ``columns_seen``) must then be set, and an empty shard is no error."""
        cols: dict[str, list] = {k: [] for k in RECORD_SCHEMA}
        rows_in_batch = 0
        shard = rows is not None
        if rows is None:
            rows = iter_raw_rows(self.path, self.fmt, max_record_bytes=self.max_record_bytes, split=self.split)
        while True:
            try:
                raw = next(rows)
            except StopIteration:
                break
            if isinstance(raw, BadRow):
                self._fail(raw.error)
                continue
            if self.schema is None or not self.columns_seen:
                self.first_row(raw)
            try:
                recs = self.schema.extract(raw.data)
            except FieldError as exc:
                label = f"(record {raw.line}) " if raw.unit == "record" else ""
                self._fail(InputError(f"{label}{exc.message} (schema {self.schema.name})", file=self.file,
                                      line=raw.line, field=exc.field))
                continue
            except (KeyError, TypeError, AttributeError) as exc:  # a row of another shape than the first
                self._fail(InputError(f"row does not fit schema {self.schema.name} ({type(exc).__name__}: {exc})",
                                      file=self.file, line=raw.line))
                continue
            meta = _meta_json(raw.data, self.schema.consumes(raw.data))
            pair_id = f"{self.name}:{raw.index}"
            for rec in recs:
                suffix = f":{rec.k}" if rec.k is not None else ""
                cols["record_id"].append(f"{pair_id}:{rec.role}{suffix}")
                cols["dataset"].append(self.name)
                cols["source_file"].append(self.file)
                cols["source_row"].append(raw.index)
                cols["pair_id"].append(pair_id)
                cols["role"].append(rec.role)
                cols["text"].append(rec.text)
                cols["model"].append(rec.model)
                cols["rating"].append(rec.rating)
                cols["schema"].append(self.schema.name)
                cols["meta"].append(meta)
            self.n_rows += 1
            self.n_records += len(recs)
            rows_in_batch += 1
            if rows_in_batch >= self.batch_size:
                yield pl.DataFrame(cols, schema=RECORD_SCHEMA)
                cols = {k: [] for k in RECORD_SCHEMA}
                rows_in_batch = 0
        if rows_in_batch:
            yield pl.DataFrame(cols, schema=RECORD_SCHEMA)
        if self.n_rows == 0 and not shard:
            raise InputError(f"no readable rows ({len(self.bad_rows)} bad)", file=self.file)


def read_records(path: str | Path, *, name: str | None = None, mapping: Mapping[str, str] | None = None,
                 skip_bad: bool = False, batch_size: int = 10_000, fmt: str | None = None,
                 schema: str | None = None, split: str | None = None) -> Iterator[pl.DataFrame]:
    """Yield normalized record batches of ``path`` (see docs/architecture.md for the columns)."""
    reader = RecordReader(path, name=name, mapping=mapping, skip_bad=skip_bad, batch_size=batch_size, fmt=fmt,
                          schema_name=schema, split=split)
    yield from reader.batches()


def read_table(path: str | Path, **kwargs: Any) -> pl.DataFrame:
    """All records of ``path`` as one DataFrame (for small files, tests and notebooks)."""
    frames = list(read_records(path, **kwargs))
    return pl.concat(frames) if frames else empty_records()
