"""Band keys of big datasets in Parquet files the catalog references (docs/scale-out.md, catalog at scale).

``BAND_FILE_RECORDS`` is lowered to 0 so the fixture datasets take the file path; every overlap and
lineage answer must be the one of a catalog that keeps the band keys in its table.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from provaudit.catalog import store
from provaudit.catalog.migrations import LATEST_VERSION, migrate
from provaudit.catalog.store import Catalog
from provaudit.pipeline import register, scan

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "scan"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bandfiles")
    lines = (FIX / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    (d / "eval.jsonl").write_text("\n".join(lines[:30]) + "\n", encoding="utf-8")
    near = json.loads(lines[40])
    near["chosen"] = str(near["chosen"]).rsplit(" ", 1)[0] + " indeed."
    (d / "train.jsonl").write_text("\n".join(lines[10:35] + [json.dumps(near)] + lines[60:]) + "\n",
                                   encoding="utf-8")
    (d / "more.jsonl").write_text("\n".join(lines[35:45]) + "\n", encoding="utf-8")
    return {"eval": d / "eval.jsonl", "train": d / "train.jsonl", "more": d / "more.jsonl"}


def _catalog(tmp_path: Path, inputs: dict[str, Path], name: str) -> tuple[Path, dict]:
    cat = tmp_path / f"{name}.duckdb"
    register(inputs["eval"], tags=["eval"], catalog=cat)
    res = scan(inputs["train"], catalog=cat, origin=False)
    return cat, res.summary


def test_band_files_answer_like_the_band_table(raw_catalog, tmp_path: Path, inputs, monkeypatch) -> None:
    table_cat, table_summary = _catalog(tmp_path, inputs, "table")
    monkeypatch.setattr(store, "BAND_FILE_RECORDS", 0)
    file_cat, file_summary = _catalog(tmp_path, inputs, "files")
    assert file_summary["overlap"] == table_summary["overlap"]
    assert file_summary["overlap"]["by_tag"]["eval"]["eval"]["exact_records"] > 0
    # the keys live in two Parquet files (eval, train), none in the table; read back they are the same rows
    assert raw_catalog(file_cat, "SELECT count(*) FROM record_bands") == [(0,)]
    files = raw_catalog(file_cat, "SELECT dataset_id, path, n_rows FROM band_files ORDER BY 1")
    assert [f[0] for f in files] == [1, 2] and all((file_cat.parent / (file_cat.name + ".bands") / f[1]).exists()
                                                  for f in files)
    table_rows = sorted(raw_catalog(table_cat, "SELECT band_key, dataset_id, rid FROM record_bands"))
    assert sum(f[2] for f in files) == len(table_rows) > 0
    with Catalog(file_cat, read_only=True) as cat:
        assert sorted(cat.con.execute("SELECT band_key, dataset_id, rid FROM record_bands").fetchall()) == table_rows
        batch = scan(inputs["more"], catalog=tmp_path / "scratch.duckdb", origin=False).records()
        got = cat.match_records(batch).sort("query_id", "rid")
    with Catalog(table_cat, read_only=True) as cat:
        want = cat.match_records(batch).sort("query_id", "rid")
    assert got.height and got.equals(want) and set(got["match"]) == {"exact", "near"}


def test_failed_commit_leaves_no_visible_band_file(tmp_path: Path, inputs, monkeypatch, catalog_dump) -> None:
    monkeypatch.setattr(store, "BAND_FILE_RECORDS", 0)
    cat = tmp_path / "c.duckdb"
    register(inputs["eval"], tags=["eval"], catalog=cat)
    before = catalog_dump(cat)

    def fail(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Catalog, "add_scan", fail)
    with pytest.raises(RuntimeError):
        scan(inputs["train"], catalog=cat, out=tmp_path / "out", origin=False)
    assert catalog_dump(cat) == before  # band_files still names only the eval set's file
    # the failed commit's file was renamed into place in the transaction, and removed when it rolled back
    assert len(list((tmp_path / "c.duckdb.bands").iterdir())) == 1
    with Catalog(cat, read_only=True) as c:
        assert c.con.execute("SELECT count(DISTINCT dataset_id) FROM record_bands").fetchone()[0] == 1


def test_existing_catalog_migrates_and_keeps_its_band_table(raw_catalog, tmp_path: Path, inputs) -> None:
    cat = tmp_path / "old.duckdb"
    con = duckdb.connect(str(cat))
    migrate(con, target=6)
    con.close()
    assert raw_catalog(cat, "SELECT max(version) FROM schema_version") == [(6,)]
    register(inputs["eval"], tags=["eval"], catalog=cat)  # opens, migrates to 7, stores in the table
    assert raw_catalog(cat, "SELECT max(version) FROM schema_version") == [(LATEST_VERSION,)]
    assert raw_catalog(cat, "SELECT count(*) FROM band_files") == [(0,)]
    assert raw_catalog(cat, "SELECT count(*) FROM record_bands")[0][0] > 0
