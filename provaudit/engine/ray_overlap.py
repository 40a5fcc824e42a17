"""Overlap with the catalog and erased records on Ray: the driver's work is O(datasets x partitions).

The same results as :meth:`provaudit.catalog.store.Catalog.overlap_report` and
:meth:`~provaudit.catalog.store.Catalog.erased_matches` over the scan's parts (the same numbers,
examples, order and verdicts: substantive texts only, boilerplate counted over the scan and the
catalog, a response reused under another question apart from a leak), computed as shuffle rounds
through files in the scan's work folder, partitioned as the duplicate grouping partitions
(:mod:`provaudit.engine.ray_dups`: ``int(text_hash[:8], 16) % P`` and ``key % P``; ``P`` at least the
duplicate grouping's, and at least one per ``PARTITION_RECORDS`` scanned or catalog records):

0. export (driver, one read-only open of the catalog, O(catalog)): the catalog's distinct
   ``(text_hash, dataset_id, role, pair_id, has_prompt)`` into hash partitions and
   ``(band_key, dataset_id, role, pair_id, has_prompt)`` into key partitions (``has_prompt``: the
   record's row holds a substantive prompt, :func:`provaudit.contamination.substantive_prompts_sql`, what
   the reused-response rule asks of the catalog side), and
   the watched erased hashes and erased band keys likewise (DuckDB ``COPY ... PARTITION_BY``);
1. map (one task per shard): each record's ``record_id, text_hash, trivial, n_words, pair_id, role``
   and snippet into hash partitions; each distinct text's band keys into key partitions;
2. reduce per key partition: the texts whose band keys meet a catalog record's (a near match: the
   catalog record's dataset, role and row) or an erased record's, into hash partitions of the text;
3. reduce per hash partition: boilerplate (the text's distinct rows in the scan plus in the catalog),
   each record's reason to be trivial, its exact and near matches per catalog row (the smallest kind),
   into partitions of the record's ``pair_id``; the erased matches of its records (counted here, with
   the first five);
4. reduce per row partition: the prompt-to-prompt matches and substantive prompts of each scanned row,
   so each match is a leak or a reused response; per dataset the counts and the first five examples
   of each list.

The driver merges the per-partition facts (sums and the first five of sorted lists) into the local
report: :func:`merge_overlap`, :func:`merge_erased`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from provaudit.contamination import (
    BOILERPLATE_MAX_WORDS,
    BOILERPLATE_MIN_ROWS,
    OUTPUT_ROLES,
    substantive_prompts_sql,
)
from provaudit.engine.ray_dups import _hash_part, _write_partitions
from provaudit.engine.tasks import Task

EXAMPLES = 5
#: written last into an export's folder; the tasks refuse to run without it (a folder not shared)
MANIFEST = "manifest.json"
KEYS_VERSION = 2  # of the export's layout and meaning (part of the cache's state key); 2: has_prompt substantive
#: at most this many scanned and this many catalog records per partition (a key-partition task peaks near
#: 350 MB at 75,000 scanned and 60,000 catalog records), so a reducer's memory stays flat in both sizes
PARTITION_RECORDS = 100_000
_MATCH = ["dataset_id", "c_role", "c_pair", "has_prompt"]


# ---------------------------------------------------------------- export (driver)

def _hash_sql(col: str, partitions: int) -> str:
    """DuckDB's ``int(text_hash[:8], 16) % P`` (the polars :func:`~provaudit.engine.ray_dups._hash_part`)."""
    return f"(('0x' || left({col}, 8))::UBIGINT % {int(partitions)})::BIGINT"


