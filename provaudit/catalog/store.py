"""The DuckDB catalog: datasets, record hashes and band keys, scans, checkpoints, erasures.

Only hashes, LSH band keys, source rows, roles and the row metadata are stored, never full
texts, so a catalog of millions of records stays small. Every write runs in one transaction:
a failed scan or registration leaves the catalog exactly as it was.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import duckdb
import polars as pl

from provaudit.catalog import files as catalog_files
from provaudit.catalog.files import SUBSTANCE_COLUMNS
from provaudit.catalog.lock import retry_busy, write_lock
from provaudit.catalog.migrations import FIELDS_SQL, LATEST_VERSION, current_version, migrate
from provaudit.duck import connect
from provaudit.errors import CatalogBusy, InputError

DEFAULT_PATH = Path(".provaudit") / "catalog.duckdb"
RECORD_COLUMNS = ("record_id", "source_row", "role", "pair_id", "text_hash", "band_keys", "meta")
BATCH_COLUMNS = ("record_id", "text_hash", "band_keys")
EXAMPLES = 5
#: DuckDB memory cap for catalog work (it spills to disk beyond it), so memory stays flat in input size.
DEFAULT_MEMORY = "384MB"
#: Batches up to this many records are looked up with constant IN lists (row-group pruning).
SMALL_BATCH = 64

#: A record table: a polars frame, or the path of a Parquet file or a glob of Parquet parts (streamed,
#: for large scans).
RecordsArg = pl.DataFrame | str | Path
#: datasets of at least this many records keep their band keys (16 rows a record) in a Parquet file the
#: catalog references instead of the ``record_bands`` table (``PROVAUDIT_BAND_FILE_RECORDS``)
BAND_FILE_RECORDS = int(os.environ.get("PROVAUDIT_BAND_FILE_RECORDS", "1000000"))
#: a dataset's band-key file: (band_key, row) sorted by key, row = the record's row in ``src``
_BANDS_SQL = """SELECT band_key, row FROM (
    SELECT unnest(band_keys) AS band_key, _row AS row FROM {src} WHERE band_keys IS NOT NULL) ORDER BY band_key"""


def write_band_file(records: str | Path, dest: str | Path) -> int:
    """Write the band-key file of a catalog records Parquet file (the one ``add_dataset`` will get) to
    ``dest``, e.g. on a Ray worker before the commit; returns its rows."""
    from provaudit.duck import spilling

    with spilling(dest) as con:  # the sort of a billion-record dataset's keys spills: memory stays capped
        return catalog_files.copy_to(con, _BANDS_SQL.format(src=catalog_files.part_source(records)), dest)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


def _is_lock_error(exc: BaseException) -> bool:
    """DuckDB refused the file because another process holds it."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


