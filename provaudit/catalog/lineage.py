"""Lineage: which catalog datasets and checkpoints hold a text, a file's records or a person's rows.

Also the checkpoint registry (which datasets trained which checkpoint, continued fine-tunes via
parents) and the two-dataset overlap check (exact, near-duplicate and n-gram contamination).
Every function returns JSON-ready data; the CLI only prints it.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xxhash

from provaudit.catalog.store import Catalog, open_catalog
from provaudit.errors import InputError, UsageError
from provaudit.fingerprint import DatasetDigest, add_fingerprints, band_keys, normalize_text, text_hash

MAX_LISTED = 1000
_WORD = re.compile(r"\w+")


# ---------------------------------------------------------------- helpers

def parse_field(field: str) -> tuple[str, str]:
    """``"user_id=123"`` -> ``("user_id", "123")``."""
    key, sep, value = field.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--field must look like KEY=VALUE (e.g. user_id=123), got {field!r}")
    return key.strip(), value


def file_records(path: str | Path, *, name: str | None = None, fmt: str | None = None,
                 mapping: dict | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read and fingerprint a whole file: (record frame with text_hash/band_keys, info with fingerprint)."""
    from provaudit.io import RecordReader

    reader = RecordReader(path, name=name, fmt=fmt, mapping=mapping)
    frames = [add_fingerprints(b) for b in reader.batches()]
    df = pl.concat(frames) if frames else pl.DataFrame()
    digest = DatasetDigest()
    for f in frames:
        digest.update(f)
    info = {"path": str(path), "dataset": reader.name, "format": reader.fmt,
            "schema": reader.schema.name if reader.schema else None, "rows": reader.n_rows,
            "records": reader.n_records, "fingerprint": digest.fingerprint()}
    return df, info


def file_fingerprint(path: str | Path, *, fmt: str | None = None) -> str:
    """Dataset fingerprint of a file as ``provaudit register`` computes it (hashes only, no MinHash)."""
    from provaudit.io import RecordReader

    digest = DatasetDigest()
    for batch in RecordReader(path, fmt=fmt).batches():
        digest.update(batch.with_columns(pl.Series("text_hash", [text_hash(t) for t in batch["text"].to_list()],
                                                   dtype=pl.Utf8)))
    return digest.fingerprint()


def _register(path: Path, cat: Catalog, tags: Sequence[str] = ()) -> dict[str, Any]:
    """Register a file in this catalog (same fingerprint as ``provaudit register``)."""
    from provaudit.pipeline import register

    return register(path, tags=tags, catalog=cat.path)


def _resolve_or_register(cat: Catalog, ref: str) -> dict[str, Any]:
    """A dataset by name, fingerprint or path; a file not yet in the catalog is registered first."""
    try:
        return cat.resolve_dataset(ref)
    except InputError:
        p = Path(ref)
        if not p.exists():
            raise
    fingerprint = file_fingerprint(p)
    hit = cat.con.execute("SELECT count(*) FROM datasets WHERE fingerprint = ?", [fingerprint]).fetchone()[0]
    if not hit:
        fingerprint = _register(p, cat)["fingerprint"]
    return cat.resolve_dataset(fingerprint)


def _tags(v: Any) -> list[str]:
    return list(v) if v is not None else []


# ---------------------------------------------------------------- checkpoints

def add_checkpoint(name: str, trained_on: Sequence[str], parent: str | None = None,
                   catalog: Catalog | str | Path | None = None) -> dict[str, Any]:
    """Record that checkpoint ``name`` was trained on ``trained_on`` (names, fingerprints or files)."""
    if not name.strip():
        raise UsageError("a checkpoint needs a non-empty name")
    if not trained_on and parent is None:
        raise UsageError("give --trained-on DATASET (and/or --parent CKPT)")
    with open_catalog(catalog) as cat:
        datasets = [_resolve_or_register(cat, ref) for ref in trained_on]
        parent_id = None
        if parent is not None:
            row = cat.con.execute("SELECT checkpoint_id FROM checkpoints WHERE name = ?", [parent]).fetchone()
            if row is None:
                raise InputError(f"no checkpoint named {parent!r} (add the parent first)", file=str(cat.path))
            parent_id = int(row[0])
        cid = cat.add_checkpoint(name=name, dataset_ids=[d["dataset_id"] for d in datasets], parent_id=parent_id)
        return {"checkpoint": name, "checkpoint_id": cid, "parent": parent,
                "trained_on": [{"dataset": d["name"], "fingerprint": d["fingerprint"], "dataset_id": d["dataset_id"]}
                               for d in datasets]}


