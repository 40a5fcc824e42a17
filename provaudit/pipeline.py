"""``scan`` and ``register``: stream files through the stages, write the outputs, commit once.

The per-batch work (:func:`process_batch`) is a pure function of one record batch, so the
same code runs in this process, in a local process pool (``workers``) or under Ray Data
(``engine="ray"``). Everything that needs the whole input (duplicate groups across batches,
the dataset fingerprint, overlap with the catalog) happens after the batches, over Parquet
parts on disk, so memory stays flat in the input size. The catalog is written once, in one
transaction, at the very end: a scan that fails leaves it exactly as it was.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from provaudit import dup_summary, interrupt
from provaudit import progress as progress_display
from provaudit.duck import connect, spill_connect
from provaudit.engine.tasks import release_memory
from provaudit.errors import InputError, UsageError
from provaudit.fingerprint import DatasetDigest
from provaudit.gate import CheckResult, evaluate_gate, gate_origin_mode, gate_summary, load_gate
from provaudit.io import RecordReader
from provaudit.io.fs import URIPath, location, output_location, parquet_file, publish, read_parquet_frames
from provaudit.stage import StageOptions, _rules, process_batch

SUMMARY_VERSION = 1
#: DuckDB cap of the summary thread, which runs next to the finalize step (its sample query needs little)
SUMMARY_MEMORY_LIMIT = "128MB"
ORIGIN_SAMPLE = 20_000  # records used for the corpus-level (distributional) estimates


@dataclass
class InputInfo:
    path: str
    dataset: str
    format: str
    schema: str
    rows: int
    records: int
    fingerprint: str
    bad_rows: list[dict[str, Any]]
    columns: list[str]
    mapping: dict[str, str] | None = None  # --map given at registration (erase re-reads the file with it)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "dataset": self.dataset, "format": self.format, "schema": self.schema,
                "rows": self.rows, "records": self.records, "fingerprint": self.fingerprint,
                "bad_rows": len(self.bad_rows), "columns": self.columns}


@dataclass
class ScanResult:
    """What a scan found. ``summary`` is exactly what ``summary.json`` holds."""

    summary: dict[str, Any]
    gate: list[CheckResult]
    records_path: Path | URIPath  # a URIPath where ``out`` was a URI (provaudit.io.fs)
    out_dir: Path | URIPath
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.gate)

    def records(self) -> pl.DataFrame:
        """The per-record table (every computed column), as written to ``records.parquet`` (a folder of
        parts in input order after ``engine="ray"``)."""
        return read_parquet_frames(self.records_path)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def _progress(enabled: bool, unit: str = "rows"):
    return progress_display.bar(enabled, unit)


def _estimate_rows(reader: RecordReader) -> int | None:
    """A cheap row count for the progress bar's ETA (None when it would cost a full parse)."""
    p = location(reader.path)
    try:
        if reader.fmt == "parquet":
            return parquet_file(p).metadata.num_rows
        if reader.fmt in ("jsonl", "csv", "tsv") and not p.name.endswith(".gz"):
            n = 0
            with p.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    n += chunk.count(b"\n")
                    if isinstance(p, URIPath):  # remote: scale the first 4 MiB's lines, not a full download
                        n = n * max(1, p.stat().st_size) // max(1, len(chunk))
                        break
            return max(n - (1 if reader.fmt != "jsonl" else 0), 1)
    except OSError:
        return None
    return None


def _run_batches(batches: Iterable[pl.DataFrame], options: StageOptions, workers: int) -> Iterator[pl.DataFrame]:
    """The local engine's per-batch stage: in this process, or a pool of ``workers`` processes (``--engine ray``
    reads and processes whole shards on the workers instead: :mod:`provaudit.engine.ray_scan`)."""
    if workers <= 1:
        for b in batches:
            yield process_batch(b, options)
        return
    from provaudit.engine.local import run_pool

    yield from run_pool(batches, options, workers)


def _open_readers(paths: Sequence[str | Path], names: Sequence[str] | None, mapping, skip_bad: bool,
                  batch_size: int, fmt: str | None, exclude: Sequence[Path] = ()) -> list[RecordReader]:
    """One reader per input file; glob patterns and folders of files expand first, leaving out the
    folders ``exclude`` (:func:`provaudit.io.inputs.expand_inputs`: both engines see the same list)."""
    from provaudit.io.inputs import expand_inputs

    readers = []
    seen: set[str] = set()
    for i, inp in enumerate(expand_inputs(paths, names, fmt, exclude)):
        r = RecordReader(inp.path, name=inp.name, mapping=mapping, skip_bad=skip_bad, batch_size=batch_size,
                         fmt=fmt)
        if r.name in seen:  # two files with one stem: keep record ids unique
            r.name = f"{r.name}-{i}"
        seen.add(r.name)
        readers.append(r)
    return readers


def _own_folders(out: str | Path | None, catalog: Any) -> list[Path]:
    """What a pattern or folder input must not pick up: the outputs a scan writes to ``out`` (a rerun
    would read the last scan's ``records.parquet`` and ``summary.json``) and the folders beside the
    catalog named after it (``catalog.duckdb.bands/``: the catalog's own Parquet files)."""
    from provaudit.catalog.store import DEFAULT_PATH

    cat = Path(getattr(catalog, "path", catalog)) if catalog is not None else DEFAULT_PATH
    beside = [p for p in cat.parent.iterdir() if p.name.startswith(cat.name + ".") and p.is_dir()] \
        if cat.parent.is_dir() else []
    return ([Path(out) / name for name in OUTPUTS] if out is not None else []) + sorted(beside)


AUTO_WORKERS_MIN_ROWS = 50_000  # below this, starting worker processes costs more than it saves


