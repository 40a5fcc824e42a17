"""Erasure: dry runs change nothing; redacted copies differ from originals only by the removed rows."""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

import provaudit
from provaudit.catalog import Catalog
from provaudit.catalog.erase import erase
from provaudit.catalog.lineage import add_checkpoint, lineage_find
from provaudit.errors import InputError, UsageError
from provaudit.fingerprint import add_fingerprints
from provaudit.io import read_table

ROOT = Path(__file__).resolve().parent.parent


def sha(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(path).as_posix().encode() + p.read_bytes())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build_world(fixtures_dir: Path, d: Path) -> tuple[Path, Path]:
    """Copies of the lineage fixtures registered in a fresh catalog, with ck1 <- sft, ck2 <- ck1 + dpo."""
    data = d / "data"
    shutil.copytree(fixtures_dir / "lineage", data)
    cat = d / "catalog.duckdb"
    for f in ("sft_train.jsonl", "prefs_train.csv", "dpo_round2.jsonl", "eval_set.json"):
        provaudit.register(data / f, tags=["train"], catalog=cat)
    add_checkpoint("ck1", ["sft_train"], catalog=cat)
    add_checkpoint("ck2", ["dpo_round2"], parent="ck1", catalog=cat)
    return data, cat


@pytest.fixture(scope="module")
def _world_template(fixtures_dir, tmp_path_factory) -> tuple[Path, Path]:
    return _build_world(fixtures_dir, tmp_path_factory.mktemp("erase-world"))


@pytest.fixture()
def world(_world_template, tmp_path) -> tuple[Path, Path]:
    """The module's world with a catalog of its own (a copy; the small datasets' rows are in the file); the
    data files are shared and left as they are (a test that edits them takes ``own_world``)."""
    data, template_cat = _world_template
    assert not template_cat.with_name(template_cat.name + ".records").exists()
    cat = tmp_path / "catalog.duckdb"
    shutil.copyfile(template_cat, cat)
    return data, cat


@pytest.fixture()
def own_world(fixtures_dir, tmp_path) -> tuple[Path, Path]:
    return _build_world(fixtures_dir, tmp_path)


def test_dry_run_changes_nothing(world, tmp_path):
    data, cat = world
    before = {p.name: sha(p) for p in [*data.iterdir(), cat]}
    res = erase(field="user_id=u-0042", out=tmp_path / "redacted", dry_run=True, catalog=cat)
    assert res["dry_run"] and res["erasure_id"] is None
    assert [(d["dataset"], d["rows_removed"]) for d in res["datasets"]] == [("sft_train", [5, 17]),
                                                                           ("prefs_train", [9])]
    assert {c["checkpoint"] for c in res["checkpoints"]} == {"ck1", "ck2"}
    assert not (tmp_path / "redacted").exists()
    assert {p.name: sha(p) for p in [*data.iterdir(), cat]} == before


def test_erase_line_formats_byte_for_byte_and_records_tainted_checkpoints(world, tmp_path):
    data, cat = world
    originals = {p.name: sha(p) for p in data.iterdir()}
    out = tmp_path / "redacted"
    res = erase(field="user_id=u-0042", out=out, catalog=cat)
    assert {p.name: sha(p) for p in data.iterdir()} == originals  # originals untouched

    jsonl = (data / "sft_train.jsonl").read_bytes().splitlines(keepends=True)
    assert (out / "sft_train.jsonl").read_bytes() == b"".join(line for i, line in enumerate(jsonl) if i not in (5, 17))

    orig_csv = read_table(data / "prefs_train.csv")
    red_csv = read_table(out / "prefs_train.csv")
    assert red_csv["text"].to_list() == orig_csv.filter(pl.col("source_row") != 9)["text"].to_list()
    # byte level: the redacted CSV is the original with exactly one contiguous span (row 9's lines) cut out
    a, b = (data / "prefs_train.csv").read_bytes(), (out / "prefs_train.csv").read_bytes()
    k = next(i for i in range(len(b)) if a[i] != b[i])
    cut = len(a) - len(b)
    assert a[:k] + a[k + cut:] == b and b"u-0042" in a[k:k + cut] and b"u-0042" not in b

    with Catalog(cat, read_only=True) as c:
        er = c.erasures().to_dicts()
    assert len(er) == 1 and er[0]["selector"] == "user_id=u-0042" and er[0]["n_records"] == 7
    assert [x["checkpoint"] for x in json.loads(er[0]["checkpoints"])] == ["ck1", "ck2"]
    assert res["erasure_id"] == er[0]["erasure_id"]
    # the redacted copies no longer hold the user
    assert "u-0042" not in (out / "sft_train.jsonl").read_text(encoding="utf-8")