def list_checkpoints(catalog: Catalog | str | Path | None = None) -> list[dict[str, Any]]:
    """Every registered checkpoint with its parent and training datasets."""
    with open_catalog(catalog, read_only=True) as cat:
        rows = cat.checkpoints().to_dicts()
    return [{"checkpoint": r["name"], "checkpoint_id": r["checkpoint_id"], "parent": r["parent"],
             "added_at": r["added_at"].isoformat(timespec="seconds") if r["added_at"] else None,
             "trained_on": _tags(r["trained_on"]), "trained_on_fingerprints": _tags(r["trained_on_fingerprints"])}
            for r in rows]


def list_datasets(catalog: Catalog | str | Path | None = None) -> list[dict[str, Any]]:
    """Every catalog dataset: id, name, fingerprint, path, format, schema, tags, record count."""
    with open_catalog(catalog, read_only=True) as cat:
        rows = cat.datasets().to_dicts()
    return [{"dataset_id": r["dataset_id"], "dataset": r["name"], "fingerprint": r["fingerprint"],
             "path": r["path"], "format": r["fmt"], "schema": r["schema"], "tags": _tags(r["tags"]),
             "records": r["n_records"],
             "added_at": r["added_at"].isoformat(timespec="seconds") if r["added_at"] else None}
            for r in rows]


# ---------------------------------------------------------------- lineage find

def _query_frame(texts: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame({
        "record_id": [f"query:{i}" for i in range(len(texts))],
        "text_hash": [text_hash(t) for t in texts],
        "band_keys": band_keys(list(texts)),
    }, schema_overrides={"band_keys": pl.List(pl.UInt64)})


def _summarize(cat: Catalog, rows: list[dict[str, Any]]) -> tuple[list[dict], list[dict], list[dict]]:
    """Match rows -> (record list, per-dataset list with rows, tainted checkpoints)."""
    records = []
    per_ds: dict[int, dict[str, Any]] = {}
    for r in rows:
        rec = {"record_id": r["record_id"], "dataset": r["dataset"], "dataset_id": r["dataset_id"],
               "fingerprint": r["fingerprint"], "source_row": r["source_row"], "role": r["role"],
               "pair_id": r["pair_id"], "match": r["match"]}
        for k in ("query_id", "shared_bands", "containment"):
            if r.get(k) is not None:
                rec[k] = r[k]
        records.append(rec)
        d = per_ds.setdefault(r["dataset_id"], {
            "dataset": r["dataset"], "dataset_id": r["dataset_id"], "fingerprint": r["fingerprint"],
            "path": r["path"], "tags": _tags(r["tags"]), "records": set(), "rows": set(), "matches": set()})
        d["records"].add(r["record_id"])
        d["rows"].add(r["source_row"])
        d["matches"].add(r["match"])
    datasets = [{**d, "records": len(d["records"]), "rows": sorted(d["rows"]), "matches": sorted(d["matches"])}
                for _, d in sorted(per_ds.items())]
    checkpoints = cat.tainted_checkpoints([d["dataset_id"] for d in datasets])
    return records, datasets, checkpoints


def _deep_matches(cat: Catalog, text: str, n: int, min_containment: float) -> tuple[list[dict], list[dict]]:
    """Re-read every registered file still on disk and keep records holding at least
    ``min_containment`` of the query's distinct word n-grams (catches heavier edits than LSH)."""
    from provaudit.io import RecordReader

    q, _ = ngram_hashes([text], n)
    qset = np.unique(q)
    if qset.size == 0:
        raise UsageError(f"--deep needs a text of at least {n} words")
    found: list[dict] = []
    skipped: list[dict] = []
    for d in cat.datasets().to_dicts():
        path = Path(d["path"]) if d["path"] else None
        if path is None or not path.exists():
            skipped.append({"dataset": d["name"], "fingerprint": d["fingerprint"], "reason": "file missing"})
            continue
        for batch in RecordReader(path, name=d["name"], fmt=d["fmt"]).batches():
            h, owner = ngram_hashes(batch["text"].to_list(), n)
            hit = np.isin(h, qset)
            if not hit.any():
                continue
            per = (pl.DataFrame({"o": owner[hit], "h": h[hit]}).unique().group_by("o").len()
                   .filter(pl.col("len") >= min_containment * qset.size))
            for o, cnt in per.sort("o").iter_rows():
                row = batch.row(int(o), named=True)
                found.append({"query_id": "query:0", "match": "deep", "shared_bands": 0,
                              "containment": round(cnt / qset.size, 4), "dataset_id": d["dataset_id"],
                              "dataset": d["name"], "fingerprint": d["fingerprint"], "path": d["path"],
                              "tags": d["tags"], "record_id": row["record_id"], "source_row": row["source_row"],
                              "role": row["role"], "pair_id": row["pair_id"]})
    return found, skipped


def _deep_rows_sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r.get("query_id") or "", r["dataset_id"], r["source_row"], r["record_id"]))


