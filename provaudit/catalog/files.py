"""Records of big datasets as Parquet files the catalog references (docs/lineage.md, migration 8).

A dataset of ``RECORD_FILE_RECORDS`` or more records keeps its ``records`` rows and its metadata
key/value rows (``record_fields``) in Parquet files in ``<catalog>.records/`` instead of the DuckDB
tables, plus a third file of its text hashes sorted by hash (the index a lookup by text uses);
``record_files`` references them with the dataset's first ``rid``. Every catalog open reads ``records``,
``record_fields`` and ``record_hashes`` (text_hash, rid) through temporary views over the tables and
those files (as ``record_bands`` over the band files), so lineage, overlap, erasure and the listings
answer the same either way.

The files hold no ``rid``: that is assigned by the commit, under the catalog's write lock. A record's
``rid`` is ``rid_base + row``, ``row`` being its position in the dataset's catalog part. So a Ray worker
can write the files before the commit (:func:`write_record_files`), and the commit only moves them in
place and adds one row: adding a billion-record dataset is a bulk file write plus one small commit.

A file is renamed into place before the row that references it is inserted, in the commit's
transaction; a failed commit removes the files it placed (:meth:`Catalog.transaction`), and one a
killed process left behind is referenced by nothing, so no reader sees it, and the next read-write
open removes it (:func:`sweep`).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from pathlib import Path

from provaudit.catalog.migrations import FIELDS_SQL

#: datasets of at least this many records keep their records and metadata key/value rows in Parquet
#: files the catalog references instead of the ``records`` / ``record_fields`` tables
RECORD_FILE_RECORDS = int(os.environ.get("PROVAUDIT_RECORD_FILE_RECORDS", "1000000"))
#: rows per Parquet row group of the catalog's files (lookups skip row groups by their min/max)
ROW_GROUP = 100_000

#: per-record columns of the substantive-text rule a catalog keeps since schema version 9 (name: SQL type);
#: records without them (an older scan's, an older records file) read them as null
SUBSTANCE_COLUMNS = {"n_words": "INTEGER", "trivial": "VARCHAR"}


def substance_select(present: Collection[str]) -> str:
    """The select list of :data:`SUBSTANCE_COLUMNS`: each column in ``present`` as is, the others as null."""
    return ", ".join(c if c in present else f"NULL::{kind} AS {c}" for c, kind in SUBSTANCE_COLUMNS.items())


#: the records file of a catalog part (``src`` has the part's columns and a 0-based ``_row``), with the
#: column types of the ``records`` table, in row (so ``rid``) order
RECORDS_SQL = """SELECT _row::BIGINT AS row, record_id::VARCHAR AS record_id, source_row::BIGINT AS source_row,
    role::VARCHAR AS role, pair_id::VARCHAR AS pair_id, text_hash::VARCHAR AS text_hash, meta::VARCHAR AS meta,
    n_words::INTEGER AS n_words, trivial::VARCHAR AS trivial
    FROM {src} ORDER BY _row"""


def fields_sql(src: str) -> str:
    """The metadata key/value file of a catalog part: (row, key, value) sorted by key and value (the
    order ``record_fields`` is inserted in, so a ``--field`` lookup skips row groups)."""
    inner = FIELDS_SQL.format(row="s._row", dataset="0", src=f"{src} s", meta="s.meta")
    return f"SELECT row::BIGINT AS row, key, value FROM ({inner}) t(row, d, key, value) ORDER BY key, value, row"


def part_source(records: str | Path) -> str:
    """A SQL table expression over a catalog part file, with its ``_row``."""
    lit = str(records).replace("'", "''")
    return f"(SELECT *, file_row_number AS _row FROM read_parquet('{lit}', file_row_number=true))"


def copy_to(con, sql: str, dest: str | Path) -> int:
    """``COPY (sql) TO dest`` as Parquet; returns the rows written (from the file's footer)."""
    lit = str(dest).replace("'", "''")
    con.execute(f"COPY ({sql}) TO '{lit}' (FORMAT PARQUET, ROW_GROUP_SIZE {ROW_GROUP})")
    return int(con.execute("SELECT count(*) FROM read_parquet(?)", [str(dest)]).fetchone()[0])


#: the text-hash file of a catalog part: (text_hash, row) sorted by hash, so a lookup of a few hashes reads
#: the row groups whose range holds them
HASHES_SQL = """SELECT text_hash::VARCHAR AS text_hash, _row::BIGINT AS row FROM {src}
    WHERE text_hash IS NOT NULL ORDER BY text_hash, _row"""

#: a dataset's files, in the order of ``record_files``' path columns
KINDS = ("records", "fields", "hashes")


def file_sqls(src: str) -> list[str]:
    """The SQL of each of a dataset's files (:data:`KINDS`) from a source with the part's columns and ``_row``."""
    return [RECORDS_SQL.format(src=src), fields_sql(src), HASHES_SQL.format(src=src)]


def write_record_files(records: str | Path, dests: list[Path] | tuple[Path, ...]) -> list[int]:
    """Write the records, metadata key/value and text-hash files (:data:`KINDS`) of a catalog part (the
    Parquet file ``add_dataset`` will get) to ``dests``, e.g. on a Ray worker before the commit; returns
    their row counts."""
    from provaudit.duck import spilling

    with spilling(dests[0]) as con:  # sorts of a whole dataset spill past the cap: memory flat in its size
        return [copy_to(con, sql, dest) for sql, dest in zip(file_sqls(part_source(records)), dests, strict=True)]


def place(prepared: Path, dest: Path) -> None:
    """Put a prepared file at ``dest`` (same folder as the catalog's files): a rename where both are on
    one file system (no bytes copied), else a copy."""
    try:
        os.replace(prepared, dest)
    except OSError:
        shutil.copyfile(prepared, dest)


def records_view(table: str, fields_table: str, files: list[tuple[int, str, str, str, int, bool]],
                 folder: Path) -> list[str]:
    """The statements that make ``records`` and ``record_fields`` read the tables plus the files, and
    ``record_hashes`` (text_hash, rid) the table's hashes plus the hash files (``files``: dataset_id, the
    files of :data:`KINDS`, rid_base, and whether the records file has ``n_words``/``trivial``: files
    written before schema version 9 do not, and read them as null)."""
    recs = [f"SELECT * FROM {table}"]
    flds = [f"SELECT * FROM {fields_table}"]
    hashes = [f"SELECT text_hash, rid FROM {table}"]
    for did, rec_name, fld_name, hash_name, base, substance in files:
        rec, fld, hsh = (str(folder / n).replace("'", "''") for n in (rec_name, fld_name, hash_name))
        rid, ds = f"{int(base)} + row AS rid", f"{int(did)}::INTEGER AS dataset_id"
        sub = substance_select(SUBSTANCE_COLUMNS if substance else ())
        recs.append(f"SELECT {rid}, {ds}, record_id, source_row, role, pair_id, text_hash, meta, {sub} "
                    f"FROM read_parquet('{rec}')")
        flds.append(f"SELECT {rid}, {ds}, key, value FROM read_parquet('{fld}')")
        hashes.append(f"SELECT text_hash, {rid} FROM read_parquet('{hsh}')")
    views = [("record_hashes", hashes)] + ([("records", recs), ("record_fields", flds)] if files else [])
    return [f"CREATE OR REPLACE TEMP VIEW {name} AS " + "\nUNION ALL ".join(parts) for name, parts in views]


#: names of the files the catalog writes into its folders (anything else there is left alone)
_OURS = ("bands-", "records-", "fields-", "hashes-")
#: files placed by a transaction still open in this process (the write lock is re-entrant within a thread,
#: so a nested read-write open must not sweep them)
IN_FLIGHT: set[Path] = set()


def sweep(folder: Path, referenced: set[str]) -> list[str]:
    """Remove the catalog files in ``folder`` that no committed row references (left by a process killed
    mid-commit): run by a read-write open, which holds the write lock, so no other process's commit is in
    flight, and which skips this process's open transactions' files (:data:`IN_FLIGHT`)."""
    removed = []
    if not folder.is_dir():
        return removed
    for p in sorted(folder.iterdir()):
        if p.name.startswith(_OURS) and p.name not in referenced and p.is_file() and p.resolve() not in IN_FLIGHT:
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed
