"""Numbered schema migrations of the DuckDB catalog.

Each release only appends migrations, never edits old ones, so a catalog written by one
release is upgraded in place by the next. ``schema_version`` holds one row per applied step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Migration:
    """One schema step: its number, a short description and the SQL statements it runs."""

    version: int
    description: str
    statements: tuple[str, ...]


#: Scalar metadata values -> record_fields(rid, dataset_id, key, value). Nested keys are dotted
#: (``account.user_id``), array elements take the array's key (``tags=x`` matches ``"tags": ["x"]``;
#: the first 32 elements), and only short values (<= 256 characters of JSON) are kept: field lookups
#: are for ids and categories, and the catalog must not hold texts twice.
FIELDS_SQL = """
    SELECT {row}, {dataset},
           regexp_replace(CASE WHEN j.path = '$' THEN j.key ELSE substr(j.fullkey, 3) END, '\\[[0-9]+\\]', '', 'g'),
           CASE WHEN j.type = 'VARCHAR' THEN j.value ->> '$' ELSE j.atom::VARCHAR END
    FROM {src}, json_tree({meta}) j
    WHERE {meta} IS NOT NULL AND starts_with(ltrim({meta}), '{{')
      AND j.type NOT IN ('OBJECT', 'ARRAY', 'NULL') AND length(j.value) <= 256
      AND NOT (ends_with(j.fullkey, ']') AND coalesce(TRY_CAST(j.key AS INTEGER), 0) >= 32)"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "datasets, records, band keys, scans", (
        """CREATE TABLE datasets (
            dataset_id INTEGER NOT NULL, name VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
            path VARCHAR, fmt VARCHAR, schema VARCHAR, tags VARCHAR[], n_records BIGINT,
            meta VARCHAR, added_at TIMESTAMP)""",
        """CREATE TABLE records (
            rid BIGINT NOT NULL, dataset_id INTEGER NOT NULL, record_id VARCHAR NOT NULL,
            source_row BIGINT, role VARCHAR, pair_id VARCHAR, text_hash VARCHAR, meta VARCHAR)""",
        "CREATE TABLE record_bands (band_key UBIGINT NOT NULL, dataset_id INTEGER NOT NULL, rid BIGINT NOT NULL)",
        """CREATE TABLE scans (
            scan_id INTEGER NOT NULL, started_at TIMESTAMP, inputs VARCHAR, summary VARCHAR,
            passed BOOLEAN)""",
    )),
    Migration(2, "checkpoint registry", (
        """CREATE TABLE checkpoints (
            checkpoint_id INTEGER NOT NULL, name VARCHAR NOT NULL, parent_id INTEGER,
            added_at TIMESTAMP, meta VARCHAR)""",
        "CREATE TABLE checkpoint_datasets (checkpoint_id INTEGER NOT NULL, dataset_id INTEGER NOT NULL)",
    )),
    Migration(3, "erasures", (
        """CREATE TABLE erasures (
            erasure_id INTEGER NOT NULL, created_at TIMESTAMP, selector VARCHAR, n_records BIGINT,
            datasets VARCHAR, checkpoints VARCHAR, outputs VARCHAR)""",
        """CREATE TABLE erased_records (
            erasure_id INTEGER NOT NULL, dataset_id INTEGER, record_id VARCHAR, text_hash VARCHAR,
            watch BOOLEAN)""",
        "CREATE TABLE erased_bands (erasure_id INTEGER NOT NULL, band_key UBIGINT NOT NULL)",
    )),
    Migration(4, "scalar metadata key/value table (backfilled) for --field lookups", (
        """CREATE TABLE record_fields (
            rid BIGINT NOT NULL, dataset_id INTEGER NOT NULL, key VARCHAR NOT NULL, value VARCHAR)""",
        "INSERT INTO record_fields "
        + FIELDS_SQL.format(row="r.rid", dataset="r.dataset_id", src="records r", meta="r.meta"),
    )),
    Migration(5, "catalog_info: the fingerprint version that computed the stored band keys", (
        "CREATE TABLE catalog_info (key VARCHAR NOT NULL, value VARCHAR)",
        # band keys stored before this step were all computed by the first fingerprint version
        """INSERT INTO catalog_info SELECT 'band_keys_version', 'pa-fp-v1'
           WHERE EXISTS (SELECT 1 FROM record_bands) OR EXISTS (SELECT 1 FROM erased_bands)""",
    )),
    Migration(6, "coverage_runs: eval-vs-production coverage runs (provaudit coverage) for the trend", (
        """CREATE TABLE coverage_runs (
            run_id INTEGER NOT NULL, created_at TIMESTAMP, eval_fingerprint VARCHAR,
            production_fingerprints VARCHAR, coverage DOUBLE, coverage_ci_low DOUBLE, coverage_ci_high DOUBLE,
            uncovered_top_share DOUBLE, stale_share DOUBLE, drift_p_value DOUBLE, drift_effect DOUBLE,
            drift_detected BOOLEAN, passed BOOLEAN, summary VARCHAR)""",
    )),
    Migration(7, "band_files: band keys of big datasets in Parquet files next to the catalog", (
        # a file holds (band_key, row) sorted by band_key; rid = rid_base + row
        """CREATE TABLE band_files (dataset_id INTEGER NOT NULL, path VARCHAR NOT NULL, n_rows BIGINT NOT NULL,
                                    rid_base BIGINT NOT NULL)""",
    )),
    Migration(8, "record_files: records and metadata fields of big datasets in Parquet files next to the catalog", (
        # path holds (row, record_id, source_row, role, pair_id, text_hash, meta) in row order, fields_path
        # (row, key, value) sorted by key and value, hashes_path (text_hash, row) sorted by hash;
        # rid = rid_base + row (provaudit.catalog.files)
        """CREATE TABLE record_files (dataset_id INTEGER NOT NULL, path VARCHAR NOT NULL, fields_path VARCHAR NOT NULL,
                                      hashes_path VARCHAR NOT NULL, n_rows BIGINT NOT NULL, n_fields BIGINT NOT NULL,
                                      rid_base BIGINT NOT NULL)""",
    )),
    Migration(9, "records keep each text's word count and trivial class (whether an eval row's question is substantive)", (
        # the catalog keeps no texts, so rows stored before this step cannot be backfilled: their n_words and
        # trivial stay null, which the reused-response rule reads as a substantive question (as before);
        # record files written before it lack the two columns (record_files.substance false)
        "ALTER TABLE records ADD COLUMN n_words INTEGER",
        "ALTER TABLE records ADD COLUMN trivial VARCHAR",
        "ALTER TABLE record_files ADD COLUMN substance BOOLEAN DEFAULT false",
    )),
)

LATEST_VERSION = MIGRATIONS[-1].version


def current_version(con: Any) -> int:
    """Schema version of an open catalog (0 for an empty database file)."""
    # duckdb_tables() rather than information_schema.tables: the same answer for a table, in 3 ms instead of
    # 12 on a fresh connection (every catalog open asks)
    has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'").fetchone()[0]
    if not has:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(con: Any, target: int = LATEST_VERSION) -> list[int]:
    """Apply every migration above the current version up to ``target`` in one transaction."""
    applied: list[int] = []
    def run(sql: str, params: list | None = None) -> None:
        con.execute(sql, params).fetchall()

    run("BEGIN TRANSACTION")
    try:
        run(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, description VARCHAR, "
            "applied_at TIMESTAMP DEFAULT current_timestamp)"
        )
        have = current_version(con)
        for m in MIGRATIONS:
            if have < m.version <= target:
                for sql in m.statements:
                    run(sql)
                run("INSERT INTO schema_version (version, description) VALUES (?, ?)",
                            [m.version, m.description])
                applied.append(m.version)
        run("COMMIT")
    except BaseException:
        run("ROLLBACK")
        raise
    return applied
