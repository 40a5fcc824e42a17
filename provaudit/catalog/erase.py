"""Erasure: write redacted copies of every dataset holding a person's rows, record it in the catalog.

The originals are never modified. Rows are located by content, never by position alone: each row
the catalog holds for the person has a *row hash* (xxh3-128 over the row's metadata and its
records' roles and text hashes, all stored in the catalog). The file is re-read, every row is
hashed the same way, and the rows whose hash is one of the person's are dropped wherever they now
are (a reordered file is redacted correctly). A file whose fingerprint changed, or in which the
person's rows are not all found exactly as registered, is refused (exit 2) before anything is
written.

Each copy keeps the original format: line formats (JSONL, JSONL.gz, CSV/TSV) keep every other
line byte for byte; JSON arrays, Parquet and ``datasets.save_to_disk`` folders are rewritten with
the same columns and types. Every copy is verified before it is reported: read back, its rows
must be the original's rows minus exactly the dropped ones, in order (raw bytes for line formats,
values otherwise), no row may carry the selector, and no record may hold a text only the person's
rows held. Near duplicates of the person's texts in other people's rows are kept and listed.
Copies are written to temporary names and renamed only inside the catalog transaction that
records the erasure.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

import polars as pl
import xxhash

from provaudit.catalog.lineage import parse_field
from provaudit.catalog.migrations import FIELDS_SQL
from provaudit.catalog.store import Catalog, open_catalog
from provaudit.errors import InputError, UsageError

#: Rows listed per file in messages and the summary's near-duplicate list.
LISTED = 20


# ---------------------------------------------------------------- row hashes

def row_hash(meta: str | None, records: Iterable[tuple[str, str]]) -> str:
    """The content hash of one source row: its metadata JSON and its records' (role[:k], text_hash)
    pairs in sorted order. Computed from the catalog and from a re-read file alike."""
    body = "\x1e".join(f"{slot}\x1f{h}" for slot, h in sorted(records))
    return xxhash.xxh3_128_hexdigest(f"{meta or ''}\x1d{body}".encode())


def _frame_row_hashes(frame: pl.DataFrame) -> pl.DataFrame:
    """(source_row, row_hash) per row of a record frame with record_id, pair_id, text_hash, meta."""
    slots = frame.with_columns(
        pl.col("record_id").str.slice(pl.col("pair_id").str.len_chars() + 1).alias("_slot"))
    rows = []
    for (src_row,), g in slots.group_by(["source_row"], maintain_order=True):
        rows.append((int(src_row), row_hash(g["meta"][0], zip(g["_slot"].to_list(), g["text_hash"].to_list()))))
    return pl.DataFrame(rows, schema={"source_row": pl.Int64, "row_hash": pl.Utf8}, orient="row")


@dataclass
class FileRows:
    """A file as the reader sees it now: fingerprint, each row's hash in order, every record hash."""

    fingerprint: str
    rows: list[tuple[int, str]]  # (row index, row hash) in file order
    hashes: set[str] = field(default_factory=set)
    metas: dict[int, str] = field(default_factory=dict)


def read_rows(path: str | Path, *, fmt: str, schema: str | None, mapping: dict | None) -> FileRows:
    """Re-read a file as it was registered (format, schema, ``--map``) and hash each row."""
    from provaudit.fingerprint import DatasetDigest, text_hash
    from provaudit.io import RecordReader

    if schema == "mapped" and not mapping:
        raise InputError("registered with --map before the mapping was recorded in the catalog; register it "
                         "again and retry", file=str(path))
    reader = RecordReader(path, fmt=fmt, mapping=mapping or None, skip_bad=True,
                          schema_name=None if mapping else (schema or None))
    digest = DatasetDigest()
    out = FileRows("", [])
    for batch in reader.batches():
        batch = batch.with_columns(pl.Series("text_hash", [text_hash(t) for t in batch["text"].to_list()],
                                             dtype=pl.Utf8))
        digest.update(batch)
        out.hashes.update(batch["text_hash"].to_list())
        for r, h in _frame_row_hashes(batch).iter_rows():
            out.rows.append((r, h))
        for r, m in batch.select("source_row", "meta").unique("source_row", maintain_order=True).iter_rows():
            out.metas[int(r)] = m
    out.fingerprint = digest.fingerprint()
    return out