def export_catalog_keys(cat: Any, root: Path, partitions: int) -> dict[str, Any]:
    """Write the catalog's keys the checks need into ``root`` (``ch``, ``cb``, ``eh``, ``eb``, each
    ``_p=<partition>/*.parquet``) from an open catalog; returns what the merge needs: the datasets
    (id, name, fingerprint, tags) and whether there are records / erased records at all."""
    con = cat.con
    has_records = bool(con.execute("SELECT count(*) FROM (SELECT 1 FROM records LIMIT 1)").fetchone()[0])
    has_erased = bool(con.execute("SELECT count(*) FROM (SELECT 1 FROM erased_records LIMIT 1)").fetchone()[0])
    root.mkdir(parents=True, exist_ok=True)

    def copy(sql: str, name: str) -> None:
        dest = str(root / name).replace("'", "''")
        con.raw.execute(f"COPY ({sql}) TO '{dest}' (FORMAT PARQUET, PARTITION_BY (_p), COMPRESSION LZ4, "
                        "OVERWRITE_OR_IGNORE)")

    if has_records:
        prompts = f"({substantive_prompts_sql('records')})"
        cols = "r.dataset_id, r.role AS c_role, r.pair_id AS c_pair, (pp.pair_id IS NOT NULL) AS has_prompt"
        join = f"LEFT JOIN {prompts} pp ON pp.dataset_id = r.dataset_id AND pp.pair_id = r.pair_id"
        copy(f"""SELECT DISTINCT r.text_hash, {cols}, {_hash_sql('r.text_hash', partitions)} AS _p
                 FROM records r {join} WHERE r.text_hash IS NOT NULL""", "ch")
        copy(f"""SELECT DISTINCT rb.band_key AS k, {cols}, (r.trivial IS NOT NULL) AS c_short,
                        (rb.band_key % {int(partitions)})::BIGINT AS _p
                 FROM record_bands rb JOIN records r USING (rid) {join}""", "cb")
    if has_erased:
        copy(f"""SELECT DISTINCT text_hash, erasure_id, {_hash_sql('text_hash', partitions)} AS _p
                 FROM erased_records WHERE watch AND text_hash IS NOT NULL""", "eh")
        copy(f"""SELECT DISTINCT band_key AS k, erasure_id, (band_key % {int(partitions)})::BIGINT AS _p
                 FROM erased_bands""", "eb")
    meta = {"records": has_records, "erased": has_erased, "partitions": int(partitions)}
    (root / MANIFEST).write_text(json.dumps(meta), encoding="utf-8")
    return {**meta, "datasets": _datasets(cat)}


def _datasets(cat: Any) -> list[tuple[int, str, str, list]]:
    return [(int(d), n, f, list(t or [])) for d, n, f, t in cat.con.execute(
        "SELECT dataset_id, name, fingerprint, tags FROM datasets ORDER BY dataset_id").fetchall()]


def catalog_state(cat: Any, partitions: int) -> str:
    """A digest of what the exported keys depend on: the schema, the datasets, the erasures, the row
    counts of the record, band-key and erased tables (and files), how many records have a word count,
    and ``P``. Tags are read afresh."""
    con = cat.con
    facts = [KEYS_VERSION, int(partitions), cat.schema_version]
    for sql in ("SELECT dataset_id, fingerprint, n_records FROM datasets ORDER BY dataset_id",
                "SELECT erasure_id FROM erasures ORDER BY erasure_id",
                # count(n_words): a dataset registered again fills in its rows' word counts (has_prompt changes)
                ("SELECT (SELECT count(*) FROM records), (SELECT count(n_words) FROM records), "
                 "(SELECT count(*) FROM record_bands), "
                 "(SELECT count(*) FROM erased_records), (SELECT count(*) FROM erased_bands)")):
        facts.append([list(r) for r in con.execute(sql).fetchall()])
    return hashlib.sha256(json.dumps(facts, default=str).encode("utf-8")).hexdigest()[:20]


