"""bench/ scripts: the data generator is real text, seeded and controlled; the baselines do the same work."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import generate as gen

#: characters of a sentence's start that index it in the recombination check
PREFIX = 12


@pytest.fixture(scope="module")
def pool() -> gen.TextPool:
    return gen.load_pool([ROOT / s for s in gen.DEFAULT_SOURCES])


def test_generated_file_is_seeded_and_byte_identical(tmp_path: Path) -> None:
    a = gen.generate(tmp_path / "a.jsonl", 300, seed=7)
    b = gen.generate(tmp_path / "b.jsonl", 300, seed=7)
    gen.generate(tmp_path / "c.jsonl", 300, seed=8)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    assert a["rows"] == 300 and a["records"] == 900 and a == {**b, "bytes": a["bytes"]}
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 300 and set(rows[0]) == {"prompt", "chosen", "rejected"}


def test_texts_are_recombined_real_sentences(tmp_path: Path, pool: gen.TextPool) -> None:
    sentences = {s for texts in pool.outputs.values() for t in texts for s in t}
    gen.generate(tmp_path / "g.jsonl", 400, seed=1, dup_rate=0.0, near_rate=0.0)
    rows = [json.loads(x) for x in (tmp_path / "g.jsonl").read_text().splitlines()]
    outputs = [r[k] for r in rows for k in ("chosen", "rejected")]
    # every output is made of whole sentences of the shipped corpora, nothing made up
    assert len(sentences) > 5_000
    joined_ok = 0
    # the sentences occurring in an output, found through their first PREFIX characters at each position of
    # it (the same set as testing every sentence with ``in``, 40x faster); shorter sentences are tested whole
    by_prefix: dict[str, list[str]] = {}
    for s in sentences:
        if len(s) >= PREFIX:
            by_prefix.setdefault(s[:PREFIX], []).append(s)
    short = [s for s in sentences if len(s) < PREFIX]
    for o in outputs[:200]:
        found = {s for i in range(len(o)) for s in by_prefix.get(o[i:i + PREFIX], ()) if o.startswith(s, i)}
        found.update(s for s in short if s in o)
        rest = o
        for s in sorted(found, key=len, reverse=True):
            rest = rest.replace(s, "")
        joined_ok += len(re.sub(r"\s+", "", rest)) == 0
    assert joined_ok >= 195
    lengths = [len(o) for o in outputs]
    assert 500 <= sum(lengths) / len(lengths) <= 800  # HH-RLHF-like, about 650 characters
    # almost no duplicates unless injected (a long one-sentence source text can repeat by chance)
    assert len(set(outputs)) >= 0.99 * len(outputs)


def test_injected_duplicates_are_found_by_scan(tmp_path: Path) -> None:
    from provaudit.pipeline import scan

    m = gen.generate(tmp_path / "d.jsonl", 1500, seed=3, dup_rate=0.05, near_rate=0.05)
    assert 100 <= m["injected_exact_outputs"] <= 200 and 100 <= m["injected_near_outputs"] <= 200
    res = scan(tmp_path / "d.jsonl", catalog=tmp_path / "c.duckdb", out=tmp_path / "o", origin=False,
               batch_size=500)
    dup = res.summary["duplicates"]
    assert dup["records"] == 3000
    # each injected exact copy is an exact duplicate; light edits are near duplicates (LSH misses a few)
    assert dup["exact_duplicates"] >= m["injected_exact_outputs"]
    assert dup["near_duplicates"] >= 0.8 * m["injected_near_outputs"]


def test_neardup_bench_sides_agree(tmp_path: Path) -> None:
    import neardup

    gen.generate(tmp_path / "n.jsonl", 600, seed=2, dup_rate=0.05, near_rate=0.05)
    texts = neardup.load_texts(tmp_path / "n.jsonl", 1200)
    pa = neardup.run_provaudit(texts, batch=500)
    ds = neardup.run_datasketch(texts)
    assert pa["exact_flagged"] == ds["exact_flagged"] > 0
    # same LSH scheme (16 x 8 over the same shingles), different hash families: close, not equal
    assert ds["near_flagged"] > 0
    assert abs(pa["near_flagged"] - ds["near_flagged"]) <= 0.2 * ds["near_flagged"] + 5


def test_baseline_pandas_does_the_same_work(tmp_path: Path) -> None:
    import baseline_pandas
    import polars as pl

    gen.generate(tmp_path / "p.jsonl", 200, seed=4, dup_rate=0.05, near_rate=0.0)
    r = baseline_pandas.run(tmp_path / "p.jsonl", tmp_path / "b.parquet")
    assert r["rows"] == 200 and r["records"] == 600 and r["exact_duplicates"] >= 5
    out = pl.read_parquet(tmp_path / "b.parquet")
    assert {"text_hash", "exact_dup", "near_dup", "p_model"} <= set(out.columns)
    assert out["p_model"].is_between(0, 1).all()
