"""Duplicate groups across the whole input on Ray, and ``records.parquet`` written by the workers.

The same definitions as the DuckDB step of a local scan (``provaudit.pipeline._duplicate_tables``),
with ``_idx`` the record's position in input order:

* ``exact_dup_of`` of a record: the ``record_id`` of the earliest record with the same ``text_hash``,
  unless it is that record;
* a *representative* is the earliest record of its ``text_hash``; for each band key shared by two or
  more representatives, ``key_first`` is the earliest of them; a representative's ``near_dup_of`` is
  the record id of the smallest ``key_first`` over its band keys, when that is earlier than itself.

Two shuffle rounds through files in the scan's (shared) work folder, as Ray tasks:

1. map (one task per shard): ``(text_hash, _idx, record_id, pair_id, n_words)`` of every record, plus
   its band keys where it is the first of its hash in the shard, into ``P`` hash partitions
   (``int(text_hash[:8], 16) % P``);
2. reduce per hash partition: the earliest record of each hash (its id, band keys) and whether the
   text is boilerplate (``provaudit.contamination.boilerplate_agg``); writes ``exact/p.parquet`` (``_idx``, ``exact_dup_of``,
   ``boiler``) and the representatives' band keys into ``P`` key partitions (``key % P``);
3. reduce per key partition: for each key shared by several representatives, every later one gets
   ``(key_first, its record id)`` as a candidate: ``near/q.parquet``;
4. write (one task per shard): the shard's parts joined with its exact rows and its nearest candidate
   (the minimum over candidates), written as ``records.parquet/part-<shard>.parquet``; the task also
   returns its share of ``summary["duplicates"]`` (counts per role, the first five examples of each
   kind), which the driver adds up: O(shards) work on the driver.

Results do not depend on ``P`` or on how the input was cut into shards.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from provaudit import dup_summary
from provaudit.contamination import boilerplate_agg
from provaudit.engine.tasks import Task
from provaudit.io.sink import ParquetSink

EXAMPLES = 5
#: shuffle partitions (``PROVAUDIT_RAY_PARTITIONS``; default: two per cluster CPU, and at least one per
#: ``PARTITION_RECORDS`` records so that a reducer's memory stays flat in the input size: at most 50,000
#: records' hashes and band keys, fewer than one 32 MiB shard's records, reached at 100,000 rows on two CPUs)
PARTITIONS = int(os.environ.get("PROVAUDIT_RAY_PARTITIONS", "0")) or None
PARTITION_RECORDS = 50_000
_PART = re.compile(r"part-(\d+)-(\d+)-(\d+)\.parquet$")


def shard_parts(parts_dir: Path) -> list[tuple[int, list[str]]]:
    """The parts of each shard, shards in input order: [(shard, [part file, ...]), ...]."""
    by: dict[int, list[str]] = {}
    for f in sorted(os.listdir(parts_dir)):
        m = _PART.match(f)
        if m:
            by.setdefault(int(m.group(2)), []).append(str(parts_dir / f))
    return sorted(by.items())


def partition_count(records: int) -> int:
    """``P``: ``PROVAUDIT_RAY_PARTITIONS``, else two per cluster CPU and at least one per
    ``PARTITION_RECORDS`` records (needs a Ray session)."""
    import ray

    return PARTITIONS or max(1, 2 * int(ray.cluster_resources().get("CPU", 1)), -(-records // PARTITION_RECORDS))


def _hash_part(p: int) -> pl.Expr:
    return (pl.col("text_hash").str.slice(0, 8).str.to_integer(base=16) % p).cast(pl.Int64).alias("_p")


def _write_partitions(frame: pl.DataFrame, key: str, root: Path, name: str) -> None:
    for (p,), part in frame.partition_by(key, as_dict=True, include_key=False).items():
        d = root / f"{int(p):05d}"
        d.mkdir(parents=True, exist_ok=True)
        part.write_parquet(d / name, compression="lz4")


# ---------------------------------------------------------------- tasks

def _map_hashes(files: Sequence[str], shard: int, partitions: int, root: str) -> int:
    frame = pl.concat([pl.read_parquet(f, columns=["_idx", "record_id", "text_hash", "pair_id", "n_words",
                                                   "band_keys"]) for f in files], how="vertical")
    first = pl.col("_idx") == pl.col("_idx").min().over("text_hash")
    frame = frame.with_columns(pl.when(first).then(pl.col("band_keys")).alias("band_keys"), _hash_part(partitions))
    _write_partitions(frame, "_p", Path(root) / "h", f"{shard:08d}.parquet")
    return frame.height


def _partition(root: str, sub: str, p: int, out_sub: str) -> tuple[pl.DataFrame | None, Path]:
    """The rows the mappers wrote to partition ``p`` of ``sub`` (None if none), and the output folder."""
    d = Path(root) / sub / f"{p:05d}"
    out = Path(root) / out_sub
    out.mkdir(parents=True, exist_ok=True)
    return (pl.read_parquet(str(d / "*.parquet")) if d.exists() else None), out


def _reduce_hashes(p: int, partitions: int, root: str) -> int:
    frame, out = _partition(root, "h", p, "exact")
    if frame is None:
        return 0
    groups = frame.group_by("text_hash").agg(
        pl.col("_idx").min().alias("first_idx"),
        pl.col("record_id").sort_by("_idx").first().alias("first_rid"),
        pl.col("band_keys").sort_by("_idx").first().alias("band_keys"),
        boilerplate_agg().alias("boiler"))
    exact = (frame.select("_idx", "text_hash").join(groups.select("text_hash", "first_idx", "first_rid", "boiler"),
                                                     on="text_hash")
             .filter(pl.col("_idx") != pl.col("first_idx"))
             .select("_idx", pl.col("first_rid").alias("exact_dup_of"), "boiler").sort("_idx"))
    exact.write_parquet(out / f"{p:05d}.parquet", compression="lz4", row_group_size=65536)
    bands = (groups.select(pl.col("first_idx").alias("_idx"), pl.col("first_rid").alias("record_id"), "boiler",
                           "band_keys").explode("band_keys").rename({"band_keys": "k"})
             .drop_nulls("k").with_columns((pl.col("k") % partitions).cast(pl.Int64).alias("_q")))
    _write_partitions(bands, "_q", Path(root) / "k", f"{p:05d}.parquet")
    return exact.height


def _reduce_bands(q: int, root: str) -> int:
    frame, out = _partition(root, "k", q, "near")
    if frame is None:
        return 0
    first = frame.group_by("k").agg(pl.len().alias("n"), pl.col("_idx").min().alias("near_idx"),
                                    pl.col("record_id").sort_by("_idx").first().alias("near_dup_of")
                                    ).filter(pl.col("n") > 1)
    near = (frame.join(first, on="k").filter(pl.col("near_idx") < pl.col("_idx"))
            .select("_idx", "near_idx", "near_dup_of", "boiler").unique().sort("_idx", "near_idx"))
    near.write_parquet(out / f"{q:05d}.parquet", compression="lz4", row_group_size=65536)
    return near.height


def _in_range(root: Path, sub: str, lo: int, hi: int) -> pl.LazyFrame | None:
    files = sorted((root / sub).glob("*.parquet"))
    if not files:
        return None
    return pl.scan_parquet([str(f) for f in files]).filter(pl.col("_idx").is_between(lo, hi))


def _write_shard(files: Sequence[str], shard: int, pos_bits: int, root: str, records_dir: str) -> dict[str, Any]:
    """Join the shard's duplicate rows onto its parts, write its records file, count its duplicates."""
    lo, hi = shard << pos_bits, ((shard + 1) << pos_bits) - 1
    exact = _in_range(Path(root), "exact", lo, hi)
    near = _in_range(Path(root), "near", lo, hi)
    exact_df = (exact.collect() if exact is not None
                else pl.DataFrame(schema={"_idx": pl.Int64, "exact_dup_of": pl.String, "boiler": pl.Boolean}))
    near_df = (near.collect().sort("_idx", "near_idx").group_by("_idx", maintain_order=True).first()
               .select("_idx", "near_dup_of", "boiler") if near is not None
               else pl.DataFrame(schema={"_idx": pl.Int64, "near_dup_of": pl.String, "boiler": pl.Boolean}))
    dup = (exact_df.join(near_df, on="_idx", how="full", coalesce=True, suffix="_near")
           .select("_idx", pl.col("exact_dup_of").cast(pl.String), pl.col("near_dup_of").cast(pl.String),
                   pl.coalesce("boiler", "boiler_near").alias("_boiler")))
    facts: dict[str, Any] = {"roles": {}, "examples": {}}
    frames = []
    with ParquetSink(f"{records_dir}/part-{shard:08d}.parquet") as sink:  # records_dir: a path or a URI
        for f in files:
            frame = pl.read_parquet(f)
            if frame.height == 0:
                continue
            joined = frame.join(dup, on="_idx", how="left", maintain_order="left")
            frames.append(joined.select("record_id", "role", "text", "trivial", "exact_dup_of", "near_dup_of",
                                        "_boiler"))
            sink.write(joined.drop("_idx", "_boiler").to_arrow())
    if frames:
        facts = _dup_facts(pl.concat(frames, how="vertical"))
    return facts