def _rows_with_field(metas: dict[int, str], key: str, value: str) -> list[int]:
    """Rows whose metadata has ``key`` = ``value`` with the catalog's own rule (FIELDS_SQL)."""
    from provaudit.duck import connect

    if not metas:
        return []
    con = connect()
    try:
        con.register("_m", pl.DataFrame({"_row": list(metas), "meta": list(metas.values())},
                                        schema={"_row": pl.Int64, "meta": pl.Utf8}).to_arrow())
        sql = FIELDS_SQL.format(row="s._row", dataset="0", src="_m s", meta="s.meta")
        rows = con.execute(f"SELECT DISTINCT col0 FROM ({sql}) t(col0, col1, k, v) WHERE k = ? AND v = ? "
                           "ORDER BY 1", [key, value]).fetchall()
    finally:
        con.close()
    return [int(r[0]) for r in rows]


# ---------------------------------------------------------------- per-format writers

def _is_gz(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_out(tmp: Path, gz: bool):
    if gz:
        return gzip.GzipFile(filename="", mode="wb", fileobj=open(tmp, "wb"), mtime=0)
    return open(tmp, "wb")


def _open_in(path: Path):
    return gzip.open(path, "rb") if _is_gz(path) else open(path, "rb")


def _close_out(fh) -> None:
    inner = getattr(fh, "fileobj", None)
    fh.close()
    if inner is not None:
        inner.close()


def _copy_except(units: Iterable[tuple[list[bytes], bool]], drop: set[int], fout) -> int:
    """Write each unit's raw lines except those of dropped rows; a unit is (lines, is_row) and only
    units that are rows count as row indices (blank lines and headers do not). Returns rows removed."""
    removed = 0
    index = 0
    for raw, is_row in units:
        if is_row and index in drop:
            removed += 1
        else:
            fout.writelines(raw)
        index += is_row
    return removed


def _is_blank(raw: bytes) -> bool:
    try:
        return not raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


class _CapturingLines:
    """Feeds decoded lines to csv.reader while keeping the raw bytes of the lines it consumed."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.buf: list[bytes] = []

    def __iter__(self) -> Iterator[str]:
        for raw in self.fh:
            self.buf.append(raw)
            yield raw.decode("utf-8")

    def take(self) -> list[bytes]:
        out, self.buf = self.buf, []
        return out


def _line_units(src: Path, fmt: str) -> Iterator[tuple[list[bytes], bool]]:
    """The raw lines of a line-format file as units (lines, is_row), rows counted as the reader counts
    them: JSONL rows are non-blank lines; a CSV row is its physical lines (multi-line cells included),
    the header and blank lines are not rows."""
    with _open_in(src) as fin:
        if fmt == "jsonl":
            for raw in fin:
                yield [raw], not _is_blank(raw)
            return
        csv.field_size_limit(16 * 1024 * 1024)
        lines = _CapturingLines(fin)
        reader = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",")
        if next(reader, None) is None:
            return
        yield lines.take(), False
        for cells in reader:
            yield lines.take(), bool(cells)
        rest = lines.take()
        if rest:
            yield rest, False


def _redact_lines(src: Path, tmp: Path, drop: set[int], fmt: str) -> int:
    """Copy every unit except the dropped rows' (JSONL lines; CSV header and each row's physical lines)."""
    fout = _open_out(tmp, _is_gz(src))
    try:
        return _copy_except(_line_units(src, fmt), drop, fout)
    finally:
        _close_out(fout)


def _redact_json(src: Path, tmp: Path, drop: set[int]) -> int:
    """Rewrite a JSON array (or columns-of-lists object) without the dropped rows."""
    with _open_in(src) as fh:
        blob = fh.read().decode("utf-8")
    data = json.loads(blob)
    indent = 2 if "\n" in blob.strip() else None
    if isinstance(data, list):
        kept = [r for i, r in enumerate(data) if i not in drop]
        removed = len(data) - len(kept)
    elif isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        n = len(next(iter(data.values())))
        kept = {k: [x for i, x in enumerate(v) if i not in drop] for k, v in data.items()}
        removed = n - len(next(iter(kept.values())))
    else:  # a single object: one row
        kept, removed = ([], 1) if 0 in drop else (data, 0)
    text = json.dumps(kept, ensure_ascii=False, indent=indent) + ("\n" if blob.endswith("\n") else "")
    fout = _open_out(tmp, _is_gz(src))
    try:
        fout.write(text.encode("utf-8"))
    finally:
        _close_out(fout)
    return removed


def _redact_parquet(src: Path, tmp: Path, drop: set[int]) -> int:
    """Stream row groups, filter dropped rows, write with the original Arrow schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(src)
    removed = 0
    offset = 0
    with pq.ParquetWriter(tmp, pf.schema_arrow) as writer:
        for batch in pf.iter_batches(batch_size=65536):
            n = batch.num_rows
            mask = pa.array([(offset + i) not in drop for i in range(n)])
            kept = batch.filter(mask)
            removed += n - kept.num_rows
            writer.write_table(pa.Table.from_batches([kept], schema=pf.schema_arrow))
            offset += n
    return removed