class _Rows:
    """A fully fetched result (DuckDB 2 refuses new work while a result is unfinished)."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple]:
        return self.rows


class _Conn:
    """DuckDB connection wrapper whose ``execute`` always consumes its result."""

    def __init__(self, raw: duckdb.DuckDBPyConnection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> _Rows:
        return _Rows(self.raw.execute(sql, params).fetchall())

    def frame(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        return self.raw.sql(sql, params=params).pl()

    def register(self, name: str, obj: Any) -> None:
        self.raw.register(name, obj)

    def unregister(self, name: str) -> None:
        self.raw.unregister(name)

    def close(self) -> None:
        self.raw.close()


class Catalog:
    """A provaudit catalog in one DuckDB file (default ``.provaudit/catalog.duckdb``)."""

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False,
                 wait: float | None = None) -> None:
        """Open (read-write: under the catalog's write lock, queueing up to ``wait`` seconds; see
        :mod:`provaudit.catalog.lock`) and validate the catalog: a file that is not a provaudit
        catalog, or one of a newer schema, fails here with exit 2."""
        self.path = Path(path) if path is not None else DEFAULT_PATH
        self.read_only = read_only
        self.wait = wait
        self._depth = 0
        self._tmp = 0
        self._leftover: list[str] = []
        self._placed: list[Path] = []  # files placed in the open transaction (removed if it rolls back)
        self._locks = ExitStack()
        self.con = None  # type: ignore[assignment]
        if read_only and not self.path.exists():
            raise InputError("no catalog here; register a dataset first (provaudit register FILE)",
                             file=str(self.path))
        try:
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._locks.enter_context(write_lock(self.path, wait))
            self.con = self._connect(read_only)
            version = current_version(self.con)
            if version > LATEST_VERSION:
                raise InputError(
                    f"catalog schema version {version} is newer than this provaudit supports "
                    f"({LATEST_VERSION}); upgrade provaudit to read it", file=str(self.path))
            if version < LATEST_VERSION:
                if read_only:  # upgrade once in write mode (under the write lock), then reopen read-only
                    self.con.close()
                    with write_lock(self.path, wait):
                        self.con = self._connect(False)
                        migrate(self.con)
                        self.con.close()
                    self.con = self._connect(True)
                else:
                    migrate(self.con)
            self._db = self.con.execute("SELECT current_database()").fetchone()[0]
            if not read_only:
                self._sweep()
            self._views()
        except BaseException:
            self.close()
            raise

    @property
    def bands_dir(self) -> Path:
        """Where the band-key Parquet files of big datasets live (``<catalog>.bands/``, moved with the catalog)."""
        return self.path.with_name(self.path.name + ".bands")

    @property
    def records_dir(self) -> Path:
        """Where the records and metadata-field Parquet files of big datasets live (``<catalog>.records/``,
        moved with the catalog; :mod:`provaudit.catalog.files`)."""
        return self.path.with_name(self.path.name + ".records")

    def _views(self) -> None:
        """``record_bands``, ``records``, ``record_fields`` and ``record_hashes`` over their tables plus the
        catalog's files (a referenced file that is missing fails here, exit 2, instead of in the middle of a
        query)."""
        files = self.con.execute("SELECT dataset_id, path, fields_path, hashes_path, rid_base, coalesce(substance, false) "
                                 "FROM record_files ORDER BY dataset_id").fetchall()
        bands = [r[0] for r in self.con.execute("SELECT path FROM band_files").fetchall()]
        missing = [str(p) for p in [self.bands_dir / n for n in bands]
                   + [self.records_dir / n for f in files for n in f[1:4]] if not p.exists()]
        if missing:
            raise InputError(f"{len(missing)} Parquet file(s) the catalog references are missing (e.g. {missing[0]}); "
                             f"keep the folders {self.bands_dir.name}/ and {self.records_dir.name}/ beside the "
                             "catalog file (move or copy them with it)", file=str(self.path))
        self._bands_view()
        for sql in catalog_files.records_view(self._table("records"), self._table("record_fields"),
                                              [(*f[:5], bool(f[5])) for f in files], self.records_dir):
            self.con.execute(sql)

    def _sweep(self) -> None:
        """Remove files a killed commit left unreferenced (we hold the write lock: no commit is in flight)."""
        bands = {r[0] for r in self.con.execute("SELECT path FROM band_files").fetchall()}
        recs = {n for row in self.con.execute("SELECT path, fields_path, hashes_path FROM record_files").fetchall()
                for n in row}
        catalog_files.sweep(self.bands_dir, bands)
        catalog_files.sweep(self.records_dir, recs)

    def _place(self, prepared: Path | None, dest: Path, sql: str | None) -> int:
        """Put one catalog file at ``dest``: the ``prepared`` file moved in, or ``sql`` written, under a
        temporary name renamed at the end; it is removed again if the transaction rolls back. Returns its rows."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        self._placed += [tmp, dest]
        catalog_files.IN_FLIGHT.update((tmp.resolve(), dest.resolve()))
        if prepared is not None:
            catalog_files.place(prepared, tmp)
        else:
            catalog_files.copy_to(self.con, sql, tmp)
        os.replace(tmp, dest)
        return int(self.con.execute("SELECT count(*) FROM read_parquet(?)", [str(dest)]).fetchone()[0])

    def _bands_view(self) -> None:
        """``record_bands`` as every query reads it: the stored table plus the band files the catalog
        references (a temporary view that shadows the table on this connection)."""
        files = self.con.execute("SELECT dataset_id, path, rid_base FROM band_files ORDER BY dataset_id").fetchall()
        if not files:
            return
        parts = [f"SELECT band_key, dataset_id, rid FROM {self._table('record_bands')}"]
        for did, name, base in files:
            lit = str(self.bands_dir / name).replace("'", "''")
            parts.append(f"SELECT band_key, {int(did)}::INTEGER, {int(base)} + row FROM read_parquet('{lit}')")
        self.con.execute("CREATE OR REPLACE TEMP VIEW record_bands AS " + "\nUNION ALL ".join(parts))

    def _table(self, name: str) -> str:
        """A stored table by its full name (past a temporary view of the same name)."""
        db = self._db.replace('"', '""')
        return f'"{db}".main.{name}'

    def _connect(self, read_only: bool) -> _Conn:
        config = {"memory_limit": os.environ.get("PROVAUDIT_CATALOG_MEMORY", DEFAULT_MEMORY)}
        try:
            return _Conn(retry_busy(lambda: connect(str(self.path), read_only=read_only, **config),
                                    _is_lock_error, what=self.path, wait=self.wait))
        except duckdb.IOException as exc:
            msg = str(exc).splitlines()[0]
            if _is_lock_error(exc):
                raise CatalogBusy(f"{self.path}: the catalog stayed open in another provaudit process for the "
                                  "whole wait; retry when it finishes or raise --wait") from exc
            raise InputError(f"cannot open catalog: {msg}", file=str(self.path)) from exc
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            if "configuration" in msg:
                raise InputError("catalog is already open in this process with another mode "
                                 "(read-only vs read-write configuration); close it first", file=str(self.path)) from exc
            raise InputError(f"not a provaudit catalog: {msg}", file=str(self.path)) from exc

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection and release the write lock (idempotent)."""
        try:
            if getattr(self, "con", None) is not None:
                self.con.close()
                self.con = None  # type: ignore[assignment]
        finally:
            self._locks.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """Schema version of this catalog."""
        return current_version(self.con)

    def _unregister(self, name: str) -> None:
        try:
            self.con.unregister(name)
        except duckdb.Error:  # aborted transaction: retried after ROLLBACK
            self._leftover.append(name)

    @contextmanager
    def transaction(self) -> Iterator[Catalog]:
        """BEGIN ... COMMIT; ROLLBACK on any exception. Nested calls join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        self._placed = []
        try:
            try:
                yield self
            except BaseException:
                self._depth = 0
                self.con.execute("ROLLBACK")
                while self._leftover:
                    self.con.unregister(self._leftover.pop())
                for p in self._placed:  # files this transaction put in place: nothing references them now
                    p.unlink(missing_ok=True)
                raise  # (the temporary views roll back with it)
            self._depth = 0
            self.con.execute("COMMIT")
        finally:
            catalog_files.IN_FLIGHT.difference_update(p.resolve() for p in self._placed)
            self._placed = []

    # -- sources ---------------------------------------------------------------------------
    @contextmanager
    def _source(self, records: RecordsArg, required: Sequence[str], with_rid: bool = False,
                optional: dict[str, str] | None = None) -> Iterator[str]:
        """Expose a frame or Parquet file as a DuckDB view name, with a 0-based ``_row`` column; each
        ``optional`` column (name: SQL type) the records lack is added as null."""
        self._tmp += 1
        name = f"_src_{os.getpid()}_{self._tmp}"
        registered = None
        if isinstance(records, pl.DataFrame):
            cols = records.columns
            frame = records.with_row_index("_row") if with_rid else records
            registered = f"{name}_arrow"
            self.con.register(registered, frame.to_arrow())
            select = f"SELECT * FROM {registered}"
        elif isinstance(records, (str, Path)):
            p = Path(records)
            if not (any(p.parent.glob(p.name)) if "*" in p.name else p.exists()):
                raise InputError("records file not found", file=str(p))
            lit = str(p).replace("'", "''")
            try:
                cols = [r[0] for r in self.con.execute(
                    f"DESCRIBE SELECT * FROM read_parquet('{lit}')").fetchall()]
            except duckdb.Error as exc:
                raise InputError(f"cannot read records as Parquet: {str(exc).splitlines()[0]}",
                                 file=str(p)) from exc
            select = (f"SELECT *, file_row_number AS _row FROM read_parquet('{lit}', file_row_number=true)"
                      if with_rid else f"SELECT * FROM read_parquet('{lit}')")
        else:
            raise TypeError(f"records must be a polars DataFrame or a Parquet path, not {type(records)}")
        missing = [c for c in required if c not in cols]
        if missing:
            where = str(records) if not isinstance(records, pl.DataFrame) else "records"
            raise InputError(f"record table lacks column(s) {', '.join(missing)}", file=where,
                             field=missing[0])
        absent = [f", NULL::{kind} AS {col}" for col, kind in (optional or {}).items() if col not in cols]
        if absent:
            select = f"SELECT *{''.join(absent)} FROM ({select})"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {select}")
        try:
            yield name
        finally:
            try:
                self.con.execute(f"DROP VIEW IF EXISTS {name}")
            except duckdb.Error:  # an aborted transaction drops it on ROLLBACK
                pass
            if registered:
                self._unregister(registered)

    # -- datasets --------------------------------------------------------------------------
    def add_dataset(self, *, name: str, fingerprint: str, path: str, fmt: str, schema: str,
                    tags: Sequence[str], n_records: int, records: RecordsArg,
                    meta: dict | None = None, band_file: Path | None = None,
                    record_files: Sequence[Path] | None = None) -> int:
        """Store a dataset and its records; an existing fingerprint only gains the new tags. ``band_file``:
        the records' band keys prepared by :func:`write_band_file` (kept as a file, not in the table);
        ``record_files``: its records, metadata-field and text-hash files prepared by
        :func:`provaudit.catalog.files.write_record_files` (kept as files, not in the tables)."""
        with self.transaction():
            row = self.con.execute("SELECT dataset_id, tags FROM datasets WHERE fingerprint = ?",
                                   [fingerprint]).fetchone()
            if row is not None:
                merged = sorted(set(row[1] or []) | set(tags))
                self.con.execute("UPDATE datasets SET tags = ? WHERE dataset_id = ?", [merged, row[0]])
                self._fill_substance(int(row[0]), records)
                return int(row[0])
            did = int(self.con.execute("SELECT coalesce(max(dataset_id), 0) + 1 FROM datasets").fetchone()[0])
            # the next rid past the table's rows and the files' ranges (from record_files, not the files)
            base = int(self.con.execute(
                f"""SELECT greatest((SELECT coalesce(max(rid), -1) FROM {self._table('records')}),
                                    (SELECT coalesce(max(rid_base + n_rows - 1), -1) FROM record_files)) + 1"""
            ).fetchone()[0])
            with self._source(records, RECORD_COLUMNS, with_rid=True, optional=SUBSTANCE_COLUMNS) as src:
                self._insert_records(src, did, base, path, int(n_records), band_file, record_files)
            self.con.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [did, name, fingerprint, str(path), fmt, schema, sorted(set(tags)), int(n_records),
                 _dumps(meta or {}), _now()])
            return did

    def _fill_substance(self, did: int, records: RecordsArg) -> None:
        """Give a dataset's rows stored before schema version 9 (in the ``records`` table) the word count and
        trivial class of their texts from the same dataset registered again (the catalog keeps no texts, so
        only a new registration can fill them in). Rows in record files keep theirs (null: the old rule)."""
        table = self._table("records")
        if not self.con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE dataset_id = ? AND n_words IS NULL "
                                "LIMIT 1)", [did]).fetchone()[0]:
            return
        with self._source(records, ("record_id",), optional=SUBSTANCE_COLUMNS) as src:
            self.con.execute(f"""UPDATE {table} r SET n_words = s.n_words, trivial = s.trivial FROM {src} s
                                 WHERE r.dataset_id = ? AND r.n_words IS NULL AND r.record_id = s.record_id""", [did])

    def band_keys_version(self) -> str | None:
        """Fingerprint version (``provaudit.fingerprint.FINGERPRINT_VERSION``) of the stored band keys;
        None while the catalog holds none."""
        rows = self.con.execute("SELECT value FROM catalog_info WHERE key = 'band_keys_version'").fetchall()
        return rows[0][0] if rows else None

    def _check_band_keys(self) -> None:
        """Refuse to compare or mix band keys of another fingerprint version: near-duplicate matches
        between the two would silently be missed."""
        from provaudit.fingerprint import FINGERPRINT_VERSION

        stored = self.band_keys_version()
        if stored is not None and stored != FINGERPRINT_VERSION:
            raise InputError(
                f"the catalog's band keys were computed by fingerprint {stored} and this provaudit computes "
                f"{FINGERPRINT_VERSION}, so near duplicates would be missed; register the datasets again "
                "into a new catalog", file=str(self.path))

    def _add_band_file(self, src: str | None, did: int, base: int, prepared: Path | None) -> None:
        """Band keys of a big dataset as a Parquet file of (band_key, row) sorted by key (``prepared``, e.g.
        by a Ray worker with :func:`write_band_file`, else written here from ``src``): put in place under a
        temporary name and renamed first, then referenced by ``band_files`` in the open transaction (a
        rollback removes it; a kill leaves an unreferenced file, which nothing reads and the next
        read-write open removes)."""
        import uuid

        name = f"bands-{did}-{uuid.uuid4().hex[:12]}.parquet"
        n = self._place(prepared, self.bands_dir / name, _BANDS_SQL.format(src=src))
        self.con.execute("INSERT INTO band_files VALUES (?, ?, ?, ?)", [did, name, n, base])
        self._bands_view()

    def _add_record_files(self, src: str, did: int, base: int, prepared: Sequence[Path] | None) -> None:
        """Records, metadata fields and text hashes of a big dataset as three Parquet files
        (:mod:`provaudit.catalog.files`), placed like a band file and referenced by one ``record_files`` row
        in the open transaction."""
        import uuid

        tag = f"{did}-{uuid.uuid4().hex[:12]}"
        names = [f"{kind}-{tag}.parquet" for kind in catalog_files.KINDS]
        counts = [self._place(prepared[i] if prepared else None, self.records_dir / name, sql)
                  for i, (name, sql) in enumerate(zip(names, catalog_files.file_sqls(src), strict=True))]
        self.con.execute("INSERT INTO record_files VALUES (?, ?, ?, ?, ?, ?, ?, true)", [did, *names, *counts[:2], base])
        self._views()

    def _insert_records(self, src: str, did: int, base: int, path: str, n_records: int = 0,
                        band_file: Path | None = None, record_files: Sequence[Path] | None = None) -> None:
        """Insert records, band keys and scalar metadata fields from a source view; the band keys of a
        dataset of ``BAND_FILE_RECORDS`` or more records (or given as ``band_file``) go to a Parquet file
        (:meth:`_add_band_file`), its records and fields of ``RECORD_FILE_RECORDS`` or more (or given as
        ``record_files``) to three (:meth:`_add_record_files`)."""
        from provaudit.fingerprint import FINGERPRINT_VERSION

        self._check_band_keys()
        if self.band_keys_version() is None:
            self.con.execute("INSERT INTO catalog_info VALUES ('band_keys_version', ?)", [FINGERPRINT_VERSION])
        try:
            in_files = record_files is not None or n_records >= catalog_files.RECORD_FILE_RECORDS
            if in_files:
                self._add_record_files(src, did, base, record_files)
            else:
                self.con.execute(
                    f"""INSERT INTO {self._table('records')} SELECT {base} + _row, {did}, record_id, source_row,
                        role, pair_id, text_hash, meta, n_words, trivial FROM {src}""")
            if band_file is not None or n_records >= BAND_FILE_RECORDS:
                self._add_band_file(src, did, base, band_file)
            else:
                self.con.execute(
                    f"""INSERT INTO {self._table('record_bands')} SELECT * FROM (
                            SELECT unnest(band_keys) AS band_key, {did}, {base} + _row
                            FROM {src} WHERE band_keys IS NOT NULL) ORDER BY band_key""")
            if not in_files:
                fields = FIELDS_SQL.format(row=f"{base} + s._row", dataset=str(did), src=f"{src} s", meta="s.meta")
                self.con.execute(f"INSERT INTO {self._table('record_fields')} SELECT * FROM ({fields}) ORDER BY 3, 4")
        except duckdb.Error as exc:
            raise InputError(f"cannot store records: {str(exc).splitlines()[0]}", file=str(path),
                             field="meta" if "json" in str(exc).lower() else None) from exc

    def datasets(self) -> pl.DataFrame:
        """All catalog datasets, oldest first."""
        return self.con.frame(
            "SELECT dataset_id, name, fingerprint, path, fmt, schema, tags, n_records, meta, added_at "
            "FROM datasets ORDER BY dataset_id")

    def resolve_dataset(self, ref: str) -> dict:
        """Find one dataset by name, fingerprint, fingerprint prefix (8+ chars) or stored path."""
        rows = self.con.execute(
            "SELECT dataset_id, name, fingerprint, path, fmt, schema, tags, n_records FROM datasets "
            "WHERE fingerprint = ? OR name = ? OR (length(?) >= 8 AND starts_with(fingerprint, ?)) "
            "OR path = ? OR path = ? ORDER BY dataset_id",
            [ref, ref, ref, ref, ref, str(Path(ref).resolve())]).fetchall()
        exact = [r for r in rows if r[2] == ref]
        rows = exact or rows
        if not rows:
            raise InputError(f"no catalog dataset named or fingerprinted {ref!r}", file=str(self.path))
        if len(rows) > 1:
            fps = ", ".join(f"{r[1]}={r[2][:12]}" for r in rows)
            raise InputError(f"{ref!r} matches several datasets ({fps}); give the fingerprint",
                             file=str(self.path))
        keys = ("dataset_id", "name", "fingerprint", "path", "fmt", "schema", "tags", "n_records")
        return dict(zip(keys, rows[0]))

    # -- overlap with the catalog ----------------------------------------------------------
    def overlap_report(self, records: RecordsArg, *, exclude_fingerprint: str | None = None) -> list[dict]:
        """Exact and near-duplicate overlap of a batch with every catalog dataset it touches.

        Only substantive batch texts count (:mod:`provaudit.contamination`): records the batch marks
        ``trivial`` (empty, short) and boilerplate (a short text recurring in many distinct rows of the
        batch and the catalog) are counted apart as ``trivial_records`` with examples. An output that
        matches a catalog output only under a different prompt is a reused response (``reused_records``),
        not a leak. A batch without the ``trivial``/``n_words`` (``role``/``pair_id``) columns (a records
        file of an older scan) counts every record (every output match).
        """
        from provaudit.contamination import OUTPUT_ROLES, boilerplate_sql, substantive_prompts_sql

        self._check_band_keys()
        if not self.con.execute("SELECT count(*) FROM (SELECT 1 FROM records LIMIT 1)").fetchone()[0]:
            return []  # an empty catalog: nothing to overlap with (and no need to read the batch)
        outs = ", ".join(f"'{r}'" for r in OUTPUT_ROLES)
        with self._source(records, BATCH_COLUMNS) as src:
            cols = {r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
            trivial = "trivial" if "trivial" in cols else "NULL::VARCHAR"
            n_words = "n_words" if "n_words" in cols else "1000000"
            pair = "pair_id" if "pair_id" in cols else "record_id"
            role = "role" if "role" in cols and "pair_id" in cols else "NULL::VARCHAR"
            text = "left(text, 80)" if "text" in cols else "NULL::VARCHAR"
            total = int(self.con.execute(f"SELECT count(DISTINCT record_id) FROM {src}").fetchone()[0])
            rows = self.con.execute(
                f"""WITH b AS (SELECT record_id, text_hash, band_keys, {trivial} AS trivial, {n_words} AS n_words,
                                      {pair} AS pair_id, {role} AS role, {text} AS snippet FROM {src}),
                    boiler AS ({boilerplate_sql('b', 'records')}),
                    bt AS (SELECT record_id, text_hash, band_keys, snippet, pair_id, role,
                                  coalesce(trivial, CASE WHEN text_hash IN (SELECT text_hash FROM boiler)
                                                         THEN 'boilerplate' END) AS why FROM b),
                    ex AS (SELECT DISTINCT b.record_id, r.rid, 0 AS kind FROM bt b
                           JOIN records r ON r.text_hash = b.text_hash),
                    bb AS (SELECT DISTINCT record_id, unnest(band_keys) AS band_key FROM bt),
                    nr AS (SELECT DISTINCT bb.record_id, rb.rid, 1 AS kind FROM bb
                           JOIN record_bands rb ON rb.band_key = bb.band_key),
                    -- each match with the catalog record's dataset, role and row (pair); a substantive batch
                    -- text's near match with a trivial catalog text (a stock line) is no match
                    m AS (SELECT m0.record_id, min(m0.kind) AS kind, r.dataset_id, r.role AS c_role,
                                 r.pair_id AS c_pair
                          FROM (SELECT * FROM ex UNION ALL SELECT * FROM nr) m0 JOIN records r USING (rid)
                          WHERE m0.kind = 0 OR r.trivial IS NULL
                             OR m0.record_id IN (SELECT record_id FROM bt WHERE why IS NOT NULL)
                          GROUP BY ALL),
                    t AS (SELECT record_id, any_value(why) AS why, any_value(snippet) AS snippet,
                                 any_value(role) AS role, any_value(pair_id) AS pair_id FROM bt GROUP BY record_id),
                    -- batch rows with a substantive prompt; matched catalog rows with one; prompt-to-prompt matches
                    bp AS (SELECT DISTINCT pair_id FROM t WHERE role = 'prompt' AND why IS NULL),
                    cp AS ({substantive_prompts_sql('records', '(SELECT dataset_id, c_pair AS pair_id FROM m)')}),
                    same AS (SELECT DISTINCT t.pair_id AS b_pair, m.dataset_id, m.c_pair FROM m JOIN t USING (record_id)
                             WHERE t.role = 'prompt' AND t.why IS NULL AND m.c_role = 'prompt'),
                    -- an output matching an output of another case (both rows prompted, prompts differ): reused
                    cls AS (SELECT m.dataset_id, m.record_id, m.kind,
                                   coalesce(t.role IN ({outs}) AND m.c_role IN ({outs}) AND cp.pair_id IS NOT NULL
                                            AND bp.pair_id IS NOT NULL AND s.b_pair IS NULL, false) AS reused
                            FROM m JOIN t USING (record_id)
                            LEFT JOIN cp ON cp.dataset_id = m.dataset_id AND cp.pair_id = m.c_pair
                            LEFT JOIN bp ON bp.pair_id = t.pair_id
                            LEFT JOIN same s ON s.b_pair = t.pair_id AND s.dataset_id = m.dataset_id
                                            AND s.c_pair = m.c_pair),
                    allm AS (SELECT dataset_id, record_id, min(kind) AS kind,
                                    min(kind) FILTER (WHERE NOT reused) AS leak_kind FROM cls GROUP BY ALL)
                    SELECT d.dataset_id, d.name, d.fingerprint, d.tags,
                           count(*) FILTER (WHERE leak_kind = 0 AND why IS NULL),
                           count(*) FILTER (WHERE leak_kind = 1 AND why IS NULL),
                           count(*) FILTER (WHERE why IS NOT NULL),
                           count(*) FILTER (WHERE why IS NOT NULL AND kind = 0),
                           list(record_id ORDER BY leak_kind, record_id)
                               FILTER (WHERE why IS NULL AND leak_kind IS NOT NULL)[1:{EXAMPLES}],
                           list({{'record_id': record_id, 'reason': why, 'match': CASE kind WHEN 0 THEN 'exact'
                                  ELSE 'near' END, 'text': snippet}} ORDER BY kind, record_id)
                               FILTER (WHERE why IS NOT NULL)[1:{EXAMPLES}],
                           count(*) FILTER (WHERE why IS NULL AND leak_kind IS NULL),
                           list({{'record_id': record_id, 'match': CASE kind WHEN 0 THEN 'exact' ELSE 'near' END,
                                  'text': snippet}} ORDER BY kind, record_id)
                               FILTER (WHERE why IS NULL AND leak_kind IS NULL)[1:{EXAMPLES}]
                    FROM allm JOIN t USING (record_id) JOIN datasets d USING (dataset_id)
                    WHERE ? IS NULL OR d.fingerprint <> ?
                    GROUP BY ALL ORDER BY d.dataset_id""",
                [exclude_fingerprint, exclude_fingerprint]).fetchall()
        out = []
        for did, name, fp, tags, n_ex, n_nr, n_tr, n_tr_ex, examples, trivial_ex, n_re, reused_ex in rows:
            out.append({
                "dataset": name, "dataset_id": int(did), "fingerprint": fp, "tags": list(tags or []),
                "batch_records": total, "exact_records": int(n_ex), "near_records": int(n_nr),
                "exact_rate": round(n_ex / total, 6) if total else 0.0,
                "near_rate": round(n_nr / total, 6) if total else 0.0,
                "examples": list(examples or []),
                "trivial_records": int(n_tr), "trivial_exact_records": int(n_tr_ex),
                "trivial_examples": [{k: v for k, v in e.items() if v is not None} for e in (trivial_ex or [])],
                "reused_records": int(n_re),
                "reused_examples": [{k: v for k, v in e.items() if v is not None} for e in (reused_ex or [])],
            })
        return out

    def erased_matches(self, records: RecordsArg) -> list[dict]:
        """Batch records whose hash (exact) or any band key (near) matches an erased record."""
        self._check_band_keys()
        if not self.con.execute("SELECT count(*) FROM (SELECT 1 FROM erased_records LIMIT 1)").fetchone()[0]:
            return []  # nothing was ever erased (the usual case): no need to read the batch
        with self._source(records, BATCH_COLUMNS) as src:
            rows = self.con.execute(
                f"""WITH ex AS (
                        SELECT DISTINCT b.record_id, e.erasure_id, 0 AS kind FROM {src} b
                        JOIN erased_records e ON e.text_hash = b.text_hash AND e.watch),
                    bb AS (SELECT DISTINCT record_id, unnest(band_keys) AS band_key FROM {src}),
                    nr AS (SELECT DISTINCT bb.record_id, eb.erasure_id, 1 AS kind FROM bb
                           JOIN erased_bands eb ON eb.band_key = bb.band_key)
                    SELECT record_id, erasure_id, min(kind) FROM (SELECT * FROM ex UNION ALL SELECT * FROM nr)
                    GROUP BY ALL ORDER BY record_id, erasure_id""").fetchall()
        return [{"record_id": r, "erasure_id": int(e), "match": "exact" if k == 0 else "near"}
                for r, e, k in rows]

    # -- record lookups (lineage) ------------------------------------------------------------
    _MATCH_COLS = ("r.dataset_id, d.name AS dataset, d.fingerprint, d.path, d.tags, r.record_id, r.source_row, "
                   "r.role, r.pair_id, r.text_hash, r.meta")

    def match_records(self, batch: RecordsArg, *, exclude_dataset_ids: Sequence[int] = ()) -> pl.DataFrame:
        """Catalog records matching each batch record: same hash (exact) or shared band keys (near).

        Columns: query_id, match (exact|near), shared_bands, rid and the catalog record's fields.
        """
        self._check_band_keys()
        excl = ", ".join(str(int(i)) for i in exclude_dataset_ids) or "-1"
        records, bands = "records", "record_bands"
        if isinstance(batch, pl.DataFrame) and batch.height <= SMALL_BATCH:
            # few queries: constant IN lists let DuckDB skip row groups (record_bands is stored
            # sorted by band_key per dataset), which keeps one lookup far below a second at 1M records
            hashes = ", ".join("'" + str(h).replace("'", "''") + "'" for h in batch["text_hash"].drop_nulls().unique())
            keys = ", ".join(str(int(k)) for k in batch["band_keys"].explode().drop_nulls().unique())
            records = f"(SELECT rid, text_hash FROM record_hashes WHERE text_hash IN ({hashes or 'NULL'}))"
            bands = f"(SELECT band_key, rid FROM record_bands WHERE band_key IN ({keys or 'NULL'}))"
        with self._source(batch, BATCH_COLUMNS) as src:
            return self.con.frame(
                f"""WITH ex AS (
                        SELECT DISTINCT b.record_id AS query_id, r.rid FROM {src} b
                        JOIN {records} r ON r.text_hash = b.text_hash),
                    bb AS (SELECT DISTINCT record_id, unnest(band_keys) AS band_key FROM {src}),
                    nr AS (
                        SELECT bb.record_id AS query_id, rb.rid, count(*) AS shared_bands FROM bb
                        JOIN {bands} rb ON rb.band_key = bb.band_key GROUP BY ALL),
                    m AS (
                        SELECT coalesce(ex.query_id, nr.query_id) AS query_id, coalesce(ex.rid, nr.rid) AS rid,
                               CASE WHEN ex.rid IS NOT NULL THEN 'exact' ELSE 'near' END AS match,
                               coalesce(nr.shared_bands, 0) AS shared_bands
                        FROM ex FULL OUTER JOIN nr ON ex.query_id = nr.query_id AND ex.rid = nr.rid)
                    SELECT m.query_id, m.match, m.shared_bands, m.rid, {self._MATCH_COLS}
                    FROM m JOIN records r ON r.rid = m.rid JOIN datasets d ON d.dataset_id = r.dataset_id
                    WHERE r.dataset_id NOT IN ({excl})
                    ORDER BY m.query_id, r.dataset_id, r.source_row, r.record_id""")

    def field_matches(self, key: str, value: str) -> pl.DataFrame:
        """Catalog records whose row metadata has ``key`` equal to ``value`` (scalars compared as text)."""
        return self.con.frame(
            f"""SELECT 'field' AS match, r.rid, {self._MATCH_COLS}
                FROM record_fields f JOIN records r ON r.rid = f.rid JOIN datasets d ON d.dataset_id = r.dataset_id
                WHERE f.key = ? AND f.value = ?
                ORDER BY r.dataset_id, r.source_row, r.record_id""", [key, value])

    def row_records(self, dataset_id: int, source_rows: Sequence[int]) -> pl.DataFrame:
        """All records (rid, record_id, source_row, role, text_hash, pair_id, meta) of the given rows of
        one dataset."""
        rows = ", ".join(str(int(r)) for r in sorted(set(source_rows))) or "NULL"
        return self.con.frame(
            f"""SELECT rid, record_id, source_row, role, text_hash, pair_id, meta FROM records
                WHERE dataset_id = ? AND source_row IN ({rows}) ORDER BY rid""", [int(dataset_id)])

    # -- checkpoints -----------------------------------------------------------------------
    def add_checkpoint(self, *, name: str, dataset_ids: Sequence[int], parent_id: int | None = None,
                       meta: dict | None = None) -> int:
        """Record a checkpoint trained on catalog datasets (optionally continued from a parent)."""
        with self.transaction():
            row = self.con.execute("SELECT checkpoint_id FROM checkpoints WHERE name = ?", [name]).fetchone()
            if row is not None:
                raise InputError(f"checkpoint {name!r} already exists", file=str(self.path))
            cid = int(self.con.execute(
                "SELECT coalesce(max(checkpoint_id), 0) + 1 FROM checkpoints").fetchone()[0])
            self.con.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                             [cid, name, parent_id, _now(), _dumps(meta or {})])
            for did in sorted(set(dataset_ids)):
                self.con.execute("INSERT INTO checkpoint_datasets VALUES (?, ?)", [cid, int(did)])
        return cid

    def checkpoints(self) -> pl.DataFrame:
        """Checkpoints with parent name and the fingerprints/names they were trained on."""
        return self.con.frame(
            """SELECT c.checkpoint_id, c.name, p.name AS parent, c.added_at,
                      list(d.name ORDER BY d.dataset_id) FILTER (WHERE d.name IS NOT NULL) AS trained_on,
                      list(d.fingerprint ORDER BY d.dataset_id) FILTER (WHERE d.name IS NOT NULL)
                          AS trained_on_fingerprints
               FROM checkpoints c LEFT JOIN checkpoints p ON p.checkpoint_id = c.parent_id
               LEFT JOIN checkpoint_datasets cd ON cd.checkpoint_id = c.checkpoint_id
               LEFT JOIN datasets d ON d.dataset_id = cd.dataset_id
               GROUP BY ALL ORDER BY c.checkpoint_id""")

    def tainted_checkpoints(self, dataset_ids: Sequence[int]) -> list[dict]:
        """Checkpoints trained on any of the datasets, plus all their descendants (via parents)."""
        if not dataset_ids:
            return []
        ids = ", ".join(str(int(d)) for d in sorted(set(dataset_ids)))
        rows = self.con.execute(
            f"""WITH RECURSIVE direct AS (
                    SELECT DISTINCT checkpoint_id FROM checkpoint_datasets WHERE dataset_id IN ({ids})),
                t(checkpoint_id, depth) AS (
                    SELECT checkpoint_id, 0 FROM direct
                    UNION SELECT c.checkpoint_id, t.depth + 1 FROM checkpoints c
                    JOIN t ON c.parent_id = t.checkpoint_id WHERE t.depth < 1000)
                SELECT c.checkpoint_id, c.name, p.name, min(t.depth),
                       (SELECT list(d.name ORDER BY d.dataset_id) FROM checkpoint_datasets cd
                        JOIN datasets d USING (dataset_id)
                        WHERE cd.checkpoint_id = c.checkpoint_id AND cd.dataset_id IN ({ids}))
                FROM t JOIN checkpoints c USING (checkpoint_id)
                LEFT JOIN checkpoints p ON p.checkpoint_id = c.parent_id
                GROUP BY ALL ORDER BY c.checkpoint_id""").fetchall()
        return [{"checkpoint": n, "checkpoint_id": int(i), "parent": p,
                 "via": "direct" if depth == 0 else "parent", "depth": int(depth),
                 "trained_on_affected": list(ds or [])} for i, n, p, depth, ds in rows]

    # -- erasures --------------------------------------------------------------------------
    def add_erasure(self, *, selector: str, rids: Sequence[int], datasets: Sequence[dict],
                    checkpoints: Sequence[dict], outputs: Sequence[dict]) -> int:
        """Record an erasure: the erased records' hashes and band keys, datasets, tainted checkpoints.

        Texts that records outside the erasure also hold (shared prompts, stock replies) are kept
        for the audit trail but not watched by :meth:`erased_matches`.
        """
        with self.transaction():
            eid = int(self.con.execute("SELECT coalesce(max(erasure_id), 0) + 1 FROM erasures").fetchone()[0])
            self.con.execute("INSERT INTO erasures VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [eid, _now(), selector, len(rids), _dumps(list(datasets)),
                              _dumps(list(checkpoints)), _dumps(list(outputs))])
            if rids:
                self.con.register("_erase_rids", pl.DataFrame({"rid": list(rids)}, schema={"rid": pl.Int64})
                                  .to_arrow())
                try:
                    # watch only texts that no other (kept) record has: a prompt many users share,
                    # or a stock reply, must not make every later batch "reintroduce" erased data
                    self.con.execute(
                        f"""INSERT INTO erased_records
                            SELECT {eid}, r.dataset_id, r.record_id, r.text_hash,
                                   NOT EXISTS (SELECT 1 FROM records o WHERE o.text_hash = r.text_hash
                                               AND o.rid NOT IN (SELECT rid FROM _erase_rids))
                            FROM records r SEMI JOIN _erase_rids e ON e.rid = r.rid ORDER BY r.rid""")
                    self.con.execute(
                        f"""INSERT INTO erased_bands
                            SELECT DISTINCT {eid}, b.band_key FROM record_bands b
                            JOIN records r ON r.rid = b.rid
                            SEMI JOIN (SELECT record_id, dataset_id FROM erased_records
                                       WHERE erasure_id = {eid} AND watch) w
                                ON w.record_id = r.record_id AND w.dataset_id = r.dataset_id
                            WHERE NOT EXISTS (SELECT 1 FROM record_bands o WHERE o.band_key = b.band_key
                                              AND o.rid NOT IN (SELECT rid FROM _erase_rids))""")
                finally:
                    self._unregister("_erase_rids")
        return eid

    def similar_kept_rows(self, dataset_id: int, rids: Sequence[int]) -> tuple[set[str], list[int]]:
        """For an erasure of records ``rids`` from one dataset: the text hashes they share with the
        dataset's other (kept) records, and the kept rows holding a near duplicate (a shared band key)
        of one of the other, unshared texts."""
        if not rids:
            return set(), []
        self.con.register("_sim_rids", pl.DataFrame({"rid": list(rids)}, schema={"rid": pl.Int64}).to_arrow())
        try:
            shared = {r[0] for r in self.con.execute(
                """SELECT DISTINCT r.text_hash FROM records r SEMI JOIN _sim_rids e ON e.rid = r.rid
                   WHERE EXISTS (SELECT 1 FROM records o WHERE o.dataset_id = r.dataset_id
                                 AND o.text_hash = r.text_hash AND o.rid NOT IN (SELECT rid FROM _sim_rids))"""
            ).fetchall()}
            near = [int(r[0]) for r in self.con.execute(
                """WITH keys AS (SELECT DISTINCT b.band_key FROM record_bands b SEMI JOIN _sim_rids e ON e.rid = b.rid)
                   SELECT DISTINCT r.source_row FROM record_bands b JOIN records r ON r.rid = b.rid
                   WHERE b.dataset_id = ? AND b.band_key IN (SELECT band_key FROM keys)
                     AND r.rid NOT IN (SELECT rid FROM _sim_rids)
                     AND r.text_hash NOT IN (SELECT text_hash FROM records SEMI JOIN _sim_rids USING (rid))
                   ORDER BY 1""", [int(dataset_id)]).fetchall()]
        finally:
            self._unregister("_sim_rids")
        return shared, near

    def erasures(self) -> pl.DataFrame:
        """Erasure history: what (selector), when, how many records, datasets, tainted checkpoints."""
        return self.con.frame(
            "SELECT erasure_id, created_at, selector, n_records, datasets, checkpoints, outputs "
            "FROM erasures ORDER BY erasure_id")

    # -- scans -----------------------------------------------------------------------------
    def add_scan(self, *, inputs: Sequence[dict], summary: dict, passed: bool | None) -> int:
        """Record one scan (time, inputs, summary metrics, gate verdict); returns scan_id."""
        with self.transaction():
            sid = int(self.con.execute("SELECT coalesce(max(scan_id), 0) + 1 FROM scans").fetchone()[0])
            self.con.execute("INSERT INTO scans VALUES (?, ?, ?, ?, ?)",
                             [sid, _now(), _dumps(list(inputs)), _dumps(summary), passed])
        return sid

    def scans(self) -> pl.DataFrame:
        """Scan history: scan_id, started_at, inputs (JSON), summary (JSON), passed."""
        return self.con.frame(
            "SELECT scan_id, started_at, inputs, summary, passed FROM scans ORDER BY scan_id")


