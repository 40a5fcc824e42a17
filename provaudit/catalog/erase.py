"""Erasure: write redacted copies of every dataset holding a person's rows, record it in the catalog.

The originals are never modified. Each affected dataset is first checked against its catalog
fingerprint (so row numbers still mean what they meant at registration), then copied without the
erased rows in its original format: line formats (JSONL, JSONL.gz, CSV/TSV) keep every other
line byte for byte; JSON arrays, Parquet and ``datasets.save_to_disk`` folders are rewritten
with the same columns and types. Copies are written to temporary names and renamed only when
the catalog transaction that records the erasure succeeds.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from provaudit.catalog.lineage import file_fingerprint, parse_field
from provaudit.catalog.store import Catalog, open_catalog
from provaudit.errors import InputError, UsageError


def _check_sources(affected: list[dict[str, Any]]) -> None:
    """Mark each affected dataset ``redact`` or ``superseded``; refuse missing or changed files.

    A file re-registered after an edit has two catalog entries with one path: the entry whose
    fingerprint the file still has is redacted, the older one is ``superseded`` (no copy, but its
    checkpoints stay tainted). Row numbers are only trusted when the fingerprint matches.
    """
    current: dict[str, str] = {}
    for d in affected:
        path = Path(d["path"])
        if not path.exists():
            raise InputError("registered file is missing (moved or deleted); register it at its new place and "
                             "retry", file=str(path))
        if d["path"] not in current:
            current[d["path"]] = file_fingerprint(path, fmt=d["format"])
    for d in affected:
        fp = current[d["path"]]
        if fp == d["fingerprint"]:
            d["status"] = "redact"
        elif any(o is not d and o["path"] == d["path"] and o["fingerprint"] == fp for o in affected):
            d["status"] = "superseded"
        else:
            raise InputError("file changed since it was registered (fingerprint differs); re-register it and "
                             "retry", file=d["path"])


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


def _redact_jsonl(src: Path, tmp: Path, drop: set[int]) -> int:
    """Copy every line except those of dropped rows; rows count non-blank lines as the reader does."""
    with _open_in(src) as fin:
        fout = _open_out(tmp, _is_gz(src))
        try:
            return _copy_except((([raw], not _is_blank(raw)) for raw in fin), drop, fout)
        finally:
            _close_out(fout)


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


def _redact_csv(src: Path, tmp: Path, drop: set[int], delimiter: str) -> int:
    """Copy the header and every row's physical lines except dropped rows (multi-line cells included)."""
    csv.field_size_limit(16 * 1024 * 1024)
    with _open_in(src) as fin:
        lines = _CapturingLines(fin)
        reader = csv.reader(lines, delimiter=delimiter)
        fout = _open_out(tmp, _is_gz(src))
        try:
            next(reader)
            fout.writelines(lines.take())
            removed = _copy_except(((lines.take(), bool(cells)) for cells in reader), drop, fout)
            fout.writelines(lines.take())
            return removed
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


def _redact(fmt: str, src: Path, tmp: Path, drop: set[int]) -> int:
    name = src.name.lower().removesuffix(".gz")
    if fmt == "datasets":  # a plain file read through datasets.load_dataset: use its extension
        fmt = next((f for ext, f in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".csv", "csv"),
                                     (".tsv", "tsv"), (".parquet", "parquet")) if name.endswith(ext)), fmt)
    if fmt == "jsonl":
        return _redact_jsonl(src, tmp, drop)
    if fmt in ("csv", "tsv"):
        return _redact_csv(src, tmp, drop, "\t" if fmt == "tsv" else ",")
    if fmt == "json":
        return _redact_json(src, tmp, drop)
    if fmt == "parquet":
        return _redact_parquet(src, tmp, drop)
    if fmt == "hf_disk":
        return _redact_hf(src, tmp, drop)
    raise InputError(f"cannot write a redacted copy of format {fmt!r}", file=str(src))


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