def _redact_hf(src: Path, tmp: Path, drop: set[int]) -> int:
    """Rewrite a save_to_disk folder (the split the reader uses) with the same features."""
    import datasets

    obj = datasets.load_from_disk(str(src))
    if isinstance(obj, datasets.DatasetDict):
        split = "train" if "train" in obj else min(obj)
        ds = obj[split]
        keep = [i for i in range(len(ds)) if i not in drop]
        new = datasets.DatasetDict({k: (v.select(keep) if k == split else v) for k, v in obj.items()})
        removed = len(ds) - len(keep)
    else:
        keep = [i for i in range(len(obj)) if i not in drop]
        new = obj.select(keep)
        removed = len(obj) - len(keep)
    new.save_to_disk(str(tmp))
    return removed


def _concrete_format(fmt: str, src: Path) -> str:
    """A plain file read through datasets.load_dataset is written (and compared) as its extension says."""
    name = src.name.lower().removesuffix(".gz")
    if fmt == "datasets":
        return next((f for ext, f in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".csv", "csv"),
                                      (".tsv", "tsv"), (".parquet", "parquet")) if name.endswith(ext)), fmt)
    return fmt


def _redact(fmt: str, src: Path, tmp: Path, drop: set[int]) -> int:
    fmt = _concrete_format(fmt, src)
    if fmt in ("jsonl", "csv", "tsv"):
        return _redact_lines(src, tmp, drop, fmt)
    if fmt == "json":
        return _redact_json(src, tmp, drop)
    if fmt == "parquet":
        return _redact_parquet(src, tmp, drop)
    if fmt == "hf_disk":
        return _redact_hf(src, tmp, drop)
    raise InputError(f"cannot write a redacted copy of format {fmt!r}", file=str(src))


def _same_value(a: Any, b: Any) -> bool:
    if a == b:
        return True
    dump = lambda v: json.dumps(v, sort_keys=True, default=repr)  # NaN != NaN; bytes vs their repr
    return dump(a) == dump(b)


