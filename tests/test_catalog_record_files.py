"""Records and metadata fields of big datasets in Parquet files the catalog references (migration 8,
provaudit.catalog.files; docs/lineage.md).

``RECORD_FILE_RECORDS`` (and, where said, ``BAND_FILE_RECORDS``) is lowered to 0 so the fixture datasets
take the file layout; every lineage, overlap and erasure answer must be the one of a catalog that keeps
the rows in its tables, computed on a second catalog built from the same files with the default layout.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from provaudit.catalog import files as catalog_files
from provaudit.catalog import store
from provaudit.catalog.erase import erase
from provaudit.catalog.lineage import add_checkpoint, lineage_find, list_datasets, overlap
from provaudit.catalog.migrations import LATEST_VERSION, migrate
from provaudit.catalog.store import Catalog
from provaudit.errors import InputError
from provaudit.fingerprint import add_fingerprints
from provaudit.io import read_table
from provaudit.pipeline import register, scan

FIX = Path(__file__).resolve().parent.parent / "fixtures"
LINEAGE = ("sft_train.jsonl", "prefs_train.csv", "dpo_round2.jsonl", "eval_set.json")


def _world(root: Path, name: str) -> tuple[Path, Path]:
    """The lineage fixtures copied to ``root/name`` and registered (the current layout setting), with
    checkpoints ck1 <- sft_train and ck2 <- ck1 + dpo_round2."""
    data = root / name
    shutil.copytree(FIX / "lineage", data)
    cat = root / f"{name}.duckdb"
    for f in LINEAGE:
        register(data / f, tags=["train"], catalog=cat)
    add_checkpoint("ck1", ["sft_train"], catalog=cat)
    add_checkpoint("ck2", ["dpo_round2"], parent="ck1", catalog=cat)
    return data, cat


def _strip(obj, root: Path, name: str):
    """An answer with the world's folder and the catalog path made neutral, for comparing two worlds."""
    if isinstance(obj, dict):
        return {k: _strip(v, root, name) for k, v in obj.items() if k not in ("added_at", "catalog")}
    if isinstance(obj, list):
        return [_strip(v, root, name) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(root / name), "WORLD").replace(str(root / f"out-{name}"), "OUT")
    return obj


