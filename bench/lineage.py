"""Benchmark: catalog insertion of 1,000,000 records and lineage lookups against that catalog.

Targets (issues 2 and 6): insertion < 60 s; a lineage lookup < 1 s.

Records are built directly (not through the readers): each row is a prompt (one real sentence)
and a response (two or three real sentences) recombined from the texts in ``fixtures/`` with a
fixed seed, fingerprinted with provaudit.fingerprint (xxh3 hash + MinHash LSH band keys), and
given a synthetic ``user_id`` in the metadata. Generation is timed separately and cached in the
work folder; only ``Catalog.add_dataset`` from the Parquet file counts as insertion.

Usage:
    python bench/lineage.py [--records 1000000] [--work /tmp/provaudit-bench-lineage] [--fixtures fixtures]
    python bench/lineage.py --recall /work/shared/data     # near-duplicate recall on held-out texts

A dataset of 1,000,000 records or more keeps its catalog rows in Parquet files beside the catalog
(docs/lineage.md): set ``PROVAUDIT_RECORD_FILE_RECORDS`` / ``PROVAUDIT_BAND_FILE_RECORDS`` to 0 (files)
or above ``--records`` (tables) to measure one layout at any size; ``--prepared`` writes the files first,
as a Ray worker does, so ``insert_s`` / ``insert_cpu_s`` is what the driver's commit costs.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from provaudit.catalog import Catalog
from provaudit.catalog.lineage import add_checkpoint, lineage_find
from provaudit.errors import ProvauditError
from provaudit.fingerprint import band_keys, text_hash

ROOT = Path(__file__).resolve().parent.parent

_SENT = re.compile(r"(?<=[.!?])\s+")


def sentence_pool(fixtures: Path) -> list[str]:
    """Distinct real sentences (20-300 characters) from every readable fixture file."""
    from provaudit.io import read_table

    seen: dict[str, None] = {}
    for p in sorted(fixtures.rglob("*")):
        if p.suffix not in (".jsonl", ".json", ".csv", ".gz") or p.name.startswith("."):
            continue
        try:
            texts = read_table(p)["text"].to_list()
        except ProvauditError:  # not a record file (configs, manifests)
            texts = []
        for t in texts:
            for s in _SENT.split(" ".join(t.split())):
                if 20 <= len(s) <= 300:
                    seen.setdefault(s, None)
    return list(seen)


def build_records(pool: list[str], n_records: int, out: Path, seed: int = 0, chunk: int = 50_000) -> None:
    """Write n_records fingerprinted records (prompt + response per row) to one Parquet file."""
    rng = np.random.default_rng(seed)
    schema = pa.schema([("record_id", pa.string()), ("source_row", pa.int64()), ("role", pa.string()),
                        ("pair_id", pa.string()), ("text_hash", pa.string()), ("band_keys", pa.list_(pa.uint64())),
                        ("meta", pa.string()), ("text", pa.string())])
    n_rows = n_records // 2
    with pq.ParquetWriter(out, schema) as writer:
        for start in range(0, n_rows, chunk // 2):
            rows = range(start, min(n_rows, start + chunk // 2))
            texts, ids, srows, roles, pairs, metas = [], [], [], [], [], []
            for r in rows:
                k = int(rng.integers(2, 4))
                picks = rng.integers(0, len(pool), size=k + 1)
                meta = json.dumps({"source": "bench", "user_id": f"u-{r % 200_000:06d}"}, sort_keys=True)
                for role, text in (("prompt", pool[picks[0]]), ("response", " ".join(pool[i] for i in picks[1:]))):
                    texts.append(text)
                    ids.append(f"bench:{r}:{role}")
                    srows.append(r)
                    roles.append(role)
                    pairs.append(f"bench:{r}")
                    metas.append(meta)
            hashes = [text_hash(t) for t in texts]
            keys = band_keys(texts)
            writer.write_table(pa.table({"record_id": ids, "source_row": srows, "role": roles, "pair_id": pairs,
                                         "text_hash": hashes, "band_keys": keys, "meta": metas, "text": texts},
                                        schema=schema))
            print(f"  generated {min(n_rows, start + chunk // 2) * 2:,} records", file=sys.stderr, flush=True)


def _edit(text: str, kind: str, rng: np.random.Generator) -> str:
    """A light, realistic edit: a typo, a dropped sentence, or a share of words replaced."""
    words = text.split()
    if kind == "typo":
        i = int(rng.integers(0, len(words)))
        w = words[i]
        words[i] = w[:-1] + w[-1] * 2 if len(w) > 1 else w + "s"
        return " ".join(words)
    if kind == "drop_sentence":
        sents = _SENT.split(text)
        return " ".join(sents[:-1]) if len(sents) > 1 else " ".join(words[: max(1, len(words) * 9 // 10)])
    share = float(kind.removeprefix("replace_")) / 100
    idx = rng.choice(len(words), size=max(1, round(share * len(words))), replace=False)
    fillers = ["very", "also", "the", "really", "this", "new", "some", "its"]
    for i in idx:
        words[i] = fillers[int(rng.integers(0, len(fillers)))]
    return " ".join(words)


def recall(shared: Path, work: Path) -> dict:
    """Near-duplicate lookup on texts provaudit was never tuned on: edited copies found, unrelated
    texts and same-prefix model continuations not."""
    from provaudit.catalog.lineage import _query_frame

    fd = shared / "fast-detect-gpt"
    xsum = json.loads((fd / "xsum_gpt-neox-20b.raw_data.json").read_text())
    cs = [d["document"] for d in json.loads((shared / "detector-bias/CS224N_real_145.json").read_text())]
    essays = [d["document"] for d in json.loads((shared / "detector-bias/HewlettStudentEssay_real_88.json").read_text())]
    catalog_texts = [t.strip() for t in xsum["original"] + cs + essays[1:] if len(t.split()) >= 40]
    continuations = [t.strip() for t in xsum["sampled"]]  # share a ~30-token prefix with a catalog text
    unrelated = [t.strip() for t in json.loads((fd / "writing_gpt-j-6B.raw_data.json").read_text())["original"]]
    path = work / "recall.duckdb"
    for p in (path, path.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    q = _query_frame(catalog_texts)
    records = q.with_columns(pl.int_range(pl.len()).alias("source_row"), pl.lit("text").alias("role"),
                             pl.col("record_id").alias("pair_id"), pl.lit("{}").alias("meta"))
    out: dict = {"catalog_texts": len(catalog_texts)}
    rng = np.random.default_rng(0)
    with Catalog(path) as cat:
        cat.add_dataset(name="heldout", fingerprint="heldout", path="-", fmt="-", schema="text", tags=[],
                        n_records=len(catalog_texts), records=records)

        # catalog record i has id "query:i", as has the edited copy of text i: a hit is qid == rid
        for kind in ("typo", "drop_sentence", "replace_5", "replace_10", "replace_20", "replace_30"):
            edited = [_edit(t, kind, rng) for t in catalog_texts]
            m = cat.match_records(_query_frame(edited))
            hit = {qid for qid, rid in zip(m["query_id"].to_list(), m["record_id"].to_list()) if qid == rid}
            out[f"recall_{kind}"] = round(len(hit) / len(edited), 4)
        for name, texts in (("unrelated_human_stories", unrelated), ("same_prefix_model_continuations",
                                                                    continuations)):
            m = cat.match_records(_query_frame(texts))
            out[f"false_match_rate_{name}"] = round(m["query_id"].n_unique() / len(texts), 4) if m.height else 0.0
            out[f"n_{name}"] = len(texts)
    out["deep"] = deep_recall(catalog_texts, unrelated, continuations, work, rng)
    return out


def deep_recall(catalog_texts: list[str], unrelated: list[str], continuations: list[str], work: Path,
                rng: np.random.Generator, n_queries: int = 60) -> dict:
    """The same edits through ``lineage_find(text=..., deep=True)`` (a file re-read per query)."""
    import provaudit

    src = work / "heldout.jsonl"
    src.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in catalog_texts),
                   encoding="utf-8")
    path = work / "recall_deep.duckdb"
    for p in (path, path.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    provaudit.register(src, catalog=path)
    pick = rng.choice(len(catalog_texts), size=n_queries, replace=False)
    out: dict = {"n_queries": n_queries}
    with Catalog(path, read_only=True) as cat:
        for kind in ("replace_10", "replace_20", "replace_30"):
            hits = 0
            for i in pick:
                res = lineage_find(text=_edit(catalog_texts[i], kind, rng), catalog=cat, deep=True)
                hits += any(r["source_row"] == i for r in res["records"])
            out[f"recall_{kind}"] = round(hits / n_queries, 4)
        for name, texts in (("unrelated_human_stories", unrelated), ("same_prefix_model_continuations",
                                                                    continuations)):
            hit = sum(lineage_find(text=t, catalog=cat, deep=True)["n_records"] > 0 for t in texts[:n_queries])
            out[f"false_match_rate_{name}"] = round(hit / n_queries, 4)
    return out


def timed(fn, repeat: int = 5) -> dict:
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4),
            "n_records_found": result["n_records"] if isinstance(result, dict) else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/provaudit-bench-lineage"))
    ap.add_argument("--fixtures", type=Path, default=ROOT / "fixtures")
    ap.add_argument("--prepared", action="store_true",
                    help="write the dataset's catalog files first, as a Ray worker does before a scan's commit "
                         "(timed apart as prepare_s), so insert_s is the commit's own work")
    ap.add_argument("--recall", type=Path, default=None, metavar="SHARED_DATA",
                    help="Only measure near-duplicate recall / false matches on held-out corpora in this folder.")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.recall is not None:
        print(json.dumps(recall(args.recall, args.work), indent=2, sort_keys=True))
        return
    data = args.work / f"records_{args.records}.parquet"
    report: dict = {"records": args.records}
    if not data.exists():
        t0 = time.perf_counter()
        pool = sentence_pool(args.fixtures)
        print(f"sentence pool: {len(pool):,} real sentences", file=sys.stderr)
        build_records(pool, args.records, data.with_suffix(".tmp"))
        data.with_suffix(".tmp").rename(data)
        report["generate_s"] = round(time.perf_counter() - t0, 1)

    cat_path = args.work / "catalog.duckdb"
    for p in (cat_path, cat_path.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    folders = [cat_path.with_name(cat_path.name + s) for s in (".bands", ".records")]  # the catalog's files
    for d in folders:
        for f in d.glob("*"):
            f.unlink()
    prepared: dict = {}
    if args.prepared:  # what provaudit.pipeline._dataset_parts_and_bands does on a worker
        from provaudit.catalog import files, store

        t0 = time.perf_counter()
        stage = args.work / "prepared"
        stage.mkdir(exist_ok=True)
        if args.records >= store.BAND_FILE_RECORDS:
            store.write_band_file(data, stage / "bands.parquet")
            prepared["band_file"] = stage / "bands.parquet"
        if args.records >= files.RECORD_FILE_RECORDS:
            prepared["record_files"] = [stage / f"{kind}.parquet" for kind in files.KINDS]
            files.write_record_files(data, prepared["record_files"])
        report["prepare_s"] = round(time.perf_counter() - t0, 2)
    with Catalog(cat_path) as cat:
        t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        cat.add_dataset(name="bench", fingerprint=f"bench-{args.records}", path=str(data), fmt="parquet",
                        schema="bench", tags=["train"], n_records=args.records, records=data, **prepared)
        report["insert_s"] = round(time.perf_counter() - t0, 2)
        c1 = resource.getrusage(resource.RUSAGE_SELF)  # CPU of every thread (DuckDB's too)
        report["insert_cpu_s"] = round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 2)
        report["peak_rss_mb_after_insert"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        report["catalog_mb"] = round(cat_path.stat().st_size / 1e6, 1)
        # datasets of PROVAUDIT_RECORD_FILE_RECORDS / PROVAUDIT_BAND_FILE_RECORDS records or more (1M by default)
        # keep their rows in Parquet files beside the catalog (docs/lineage.md)
        report["catalog_files_mb"] = round(sum(f.stat().st_size for d in folders for f in d.glob("*")) / 1e6, 1)
        # what a scan asks: overlap of a 10,000-record batch (half of it already in the catalog)
        batch = pl.concat([pl.read_parquet(data, n_rows=5000),
                           pl.read_parquet(data, n_rows=5000).with_columns(
                               pl.col("record_id").str.replace("bench", "new"),
                               pl.lit("0" * 32).alias("text_hash"),
                               pl.col("band_keys").list.eval(pl.element() + 1))])
        t0 = time.perf_counter()
        rep = cat.overlap_report(batch)
        report["overlap_report_10k_batch_s"] = round(time.perf_counter() - t0, 3)
        report["overlap_report_10k_exact"] = rep[0]["exact_records"] if rep else 0
    add_checkpoint("bench-sft", ["bench"], catalog=cat_path)
    add_checkpoint("bench-dpo", [], parent="bench-sft", catalog=cat_path)

    sample = pl.read_parquet(data, columns=["text", "meta"], n_rows=2002).row(2001)  # a response
    text, meta = sample[0], json.loads(sample[1])
    words = text.split()
    edited = " ".join(words[:-2] + ["however", "indeed"])  # a light edit of a real record
    lookups = {
        "text_exact": lambda c: lineage_find(text=text, catalog=c),
        "text_near_edit": lambda c: lineage_find(text=edited, catalog=c),
        "field_user_id": lambda c: lineage_find(field=f"user_id={meta['user_id']}", catalog=c),
    }
    with Catalog(cat_path, read_only=True) as cat:  # warm: an open catalog (notebook use)
        report["lookup_open_catalog"] = {k: timed(lambda f=f: f(cat)) for k, f in lookups.items()}
    # cold: each call opens the catalog file itself, as one CLI invocation does
    report["lookup_cold"] = {k: timed(lambda f=f: f(cat_path), repeat=3) for k, f in lookups.items()}
    report["xxh3_check"] = xxhash.xxh3_64_hexdigest(text.encode())  # proves the same sample on reruns
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