def _dup_facts(f: pl.DataFrame) -> dict[str, Any]:
    """This shard's share of ``summary["duplicates"]``: counts per role, candidate examples."""
    why = pl.coalesce(pl.col("trivial"), pl.when(pl.col("_boiler")).then(pl.lit("boilerplate")))
    f = f.with_columns(why.alias("why"), (pl.col("exact_dup_of").is_not_null()
                                          | pl.col("near_dup_of").is_not_null()).alias("_dup"))
    roles = {r: [int(x) for x in vals] for r, *vals in f.group_by("role").agg(
        pl.len().alias("n"), (pl.col("exact_dup_of").is_not_null() & pl.col("why").is_null()).sum().alias("e"),
        (pl.col("near_dup_of").is_not_null() & pl.col("why").is_null()).sum().alias("nd"),
        (pl.col("why").is_not_null() & pl.col("_dup")).sum().alias("tr"),
        (pl.col("why") == "empty").sum().alias("em")).iter_rows()}
    kinds = {"exact": (pl.col("exact_dup_of").is_not_null() & pl.col("why").is_null(), ["record_id", "exact_dup_of"]),
             "near": (pl.col("near_dup_of").is_not_null() & pl.col("why").is_null(), ["record_id", "near_dup_of"]),
             "trivial": (pl.col("why").is_not_null() & pl.col("_dup"),
                         ["record_id", pl.coalesce("exact_dup_of", "near_dup_of"), "why", "text"]),
             "empty": (pl.col("why") == "empty", ["record_id"])}
    examples = {}
    for kind, (cond, cols) in kinds.items():
        for scope, extra in (("outputs", pl.col("role") != "prompt"), ("all", pl.lit(True))):
            rows = f.filter(cond & extra).sort("record_id").head(EXAMPLES).select(cols).rows()
            examples[f"{kind}/{scope}"] = [list(r) for r in rows]
    return {"roles": roles, "examples": examples}