def test_lineage_overlap_and_erase_answer_like_the_tables(raw_catalog, tmp_path: Path, monkeypatch) -> None:
    _, table_cat = _world(tmp_path, "table")
    monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 0)
    data, file_cat = _world(tmp_path, "files")
    # every dataset's records and fields live in files: the tables are empty, each file pair is referenced once
    assert raw_catalog(file_cat, "SELECT count(*) FROM records") == [(0,)]
    assert raw_catalog(file_cat, "SELECT count(*) FROM record_fields") == [(0,)]
    files = raw_catalog(file_cat, "SELECT dataset_id, path, fields_path, hashes_path, n_rows, n_fields, rid_base "
                                  "FROM record_files ORDER BY 1")
    assert [f[0] for f in files] == [1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "files.duckdb.records").iterdir()) == sorted(
        n for f in files for n in f[1:4])
    # rids are contiguous per dataset, assigned as the table would (same rows in both catalogs)
    table_rows = sorted(raw_catalog(table_cat, "SELECT * FROM records"))
    assert [f[6] for f in files] == [0] + [sum(f[4] for f in files[:i]) for i in range(1, 4)]
    assert sum(f[4] for f in files) == len(table_rows)
    with Catalog(file_cat, read_only=True) as cat:
        assert sorted(cat.con.execute("SELECT * FROM records").fetchall()) == table_rows
        assert sorted(cat.con.execute("SELECT * FROM record_fields").fetchall()) == sorted(
            raw_catalog(table_cat, "SELECT * FROM record_fields"))
        # the hash files: every record's (text_hash, rid), each file sorted by hash (what lookups skip by)
        assert sorted(cat.con.execute("SELECT text_hash, rid FROM record_hashes").fetchall()) == sorted(
            (r[6], r[0]) for r in table_rows)
        for f in files:
            col = pq.read_table(tmp_path / "files.duckdb.records" / f[3])["text_hash"].to_pylist()
            assert col == sorted(col) and len(col) == f[4]
    assert len(table_rows) > 50 and len(raw_catalog(table_cat, "SELECT * FROM record_fields")) > 50

    def both(fn):
        t, f = fn(table_cat, "table"), fn(file_cat, "files")
        assert _strip(f, tmp_path, "files") == _strip(t, tmp_path, "table")
        return f

    assert both(lambda c, _: list_datasets(catalog=c))[0]["records"] > 0
    found = both(lambda c, _: lineage_find(field="user_id=u-0042", catalog=c))
    assert {r["dataset"] for r in found["records"]} == {"sft_train", "prefs_train"}
    assert {c["checkpoint"] for c in found["checkpoints"]} == {"ck1", "ck2"}
    text = (data / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()[5]
    assert both(lambda c, _: lineage_find(file=str(tmp_path / _ / "sft_train.jsonl"), catalog=c))["records"]
    assert both(lambda c, _: lineage_find(text=text, catalog=c))
    assert both(lambda c, _: overlap("sft_train", "eval_set", catalog=c))
    # a registered file gone: overlap falls back to the catalog's hashes and band keys (read from the files)
    for name in ("table", "files"):
        (tmp_path / name / "eval_set.json").unlink()
    fallback = both(lambda c, _: overlap("sft_train", "eval_set", catalog=c))
    assert fallback["b"]["source"] == "catalog-hashes"

    # erasure: the same rows removed, the same redacted copies, the same audit rows
    res = both(lambda c, n: erase(field="user_id=u-0042", out=tmp_path / f"out-{n}", catalog=c))
    assert [(d["dataset"], d["rows_removed"]) for d in res["datasets"]] == [("sft_train", [5, 17]),
                                                                           ("prefs_train", [9])]
    for f in ("sft_train.jsonl", "prefs_train.csv"):
        assert (tmp_path / "out-files" / f).read_bytes() == (tmp_path / "out-table" / f).read_bytes()
        assert b"u-0042" not in (tmp_path / "out-files" / f).read_bytes()
    audit = "SELECT erasure_id, dataset_id, record_id, text_hash, watch FROM erased_records ORDER BY ALL"
    assert raw_catalog(file_cat, audit) == raw_catalog(table_cat, audit) and len(raw_catalog(file_cat, audit)) >= 3
    # the catalog keeps the erased rows as the audit trail (docs/lineage.md), in the file as in the table
    rec_file = tmp_path / "files.duckdb.records" / files[0][1]
    assert pq.read_table(rec_file).num_rows == files[0][4]
    with Catalog(file_cat, read_only=True) as cat, Catalog(table_cat, read_only=True) as tcat:
        kept = cat.field_matches("user_id", "u-0042").drop("fingerprint", "path")
        assert kept.equals(tcat.field_matches("user_id", "u-0042").drop("fingerprint", "path"))
        assert set(zip(kept["dataset"], kept["source_row"])) == {("sft_train", 5), ("sft_train", 17),
                                                                  ("prefs_train", 9)}


def test_scan_with_record_files_overlaps_and_commits_atomically(raw_catalog, tmp_path: Path, monkeypatch,
                                                                 catalog_dump) -> None:
    lines = (FIX / "scan" / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "eval.jsonl").write_text("\n".join(lines[:30]) + "\n", encoding="utf-8")
    (tmp_path / "train.jsonl").write_text("\n".join(lines[10:60]) + "\n", encoding="utf-8")
    table = tmp_path / "table.duckdb"
    register(tmp_path / "eval.jsonl", tags=["eval"], catalog=table)
    want = scan(tmp_path / "train.jsonl", catalog=table, origin=False).summary
    monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 0)
    monkeypatch.setattr(store, "BAND_FILE_RECORDS", 0)  # the big-dataset layout: every row in a file
    cat = tmp_path / "c.duckdb"
    register(tmp_path / "eval.jsonl", tags=["eval"], catalog=cat)
    before = catalog_dump(cat)
    folder = tmp_path / "c.duckdb.records"
    assert len(list(folder.iterdir())) == 3  # the eval set's records, fields and hashes

    def fail(*_a, **_k):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:  # fail inside the commit's transaction, after the files were placed
        m.setattr(Catalog, "add_scan", fail)
        with pytest.raises(RuntimeError):
            scan(tmp_path / "train.jsonl", catalog=cat, out=tmp_path / "out", origin=False)
    assert catalog_dump(cat) == before
    assert len(list(folder.iterdir())) == 3 and len(list((tmp_path / "c.duckdb.bands").iterdir())) == 1
    with Catalog(cat, read_only=True) as c:
        assert c.con.execute("SELECT DISTINCT dataset_id FROM records").fetchall() == [(1,)]

    got = scan(tmp_path / "train.jsonl", catalog=cat, origin=False).summary
    assert got["overlap"] == want["overlap"] and got["overlap"]["by_tag"]["eval"]["eval"]["exact_records"] > 0
    assert raw_catalog(cat, "SELECT count(*) FROM records") == [(0,)]
    with Catalog(cat, read_only=True) as c, Catalog(table, read_only=True) as t:
        rows = "SELECT * FROM records ORDER BY rid"
        assert c.con.execute(rows).fetchall() == t.con.execute(rows).fetchall()

    # a file a killed commit left behind (placed, never referenced) is ignored, then swept by the next writer
    orphan = folder / "records-9-deadbeef0000.parquet"
    shutil.copyfile(next(folder.glob("records-1-*.parquet")), orphan)
    with Catalog(cat, read_only=True) as c:
        assert c.con.execute("SELECT count(*) FROM records WHERE dataset_id = 1").fetchone()[0] == 30 * 3
    with Catalog(cat):
        pass
    assert not orphan.exists() and len(list(folder.iterdir())) == 6