def test_reintroduced_erased_record_is_flagged(world, tmp_path, fixtures_dir):
    data, cat = world
    erase(field="user_id=u-0042", out=tmp_path / "redacted", catalog=cat)
    planted = json.loads((data / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()[17])["output"]
    batch = tmp_path / "new_batch.jsonl"
    rows = [{"prompt": "Write an essay.", "completion": planted},
            {"prompt": "Say hi.", "completion": "Hello there! How can I help you today?"}]
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    frame = add_fingerprints(read_table(batch))
    with Catalog(cat) as c:
        hits = c.erased_matches(frame)
    assert [(h["record_id"], h["match"]) for h in hits] == [("new_batch:0:response", "exact")]
    result = provaudit.scan(batch, catalog=cat, gate=ROOT / "rules" / "gate.yaml", origin=False, record=False)
    assert result.summary["erased"]["reintroduced"] == 1
    assert result.summary["gate"]["passed"] is False


def _planted_rows(frame: pl.DataFrame) -> list[int]:
    return sorted(frame.filter(pl.col("meta").str.contains("u-0042"))["source_row"].unique().to_list())


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet", "json", "hf_disk"])
def test_erase_rewrites_other_formats_with_same_columns(fmt, fixtures_dir, tmp_path):
    rows = [json.loads(line) for line in
            (fixtures_dir / "lineage" / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()]
    src = tmp_path / "src"
    src.mkdir()
    if fmt == "jsonl.gz":
        path = src / "sft.jsonl.gz"
        with gzip.open(path, "wb") as fh:
            fh.write((fixtures_dir / "lineage" / "sft_train.jsonl").read_bytes())
    elif fmt == "parquet":
        path = src / "sft.parquet"
        pl.DataFrame(rows).write_parquet(path)
    elif fmt == "json":
        path = src / "sft.json"
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        import datasets

        path = src / "sft_hf"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, tags=["train"], catalog=cat)
    before = sha(path)
    out = tmp_path / "out"
    res = erase(field="user_id=u-0042", out=out, catalog=cat)
    assert sha(path) == before
    red = out / path.name
    assert res["datasets"][0]["output"] == str(red)
    keep = [r for r in rows if r["user_id"] != "u-0042"]
    assert len(keep) == len(rows) - 2
    if fmt == "jsonl.gz":
        lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
        assert gzip.decompress(red.read_bytes()) == b"".join(x for i, x in enumerate(lines) if i not in (5, 17))
    elif fmt == "parquet":
        a, b = pq.read_table(path), pq.read_table(red)
        assert b.schema == a.schema and b.to_pylist() == keep
    elif fmt == "json":
        assert json.loads(red.read_text(encoding="utf-8")) == keep
    else:
        import datasets

        a, b = datasets.load_from_disk(str(path)), datasets.load_from_disk(str(red))
        assert b.features == a.features and b.to_list() == keep
    assert _planted_rows(read_table(red)) == []


def test_changed_original_is_refused_and_nothing_written(own_world, tmp_path):
    data, cat = own_world
    with open(data / "sft_train.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"instruction": "Added later.", "output": "A new row.", "user_id": "u-1001"}) + "\n")
    with pytest.raises(InputError, match="changed since it was registered"):
        erase(field="user_id=u-0042", out=tmp_path / "redacted", catalog=cat)
    assert not (tmp_path / "redacted").exists() or not any((tmp_path / "redacted").iterdir())
    with Catalog(cat, read_only=True) as c:
        assert c.erasures().height == 0


def test_out_dir_over_originals_is_refused(world):
    data, cat = world
    with pytest.raises(UsageError, match="overwrite the original"):
        erase(field="user_id=u-0042", out=data, catalog=cat)


def test_lineage_after_erasure_still_names_tainted_checkpoints(world, tmp_path):
    _data, cat = world
    erase(field="user_id=u-0042", out=tmp_path / "redacted", catalog=cat)
    res = lineage_find(field="user_id=u-0042", catalog=cat)
    assert {c["checkpoint"] for c in res["checkpoints"]} == {"ck1", "ck2"}


def test_csv_with_bom_crlf_and_blank_line_keeps_other_bytes(fixtures_dir, tmp_path):
    import csv
    import io as _io

    rows = [json.loads(x) for x in (fixtures_dir / "lineage" / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()]
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["instruction", "output", "user_id"], extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows[:10])
    body = buf.getvalue().replace("\r\n", "\r\n\r\n", 1)  # a blank line after the header
    path = tmp_path / "sft.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, catalog=cat)
    res = erase(field="user_id=u-0042", out=tmp_path / "out", catalog=cat)
    assert res["datasets"][0]["rows_removed"] == [5]
    a, b = path.read_bytes(), (tmp_path / "out" / "sft.csv").read_bytes()
    assert b.startswith(b"\xef\xbb\xbf") and b"\r\n\r\n" in b and b"u-0042" not in b
    k = next(i for i in range(len(b)) if a[i] != b[i])
    assert a[:k] + a[k + len(a) - len(b):] == b
    assert read_table(tmp_path / "out" / "sft.csv").height == read_table(path).height - 2


def test_failure_while_recording_leaves_no_copies_and_no_erasure(world, tmp_path, monkeypatch):
    _data, cat = world

    def boom(self, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Catalog, "add_erasure", boom)
    with pytest.raises(OSError):
        erase(field="user_id=u-0042", out=tmp_path / "redacted", catalog=cat)
    assert list((tmp_path / "redacted").iterdir()) == []
    monkeypatch.undo()
    with Catalog(cat, read_only=True) as c:
        assert c.erasures().height == 0


def test_file_re_registered_after_an_edit_redacts_the_current_entry(fixtures_dir, tmp_path):
    path = tmp_path / "sft_train.jsonl"
    shutil.copy(fixtures_dir / "lineage" / "sft_train.jsonl", path)
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, catalog=cat)
    add_checkpoint("old-ckpt", ["sft_train"], catalog=cat)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"instruction": "Added later.", "output": "A new row.", "user_id": "u-1001"}) + "\n")
    new_fp = provaudit.register(path, catalog=cat)["fingerprint"]
    res = erase(field="user_id=u-0042", out=tmp_path / "out", catalog=cat)
    status = {d["fingerprint"]: (d["status"], d["output"]) for d in res["datasets"]}
    assert status[new_fp] == ("redact", str(tmp_path / "out" / "sft_train.jsonl"))
    assert [s for s, _ in status.values()].count("superseded") == 1
    assert [c["checkpoint"] for c in res["checkpoints"]] == ["old-ckpt"]  # trained on the old version
    assert "u-0042" not in (tmp_path / "out" / "sft_train.jsonl").read_text(encoding="utf-8")