def _auto_workers(readers: list[RecordReader]) -> int:
    """``workers=0``: one process per core for large inputs, in-process for small ones."""
    rows = sum(_estimate_rows(r) or 0 for r in readers)
    return max(1, os.cpu_count() or 1) if rows >= AUTO_WORKERS_MIN_ROWS else 1


def _stream_inputs_ray(readers: list[RecordReader], options: StageOptions, parts_dir: Path, *,
                       progress: bool) -> list[InputInfo]:
    """``engine="ray"``: the workers read, parse and process shards of the inputs
    (:mod:`provaudit.engine.ray_scan`); the driver plans and folds per-shard facts."""
    from provaudit.engine.ray_scan import read_inputs

    with _progress(progress, unit="shards") as bar:
        task = bar.add_task("reading, fingerprinting, tagging on Ray", total=None)
        facts = read_inputs(readers, options, parts_dir,
                            on_shard=lambda _res, total: bar.update(task, advance=1, total=total))
    return [InputInfo(path=str(r.path), dataset=str(r.name), format=str(r.fmt), schema=f["schema"], rows=f["rows"],
                      records=f["records"], fingerprint=f["fingerprint"], bad_rows=f["bad_rows"],
                      columns=f["columns"], mapping=dict(r.mapping) if r.mapping else None)
            for r, f in zip(readers, facts)]


def _stream_inputs(readers: list[RecordReader], options: StageOptions, parts_dir: Path, *, workers: int,
                   engine: str, progress: bool) -> list[InputInfo]:
    """Run every input through the per-batch stages, writing Parquet parts; return per-input facts."""
    if engine == "ray":
        return _stream_inputs_ray(readers, options, parts_dir, progress=progress)
    infos = []
    offset = 0
    with _progress(progress) as bar:
        for n_in, reader in enumerate(readers):
            task = bar.add_task(f"reading, fingerprinting, tagging {location(reader.path).name}",
                                total=_estimate_rows(reader))
            digest = DatasetDigest()
            for part, out in enumerate(_run_batches(reader.batches(), options, workers)):
                out = out.with_columns(pl.int_range(offset, offset + out.height, dtype=pl.Int64).alias("_idx"))
                offset += out.height
                digest.update(out)
                # lz4: parts are scratch, read back two or three times; cheap to write and read
                out.write_parquet(parts_dir / f"part-{n_in:04d}-{part:06d}.parquet", compression="lz4")
                bar.update(task, completed=reader.n_rows)
            infos.append(InputInfo(
                path=str(reader.path), dataset=str(reader.name), format=str(reader.fmt),
                schema=reader.schema.name if reader.schema else "", rows=reader.n_rows,
                records=reader.n_records, fingerprint=digest.fingerprint(),
                bad_rows=[b.to_dict() for b in reader.bad_rows], columns=reader.columns_seen,
                mapping=dict(reader.mapping) if reader.mapping else None))
    return infos


FINALIZE_STEPS = 6  # SQL steps of _duplicate_tables, for the progress bar


def _finalize_records(con: duckdb.DuckDBPyConnection, parts_glob: str, records_path: Path,
                      step: Callable[[str], None] | None = None) -> None:
    """Exact and near-duplicate groups across the whole input, then the final records.parquet."""
    _duplicate_tables(con, parts_glob, step)
    _write_final_records(con, parts_glob, records_path)


def _duplicate_tables(con: duckdb.DuckDBPyConnection, parts_glob: str,
                      step: Callable[[str], None] | None = None) -> None:
    """View ``parts`` and table ``dup`` (``_idx``, ``exact_dup_of``, ``near_dup_of``) of the duplicate
    records across the whole input, in ``con``'s (private, in-memory) database: not TEMP objects, so
    other cursors of the connection see them too."""
    step = step or (lambda _desc: None)
    con.execute(f"CREATE VIEW parts AS SELECT * FROM read_parquet('{parts_glob}')")
    # grouped aggregates and hash joins (not window functions or DISTINCT ON sorts) so DuckDB can
    # spill to disk under memory_limit: a 1M-row input needs far more than the cap
    con.execute("""
        CREATE TABLE exact AS
        SELECT p._idx, p.record_id, p.text_hash, f.first_rid
        FROM (SELECT _idx, record_id, text_hash FROM parts) p
        JOIN (SELECT text_hash, arg_min(record_id, _idx) AS first_rid FROM parts GROUP BY text_hash) f
        USING (text_hash)""")
    step("exact groups")
    # band keys of one record per distinct text (its earliest): the only ones near_dup_of can name or
    # be set on, and each such record stands for one text, so no per-text DISTINCT is needed
    con.execute("""
        CREATE TABLE bands AS
        SELECT _idx, unnest(band_keys) AS k FROM parts
        WHERE _idx IN (SELECT min(_idx) FROM parts GROUP BY text_hash)""")
    step("band keys")
    # near-duplicate representative: the earliest record sharing any band key, among other texts
    con.execute("""
        CREATE TABLE key_first AS
        SELECT k, min(_idx) AS first_idx FROM bands GROUP BY k HAVING count(*) > 1""")
    step("shared band keys")
    con.execute("""
        CREATE TABLE near AS
        SELECT b._idx, min(f.first_idx) AS near_idx
        FROM bands b JOIN key_first f USING (k)
        GROUP BY b._idx HAVING min(f.first_idx) < b._idx""")
    step("near-duplicate groups")
    con.execute("""
        CREATE TABLE near_rid AS
        SELECT n._idx, p.record_id AS near_dup_of, p.text_hash AS near_hash
        FROM near n JOIN (SELECT _idx, record_id, text_hash FROM parts) p ON p._idx = n.near_idx""")
    step("near-duplicate representatives")
    # only the (few) records that are duplicates; the wide rows are joined part by part below
    con.execute("""
        CREATE TABLE dup AS
        SELECT e._idx,
               CASE WHEN e.first_rid <> e.record_id THEN e.first_rid END AS exact_dup_of,
               CASE WHEN e.first_rid = e.record_id AND r.near_hash IS DISTINCT FROM e.text_hash
                    THEN r.near_dup_of END AS near_dup_of
        FROM exact e LEFT JOIN near_rid r USING (_idx)
        WHERE e.first_rid <> e.record_id OR r.near_dup_of IS NOT NULL""")
    # the intermediate tables (the band-key table alone is 16 rows per distinct text) are not needed
    # again: dropping them frees DuckDB's memory before the catalog work that runs next to the writer
    for table in ("near_rid", "near", "key_first", "bands", "exact"):
        con.execute(f"DROP TABLE {table}")
    step("duplicate table")