def _kept_units_identical(fmt: str, src: Path, copy: Path, drop: set[int]) -> tuple[bool, str]:
    """Whether the copy holds exactly the original's units minus the dropped rows, in order: raw bytes
    for line formats, row values for the others. Returns (ok, what differs)."""
    fmt_c = _concrete_format(fmt, src)
    if fmt_c in ("jsonl", "csv", "tsv"):
        def kept(units):
            index = 0
            for raw, is_row in units:
                if not (is_row and index in drop):
                    yield b"".join(raw)
                index += is_row
        want, got = kept(_line_units(src, fmt_c)), (b"".join(r) for r, _ in _line_units(copy, fmt_c))
    else:
        from provaudit.io.formats import BadRow, iter_raw_rows

        # an unreadable row (e.g. ``null`` in a JSON array) is kept as it is: a unit of its own, never dropped
        def units(path: Path, skip: set[int]):
            for r in iter_raw_rows(path, fmt):
                if isinstance(r, BadRow):
                    yield ("unreadable row",)
                elif r.index not in skip:
                    yield r.data

        want, got = units(src, drop), units(copy, set())
    sentinel = object()
    for k, (a, b) in enumerate(zip_longest(want, got, fillvalue=sentinel)):
        if a is sentinel or b is sentinel:
            return False, f"the copy has {'more' if a is sentinel else 'fewer'} units than expected (at unit {k})"
        if not (a == b if isinstance(a, bytes) else _same_value(a, b)):
            return False, f"unit {k} of the copy differs from the original's"
    return True, ""


# ---------------------------------------------------------------- erase

def _targets(affected: Sequence[dict[str, Any]], out: Path, originals: set[Path]) -> dict[int, Path]:
    """Output path per dataset: OUT/<original name>, prefixed by the dataset id on a name clash."""
    taken: set[str] = set()
    result = {}
    for d in affected:
        base = Path(d["path"]).name
        name = base if base not in taken else f"{d['dataset_id']}_{base}"
        taken.add(name)
        target = out / name
        if target.resolve() in originals:
            raise UsageError(f"--out {out} would overwrite the original {target}; choose another directory")
        result[d["dataset_id"]] = target
    return result


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists():
        p.unlink()


def _plan(cat: Catalog, key: str, value: str) -> list[dict[str, Any]]:
    """The catalog's view: every dataset with rows matching the selector, those rows' row hashes and
    record hashes (what the file will be checked against)."""
    matches = cat.field_matches(key, value)
    affected: list[dict[str, Any]] = []
    if not matches.height:
        return affected
    for g in (matches.group_by("dataset_id", "dataset", "fingerprint", "path")
              .agg(pl.col("source_row").unique().sort()).sort("dataset_id").to_dicts()):
        did = g["dataset_id"]
        fmt, schema, meta = cat.con.execute("SELECT fmt, schema, meta FROM datasets WHERE dataset_id = ?",
                                            [did]).fetchone()
        recs = cat.row_records(did, g["source_row"])
        row_hashes = dict(_frame_row_hashes(recs.sort("source_row", "record_id")).iter_rows())
        shared, near = cat.similar_kept_rows(did, recs["rid"].to_list())
        affected.append({
            "dataset": g["dataset"], "dataset_id": did, "fingerprint": g["fingerprint"], "path": g["path"],
            "format": fmt, "schema": schema, "mapping": json.loads(meta or "{}").get("mapping"),
            "registered_rows": list(g["source_row"]), "records_removed": recs.height,
            "_rids": recs["rid"].to_list(), "_row_hashes": row_hashes,
            "record_hashes": sorted(set(recs["text_hash"].to_list())), "_shared": shared,
            "near_duplicate_rows_kept": near})
    return affected