def test_existing_catalog_migrates_and_new_rids_follow_the_table(raw_catalog, tmp_path: Path, monkeypatch) -> None:
    lines = (FIX / "scan" / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:20]) + "\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[20:30]) + "\n", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text("\n".join(lines[30:35]) + "\n", encoding="utf-8")
    cat = tmp_path / "old.duckdb"
    con = duckdb.connect(str(cat))
    migrate(con, target=7)
    con.close()
    register(tmp_path / "a.jsonl", catalog=cat)  # opens, migrates to 9, stores in the tables
    assert raw_catalog(cat, "SELECT max(version) FROM schema_version") == [(LATEST_VERSION,)] and LATEST_VERSION == 9
    n_a = raw_catalog(cat, "SELECT count(*) FROM records")[0][0]
    assert n_a == 60 and raw_catalog(cat, "SELECT count(*) FROM record_files") == [(0,)]
    monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 0)
    register(tmp_path / "b.jsonl", catalog=cat)  # in files: rids continue after the table's
    monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 10**9)
    register(tmp_path / "c.jsonl", catalog=cat)  # in the table again: rids continue after the file's range
    assert raw_catalog(cat, "SELECT rid_base, n_rows FROM record_files") == [(60, 30)]
    assert raw_catalog(cat, "SELECT min(rid), max(rid) FROM records WHERE dataset_id = 3") == [(90, 104)]
    with Catalog(cat, read_only=True) as c:
        rids = [r[0] for r in c.con.execute("SELECT rid FROM records ORDER BY rid").fetchall()]
    assert rids == list(range(105))


def test_a_catalog_moved_without_its_files_fails_with_one_line(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a.jsonl").write_text(
        "\n".join((FIX / "scan" / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()[:5]) + "\n",
        encoding="utf-8")
    monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 0)
    register(tmp_path / "a.jsonl", catalog=tmp_path / "c.duckdb")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "c.duckdb", moved / "c.duckdb")  # the catalog file alone, not c.duckdb.records/
    with pytest.raises(InputError, match=r"3 Parquet file\(s\) the catalog references are missing.*c\.duckdb\.records/"):
        Catalog(moved / "c.duckdb", read_only=True)
    shutil.move(tmp_path / "c.duckdb.records", moved / "c.duckdb.records")
    with Catalog(moved / "c.duckdb", read_only=True) as cat:
        assert cat.con.execute("SELECT count(*) FROM records").fetchone()[0] == 15