def _write_final_records(con: duckdb.DuckDBPyConnection, parts_glob: str, records_path: Path) -> None:
    """records.parquet: the parts in input order with the duplicate columns (atomically replaced).
    Uses a cursor of its own, so it can run in a thread next to other work on ``con``."""
    tmp = records_path.with_suffix(".parquet.tmp")
    part_files = sorted(Path(parts_glob).parent.glob(Path(parts_glob).name))  # names sort in _idx order
    with con.cursor() as cur:
        if not _write_records(cur, part_files, tmp):  # no records at all: let DuckDB write the empty table
            cur.execute(f"""
                COPY (SELECT p.* EXCLUDE (_idx), NULL::VARCHAR AS exact_dup_of, NULL::VARCHAR AS near_dup_of
                      FROM parts p) TO '{tmp}' (FORMAT PARQUET, COMPRESSION ZSTD)""")
    os.replace(tmp, records_path)


def _write_records(con: duckdb.DuckDBPyConnection, part_files: list[Path], dest: Path) -> bool:
    """Stream the parts into ``dest`` in input order, adding the duplicate columns; memory is two parts.

    (One DuckDB join + ORDER BY over the full rows needs the whole text column sorted and ran
    out of its memory cap at 1M rows; the parts are already in order.) The next part is read and
    joined in a thread while the current one is compressed and written (both release the GIL).
    """
    def prepare(f: Path):
        frame = pl.read_parquet(f)
        if frame.height == 0:
            return None
        lo, hi = int(frame["_idx"].min()), int(frame["_idx"].max())
        dup = con.sql(f"SELECT _idx, exact_dup_of, near_dup_of FROM dup WHERE _idx BETWEEN {lo} AND {hi}").pl()
        dup = dup.cast({"_idx": pl.Int64, "exact_dup_of": pl.String, "near_dup_of": pl.String})
        return frame.join(dup, on="_idx", how="left", maintain_order="left").drop("_idx").to_arrow()

    from provaudit.io.sink import ParquetSink

    with ParquetSink(dest) as sink, ThreadPoolExecutor(1, thread_name_prefix="provaudit-parts") as ex:
        ahead = ex.submit(prepare, part_files[0]) if part_files else None
        for k in range(len(part_files)):
            table = ahead.result()
            ahead = ex.submit(prepare, part_files[k + 1]) if k + 1 < len(part_files) else None
            if table is not None:
                sink.write(table)
    return sink.written