def _locate(affected: list[dict[str, Any]], selector: str) -> dict[str, FileRows]:
    """Re-read each affected file, mark each dataset ``redact`` or ``superseded``, and find the
    person's rows in the file by row hash. Refuses (before any write) a missing file, a file whose
    fingerprint changed, or one where the person's rows are not all found exactly as registered.

    A file re-registered after an edit has two catalog entries with one path: the entry whose
    fingerprint the file still has is redacted, the older one is ``superseded`` (no copy, but its
    checkpoints stay tainted)."""
    files: dict[str, FileRows] = {}
    for d in affected:
        path = Path(d["path"])
        if not path.exists():
            raise InputError("registered file is missing (moved or deleted); register it at its new place and "
                             "retry", file=str(path))
        if d["path"] not in files:
            files[d["path"]] = read_rows(path, fmt=d["format"], schema=d["schema"], mapping=d["mapping"])
    for d in affected:
        now = files[d["path"]]
        want = Counter(d["_row_hashes"].values())
        found = [(i, h) for i, h in now.rows if h in want]
        intact = Counter(h for _, h in found) == want
        if now.fingerprint == d["fingerprint"]:
            d["status"] = "redact"
        elif any(o is not d and o["path"] == d["path"] and o["fingerprint"] == now.fingerprint for o in affected):
            d["status"] = "superseded"
            continue
        else:
            raise InputError("file changed since it was registered (fingerprint differs; the rows of "
                             f"{selector} are {'intact' if intact else 'changed'}); re-register it and retry",
                             file=d["path"])
        if not intact:
            lost = sorted(want - Counter(h for _, h in found))
            raise InputError(f"the rows of {selector} are not all in the file as registered ({len(lost)} row hash(es) "
                             f"not found, e.g. {lost[0]}); re-register it and retry", file=d["path"])
        d["rows_removed"] = sorted(i for i, _ in found)
        d["row_hashes"] = [h for _, h in found]
        d["moved"] = d["rows_removed"] != d["registered_rows"]
    return files


def _verify(d: dict[str, Any], original: FileRows, copy: Path, key: str, value: str) -> dict[str, Any]:
    """Check a redacted copy before it is reported; any failure refuses the erasure (nothing written).

    The copy must hold the original's units minus exactly the dropped rows, in order (raw bytes for
    line formats, values otherwise); its rows, read back and hashed, must be the original's kept row
    hashes in order with none of the person's; no row may carry the selector; and no record may
    hold a text that only the person's rows held in this dataset."""
    drop = set(d["rows_removed"])
    ok, why = _kept_units_identical(d["format"], Path(d["path"]), copy, drop)
    everything = {i for i, _ in original.rows} <= drop  # the copy holds no row (a reader refuses an empty file)
    back = (FileRows(fingerprint="", rows=[]) if ok and everything
            else read_rows(copy, fmt=d["format"], schema=d["schema"], mapping=d["mapping"]) if ok else None)
    problems = [] if ok else [why]
    if back is not None:
        expected = [h for i, h in original.rows if i not in drop]
        if [h for _, h in back.rows] != expected:
            problems.append("its rows read back are not the original's kept rows")
        left = set(d["row_hashes"]) & {h for _, h in back.rows}
        if left:
            problems.append(f"{len(left)} of the person's rows are still in it")
        carrying = _rows_with_field(back.metas, key, value)
        if carrying:
            problems.append(f"row(s) {carrying[:LISTED]} still carry {key}={value}")
        texts_left = (set(d["record_hashes"]) - d["_shared"]) & back.hashes
        if texts_left:
            problems.append(f"{len(texts_left)} text(s) only the person's rows held are still in it")
    if problems:
        raise InputError(f"the redacted copy failed verification: {'; '.join(problems)}; nothing was written",
                         file=d["path"])
    return {"rows_kept": len(back.rows), "kept_rows_identical": True, "person_rows_left": 0,
            "selector_rows_left": 0, "person_texts_left": 0, "texts_shared_with_kept_rows": len(d["_shared"]),
            "near_duplicate_rows_kept": d["near_duplicate_rows_kept"][:LISTED],
            "near_duplicate_rows_kept_count": len(d["near_duplicate_rows_kept"])}


_PUBLIC = ("dataset", "dataset_id", "fingerprint", "path", "format", "status", "rows_removed", "registered_rows",
           "moved", "records_removed", "row_hashes", "record_hashes", "output", "verified")


