"""The catalog checks of ``--engine ray`` (:mod:`provaudit.engine.ray_overlap`): the partitioned rounds,
run here in one process, give exactly the catalog's own DuckDB answers (``Catalog.overlap_report``,
``Catalog.erased_matches``) whatever the number of partitions and shards."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from provaudit.catalog.store import Catalog
from provaudit.engine import ray_overlap
from provaudit.pipeline import scan


@pytest.fixture(scope="module")
def scanned(overlap_world: dict[str, Any]) -> pl.DataFrame:
    """The batch's records, as a local scan writes them (every column the checks read)."""
    res = scan(overlap_world["inputs"], catalog=overlap_world["catalog"], out=overlap_world["dir"] / "scan",
               record=False, origin=False)
    return res.records()


def _serial(fn, calls: list[tuple]) -> list:
    return [fn(*c) for c in calls]


def _as_parts(records: pl.DataFrame, folder: Path, shards: int) -> list[tuple[int, list[str]]]:
    """The records cut into ``shards`` part files in input order, named as the Ray scan names them."""
    folder.mkdir(parents=True)
    size = -(-records.height // shards)
    out = []
    for s in range(shards):
        f = folder / f"part-0000-{s:08d}-000000.parquet"
        records.slice(s * size, size).write_parquet(f)
        out.append((s, [str(f)]))
    return out


@pytest.mark.parametrize(("partitions", "shards"), [(1, 1), (3, 4), (7, 2)])
def test_partitioned_rounds_give_the_catalogs_overlap_and_erased_matches(
        overlap_world: dict[str, Any], scanned: pl.DataFrame, tmp_path: Path, partitions: int, shards: int) -> None:
    cat_path = overlap_world["catalog"]
    with Catalog(cat_path, read_only=True) as cat:
        want = cat.overlap_report(scanned)
        want_erased = cat.erased_matches(scanned)
        meta = ray_overlap.export_catalog_keys(cat, tmp_path / "keys", partitions)
    report, n_erased, erased = ray_overlap.run_rounds(
        _serial, _as_parts(scanned, tmp_path / "parts", shards), meta, partitions, tmp_path / "o", tmp_path / "keys")
    assert report == want
    assert (n_erased, erased) == (len(want_erased), want_erased[:5])
    # the world really holds each kind of match (so the equality above compares something)
    by = {o["dataset"]: o for o in want}
    assert by["hh_rlhf"]["exact_records"] > 0 and by["hh_rlhf"]["near_records"] >= 1
    assert by["hh_rlhf"]["trivial_exact_records"] >= 8
    assert {e["reason"] for e in by["hh_rlhf"]["trivial_examples"]} >= {"short"}
    assert by["refusals"]["exact_records"] == 1 and by["refusals"]["examples"] == ["batch:1:response"]
    assert {(e["record_id"], e["reason"]) for e in by["refusals"]["trivial_examples"]} == {
        ("batch:0:response", "boilerplate")}
    assert by["reused_eval"]["reused_records"] == 1 and by["reused_eval"]["exact_records"] == 0
    assert {"record_id": "batch:2:response", "erasure_id": 1, "match": "exact"} in want_erased