def _duplicate_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """``summary["duplicates"]`` from the ``parts`` view and ``dup`` table of ``_duplicate_tables``.

    Only substantive records count as duplicates (:mod:`provaudit.contamination`); duplicates of
    trivial texts (empty, short, boilerplate recurring in many rows) are counted apart, and empty
    output records are a finding of their own (``empty_records``)."""
    from provaudit.contamination import boilerplate_sql

    cols = {r[0] for r in con.execute("DESCRIBE SELECT * FROM parts").fetchall()}
    triv = "p.trivial" if "trivial" in cols else "NULL::VARCHAR"
    boiler = (f"({boilerplate_sql('parts')})" if "n_words" in cols else
              "(SELECT NULL::VARCHAR AS text_hash WHERE false)")
    src = f"""(SELECT p.role, p.record_id, d.exact_dup_of, d.near_dup_of, left(p.text, 80) AS snippet,
                      coalesce({triv}, CASE WHEN p.text_hash IN {boiler} THEN 'boilerplate' END) AS why
               FROM parts p LEFT JOIN dup d USING (_idx))"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE dup_src AS SELECT * FROM {src} WHERE exact_dup_of IS NOT NULL "
                "OR near_dup_of IS NOT NULL OR why = 'empty'")
    counts = {r[0]: r[1:] for r in con.execute("SELECT role, count(*) FROM parts GROUP BY role").fetchall()}
    rows = con.execute("""
        SELECT role, count(exact_dup_of) FILTER (WHERE why IS NULL), count(near_dup_of) FILTER (WHERE why IS NULL),
               count(*) FILTER (WHERE why IS NOT NULL AND (exact_dup_of IS NOT NULL OR near_dup_of IS NOT NULL)),
               count(*) FILTER (WHERE why = 'empty')
        FROM dup_src GROUP BY role""").fetchall()
    found = {r[0]: r[1:] for r in rows}
    roles = dup_summary.by_role({role: (c[0], *found.get(role, (0, 0, 0, 0))) for role, c in counts.items()})
    outputs = "role <> 'prompt'" if dup_summary.outputs_only(roles) else "true"
    examples = con.execute(f"""
        SELECT record_id, exact_dup_of FROM dup_src
        WHERE exact_dup_of IS NOT NULL AND why IS NULL AND {outputs} ORDER BY record_id LIMIT 5""").fetchall()
    near_examples = con.execute(f"""
        SELECT record_id, near_dup_of FROM dup_src
        WHERE near_dup_of IS NOT NULL AND why IS NULL AND {outputs} ORDER BY record_id LIMIT 5""").fetchall()
    trivial_examples = con.execute(f"""
        SELECT record_id, coalesce(exact_dup_of, near_dup_of), why, snippet FROM dup_src
        WHERE why IS NOT NULL AND (exact_dup_of IS NOT NULL OR near_dup_of IS NOT NULL) AND {outputs}
        ORDER BY record_id LIMIT 5""").fetchall()
    empty_examples = con.execute(f"""
        SELECT record_id FROM dup_src WHERE why = 'empty' AND {outputs} ORDER BY record_id LIMIT 5""").fetchall()
    con.execute("DROP TABLE dup_src")
    return dup_summary.assemble(roles, examples, near_examples, trivial_examples, empty_examples)


def _sample_frame(con: duckdb.DuckDBPyConnection, src: str, columns: str, n: int) -> pl.DataFrame:
    """A deterministic sample (by content hash) of output records of ``src`` (a SQL table expression
    over the Parquet parts, with ``_idx``), for corpus-level estimates."""
    # the top-n pick reads narrow columns; only the picked rows' wide columns are read back (by _idx,
    # the record's position in the scan, unique)
    return con.sql(f"""
        WITH pick AS (
            SELECT _idx, hash(text_hash, record_id) AS _h, record_id AS _rid FROM {src}
            WHERE role <> 'prompt' ORDER BY _h, _rid LIMIT {int(n)})
        SELECT {columns} FROM {src} s JOIN pick USING (_idx) ORDER BY pick._h, pick._rid""").pl()


def _origin_summary(con: duckdb.DuckDBPyConnection, src: str, seed: int, options: StageOptions) -> dict[str, Any]:
    from provaudit.origin import summarize_origin

    cols = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
    if "origin" not in cols:
        return {}
    total = con.execute(f"SELECT count(*) FROM {src} WHERE role <> 'prompt'").fetchall()[0][0]
    if total == 0:
        return {}
    drop = "band_keys, _idx" if "_idx" in cols else "band_keys"
    if total <= ORIGIN_SAMPLE:
        frame = con.sql(f"SELECT * EXCLUDE ({drop}) FROM {src} WHERE role <> 'prompt' ORDER BY record_id").pl()
        summary = summarize_origin(frame, seed=seed, rules=_rules(options.rules_dirs))
        summary["sampled"] = False
    else:
        frame = _sample_frame(con, src, f"s.* EXCLUDE ({drop})", ORIGIN_SAMPLE)
        summary = summarize_origin(frame, seed=seed, rules=_rules(options.rules_dirs))
        summary["sampled"] = True
        summary["sample_size"] = frame.height
    summary["scope"] = "output records (chosen, rejected, response, text); prompts are tagged per record only"
    if options.origin_mode == "sampled":
        from provaudit.origin.tagging import lm_sample_estimate

        summary["lm_sample"] = lm_sample_estimate(frame, n=options.lm_sample, seed=seed, device=options.device,
                                                  rules=_rules(options.rules_dirs))
    return summary


PAIR_SAMPLE = 5_000  # preference pairs used for the label-origin signature


def _teacher_summary(con, src: str, teacher: str | Path, human: str | Path | None, seed: int) -> dict[str, Any]:
    """Teacher likeness of the batch's outputs, diversity and, for preference data, the label-origin signature."""
    from provaudit.style import teacher_summary

    frame = _sample_frame(con, src, "s.text", ORIGIN_SAMPLE)
    pairs = con.sql(f"""
        SELECT pair_id, role, text, meta, record_id FROM {src}
        WHERE pair_id IN (SELECT DISTINCT pair_id FROM {src} WHERE role IN ('chosen', 'rejected')
                          ORDER BY pair_id LIMIT {PAIR_SAMPLE})
        ORDER BY pair_id, record_id""").pl()
    return teacher_summary(frame["text"].to_list(), teacher, human, seed=seed,
                           pairs=pairs if pairs.height else None)