def erase(*, field: str, out: str | Path, dry_run: bool = False,
          catalog: Catalog | str | Path | None = None, wait: float | None = None) -> dict[str, Any]:
    """Redact every catalog dataset holding rows whose metadata has ``field`` (KEY=VALUE).

    Writes verified redacted copies under ``out`` (never touching originals), records the erasure
    (what, when, datasets, tainted checkpoints) in the catalog and returns that record: per file the
    rows removed (where they are now, and where they were registered), the row and record hashes
    checked, and what the verification of the copy found. ``dry_run`` locates the same rows and
    writes nothing. ``wait``: seconds to queue for the catalog's write lock.
    """
    key, value = parse_field(field)
    selector = f"{key}={value}"
    out = Path(out)
    with open_catalog(catalog, read_only=dry_run, wait=wait) as cat:
        affected = _plan(cat, key, value)
        checkpoints = cat.tainted_checkpoints([d["dataset_id"] for d in affected])
        files = _locate(affected, selector)  # all checks before any write (a dry run checks too)
        originals = {Path(p).resolve() for p in cat.datasets()["path"].to_list() if p}
        targets = _targets([d for d in affected if d["status"] == "redact"], out, originals)
        rids: list[int] = []
        for d in affected:
            d["output"] = str(targets[d["dataset_id"]]) if d["dataset_id"] in targets else None
            d.setdefault("rows_removed", [])
            d.setdefault("row_hashes", [])
            d.setdefault("moved", False)
            d["verified"] = None
            rids.extend(d["_rids"])
        result: dict[str, Any] = {
            "selector": selector, "dry_run": dry_run, "erasure_id": None,
            "n_rows": sum(len(d["registered_rows"]) for d in affected), "n_records": len(rids),
            "datasets": affected, "checkpoints": checkpoints,
        }
        if not dry_run:
            _write_verified(cat, affected, files, targets, out, key, value, result, rids)
        result["datasets"] = [{k: d[k] for k in _PUBLIC} for d in affected]
        return result


def _write_verified(cat: Catalog, affected: list[dict[str, Any]], files: dict[str, FileRows],
                    targets: dict[int, Path], out: Path, key: str, value: str, result: dict[str, Any],
                    rids: list[int]) -> None:
    """Write each copy under a temporary name, verify it, then record the erasure and rename the copies
    inside one catalog transaction (SIGINT / SIGTERM held back there); on any failure no copy stays."""
    from provaudit import interrupt

    out.mkdir(parents=True, exist_ok=True)
    temps: dict[int, Path] = {}
    try:
        for d in affected:
            if d["status"] != "redact":
                continue
            target = targets[d["dataset_id"]]
            tmp = target.with_name(f".provaudit-tmp-{target.name}")  # same suffix: read back as the original
            _remove(tmp)
            temps[d["dataset_id"]] = tmp
            interrupt.phase(f"writing the redacted copy of {d['path']}")
            removed = _redact(d["format"], Path(d["path"]), tmp, set(d["rows_removed"]))
            if removed != len(d["rows_removed"]):
                raise InputError(f"expected to remove {len(d['rows_removed'])} rows, found {removed}",
                                 file=d["path"])
            interrupt.phase(f"verifying the redacted copy of {d['path']}")
            d["verified"] = _verify(d, files[d["path"]], tmp, key, value)
        with interrupt.critical("recording the erasure"), cat.transaction():
            ds_record = [{k: d[k] for k in ("dataset", "fingerprint", "path", "rows_removed", "registered_rows",
                                            "records_removed", "row_hashes", "output", "status")} for d in affected]
            result["erasure_id"] = cat.add_erasure(
                selector=result["selector"], rids=rids, datasets=ds_record, checkpoints=result["checkpoints"],
                outputs=[{"dataset": d["dataset"], "path": d["output"]} for d in affected if d["output"]])
            renamed: list[Path] = []
            try:
                for did, tmp in temps.items():
                    _remove(targets[did])
                    os.replace(tmp, targets[did])
                    renamed.append(targets[did])
            except BaseException:
                for target in renamed:  # the erasure rolls back: no half set of copies either
                    _remove(target)
                raise
    finally:
        for tmp in temps.values():
            _remove(tmp)


__all__ = ["erase"]