def test_add_dataset_writes_the_files_itself_and_a_nested_open_keeps_them(tmp_path: Path, monkeypatch) -> None:
    """Without prepared files (the API, a notebook) the commit writes them from the records; a read-write
    open nested in the same thread (the write lock is re-entrant) does not sweep an open transaction's files."""
    frame = add_fingerprints(read_table(FIX / "lineage" / "sft_train.jsonl"))
    kw = {"fingerprint": "f", "path": "p", "fmt": "jsonl", "schema": "sft", "tags": [], "n_records": frame.height}
    with Catalog(tmp_path / "t.duckdb") as cat:
        cat.add_dataset(name="d", records=frame.select(store.RECORD_COLUMNS), **kw)
        want = cat.con.execute("SELECT * FROM records ORDER BY rid").fetchall()
        want_fields = cat.con.execute("SELECT * FROM record_fields ORDER BY ALL").fetchall()
    monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 0)
    with Catalog(tmp_path / "f.duckdb") as cat, cat.transaction():
        cat.add_dataset(name="d", records=frame.select(store.RECORD_COLUMNS), **kw)
        with Catalog(tmp_path / "f.duckdb"):  # nested: sweeps nothing of the open transaction
            pass
    with Catalog(tmp_path / "f.duckdb", read_only=True) as cat:
        assert cat.con.execute(f"SELECT count(*) FROM {cat._table('records')}").fetchone()[0] == 0
        assert cat.con.execute("SELECT * FROM records ORDER BY rid").fetchall() == want and len(want) > 20
        assert cat.con.execute("SELECT * FROM record_fields ORDER BY ALL").fetchall() == want_fields


def test_a_catalog_whose_records_files_predate_schema_9_is_upgraded_and_answers(raw_catalog, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """Migration 9 on a catalog whose records live in files written before it (no n_words/trivial columns):
    the open upgrades it, marks those files as without the columns, and every answer still comes back (the
    word counts unknown); a dataset registered afterwards keeps them."""
    lines = (FIX / "scan" / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:10]) + "\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[10:15]) + "\n", encoding="utf-8")
    cat = tmp_path / "c.duckdb"
    monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 0)
    register(tmp_path / "a.jsonl", catalog=cat)
    (name,) = [r[0] for r in raw_catalog(cat, "SELECT path FROM record_files")]
    rec = Path(f"{cat}.records") / name
    con = duckdb.connect(str(cat))  # back to what a schema-8 catalog holds
    con.execute(f"COPY (SELECT * EXCLUDE (n_words, trivial) FROM '{rec}') TO '{rec}.old' (FORMAT PARQUET)")
    Path(f"{rec}.old").replace(rec)
    for sql in ("ALTER TABLE record_files DROP COLUMN substance", "ALTER TABLE records DROP COLUMN n_words",
                "ALTER TABLE records DROP COLUMN trivial", "DELETE FROM schema_version WHERE version = 9"):
        con.execute(sql)
    con.close()
    assert "n_words" not in pq.read_schema(rec).names
    with Catalog(cat) as c:  # a read-write open upgrades it in place
        assert c.schema_version == 9 == LATEST_VERSION
        n, known = c.con.execute("SELECT count(*), count(n_words) FROM records").fetchone()
    assert (n, known) == (30, 0) and raw_catalog(cat, "SELECT substance FROM record_files") == [(False,)]
    found = lineage_find(text=json.loads(lines[0])["chosen"], catalog=cat)
    assert [d["dataset"] for d in found["datasets"]] == ["a"]
    register(tmp_path / "b.jsonl", catalog=cat)  # a new dataset in files: with the columns, marked so
    assert raw_catalog(cat, "SELECT substance FROM record_files ORDER BY dataset_id") == [(False,), (True,)]
    with Catalog(cat, read_only=True) as c:
        assert c.con.execute("SELECT count(n_words) FROM records WHERE dataset_id = 2").fetchone()[0] == 15