def _corpus_summaries(parts_glob: str, work: Path, origin: bool, teacher: str | Path | None,
                      human: str | Path | None, seed: int, options: StageOptions) -> dict[str, Any]:
    """``summary["origin"]`` and ``summary["teacher"]`` from the Parquet parts. They need no duplicate
    groups, so ``scan`` runs this in a thread while DuckDB finalizes (both mostly release the GIL)."""
    out: dict[str, Any] = {}
    if not origin and not teacher:
        return out
    src = f"read_parquet('{parts_glob}')"
    con = connect(temp_directory=str(work / "duck-summary"), threads=1, memory_limit=SUMMARY_MEMORY_LIMIT)
    try:
        if origin:
            out["origin"] = _origin_summary(con, src, seed, options)
        if teacher:
            out["teacher"] = _teacher_summary(con, src, teacher, human, seed)
    finally:
        con.close()
    return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def dumps_summary(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@progress_display.with_session()
def scan(paths: Sequence[str | Path] | str | Path, *, catalog: str | Path | None = None,
         out: str | Path | None = None, gate: str | Path | None = None, names: Sequence[str] | None = None,
         mapping: Mapping[str, str] | None = None, fmt: str | None = None, skip_bad: bool = False,
         tags: Sequence[str] = ("scan",), record: bool = True, origin: bool = True,
         origin_mode: str | None = None, rules_dirs: Sequence[str | Path] = (), teacher: str | Path | None = None,
         human: str | Path | None = None, batch_size: int = 10_000, workers: int = 0, engine: str = "local",
         progress: bool = False, seed: int = 0, wait: float | None = None,
         strict: bool = False, device: str = "cpu", lm_sample: int = 400,
         work_dir: str | Path | None = None) -> ScanResult:
    """Scan label or fine-tune files: fingerprint, duplicates, overlap with the catalog, origin, gate.

    Writes ``records.parquet``, ``summary.json`` and ``summary.md`` to ``out`` (a temporary
    directory owned by the result when ``out`` is None), evaluates the checks in ``gate`` (a
    YAML file such as ``rules/gate.yaml``; no checks when None), records the scan in the catalog
    and, when the gate passes and ``record`` is true, adds each input as a catalog dataset tagged
    ``tags``. ``workers=0`` picks one worker process per core for inputs of 50,000 rows or more.

    The catalog is opened and validated first (a bad catalog fails before any work), read only
    read-only during the work, and written once at the end under its write lock (queueing up to
    ``wait`` seconds behind other writers; see :mod:`provaudit.catalog.lock`). The outputs are
    written under the work folder and renamed into ``out`` only after that commit.

    ``paths`` and ``out`` may be URIs of any installed fsspec filesystem (``file://``, ``s3://``, ...;
    :mod:`provaudit.io.fs`). The scratch work folder (parts, shuffle files, DuckDB spill) is made in
    ``work_dir``: by default under ``out`` when ``out`` is a local folder, in the system's temporary
    folder when it is a URI; ``engine="ray"`` with a URI ``out`` needs ``work_dir`` on storage every
    node sees. Outputs go to a URI ``out`` after the commit, ``summary.json`` last (its completion marker).
    ``strict`` fails every gate check whose metric the summary lacks (a stage that did not run).
    ``origin_mode``: ``fast`` (stylometric), ``full`` (+ the bundled language model on every record of
    50+ words, on ``device``), ``sampled`` (fast tags; the language model on ``lm_sample`` output records
    for the corpus-level estimate, ``summary["origin"]["lm_sample"]``); None: the gate file's
    ``origin_mode`` if it names one, else ``fast``.
    """
    from provaudit.catalog.store import check_catalog

    if isinstance(paths, (str, Path)):
        paths = [paths]
    if engine not in ("local", "ray"):
        raise UsageError(f"unknown engine {engine!r}; use local or ray")
    out_loc = output_location(out) if out is not None else None
    if isinstance(out_loc, URIPath) and engine == "ray" and work_dir is None:
        raise UsageError(f"--out {out} is a URI: a Ray scan needs --work-dir, a folder at the same path on every "
                         "node (the scratch parts and shuffle files)")
    checks = load_gate(gate) if gate is not None else []
    origin_mode = origin_mode or gate_origin_mode(gate) or "fast"
    readers = _open_readers(paths, names, mapping, skip_bad, batch_size, fmt, exclude=_own_folders(out, catalog))
    catalog_path = check_catalog(catalog, wait=wait)
    options = StageOptions(origin=origin, origin_mode=origin_mode, rules_dirs=tuple(str(d) for d in rules_dirs),
                           device=device, lm_sample=lm_sample)
    if origin and origin_mode == "full":
        batch_size = min(batch_size, 256)  # LM scoring runs at texts/s: small batches keep the progress bar moving
    tmp_holder = None
    if out is None:
        tmp_holder = tempfile.TemporaryDirectory(prefix="provaudit-scan-")
        out_dir = Path(tmp_holder.name)
    else:
        out_dir = out_loc
        if isinstance(out_dir, Path):
            out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    work, stage_root, remote_records = _work_folders(out_dir, work_dir, engine)
    try:
        parts = work / "parts"
        parts.mkdir()
        workers = _auto_workers(readers) if workers <= 0 else workers
        interrupt.phase("reading and fingerprinting the input")
        infos = _stream_inputs(readers, options, parts, workers=workers, engine=engine, progress=progress)
        release_memory()  # what the batches left in the allocators, before the DuckDB steps take their share
        # the outputs are complete here before the commit renames them into out: on out's filesystem (a
        # local out with a --work-dir elsewhere gets a folder of its own there: rename, not copy, at commit)
        staged = (stage_root if stage_root is not None else work) / "outputs"
        staged.mkdir()
        progress_display.step("duplicate grouping: starting")
        glob = str(parts / "*.parquet")
        # Three things overlap here: a thread computes the origin and teacher summaries from the parts
        # (they need no duplicate groups) while DuckDB finds the duplicate groups; then another writes
        # records.parquet while the duplicate summary and the (read-only) catalog checks proceed. The
        # catalog commits only once records.parquet is written.
        if engine == "ray":
            summary, results = _finalize_ray(
                infos, parts, work, remote_records or staged, catalog_path, checks, strict=strict, origin=origin,
                teacher=teacher, human=human, seed=seed, options=options, wait=wait)
            passed = summary["gate"]["passed"]
            summary["catalog"] = {"recorded": bool(record and passed)}
            datasets = _dataset_parts_ray(infos, glob, work) if record and passed else []
        else:
            with ThreadPoolExecutor(2, thread_name_prefix="provaudit-finalize") as pool:
                with interrupt.blocked():  # submit holds the pool's lock its shutdown needs
                    corpus = pool.submit(_corpus_summaries, glob, work, origin, teacher, human, seed, options)
                running = [corpus]
                con = spill_connect(work / "duck")  # spill: RSS flat in input size
                try:
                    interrupt.phase("finding duplicate groups")
                    with _progress(progress, unit="steps") as bar:  # the cross-batch step is long on big inputs
                        task = bar.add_task("finalize: duplicate groups", total=FINALIZE_STEPS)
                        _duplicate_tables(con, glob, step=lambda d: bar.update(task, advance=1,
                                                                               description=f"finalize: {d}"))
                    with interrupt.blocked():
                        writing = pool.submit(_write_final_records, con, glob, staged / "records.parquet")
                    progress_display.step("duplicate summary")
                    running.append(writing)
                    summary: dict[str, Any] = {
                        "version": SUMMARY_VERSION,
                        "input": _input_summary(infos),
                        "duplicates": _duplicate_summary(con),
                    }
                    progress_display.step("origin and teacher estimates")
                    interrupt.phase("summarizing origin and checking the catalog")
                    summary.update(interrupt.result(corpus))
                    progress_display.step("catalog checks: overlap and erased records")
                    overlap, itself, erased = _catalog_checks(catalog_path, glob, {i.fingerprint for i in infos}, wait)
                    summary["overlap"] = {**_overlap_summary(overlap), "skipped_identical": itself}
                    summary["erased"] = {"reintroduced": len(erased), "examples": erased[:5]}
                    results = evaluate_gate(summary, checks, strict=strict)
                    summary["gate"] = gate_summary(results, strict=strict)
                    passed = summary["gate"]["passed"]
                    summary["catalog"] = {"recorded": bool(record and passed)}
                    datasets = _catalog_parts(infos, glob, work, con) if record and passed else []
                    interrupt.phase("writing records.parquet")
                    progress_display.step("writing records.parquet")
                    interrupt.result(writing)
                finally:
                    wait_all(running)  # never close the connection under a running writer
                    con.close()
        progress_display.step("writing summary")
        _write_atomic(staged / "summary.json", dumps_summary(summary))
        from provaudit.report.scan import render_scan_markdown

        _write_atomic(staged / "summary.md", render_scan_markdown(summary))
        scan_row = {"inputs": [i.to_dict() for i in infos],
                    "summary": {**summary, "run": {"started_at": started.isoformat(timespec="seconds")}},
                    "passed": passed}
        placed = out_dir if isinstance(out_dir, Path) else work / "publish"
        placed.mkdir(exist_ok=True)
        _commit(catalog_path, datasets, tags, scan_row, staged, placed, wait)
        if isinstance(out_dir, URIPath):
            progress_display.step(f"writing the outputs to {out_dir}")
            with interrupt.critical(f"writing the outputs to {out_dir}"):
                publish(placed, out_dir, records=remote_records / "records.parquet" if remote_records else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if stage_root is not None:
            shutil.rmtree(stage_root, ignore_errors=True)
        if remote_records is not None:
            _remove_quietly(remote_records)
    return ScanResult(summary=summary, gate=results, records_path=out_dir / "records.parquet", out_dir=out_dir,
                      _tmp=tmp_holder)


OUTPUTS = ("records.parquet", "summary.json", "summary.md")


def _work_folders(out_dir: Path | URIPath, work_dir: str | Path | None,
                  engine: str) -> tuple[Path, Path | None, URIPath | None]:
    """The scan's scratch folder (in ``work_dir``; default: ``out_dir`` if local, else the temporary
    folder), a folder on a local ``out_dir`` for the staged outputs when the scratch is elsewhere (so the
    commit renames them, never copies across filesystems), and, for ``engine="ray"`` with a URI
    ``out_dir``, the staging prefix there that the workers write ``records.parquet`` under."""
    local_out = isinstance(out_dir, Path)
    base = Path(work_dir) if work_dir is not None else (out_dir if local_out else Path(tempfile.gettempdir()))
    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(base)
    if local_out and out_dir != base:
        _remove_stale_work(out_dir)  # output folders of killed scans
    work = Path(tempfile.mkdtemp(prefix=f".provaudit-work-{os.getpid()}-", dir=base))
    try:
        stage_root = (Path(tempfile.mkdtemp(prefix=f".provaudit-work-{os.getpid()}-", dir=out_dir))
                      if local_out and out_dir != base else None)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    remote = (out_dir / f".provaudit-staging-{work.name.removeprefix('.provaudit-work-')}"
              if not local_out and engine == "ray" else None)
    return work, stage_root, remote


def _finalize_ray(infos: list[InputInfo], parts: Path, work: Path, staged: Path, catalog_path: Path,
                  checks: list, *, strict: bool, origin: bool, teacher: str | Path | None, human: str | Path | None,
                  seed: int, options: StageOptions, wait: float | None) -> tuple[dict[str, Any], list[CheckResult]]:
    """``engine="ray"``: duplicate groups and ``records.parquet`` (a folder of parts) on the cluster
    (:mod:`provaudit.engine.ray_dups`), the origin/teacher estimates in a Ray task meanwhile; the driver
    adds up the shards' duplicate counts and runs the catalog checks and the gate."""
    import ray

    from provaudit.engine.ray_dups import finalize
    from provaudit.engine.ray_scan import POS_BITS, cancel, get_all
    from provaudit.engine.tasks import Task

    glob = str(parts / "*.parquet")
    corpus = Task(ray, _corpus_summaries, num_cpus=1, max_retries=0).remote(
        glob, work, origin, teacher, human, seed, options)
    try:
        interrupt.phase("finding duplicate groups")
        summary: dict[str, Any] = {"version": SUMMARY_VERSION, "input": _input_summary(infos),
                                   "duplicates": finalize(parts, work / "shuffle", staged / "records.parquet",
                                                          pos_bits=POS_BITS, records=sum(i.records for i in infos),
                                                          step=progress_display.step)}
        interrupt.phase("summarizing origin and checking the catalog")
        summary.update(get_all([corpus])[0])
    except BaseException:
        cancel([corpus])
        raise
    own = {i.fingerprint for i in infos}
    if os.environ.get("PROVAUDIT_RAY_OVERLAP", "cluster") == "driver":  # the DuckDB check on the driver
        overlap, itself, erased = _catalog_checks(catalog_path, glob, own, wait)
        n_erased = len(erased)
    else:  # on the cluster (provaudit.engine.ray_overlap): the driver merges per-partition facts
        from provaudit.engine.ray_dups import partition_count
        from provaudit.engine.ray_overlap import catalog_checks

        n = sum(i.records for i in infos)
        overlap, itself, erased, n_erased = catalog_checks(catalog_path, parts, work, own, wait, records=n,
                                                           partitions=partition_count(n), step=progress_display.step)
    summary["overlap"] = {**_overlap_summary(overlap), "skipped_identical": itself}
    summary["erased"] = {"reintroduced": n_erased, "examples": erased[:5]}
    results = evaluate_gate(summary, checks, strict=strict)
    summary["gate"] = gate_summary(results, strict=strict)
    return summary, results


def _dataset_parts_ray(infos: list[InputInfo], glob: str, work: Path) -> list[tuple[InputInfo, Path]]:
    """:func:`_dataset_parts` in a Ray task (it reads every part) instead of on the driver."""
    import ray

    from provaudit.catalog.files import RECORD_FILE_RECORDS
    from provaudit.catalog.store import BAND_FILE_RECORDS
    from provaudit.engine.ray_scan import get_all
    from provaudit.engine.tasks import Task

    return get_all([Task(ray, _dataset_parts_and_bands, num_cpus=1, max_retries=0).remote(
        infos, glob, work, BAND_FILE_RECORDS, RECORD_FILE_RECORDS)])[0]


def _dataset_parts_and_bands(infos: list[InputInfo], glob: str, work: Path, min_records: int,
                             min_record_files: int | None = None,
                             spill: duckdb.DuckDBPyConnection | None = None) -> list[tuple[InputInfo, Path]]:
    """:func:`_dataset_parts`, plus the band-key file (``<part>.bands.parquet``) of each input of
    ``min_records`` or more records and the records, metadata-field and text-hash files
    (``<part>.records.parquet`` ...) of each of ``min_record_files`` or more, which the commit then only moves
    next to the catalog (:func:`provaudit.catalog.store.write_band_file`,
    :func:`provaudit.catalog.files.write_record_files`)."""
    from provaudit.catalog import store
    from provaudit.catalog.files import write_record_files

    out = _dataset_parts(infos, glob, work, spill)
    for info, part in out:
        try:
            if info.records >= min_records:
                store.write_band_file(part, _band_file(part))
            if min_record_files is not None and info.records >= min_record_files:
                write_record_files(part, _record_files(part))
        except duckdb.Error as exc:  # as the commit's inserts report it (a row's metadata DuckDB cannot index)
            raise InputError(f"cannot store records: {str(exc).splitlines()[0]}", file=str(info.path),
                             field="meta" if "json" in str(exc).lower() else None) from exc
    return out


def _catalog_parts(infos: list[InputInfo], glob: str, work: Path,
                   spill: duckdb.DuckDBPyConnection | None = None) -> list[tuple[InputInfo, Path]]:
    """:func:`_dataset_parts_and_bands` in this process (the local engine), with the catalog's thresholds:
    the catalog files of a big input are written before the commit, as on Ray, so the write lock is held
    briefly and both engines store the same files."""
    from provaudit.catalog.files import RECORD_FILE_RECORDS
    from provaudit.catalog.store import BAND_FILE_RECORDS

    return _dataset_parts_and_bands(infos, glob, work, BAND_FILE_RECORDS, RECORD_FILE_RECORDS, spill)


def _band_file(part: Path) -> Path:
    return part.with_name(part.stem + ".bands.parquet")


def _record_files(part: Path) -> list[Path]:
    from provaudit.catalog.files import KINDS

    return [part.with_name(f"{part.stem}.{kind}.parquet") for kind in KINDS]


def _remove_stale_work(out_dir: Path) -> None:
    """Remove work folders that a killed scan (kill -9, power loss) left in ``out_dir``: their names
    carry the scan's process id, and a folder whose process is gone is abandoned."""
    for d in out_dir.glob(".provaudit-work-*-*"):
        try:
            pid = int(d.name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def _catalog_checks(catalog: Path, glob: str, own: set[str],
                    wait: float | None) -> tuple[list[dict], list[str], list[dict]]:
    """Overlap with the catalog's datasets, the datasets skipped because they are this very input
    (identical fingerprint), and erased records, on a read-only open (other scans and readers proceed
    meanwhile); a catalog that does not exist yet has none of them."""
    from provaudit.catalog.store import open_catalog

    if not catalog.exists():
        return [], [], []
    with open_catalog(catalog, read_only=True, wait=wait) as cat:
        report = cat.overlap_report(glob)
        itself = sorted({o["dataset"] for o in report if o["fingerprint"] in own})
        overlap = [o for o in report if o["fingerprint"] not in own]
        return overlap, itself, cat.erased_matches(glob)


def _commit(catalog: Path, datasets: list[tuple[InputInfo, Path]], tags: Sequence[str], scan_row: dict[str, Any],
            staged: Path, out_dir: Path, wait: float | None) -> None:
    """The scan's only catalog write: queue for the write lock, then, with SIGINT / SIGTERM held back
    (:func:`provaudit.interrupt.critical`), add the datasets and the scan in one transaction and move
    the finished outputs into ``out_dir``. A crash before COMMIT leaves the catalog as it was."""
    from provaudit.catalog.lock import write_lock
    from provaudit.catalog.store import Catalog

    interrupt.phase("waiting for the catalog write lock")
    progress_display.step("committing to the catalog")
    with write_lock(catalog, wait), interrupt.critical("committing to the catalog"):
        with Catalog(catalog, wait=wait) as cat, cat.transaction():
            _store_datasets(cat, datasets, tags)
            cat.add_scan(**scan_row)
        for name in OUTPUTS:
            _replace_output(staged / name, out_dir / name)


def _remove_quietly(loc: URIPath) -> None:
    """Remove a staging prefix at a URI, best effort (the scan's own error, if any, is the one to report)."""
    import contextlib

    with contextlib.suppress(Exception):  # any filesystem driver's error: cleanup must not mask the scan's own
        loc.remove()


def _replace_output(src: Path, dst: Path) -> None:
    """``os.replace``, also where ``records.parquet`` is a folder of parts (``engine="ray"``) on either side."""
    if not os.path.lexists(src):  # engine="ray" with a URI out: the workers wrote records.parquet there
        return
    if dst.is_dir() or (src.is_dir() and dst.exists()):
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    else:
        os.replace(src, dst)
def _input_summary(infos: list[InputInfo]) -> dict[str, Any]:
    return {
        "files": [i.to_dict() for i in infos],
        "rows": sum(i.rows for i in infos),
        "records": sum(i.records for i in infos),
        "bad_rows": sum(len(i.bad_rows) for i in infos),
        "bad_row_list": [b for i in infos for b in i.bad_rows][:100],
    }


def _overlap_summary(report: list[dict[str, Any]]) -> dict[str, Any]:
    by_tag: dict[str, dict[str, Any]] = {}
    for o in report:
        entry = {"exact_records": o["exact_records"], "near_records": o["near_records"],
                 "exact_rate": o["exact_rate"], "near_rate": o["near_rate"],
                 "trivial_records": o.get("trivial_records", 0), "reused_records": o.get("reused_records", 0)}
        for tag in o.get("tags") or ["untagged"]:
            by_tag.setdefault(tag, {})[o["dataset"]] = entry
    return {"datasets": [{k: v for k, v in o.items()} for o in report], "by_tag": by_tag}


def _dataset_parts(infos: list[InputInfo], source: str, work: Path,
                   spill: duckdb.DuckDBPyConnection | None = None) -> list[tuple[InputInfo, Path]]:
    """One Parquet file per input of its catalog columns, from ``source`` (a Parquet path or glob with
    ``_idx`` or in input order), prepared before the commit so the write lock is held briefly. ``spill``:
    the local scan's open spill connection, queried through a cursor of its own (a DuckDB instance of our
    own costs ~25 ms to start); without it, a spill connection of its own."""
    from provaudit.catalog.files import substance_select

    out = []
    con = spill.cursor() if spill is not None else spill_connect(work / "duck-catalog")
    try:
        columns = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM read_parquet('{source}')").fetchall()]
        order = "ORDER BY _idx" if "_idx" in columns else ""
        substance = substance_select(columns)
        for info in infos:
            part = work / f"catalog-{len(out)}.parquet"
            con.sql(f"""COPY (SELECT record_id, source_row, role, pair_id, text_hash, band_keys, meta, {substance}
                           FROM read_parquet('{source}') WHERE dataset = '{info.dataset.replace("'", "''")}' {order})
                           TO '{part}' (FORMAT PARQUET)""")
            out.append((info, part))
    finally:
        con.close()
    return out


def _store_datasets(cat, datasets: list[tuple[InputInfo, Path]], tags: Sequence[str]) -> list[int]:
    """Add each prepared input to the (open, write-locked) catalog; returns the dataset ids."""
    return [cat.add_dataset(name=info.dataset, fingerprint=info.fingerprint, path=str(location(info.path).resolve()),
                            fmt=info.format, schema=info.schema, tags=list(tags),
                            n_records=info.records, records=part,
                            meta={"columns": info.columns, "rows": info.rows, "mapping": info.mapping},
                            band_file=_band_file(part) if _band_file(part).exists() else None,
                            record_files=_record_files(part) if _record_files(part)[0].exists() else None)
            for info, part in datasets]


@progress_display.with_session()
def register(path: str | Path, *, tags: Sequence[str] = (), name: str | None = None,
             catalog: str | Path | None = None, mapping: Mapping[str, str] | None = None,
             fmt: str | None = None, skip_bad: bool = False, batch_size: int = 10_000,
             progress: bool = False, wait: float | None = None) -> dict[str, Any]:
    """Add a dataset to the catalog (e.g. an eval set with ``tags=["eval"]``): fingerprints only, no tagging.

    Like ``scan``: the catalog is validated first and written once, under its write lock (``wait``)."""
    from provaudit.catalog.lock import write_lock
    from provaudit.catalog.store import Catalog, check_catalog

    readers = _open_readers([path], [name] if name else None, mapping, skip_bad, batch_size, fmt,
                            exclude=_own_folders(None, catalog))
    if len(readers) > 1:
        raise UsageError(f"register adds one dataset, and {path} holds {len(readers)} data files: register them "
                         "one by one, or scan them together")
    catalog_path = check_catalog(catalog, wait=wait)
    work = Path(tempfile.mkdtemp(prefix="provaudit-register-"))
    try:
        parts = work / "parts"
        parts.mkdir()
        interrupt.phase("reading and fingerprinting the input")
        (info,) = _stream_inputs(readers, StageOptions(origin=False), parts, workers=1, engine="local",
                                 progress=progress)
        datasets = _catalog_parts([info], f"{parts}/*.parquet", work)
        interrupt.phase("waiting for the catalog write lock")
        with (write_lock(catalog_path, wait), interrupt.critical("committing to the catalog"),
              Catalog(catalog_path, wait=wait) as cat, cat.transaction()):
            (dataset_id,) = _store_datasets(cat, datasets, tags)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"dataset_id": dataset_id, "catalog": str(catalog_path), **info.to_dict(), "tags": sorted(set(tags))}


__all__ = ["ScanResult", "StageOptions", "dumps_summary", "process_batch", "register", "scan"]