def lineage_find(*, text: str | None = None, file: str | Path | None = None, field: str | None = None,
                 catalog: Catalog | str | Path | None = None, deep: bool = False, ngram: int = 5,
                 min_containment: float = 0.25) -> dict[str, Any]:
    """Records matching a text (exact + near-duplicate), a file's records, or a metadata field value,
    with their datasets and rows and every checkpoint trained on them (transitively via parents).

    ``deep`` (text only) also re-reads the registered files and reports records that contain at
    least ``min_containment`` of the text's word ``ngram``-grams: slower, but finds copies edited
    too much for the LSH band keys (e.g. one word in ten rewritten).
    """
    given = [x for x in (text, file, field) if x is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --text, --file or --field")
    if deep and text is None:
        raise UsageError("--deep works with --text only")
    if ngram < 1 or not 0 < min_containment <= 1:
        raise UsageError("--ngram must be >= 1 and the containment in (0, 1]")
    if field is not None:
        key, value = parse_field(field)
    if text is not None and not normalize_text(text):
        raise UsageError("--text is empty")
    with open_catalog(catalog, read_only=True) as cat:
        query: dict[str, Any]
        if text is not None:
            rows = cat.match_records(_query_frame([text])).to_dicts()
            query = {"text": text, "text_hash": text_hash(text)}
            if deep:
                extra, skipped = _deep_matches(cat, text, ngram, min_containment)
                known = {(r["dataset_id"], r["record_id"]) for r in rows}
                rows = _deep_rows_sorted(rows + [r for r in extra if (r["dataset_id"], r["record_id"]) not in known])
                query.update({"deep": True, "ngram": ngram, "min_containment": min_containment,
                              "deep_skipped": skipped})
        elif file is not None:
            frame, info = file_records(file)
            self_ids = [int(r[0]) for r in cat.con.execute(
                "SELECT dataset_id FROM datasets WHERE fingerprint = ?", [info["fingerprint"]]).fetchall()]
            matches = cat.match_records(frame.select("record_id", "text_hash", "band_keys"),
                                        exclude_dataset_ids=self_ids)
            rows = matches.to_dicts()
            query = {"file": str(file), "fingerprint": info["fingerprint"], "records": info["records"],
                     "excluded_self": bool(self_ids)}
            hit = matches["query_id"].n_unique() if matches.height else 0
            query["records_matched"] = int(hit)
        else:
            rows = cat.field_matches(key, value).to_dicts()
            query = {"field": key, "value": value}
        records, datasets, checkpoints = _summarize(cat, rows)
    n = len(records)
    return {"query": query, "n_records": n, "records": records[:MAX_LISTED], "truncated": n > MAX_LISTED,
            "datasets": datasets, "checkpoints": checkpoints}


# ---------------------------------------------------------------- overlap A B

def _side(ref: str | Path, cat: Catalog | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Records of a catalog dataset (texts re-read from its path when it still exists) or of a file."""
    p = Path(ref)
    d = None
    if cat is not None:
        try:
            d = cat.resolve_dataset(str(ref))
        except InputError:
            if not p.exists():
                raise
    if d is None:
        if not p.exists():
            raise InputError("no such file, and no catalog to look the name up in", file=str(ref))
        df, info = file_records(p)
        return df, {"name": info["dataset"], "fingerprint": info["fingerprint"], "path": str(p),
                    "source": "file", "records": df.height}
    path = Path(d["path"]) if d["path"] else None
    if path is not None and path.exists():
        df, info = file_records(path, name=d["name"], fmt=d["fmt"])
        if info["fingerprint"] == d["fingerprint"]:
            return df, {"name": d["name"], "fingerprint": d["fingerprint"], "path": str(path),
                        "source": "catalog", "records": df.height}
    # file gone or changed: hashes and band keys from the catalog, no texts (no n-gram check)
    df = cat.con.frame(
        """SELECT r.record_id, r.source_row, r.role, r.text_hash,
                  coalesce(list(b.band_key ORDER BY b.band_key) FILTER (WHERE b.band_key IS NOT NULL), [])
                      AS band_keys
           FROM records r LEFT JOIN record_bands b ON b.rid = r.rid
           WHERE r.dataset_id = ? GROUP BY ALL ORDER BY r.record_id""", [d["dataset_id"]])
    return df, {"name": d["name"], "fingerprint": d["fingerprint"], "path": d["path"], "source": "catalog-hashes",
                "records": df.height}


def _word_hashes(text: str) -> np.ndarray:
    words = _WORD.findall(normalize_text(text).lower())
    return np.fromiter((xxhash.xxh3_64_intdigest(w.encode("utf-8")) for w in words), dtype=np.uint64,
                       count=len(words))


def ngram_hashes(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, owner): one uint64 per word n-gram of each text and the index of the text it came from."""
    words = [_word_hashes(t) for t in texts]
    lens = np.array([len(w) for w in words], dtype=np.int64)
    if lens.sum() == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    flat = np.concatenate(words)
    owner_word = np.repeat(np.arange(len(texts)), lens)
    m = len(flat) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    h = np.zeros(m, dtype=np.uint64)
    mult = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * mult + flat[j:j + m]
    valid = owner_word[:m] == owner_word[n - 1:n - 1 + m]  # window inside one text
    return h[valid], owner_word[:m][valid]


def _ngram_overlap(a_texts: Sequence[str], b_texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each B text: count of its n-grams found in A and the first A text sharing one (-1 if none);
    plus the same counts for A against B."""
    ha, oa = ngram_hashes(a_texts, n)
    hb, ob = ngram_hashes(b_texts, n)
    order = np.argsort(ha, kind="stable")
    ha_s, oa_s = ha[order], oa[order]
    pos = np.searchsorted(ha_s, hb)
    pos_c = np.minimum(pos, max(len(ha_s) - 1, 0))
    hit = (len(ha_s) > 0) & (ha_s[pos_c] == hb) if len(ha_s) else np.zeros(len(hb), bool)
    b_counts = np.bincount(ob[hit], minlength=len(b_texts))
    b_first = np.full(len(b_texts), -1, dtype=np.int64)
    if hit.any():
        owners = oa_s[pos_c[hit]]
        idx = ob[hit]
        # first hit per B text in text order
        seen = np.unique(idx, return_index=True)
        b_first[seen[0]] = owners[seen[1]]
    a_hit = np.isin(ha, hb)
    a_counts = np.bincount(oa[a_hit], minlength=len(a_texts))
    return b_counts, b_first, a_counts


def overlap(a: str | Path, b: str | Path, *, ngram: int = 13,
            catalog: Catalog | str | Path | None = None) -> dict[str, Any]:
    """Exact, near-duplicate and n-gram overlap between A (e.g. train) and B (e.g. eval), records listed."""
    if ngram < 1:
        raise UsageError("--ngram must be at least 1")
    need_cat = not (Path(a).is_file() and Path(b).is_file())
    with open_catalog(catalog, read_only=True) if need_cat or catalog is not None else nullcontext() as cat:
        da, ia = _side(a, cat)
        db, ib = _side(b, cat)
    a_ids = da["record_id"].to_list()
    b_ids = db["record_id"].to_list()
    a_rows = da["source_row"].to_list()
    b_rows = db["source_row"].to_list()
    listed: dict[tuple[int, int], dict] = {}

    # exact: same normalized-text hash
    a_by_hash: dict[str, int] = {}
    for i, h in enumerate(da["text_hash"].to_list()):
        a_by_hash.setdefault(h, i)
    b_exact = np.zeros(len(b_ids), bool)
    a_exact_hashes = set()
    for j, h in enumerate(db["text_hash"].to_list()):
        i = a_by_hash.get(h)
        if i is not None:
            b_exact[j] = True
            a_exact_hashes.add(h)
            listed[(i, j)] = {"match": "exact"}
    a_exact = sum(1 for h in da["text_hash"].to_list() if h in a_exact_hashes)

    # near: shared LSH band key, not exact
    a_band: dict[int, int] = {}
    for i, keys in enumerate(da["band_keys"].to_list()):
        for k in keys or []:
            a_band.setdefault(k, i)
    b_near = np.zeros(len(b_ids), bool)
    a_near_idx: set[int] = set()
    for j, keys in enumerate(db["band_keys"].to_list()):
        if b_exact[j]:
            continue
        shared = [a_band[k] for k in (keys or []) if k in a_band]
        if shared:
            b_near[j] = True
            i = min(shared)
            a_near_idx.add(i)
            listed[(i, j)] = {"match": "near", "shared_bands": len(shared)}

    # n-gram contamination (needs texts)
    ng: dict[str, Any]
    if "text" in da.columns and "text" in db.columns:
        b_counts, b_first, a_counts = _ngram_overlap(da["text"].to_list(), db["text"].to_list(), ngram)
        b_cont = b_counts > 0
        for j in np.flatnonzero(b_cont & ~b_exact & ~b_near):
            listed[(int(b_first[j]), int(j))] = {"match": "ngram", "shared_ngrams": int(b_counts[j])}
        ng = {"n": ngram, "b_records": int(b_cont.sum()), "b_rate": _rate(int(b_cont.sum()), len(b_ids)),
              "a_records": int((a_counts > 0).sum()), "a_rate": _rate(int((a_counts > 0).sum()), len(a_ids))}
    else:
        ng = {"n": ngram, "available": False,
              "reason": "texts unavailable: a side's original file is gone or changed (catalog keeps hashes only)"}

    items = []
    for (i, j), info in sorted(listed.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        items.append({"a_record_id": a_ids[i], "a_row": a_rows[i], "b_record_id": b_ids[j], "b_row": b_rows[j],
                      "role": db["role"][j], **info})
    n_b_exact, n_b_near = int(b_exact.sum()), int(b_near.sum())
    by_role: dict[str, dict[str, int]] = {}
    for it in items:
        by_role.setdefault(it["role"], {"exact": 0, "near": 0, "ngram": 0})[it["match"]] += 1
    return {
        "a": ia, "b": ib,
        "exact": {"b_records": n_b_exact, "b_rate": _rate(n_b_exact, len(b_ids)),
                  "a_records": a_exact, "a_rate": _rate(a_exact, len(a_ids))},
        "near": {"b_records": n_b_near, "b_rate": _rate(n_b_near, len(b_ids)),
                 "a_records": len(a_near_idx), "a_rate": _rate(len(a_near_idx), len(a_ids))},
        "ngram": ng,
        "by_role": by_role,
        "n_listed": len(items), "records": items[:MAX_LISTED], "truncated": len(items) > MAX_LISTED,
    }


def _rate(k: int, n: int) -> float:
    return round(k / n, 6) if n else 0.0


__all__ = ["add_checkpoint", "file_fingerprint", "file_records", "lineage_find", "list_checkpoints", "list_datasets", "ngram_hashes",
           "overlap", "parse_field"]