def cached_catalog_keys(cat: Any, partitions: int) -> tuple[Path, dict[str, Any]]:
    """:func:`export_catalog_keys` into ``<catalog>.keys/<state>/`` beside the catalog, reused while the
    catalog's state (:func:`catalog_state`) is unchanged (``PROVAUDIT_RAY_KEYS_CACHE=1``; the catalog's
    folder must then be on the path every node shares). Written under a temporary name and renamed, so
    concurrent scans never read a half-written export; the two newest states are kept."""
    import uuid

    base = cat.path.with_name(cat.path.name + ".keys")
    dest = base / catalog_state(cat, partitions)
    if (dest / MANIFEST).exists():
        meta = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
        return dest, {**meta, "datasets": _datasets(cat)}
    tmp = base / f".tmp-{uuid.uuid4().hex[:12]}"
    try:
        meta = export_catalog_keys(cat, tmp, partitions)
        try:
            tmp.rename(dest)
        except OSError:  # another scan put the same state in place meanwhile
            if not (dest / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    states = sorted((d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in states[2:]:
        shutil.rmtree(old, ignore_errors=True)
    return dest, meta


def _read(root: Path, name: str, p: int, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Partition ``p`` of an exported (``_p=p/``) or shuffled (``p/``) table; empty when none was written."""
    for d in (root / name / f"_p={p}", root / name / f"{p:05d}"):
        files = sorted(d.glob("*.parquet")) if d.is_dir() else []
        if files:
            return pl.read_parquet([str(f) for f in files]).select(
                [pl.col(c).cast(t) for c, t in schema.items()])
    return pl.DataFrame(schema=schema)


_C = {"dataset_id": pl.Int64, "c_role": pl.String, "c_pair": pl.String, "has_prompt": pl.Boolean}
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "ch": {"text_hash": pl.String, **_C}, "cb": {"k": pl.UInt64, **_C, "c_short": pl.Boolean},
    "eh": {"text_hash": pl.String, "erasure_id": pl.Int64}, "eb": {"k": pl.UInt64, "erasure_id": pl.Int64},
    "h": {"record_id": pl.String, "text_hash": pl.String, "trivial": pl.String, "n_words": pl.Int64,
          "pair_id": pl.String, "role": pl.String, "snippet": pl.String},
    "k": {"text_hash": pl.String, "k": pl.UInt64},
    "n": {"text_hash": pl.String, **_C, "c_short": pl.Boolean}, "ne": {"text_hash": pl.String, "erasure_id": pl.Int64},
    "m": {"record_id": pl.String, "pair_id": pl.String, "role": pl.String, "why": pl.String,
          "snippet": pl.String, **_C, "kind": pl.Int64},
    "bp": {"pair_id": pl.String},
}


# ---------------------------------------------------------------- the rounds as pure functions

def map_shard(frame: pl.DataFrame, partitions: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Round 1 on one shard's records: (records with ``_p``, distinct texts' band keys with ``_q``)."""
    snippet = pl.col("text").str.slice(0, 80) if "text" in frame.columns else pl.lit(None, dtype=pl.String)
    recs = frame.select("record_id", "text_hash", "trivial", "n_words", "pair_id", "role",
                        snippet.alias("snippet"), _hash_part(partitions))
    keys = (frame.select("text_hash", "band_keys").unique("text_hash", keep="first", maintain_order=True)
            .explode("band_keys").rename({"band_keys": "k"}).drop_nulls("k")
            .with_columns((pl.col("k") % partitions).cast(pl.Int64).alias("_q")))
    return recs, keys


def near_matches(keys: pl.DataFrame, cat_bands: pl.DataFrame, erased_bands: pl.DataFrame,
                 partitions: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Round 2 on one key partition: (texts' near matches with catalog rows, with erasures), with ``_p``."""
    # streamed: the join holds a row per shared band key before the unique (16 for a text in the catalog)
    near = (keys.lazy().join(cat_bands.lazy(), on="k").select("text_hash", *_MATCH, "c_short").unique()
            .collect(engine="streaming"))
    erased = keys.join(erased_bands, on="k").select("text_hash", "erasure_id").unique()
    return near.with_columns(_hash_part(partitions)), erased.with_columns(_hash_part(partitions))


def _pair_part(partitions: int) -> pl.Expr:
    return (pl.col("pair_id").hash(seed=0) % partitions).cast(pl.Int64).alias("_r")


def hash_matches(recs: pl.DataFrame, cat_hashes: pl.DataFrame, near: pl.DataFrame, erased_hashes: pl.DataFrame,
                 erased_near: pl.DataFrame, partitions: int) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Round 3 on one hash partition: (match rows with ``_r``, substantive prompt rows with ``_r``, facts:
    distinct records, erased matches and the first five of them)."""
    distinct_pairs = pl.col("pair_id").drop_nulls().n_unique()  # count(DISTINCT pair_id)
    within = (recs.group_by("text_hash").agg(distinct_pairs.alias("n"), pl.col("n_words").min().alias("w"))
              .filter(pl.col("w") < BOILERPLATE_MAX_WORDS))
    in_cat = cat_hashes.join(within.select("text_hash"), on="text_hash", how="semi").group_by("text_hash").agg(
        pl.col("c_pair").drop_nulls().n_unique().alias("nc"))
    boiler = (within.join(in_cat, on="text_hash", how="left")
              .filter(pl.col("n") + pl.col("nc").fill_null(0) >= BOILERPLATE_MIN_ROWS).select("text_hash"))
    recs = recs.with_columns(pl.coalesce(pl.col("trivial"), pl.when(pl.col("text_hash").is_in(boiler["text_hash"].implode()))
                                         .then(pl.lit("boilerplate"))).alias("why"))
    base = recs.select("record_id", "text_hash", "pair_id", "role", "why", "snippet")
    m = (pl.concat([base.join(cat_hashes, on="text_hash").with_columns(pl.lit(0, pl.Int64).alias("kind")),
                    # a substantive text's near match with a trivial catalog text (a stock line) is no match
                    base.join(near, on="text_hash").filter(pl.col("why").is_not_null() | ~pl.col("c_short"))
                    .drop("c_short").with_columns(pl.lit(1, pl.Int64).alias("kind"))], how="vertical")
         .group_by("record_id", *_MATCH).agg(pl.col("kind").min(), pl.col("pair_id", "role", "why", "snippet").first())
         .select(*SCHEMAS["m"]).with_columns(_pair_part(partitions)))
    bp = (recs.filter((pl.col("role") == "prompt") & pl.col("why").is_null()).select("pair_id").unique()
          .with_columns(_pair_part(partitions)))
    er = (pl.concat([recs.join(erased_hashes, on="text_hash").select("record_id", "erasure_id",
                                                                       pl.lit(0, pl.Int64).alias("kind")),
                     recs.join(erased_near, on="text_hash").select("record_id", "erasure_id",
                                                                     pl.lit(1, pl.Int64).alias("kind"))], how="vertical")
          .group_by("record_id", "erasure_id").agg(pl.col("kind").min()))
    first = er.sort(pl.col("record_id").cast(pl.Binary), "erasure_id").head(EXAMPLES).rows()
    facts = {"records": int(recs["record_id"].n_unique()), "erased": er.height, "erased_first": first}
    return m, bp, facts


def _by_kind_then_id(r: Sequence) -> tuple:
    """DuckDB's ``ORDER BY kind, record_id`` (strings by their UTF-8 bytes)."""
    return r[0], r[1].encode("utf-8")


def _first(frame: pl.DataFrame, cols: list[str]) -> list[tuple]:
    """The first five rows of ``cols`` (kind, record id, ...) in that order (ids by their UTF-8 bytes)."""
    return frame.sort(cols[0], pl.col(cols[1]).cast(pl.Binary)).head(EXAMPLES).select(cols).rows()


def row_facts(m: pl.DataFrame, bp: pl.DataFrame) -> dict[int, list]:
    """Round 4 on one partition of scanned rows: per catalog dataset, [exact, near, trivial, trivial
    exact, reused counts, leak examples (kind, id), trivial examples (kind, id, reason, snippet), reused
    examples (kind, id, snippet)], each example list its first five."""
    same = (m.filter((pl.col("role") == "prompt") & pl.col("why").is_null() & (pl.col("c_role") == "prompt"))
            .select("pair_id", "dataset_id", "c_pair").unique().with_columns(pl.lit(True).alias("_same")))
    bp = bp.select("pair_id").drop_nulls().unique().with_columns(pl.lit(True).alias("_bp"))
    outs = list(OUTPUT_ROLES)
    cls = (m.join(bp, on="pair_id", how="left").join(same, on=["pair_id", "dataset_id", "c_pair"], how="left")
           .with_columns((pl.col("role").is_in(outs) & pl.col("c_role").is_in(outs) & pl.col("has_prompt")
                          & pl.col("_bp").is_not_null() & pl.col("_same").is_null()).fill_null(False).alias("reused")))
    allm = cls.group_by("dataset_id", "record_id").agg(
        pl.col("kind").min(), pl.col("kind").filter(~pl.col("reused")).min().alias("leak_kind"),
        pl.col("why", "snippet").first())
    out: dict[int, list] = {}
    for (did,), g in allm.group_by("dataset_id"):
        sub, why = g.filter(pl.col("why").is_null()), g.filter(pl.col("why").is_not_null())
        leak, reused = sub.filter(pl.col("leak_kind").is_not_null()), sub.filter(pl.col("leak_kind").is_null())

        out[int(did)] = [int((leak["leak_kind"] == 0).sum()), int((leak["leak_kind"] == 1).sum()), why.height,
                         int((why["kind"] == 0).sum()), reused.height,
                         _first(leak, ["leak_kind", "record_id"]), _first(why, ["kind", "record_id", "why", "snippet"]),
                         _first(reused, ["kind", "record_id", "snippet"])]
    return out


def merge_overlap(datasets: Sequence[tuple[int, str, str, list]], total: int,
                  facts: Sequence[dict[int, list]]) -> list[dict[str, Any]]:
    """``Catalog.overlap_report`` from the row partitions' facts (:func:`row_facts`)."""
    by: dict[int, list] = {}
    for part in facts:
        for did, f in part.items():
            cur = by.setdefault(int(did), [0, 0, 0, 0, 0, [], [], []])
            for i in range(5):
                cur[i] += f[i]
            for i in range(5, 8):
                cur[i] += [tuple(x) for x in f[i]]

    def first(rows: list[tuple]) -> list[tuple]:
        return sorted(rows, key=_by_kind_then_id)[:EXAMPLES]

    def match(kind: int) -> str:
        return "exact" if kind == 0 else "near"

    out = []
    for did, name, fp, tags in datasets:
        if did not in by:
            continue
        n_ex, n_nr, n_tr, n_tr_ex, n_re, ex, tr, re_ = by[did]
        trivial = [{"record_id": r, "reason": w, "match": match(k), "text": s} for k, r, w, s in first(tr)]
        reused = [{"record_id": r, "match": match(k), "text": s} for k, r, s in first(re_)]
        out.append({
            "dataset": name, "dataset_id": did, "fingerprint": fp, "tags": list(tags),
            "batch_records": total, "exact_records": n_ex, "near_records": n_nr,
            "exact_rate": round(n_ex / total, 6) if total else 0.0,
            "near_rate": round(n_nr / total, 6) if total else 0.0,
            "examples": [r for _k, r in first(ex)],
            "trivial_records": n_tr, "trivial_exact_records": n_tr_ex,
            "trivial_examples": [{k: v for k, v in e.items() if v is not None} for e in trivial],
            "reused_records": n_re,
            "reused_examples": [{k: v for k, v in e.items() if v is not None} for e in reused],
        })
    return out


def merge_erased(facts: Sequence[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """(number of erased matches, the first five as ``Catalog.erased_matches`` lists them)."""
    rows = sorted((tuple(r) for f in facts for r in f["erased_first"]), key=lambda r: (r[0].encode("utf-8"), r[1]))
    return (sum(f["erased"] for f in facts),
            [{"record_id": r, "erasure_id": int(e), "match": "exact" if k == 0 else "near"}
             for r, e, k in rows[:EXAMPLES]])


# ---------------------------------------------------------------- tasks (file in, file out)

_MAP_COLUMNS = ["record_id", "text_hash", "band_keys", "trivial", "n_words", "pair_id", "role", "text"]


def _map_task(files: Sequence[str], shard: int, partitions: int, root: str) -> int:
    frame = pl.concat([pl.read_parquet(f, columns=_MAP_COLUMNS) for f in files], how="vertical")
    recs, keys = map_shard(frame, partitions)
    _write_partitions(recs, "_p", Path(root) / "h", f"{shard:08d}.parquet")
    _write_partitions(keys, "_q", Path(root) / "k", f"{shard:08d}.parquet")
    return frame.height


def _keys(keys_root: str) -> Path:
    """The exported keys' folder, refused when this node does not see it (an empty read would be a
    silently wrong report)."""
    kr = Path(keys_root)
    if not (kr / MANIFEST).exists():
        from provaudit.errors import InputError

        raise InputError("the catalog's exported keys are not visible on this Ray node: put the scan's --out "
                         "(and, with PROVAUDIT_RAY_KEYS_CACHE=1, the catalog's folder) on a path every node "
                         "shares", file=str(kr))
    return kr


def _near_task(q: int, partitions: int, root: str, keys_root: str) -> int:
    r, kr = Path(root), _keys(keys_root)
    near, erased = near_matches(_read(r, "k", q, SCHEMAS["k"]), _read(kr, "cb", q, SCHEMAS["cb"]),
                                _read(kr, "eb", q, SCHEMAS["eb"]), partitions)
    _write_partitions(near, "_p", r / "n", f"{q:05d}.parquet")
    _write_partitions(erased, "_p", r / "ne", f"{q:05d}.parquet")
    return near.height


def _hash_task(p: int, partitions: int, root: str, keys_root: str) -> dict[str, Any]:
    r, kr = Path(root), _keys(keys_root)
    m, bp, facts = hash_matches(_read(r, "h", p, SCHEMAS["h"]), _read(kr, "ch", p, SCHEMAS["ch"]),
                                _read(r, "n", p, SCHEMAS["n"]), _read(kr, "eh", p, SCHEMAS["eh"]),
                                _read(r, "ne", p, SCHEMAS["ne"]), partitions)
    _write_partitions(m, "_r", r / "m", f"{p:05d}.parquet")
    _write_partitions(bp, "_r", r / "bp", f"{p:05d}.parquet")
    return facts


def _rows_task(q: int, root: str) -> dict[int, list]:
    r = Path(root)
    m = _read(r, "m", q, SCHEMAS["m"])
    return row_facts(m, _read(r, "bp", q, SCHEMAS["bp"])) if m.height else {}


# ---------------------------------------------------------------- driver

def run_rounds(run: Callable[[Callable, list[tuple]], list[Any]], shards: Sequence[tuple[int, Sequence[str]]],
               meta: dict[str, Any], partitions: int, root: Path,
               keys_root: Path) -> tuple[list[dict], int, list[dict]]:
    """Rounds 1-4 over the shards' parts and the exported keys (``meta``: what
    :func:`export_catalog_keys` returned), each round's calls through ``run(fn, [args, ...])`` (Ray
    tasks, or in this process); returns (the overlap report, erased matches, their first five)."""
    run(_map_task, [(files, s, partitions, str(root)) for s, files in shards])
    run(_near_task, [(q, partitions, str(root), str(keys_root)) for q in range(partitions)])
    hashed = run(_hash_task, [(p, partitions, str(root), str(keys_root)) for p in range(partitions)])
    rows = run(_rows_task, [(q, str(root)) for q in range(partitions)]) if meta["records"] else []
    report = merge_overlap(meta["datasets"], sum(f["records"] for f in hashed), rows) if meta["records"] else []
    n_erased, erased = merge_erased(hashed) if meta["erased"] else (0, [])
    return report, n_erased, erased


def catalog_checks(catalog: Path, parts_dir: Path, work: Path, own: set[str], wait: float | None, *,
                   partitions: int, records: int = 0, step: Callable[[str], None] | None = None
                   ) -> tuple[list[dict], list[str], list[dict], int]:
    """What ``pipeline._catalog_checks`` returns (overlap, datasets skipped as this very input, the first
    five erased matches) plus the number of erased matches, computed on the cluster in ``partitions``
    partitions (the duplicate grouping's), or more where the scan's ``records`` or the catalog's would
    put more than ``PARTITION_RECORDS`` in one."""
    import ray

    from provaudit.catalog.store import open_catalog
    from provaudit.engine.ray_dups import shard_parts

    step = step or (lambda _d: None)
    if not catalog.exists():
        return [], [], [], 0
    keys_root, root = work / "catalog-keys", work / "overlap"
    cache = os.environ.get("PROVAUDIT_RAY_KEYS_CACHE", "") == "1"
    with open_catalog(catalog, read_only=True, wait=wait) as cat:
        cat._check_band_keys()
        # a reducer's memory stays flat: at most PARTITION_RECORDS scanned and catalog records per partition
        n_catalog = int(cat.con.execute("SELECT count(*) FROM records").fetchone()[0])
        partitions = max(partitions, -(-n_catalog // PARTITION_RECORDS), -(-records // PARTITION_RECORDS))
        if cache:
            keys_root, meta = cached_catalog_keys(cat, partitions)
        else:
            meta = export_catalog_keys(cat, keys_root, partitions)
    if not meta["records"] and not meta["erased"]:
        return [], [], [], 0
    step("catalog keys exported")

    def run(fn: Callable, calls: list[tuple]) -> list[Any]:
        return Task(ray, fn, num_cpus=1, max_retries=1).map(calls)

    try:
        report, n_erased, erased = run_rounds(run, shard_parts(parts_dir), meta, partitions, root, keys_root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if not cache:
            shutil.rmtree(keys_root, ignore_errors=True)
    step("overlap and erased records")
    itself = sorted({o["dataset"] for o in report if o["fingerprint"] in own})
    return [o for o in report if o["fingerprint"] not in own], itself, erased, n_erased


__all__ = ["cached_catalog_keys", "catalog_checks", "catalog_state", "export_catalog_keys", "hash_matches", "map_shard", "merge_erased", "merge_overlap",
           "near_matches", "row_facts", "run_rounds"]