def _snippet(text: str) -> str:
    """DuckDB's ``left(text, 80)``, as the local summary computes it."""
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute("SELECT left(?, 80)", [text]).fetchone()[0]
    finally:
        con.close()


def merge_dup_facts(facts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``summary["duplicates"]`` from the shards' facts, as ``pipeline._duplicate_summary`` computes it."""
    totals: dict[str, list[int]] = {}
    for fa in facts:
        for role, vals in fa["roles"].items():
            cur = totals.setdefault(role, [0] * 5)
            for i, v in enumerate(vals):
                cur[i] += v
    roles = dup_summary.by_role(totals)
    scope = "outputs" if dup_summary.outputs_only(roles) else "all"

    def first(kind: str) -> list[list[Any]]:
        rows = [r for fa in facts for r in fa["examples"].get(f"{kind}/{scope}", [])]
        return sorted(rows, key=lambda r: r[0].encode("utf-8"))[:EXAMPLES]

    trivial = [(a, b, w, _snippet(t)) for a, b, w, t in first("trivial")]
    return dup_summary.assemble(roles, first("exact"), first("near"), trivial, first("empty"))


# ---------------------------------------------------------------- driver

def finalize(parts_dir: Path, shuffle_dir: Path, records_dir: Path, *, pos_bits: int, records: int = 0,
             partitions: int | None = None, step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Duplicate groups on the cluster over the ``records`` records of the parts; every shard's records
    written under ``records_dir``; returns ``summary["duplicates"]``."""
    import ray

    step = step or (lambda _d: None)
    shards = shard_parts(parts_dir)
    partitions = partitions or partition_count(records)
    records_dir.mkdir(parents=True, exist_ok=True)
    root = str(shuffle_dir)

    def run(fn: Callable, calls: list[tuple]) -> list[Any]:
        return Task(ray, fn, num_cpus=1, max_retries=1).map(calls)

    run(_map_hashes, [(files, s, partitions, root) for s, files in shards])
    step("exact groups: hashes partitioned")
    run(_reduce_hashes, [(p, partitions, root) for p in range(partitions)])
    step("exact groups and representatives' band keys")
    run(_reduce_bands, [(q, root) for q in range(partitions)])
    step("near-duplicate groups")
    facts = run(_write_shard, [(files, s, pos_bits, root, str(records_dir)) for s, files in shards])
    step("records written")
    return merge_dup_facts(facts)


__all__ = ["finalize", "merge_dup_facts", "partition_count", "shard_parts"]