@contextmanager
def open_catalog(catalog: Catalog | str | Path | None, *, read_only: bool = False,
                 wait: float | None = None) -> Iterator[Catalog]:
    """``with open_catalog(x) as cat``: reuse an open Catalog as is, or open one from a path (or the
    default) and close it on exit.

    A read-only open falls back to read-write when this process already holds the file open for
    writing (DuckDB refuses two configurations of one file in one process).
    """
    if isinstance(catalog, Catalog):
        yield catalog
        return
    try:
        cat = Catalog(catalog, read_only=read_only, wait=wait)
    except InputError as exc:
        if not (read_only and "configuration" in str(exc)):
            raise
        cat = Catalog(catalog, read_only=False, wait=wait)
    with cat:
        yield cat


def check_catalog(catalog: Catalog | str | Path | None, *, wait: float | None = None) -> Path:
    """Open and validate a catalog before any work is done (a scan calls it first): a file that is not
    a provaudit catalog, of a newer schema, or whose band keys another fingerprint version computed,
    fails here (exit 2) instead of after the work. A catalog that does not exist yet is fine (the
    commit creates it). Returns its path. Holds nothing afterwards."""
    if isinstance(catalog, Catalog):
        catalog._check_band_keys()
        return catalog.path
    path = Path(catalog) if catalog is not None else DEFAULT_PATH
    if path.is_dir():
        raise InputError("the catalog path is a directory; give a file such as catalog.duckdb", file=str(path))
    if path.exists():
        with open_catalog(path, read_only=True, wait=wait) as cat:
            cat._check_band_keys()
    return path