def erase(*, field: str, out: str | Path, dry_run: bool = False,
          catalog: Catalog | str | Path | None = None) -> dict[str, Any]:
    """Redact every catalog dataset holding rows whose metadata has ``field`` (KEY=VALUE).

    Writes redacted copies under ``out`` (never touching originals), records the erasure (what,
    when, datasets, tainted checkpoints) in the catalog and returns that record. ``dry_run``
    reports the same plan and writes nothing.
    """
    key, value = parse_field(field)
    out = Path(out)
    with open_catalog(catalog, read_only=dry_run) as cat:
        matches = cat.field_matches(key, value)
        affected: list[dict[str, Any]] = []
        rows_by_ds: dict[int, list[int]] = {}
        if matches.height:
            for g in (matches.group_by("dataset_id", "dataset", "fingerprint", "path")
                      .agg(pl.col("source_row").unique().sort()).sort("dataset_id").to_dicts()):
                rows_by_ds[g["dataset_id"]] = list(g["source_row"])
                fmt = cat.con.execute("SELECT fmt FROM datasets WHERE dataset_id = ?", [g["dataset_id"]]).fetchone()[0]
                affected.append({"dataset": g["dataset"], "dataset_id": g["dataset_id"],
                                 "fingerprint": g["fingerprint"], "path": g["path"], "format": fmt,
                                 "rows_removed": list(g["source_row"])})
        rids: list[int] = []
        for d in affected:
            recs = cat.row_records(d["dataset_id"], rows_by_ds[d["dataset_id"]])
            rids.extend(recs["rid"].to_list())
            d["records_removed"] = recs.height
        checkpoints = cat.tainted_checkpoints([d["dataset_id"] for d in affected])
        _check_sources(affected)  # all checks before any write (a dry run checks too)
        originals = {Path(p).resolve() for p in cat.datasets()["path"].to_list() if p}
        targets = _targets([d for d in affected if d["status"] == "redact"], out, originals)
        for d in affected:
            d["output"] = str(targets[d["dataset_id"]]) if d["dataset_id"] in targets else None
        result: dict[str, Any] = {
            "selector": f"{key}={value}", "dry_run": dry_run, "erasure_id": None,
            "n_rows": sum(len(d["rows_removed"]) for d in affected), "n_records": len(rids),
            "datasets": affected, "checkpoints": checkpoints,
        }
        if dry_run:
            return result
        out.mkdir(parents=True, exist_ok=True)
        temps: dict[int, Path] = {}
        try:
            for d in affected:
                if d["status"] != "redact":
                    continue
                target = targets[d["dataset_id"]]
                tmp = target.with_name(f".{target.name}.provaudit-tmp")
                _remove(tmp)
                temps[d["dataset_id"]] = tmp
                removed = _redact(d["format"], Path(d["path"]), tmp, set(d["rows_removed"]))
                if removed != len(d["rows_removed"]):
                    raise InputError(f"expected to remove {len(d['rows_removed'])} rows, found {removed}",
                                     file=d["path"])
            with cat.transaction():
                ds_record = [{k: d[k] for k in ("dataset", "fingerprint", "path", "rows_removed",
                                                "records_removed", "output", "status")} for d in affected]
                result["erasure_id"] = cat.add_erasure(
                    selector=result["selector"], rids=rids, datasets=ds_record, checkpoints=checkpoints,
                    outputs=[{"dataset": d["dataset"], "path": d["output"]} for d in affected if d["output"]])
                renamed: list[Path] = []
                try:
                    for d in affected:
                        if d["dataset_id"] not in temps:
                            continue
                        target = targets[d["dataset_id"]]
                        _remove(target)
                        os.replace(temps[d["dataset_id"]], target)
                        renamed.append(target)
                except BaseException:
                    for target in renamed:  # the erasure rolls back: no half set of copies either
                        _remove(target)
                    raise
        finally:
            for tmp in temps.values():
                _remove(tmp)
        return result


__all__ = ["erase"]
