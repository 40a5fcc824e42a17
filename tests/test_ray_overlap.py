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
    assert (by["bare_eval"]["exact_records"], by["bare_eval"]["reused_records"], by["bare_eval"]["examples"]) == (
        1, 0, ["batch:4:response"])
    assert (by["templated_eval"]["exact_records"], by["templated_eval"]["reused_records"],
            by["templated_eval"]["examples"]) == (2, 0, ["batch:5:response", "batch:6:response"])
    # batch:7's 13-word stock line nearly matching only the short one: in no list (the short HH-RLHF lines
    # that nearly match it are trivial matches, listed as such)
    te = by["templated_eval"]
    assert te["trivial_records"] <= 5 and "batch:7:response" not in [
        e["record_id"] for e in te["trivial_examples"] + te["reused_examples"]] + te["examples"]
    assert {e["reason"] for e in te["trivial_examples"]} == {"short"}
    with Catalog(cat_path, read_only=True) as cat:  # it does match it, as a near duplicate by the band keys
        stock = cat.match_records(scanned.filter(pl.col("record_id") == "batch:7:response"))
    assert "templated_eval:6:response" in stock["record_id"].to_list()
    assert {"record_id": "batch:2:response", "erasure_id": 1, "match": "exact"} in want_erased
    # u1's erased prompt "Say hi." is u2's too (kept): not watched, so batch:1's "Say hi." is no erased match
    assert "batch:1:prompt" not in {e["record_id"] for e in want_erased}


def test_the_cached_export_is_reused_until_the_catalog_changes(overlap_world: dict[str, Any], scanned: pl.DataFrame,
                                                                tmp_path: Path) -> None:
    import shutil

    from provaudit.pipeline import register

    cat_path = tmp_path / "c.duckdb"
    shutil.copy(overlap_world["catalog"], cat_path)
    with Catalog(cat_path, read_only=True) as cat:
        first, meta = ray_overlap.cached_catalog_keys(cat, 3)
        stamp = (first / ray_overlap.MANIFEST).stat().st_mtime_ns
        again, meta_again = ray_overlap.cached_catalog_keys(cat, 3)
        want = cat.overlap_report(scanned)
    assert again == first and meta_again == meta and (first / ray_overlap.MANIFEST).stat().st_mtime_ns == stamp
    assert first.parent == tmp_path / "c.duckdb.keys"
    report, _n, _e = ray_overlap.run_rounds(_serial, _as_parts(scanned, tmp_path / "parts", 2), meta, 3,
                                            tmp_path / "o", first)
    assert report == want
    # a new dataset is a new state: exported afresh, and it holds the new dataset's records
    (tmp_path / "more.jsonl").write_text('{"prompt": "Hi.", "completion": "I\'m sorry, but I cannot help you with '
                                         'that request, it is against my guidelines."}\n', encoding="utf-8")
    register(tmp_path / "more.jsonl", catalog=cat_path)
    with Catalog(cat_path, read_only=True) as cat:
        fresh, _meta = ray_overlap.cached_catalog_keys(cat, 3)
        want = cat.overlap_report(scanned)
    assert fresh != first and fresh.parent == first.parent
    report, _n, _e = ray_overlap.run_rounds(_serial, _as_parts(scanned, tmp_path / "parts2", 2), _meta, 3,
                                            tmp_path / "o2", fresh)
    assert report == want and "more" in {o["dataset"] for o in report}
    # word counts filled in by registering a dataset again (rows stored before schema 9): a new state too
    import duckdb

    con = duckdb.connect(str(cat_path))
    con.execute("UPDATE records SET n_words = NULL, trivial = NULL WHERE dataset_id = "
                "(SELECT dataset_id FROM datasets WHERE name = 'templated_eval')")
    con.close()
    with Catalog(cat_path, read_only=True) as cat:
        old, _meta = ray_overlap.cached_catalog_keys(cat, 3)
        assert cat.overlap_report(scanned) != want  # the old rule: its answers are reused, not leaks
    register(overlap_world["dir"] / "templated_eval.jsonl", tags=["eval"], catalog=cat_path)
    with Catalog(cat_path, read_only=True) as cat:
        filled, _meta = ray_overlap.cached_catalog_keys(cat, 3)
        assert cat.overlap_report(scanned) == want
    assert filled != old and filled == fresh  # the state before the counts were taken away: its export again
    report, _n, _e = ray_overlap.run_rounds(_serial, _as_parts(scanned, tmp_path / "parts3", 2), _meta, 3,
                                            tmp_path / "o3", filled)
    assert report == want


def test_a_node_that_does_not_see_the_exported_keys_fails_instead_of_matching_nothing(tmp_path: Path) -> None:
    from provaudit.errors import InputError

    with pytest.raises(InputError, match="not visible on this Ray node"):
        ray_overlap._hash_task(0, 1, str(tmp_path / "o"), str(tmp_path / "not-shared"))


def test_examples_are_ordered_as_duckdb_orders_them() -> None:
    import duckdb

    ids = ["b:1", "Z:2", "é:3", "a:4", "ß:5", "e\u0301:6", "日本:7", "A:8", "~:9", "z:10"]
    frame = pl.DataFrame({"kind": [i % 2 for i in range(len(ids))], "record_id": ids})
    want = duckdb.sql("SELECT kind, record_id FROM frame ORDER BY kind, record_id LIMIT 5").fetchall()
    assert ray_overlap._first(frame, ["kind", "record_id"]) == want
    # and the driver's merge of per-partition lists keeps that order
    halves = [frame.slice(0, 5), frame.slice(5)]
    merged = sorted((r for h in halves for r in ray_overlap._first(h, ["kind", "record_id"])),
                    key=ray_overlap._by_kind_then_id)[:5]
    assert merged == want
