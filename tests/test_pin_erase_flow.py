"""Pins of erase's orchestration (``provaudit.catalog.erase.erase`` and the steps it runs): the catalog's plan,
the rows located in the file as it is now, the copy's verification, and the write-verify-record-rename order.

Expected values are computed here from the rows the test writes (their JSON, their texts' hashes, the row-hash
definition) and from the catalog's own tables read with plain DuckDB, never from erase's own output."""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import xxhash
from conftest import lock_held_by_another_thread

import provaudit
from provaudit.catalog import erase as erase_mod
from provaudit.catalog.erase import LISTED, FileRows, erase, read_rows, row_hash
from provaudit.catalog.lineage import add_checkpoint
from provaudit.catalog.lock import write_lock
from provaudit.errors import CatalogBusy, InputError, UsageError
from provaudit.fingerprint import text_hash

ME = "u-0042"
SEL = f"user_id={ME}"
#: the public keys of a dataset in erase's result, in this order (docs/lineage.md)
PUBLIC = ["dataset", "dataset_id", "fingerprint", "path", "format", "status", "rows_removed", "registered_rows",
          "moved", "records_removed", "row_hashes", "record_hashes", "output", "verified"]
#: the keys of a dataset in the catalog's erasure record
RECORDED = {"dataset", "fingerprint", "path", "rows_removed", "registered_rows", "records_removed", "row_hashes",
            "output", "status"}


#: real, distinct instruction/output pairs (Alpaca-style; fixtures/LICENSES.md)
FIXTURE = [json.loads(x) for x in (Path(__file__).resolve().parent.parent / "fixtures" / "lineage"
                                   / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()]
#: each tag's rows start here in FIXTURE (no two tags share a text)
OFFSET = {"alpha": 0, "beta": 8, "gamma": 14, "delta": 18, "epsilon": 28, "zeta": 32, "eta": 38, "theta": 40,
          "iota": 43, "kappa": 45}


def rows_of(n: int, mine: tuple[int, ...], tag: str) -> list[dict]:
    """``n`` instruction/output rows with distinct real texts; ``mine`` are the person's."""
    return [{"instruction": FIXTURE[OFFSET[tag] + i]["instruction"], "output": FIXTURE[OFFSET[tag] + i]["output"],
             "user_id": ME if i in mine else f"u-{1000 + OFFSET[tag] + i}"} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict], blank_after: tuple[int, ...] = ()) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" + ("\n" if i in blank_after else "") for i, r in enumerate(rows)),
                    encoding="utf-8")
    return path


def expected_row_hash(row: dict) -> str:
    """The row-hash definition, from the row itself: xxh3-128 of its metadata JSON, a group separator, and its
    records' ``slot<US>text hash`` pairs in sorted order joined by record separators."""
    meta = json.dumps({"user_id": row["user_id"]})
    slots = sorted([("prompt", text_hash(row["instruction"])), ("response", text_hash(row["output"]))])
    return xxhash.xxh3_128_hexdigest(f"{meta}\x1d{chr(0x1e).join(f'{s}{chr(0x1f)}{h}' for s, h in slots)}".encode())


def texts_of(rows: list[dict], idx) -> list[str]:
    return sorted({text_hash(rows[i][k]) for i in idx for k in ("instruction", "output")})


def erasures(cat: Path, raw_catalog) -> list[dict]:
    cols = ["erasure_id", "selector", "n_records", "datasets", "checkpoints", "outputs"]
    return [dict(zip(cols, r)) for r in
            raw_catalog(cat, f"SELECT {', '.join(cols)} FROM erasures ORDER BY erasure_id")]


def build_world(d: Path) -> SimpleNamespace:
    """a.jsonl (the person at rows 1 and 4, a blank line after row 0), b.jsonl (the person at row 2), c.jsonl
    (not the person); ck1 <- b, ck2 <- c with parent ck1, ck3 <- c."""
    data = d / "data"
    data.mkdir()
    ra, rb, rc = rows_of(6, (1, 4), "alpha"), rows_of(4, (2,), "beta"), rows_of(3, (), "gamma")
    a = write_jsonl(data / "a.jsonl", ra, blank_after=(0,))
    b = write_jsonl(data / "b.jsonl", rb)
    c = write_jsonl(data / "c.jsonl", rc)
    cat = d / "c.duckdb"
    fps = [provaudit.register(p, catalog=cat)["fingerprint"] for p in (a, b, c)]
    add_checkpoint("ck1", ["b"], catalog=cat)
    add_checkpoint("ck2", ["c"], parent="ck1", catalog=cat)
    add_checkpoint("ck3", ["c"], catalog=cat)
    return SimpleNamespace(a=a, b=b, c=c, ra=ra, rb=rb, rc=rc, cat=cat, fps=fps, out=d / "out")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> SimpleNamespace:
    return build_world(tmp_path_factory.mktemp("erase-world"))


@pytest.fixture()
def two(template: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """The module's world with a catalog of its own (a copy) and an out folder of its own; its data files are
    shared: a test that edits them takes ``fresh``."""
    cat = tmp_path / "c.duckdb"
    shutil.copyfile(template.cat, cat)
    assert not template.cat.with_name("c.duckdb.bands").exists()  # the small datasets' rows are in the file
    return SimpleNamespace(**{**vars(template), "cat": cat, "out": tmp_path / "out"})


@pytest.fixture()
def fresh(tmp_path: Path) -> SimpleNamespace:
    """A world of its own: for a test that edits the registered files."""
    return build_world(tmp_path)


# ---------------------------------------------------------------- row hashes

def test_row_hash_is_the_definition_in_any_record_order() -> None:
    recs = [("response", "h2"), ("prompt", "h1")]
    want = xxhash.xxh3_128_hexdigest(b"{\"u\": 1}\x1dprompt\x1fh1\x1eresponse\x1fh2")
    assert row_hash('{"u": 1}', recs) == row_hash('{"u": 1}', list(reversed(recs))) == want
    assert row_hash(None, recs) == row_hash("", recs) == xxhash.xxh3_128_hexdigest(
        b"\x1dprompt\x1fh1\x1eresponse\x1fh2")
    assert row_hash('{"u": 2}', recs) != want and row_hash('{"u": 1}', [("prompt", "h1")]) != want


def test_read_rows_gives_each_rows_hash_metadata_and_texts_in_file_order(two) -> None:
    got = read_rows(two.a, fmt="jsonl", schema="alpaca", mapping=None)
    assert got.fingerprint == two.fps[0]  # the registered fingerprint: the file is unchanged
    assert got.rows == [(i, expected_row_hash(r)) for i, r in enumerate(two.ra)]  # the blank line is no row
    assert got.metas == {i: json.dumps({"user_id": r["user_id"]}) for i, r in enumerate(two.ra)}
    assert got.hashes == set(texts_of(two.ra, range(len(two.ra))))
    with pytest.raises(InputError, match=r"^.*registered with --map before the mapping was recorded in the catalog; "
                                         r"register it again and retry$") as e:
        read_rows(two.a, fmt="jsonl", schema="mapped", mapping=None)
    assert e.value.file == str(two.a)


# ---------------------------------------------------------------- plan and result

def test_dry_run_reports_the_plan_of_every_dataset_and_writes_nothing(two, catalog_dump) -> None:
    before = catalog_dump(two.cat)
    res = erase(field=SEL, out=two.out, dry_run=True, catalog=two.cat)
    assert list(res) == ["selector", "dry_run", "erasure_id", "n_rows", "n_records", "datasets", "checkpoints"]
    assert (res["selector"], res["dry_run"], res["erasure_id"], res["n_rows"], res["n_records"]) == (SEL, True, None,
                                                                                                    3, 6)
    a, b = res["datasets"]
    assert list(a) == PUBLIC and list(b) == PUBLIC
    assert a == {"dataset": "a", "dataset_id": 1, "fingerprint": two.fps[0], "path": str(two.a), "format": "jsonl",
                 "status": "redact", "rows_removed": [1, 4], "registered_rows": [1, 4], "moved": False,
                 "records_removed": 4, "row_hashes": [expected_row_hash(two.ra[i]) for i in (1, 4)],
                 "record_hashes": texts_of(two.ra, (1, 4)), "output": str(two.out / "a.jsonl"), "verified": None}
    assert b == {"dataset": "b", "dataset_id": 2, "fingerprint": two.fps[1], "path": str(two.b), "format": "jsonl",
                 "status": "redact", "rows_removed": [2], "registered_rows": [2], "moved": False,
                 "records_removed": 2, "row_hashes": [expected_row_hash(two.rb[2])],
                 "record_hashes": texts_of(two.rb, (2,)), "output": str(two.out / "b.jsonl"), "verified": None}
    # ck1 trained on b; ck2 continued from ck1 (tainted through its parent, though trained on c); ck3 is clean
    assert res["checkpoints"] == [
        {"checkpoint": "ck1", "checkpoint_id": 1, "parent": None, "via": "direct", "depth": 0,
         "trained_on_affected": ["b"]},
        {"checkpoint": "ck2", "checkpoint_id": 2, "parent": "ck1", "via": "parent", "depth": 1,
         "trained_on_affected": []}]
    assert not two.out.exists() and catalog_dump(two.cat) == before


def test_erase_writes_verified_copies_and_records_what_it_did(two, raw_catalog) -> None:
    res = erase(field=SEL, out=two.out, catalog=two.cat)
    assert res["erasure_id"] == 1 and not res["dry_run"]
    lines = two.a.read_text(encoding="utf-8").splitlines(keepends=True)  # row 0, a blank line, rows 1..5
    assert (two.out / "a.jsonl").read_text(encoding="utf-8") == "".join(lines[:2] + lines[3:5] + lines[6:])
    assert (two.out / "b.jsonl").read_text(encoding="utf-8") == "".join(
        json.dumps(r) + "\n" for i, r in enumerate(two.rb) if i != 2)
    assert sorted(p.name for p in two.out.iterdir()) == ["a.jsonl", "b.jsonl"]  # no temporary copy left
    a, b = res["datasets"]
    verified = {"kept_rows_identical": True, "person_rows_left": 0, "selector_rows_left": 0, "person_texts_left": 0,
                "texts_shared_with_kept_rows": 0, "near_duplicate_rows_kept": [], "near_duplicate_rows_kept_count": 0}
    assert a["verified"] == {"rows_kept": 4, **verified} and b["verified"] == {"rows_kept": 3, **verified}
    (rec,) = erasures(two.cat, raw_catalog)
    assert (rec["erasure_id"], rec["selector"], rec["n_records"]) == (1, SEL, 6)
    ds = json.loads(rec["datasets"])
    assert [set(d) for d in ds] == [RECORDED, RECORDED]
    assert [{k: d[k] for k in RECORDED} for d in ds] == [{k: x[k] for k in RECORDED} for x in (a, b)]
    assert json.loads(rec["outputs"]) == [{"dataset": "a", "path": str(two.out / "a.jsonl")},
                                          {"dataset": "b", "path": str(two.out / "b.jsonl")}]
    assert json.loads(rec["checkpoints"]) == res["checkpoints"] and [c["checkpoint"] for c in res["checkpoints"]] == [
        "ck1", "ck2"]
    # the erased records, by their catalog ids: rows 1 and 4 of a, row 2 of b (two records each)
    got = raw_catalog(two.cat, "SELECT dataset_id, record_id FROM erased_records ORDER BY 1, 2")
    assert got == sorted([(1, f"a:{i}:{k}") for i in (1, 4) for k in ("prompt", "response")]
                         + [(2, f"b:2:{k}") for k in ("prompt", "response")])


def test_a_selector_nobody_matches_erases_nothing_and_records_the_request(two, raw_catalog) -> None:
    res = erase(field="user_id=u-9999", out=two.out, catalog=two.cat)
    assert (res["n_rows"], res["n_records"], res["datasets"], res["checkpoints"]) == (0, 0, [], [])
    (rec,) = erasures(two.cat, raw_catalog)
    assert (rec["selector"], rec["n_records"], json.loads(rec["datasets"])) == ("user_id=u-9999", 0, [])
    assert list(two.out.iterdir()) == []
    assert raw_catalog(two.cat, "SELECT count(*) FROM erased_records") == [(0,)]


def test_moved_rows_are_removed_where_they_are_now(fresh) -> None:
    """The file reordered (same rows, so the same order-free fingerprint): the person's rows are found by
    hash at their new positions; ``moved`` says so."""
    order = [5, 4, 3, 2, 1, 0]
    write_jsonl(fresh.a, [fresh.ra[i] for i in order])
    res = erase(field=SEL, out=fresh.out, catalog=fresh.cat)
    a = res["datasets"][0]
    assert a["registered_rows"] == [1, 4] and a["rows_removed"] == [1, 4] and a["moved"] is False  # 4->1, 1->4
    assert a["row_hashes"] == [expected_row_hash(fresh.ra[4]), expected_row_hash(fresh.ra[1])]  # in file order
    write_jsonl(fresh.b, [fresh.rb[i] for i in (3, 0, 1, 2)])
    res2 = erase(field=SEL, out=fresh.out.with_name("out2"), catalog=fresh.cat)
    b = res2["datasets"][1]
    assert b["registered_rows"] == [2] and b["rows_removed"] == [3] and b["moved"] is True


# ---------------------------------------------------------------- refusals before any write

def test_a_missing_file_is_refused_and_nothing_is_written(fresh, raw_catalog) -> None:
    fresh.b.unlink()
    with pytest.raises(InputError) as e:
        erase(field=SEL, out=fresh.out, catalog=fresh.cat)
    assert e.value.reason == ("registered file is missing (moved or deleted); register it at its new place and "
                              "retry") and e.value.file == str(fresh.b)
    assert not fresh.out.exists() and erasures(fresh.cat, raw_catalog) == []


@pytest.mark.parametrize("edit", ["append", "person"])
def test_a_changed_file_is_refused_saying_whether_the_persons_rows_are_intact(fresh, raw_catalog, edit) -> None:
    rows = [dict(r) for r in fresh.rb]
    if edit == "append":
        rows.append(rows_of(9, (), "delta")[8])
    else:
        rows[2]["output"] += " (edited)"
    write_jsonl(fresh.b, rows)
    with pytest.raises(InputError) as e:
        erase(field=SEL, out=fresh.out, dry_run=edit == "person", catalog=fresh.cat)
    state = "intact" if edit == "append" else "changed"
    assert e.value.reason == (f"file changed since it was registered (fingerprint differs; the rows of {SEL} are "
                              f"{state}); re-register it and retry") and e.value.file == str(fresh.b)
    assert not fresh.out.exists() and erasures(fresh.cat, raw_catalog) == []


def test_rows_regrouped_under_the_same_fingerprint_are_refused_naming_a_lost_row_hash(fresh, raw_catalog) -> None:
    """The outputs of the person's fresh rows swapped: the fingerprint (a sum over records of role, text and row
    metadata, which the fresh rows share) is unchanged, but neither registered row is in the file any more."""
    rows = [dict(r) for r in fresh.ra]
    rows[1]["output"], rows[4]["output"] = fresh.ra[4]["output"], fresh.ra[1]["output"]
    write_jsonl(fresh.a, rows, blank_after=(0,))
    assert read_rows(fresh.a, fmt="jsonl", schema="alpaca", mapping=None).fingerprint == fresh.fps[0]
    with pytest.raises(InputError) as e:
        erase(field=SEL, out=fresh.out, catalog=fresh.cat)
    lost = min(expected_row_hash(fresh.ra[1]), expected_row_hash(fresh.ra[4]))
    assert e.value.reason == (f"the rows of {SEL} are not all in the file as registered (2 row hash(es) not found, "
                              f"e.g. {lost}); re-register it and retry") and e.value.file == str(fresh.a)
    assert not fresh.out.exists() and erasures(fresh.cat, raw_catalog) == []


def test_out_over_any_registered_file_is_refused_even_one_the_person_is_not_in(tmp_path: Path, two) -> None:
    """The copy of a.jsonl would land on another registered dataset's file (same name, no rows of the
    person): refused before any write, and that file keeps its bytes."""
    other = tmp_path / "other"
    other.mkdir()
    victim = write_jsonl(other / "a.jsonl", rows_of(3, (), "epsilon"))
    provaudit.register(victim, name="other_a", catalog=two.cat)
    before = victim.read_bytes()
    with pytest.raises(UsageError, match=f"^--out {other} would overwrite the original {victim}; choose another"):
        erase(field=SEL, out=other, catalog=two.cat)
    assert victim.read_bytes() == before and sorted(p.name for p in other.iterdir()) == ["a.jsonl"]


def test_a_dry_run_reads_under_a_held_write_lock_and_an_erase_queues_for_it(two) -> None:
    """A dry run opens the catalog read-only (no lock); an erase waits ``wait`` seconds for the write lock,
    here held by another thread."""
    with lock_held_by_another_thread(two.cat):
        res = erase(field=SEL, out=two.out, dry_run=True, catalog=two.cat, wait=0)
        assert res["n_rows"] == 3
        with pytest.raises(CatalogBusy):
            erase(field=SEL, out=two.out, catalog=two.cat, wait=0.2)
    assert not two.out.exists()


# ---------------------------------------------------------------- the write, verify, record, rename sequence

def test_an_earlier_copy_in_out_is_replaced_and_no_temporary_file_stays(two) -> None:
    two.out.mkdir()
    (two.out / "a.jsonl").write_text("an older copy\n", encoding="utf-8")
    (two.out / ".provaudit-tmp-b.jsonl").write_text("left by a killed run\n", encoding="utf-8")
    erase(field=SEL, out=two.out, catalog=two.cat)
    assert sorted(p.name for p in two.out.iterdir()) == ["a.jsonl", "b.jsonl"]
    assert "an older copy" not in (two.out / "a.jsonl").read_text(encoding="utf-8")
    assert (two.out / "a.jsonl").read_text(encoding="utf-8").count("\n") == 5  # 4 rows kept and the blank line


def test_a_failed_rename_removes_the_copies_renamed_before_it_and_records_nothing(two, monkeypatch,
                                                                                   raw_catalog) -> None:
    calls: list[tuple[Path, Path]] = []

    def replace(src, dst):
        calls.append((Path(src), Path(dst)))
        if len(calls) == 2:
            raise OSError("rename failed")
        os.replace(src, dst)

    monkeypatch.setattr(erase_mod, "os", SimpleNamespace(replace=replace))
    with pytest.raises(OSError, match="rename failed"):
        erase(field=SEL, out=two.out, catalog=two.cat)
    assert [d.name for _, d in calls] == ["a.jsonl", "b.jsonl"] and calls[0][0].name == ".provaudit-tmp-a.jsonl"
    assert list(two.out.iterdir()) == [] and erasures(two.cat, raw_catalog) == []
    assert raw_catalog(two.cat, "SELECT count(*) FROM erased_records") == [(0,)]


def test_a_copy_missing_a_row_count_is_refused(two, monkeypatch, raw_catalog) -> None:
    real = erase_mod._redact

    def off_by_one(fmt, src, tmp, drop):
        return real(fmt, src, tmp, drop) + (src.name == "b.jsonl")

    monkeypatch.setattr(erase_mod, "_redact", off_by_one)
    with pytest.raises(InputError) as e:
        erase(field=SEL, out=two.out, catalog=two.cat)
    assert e.value.reason == "expected to remove 1 rows, found 2" and e.value.file == str(two.b)
    assert list(two.out.iterdir()) == [] and erasures(two.cat, raw_catalog) == []


def test_a_superseded_entry_keeps_its_checkpoints_tainted_and_gets_no_copy(tmp_path: Path, raw_catalog) -> None:
    rows = rows_of(5, (1, 3), "zeta")
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    cat = tmp_path / "c.duckdb"
    old_fp = provaudit.register(path, catalog=cat)["fingerprint"]
    add_checkpoint("old", ["s"], catalog=cat)
    rows.insert(0, rows_of(9, (), "eta")[8])  # a new first row: the person's rows move down by one
    write_jsonl(path, rows)
    new_fp = provaudit.register(path, name="s2", catalog=cat)["fingerprint"]
    res = erase(field=SEL, out=tmp_path / "out", catalog=cat)
    assert (res["n_rows"], res["n_records"]) == (4, 8)  # both entries' rows and records
    old, new = res["datasets"]
    assert (old["fingerprint"], old["status"], old["rows_removed"], old["registered_rows"], old["row_hashes"],
            old["moved"], old["output"], old["verified"]) == (old_fp, "superseded", [], [1, 3], [], False, None, None)
    assert (new["fingerprint"], new["status"], new["rows_removed"], new["registered_rows"], new["moved"]) == (
        new_fp, "redact", [2, 4], [2, 4], False)
    assert [c["checkpoint"] for c in res["checkpoints"]] == ["old"]
    (rec,) = erasures(cat, raw_catalog)
    assert [d["status"] for d in json.loads(rec["datasets"])] == ["superseded", "redact"]
    assert json.loads(rec["outputs"]) == [{"dataset": "s2", "path": str(tmp_path / "out" / "s.jsonl")}]


def test_a_file_of_only_the_persons_rows_becomes_an_empty_verified_copy(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", rows_of(2, (0, 1), "theta"))
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, catalog=cat)
    res = erase(field=SEL, out=tmp_path / "out", catalog=cat)
    assert (tmp_path / "out" / "m.jsonl").read_bytes() == b""
    assert res["datasets"][0]["rows_removed"] == [0, 1] and res["datasets"][0]["verified"]["rows_kept"] == 0


def test_shared_texts_are_counted_and_near_copies_in_other_rows_listed_up_to_the_limit(tmp_path: Path) -> None:
    """The person's prompt is also another user's prompt (shared: kept, counted); 25 other users' outputs are
    the person's output with one word added (near copies: kept, the first LISTED rows listed, all counted)."""
    base = rows_of(1, (0,), "iota")[0]
    rows = [base] + [{"instruction": base["instruction"], "output": "A different answer about the moon and sea.",
                      "user_id": "u-2000"}]
    rows += [{"instruction": f"Unrelated question {k} about baking bread at home?",
              "output": base["output"] + f" Extra{k}.", "user_id": f"u-{3000 + k}"} for k in range(25)]
    path = write_jsonl(tmp_path / "n.jsonl", rows)
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, catalog=cat)
    res = erase(field=SEL, out=tmp_path / "out", catalog=cat)
    v = res["datasets"][0]["verified"]
    assert v["texts_shared_with_kept_rows"] == 1 and v["rows_kept"] == 26
    assert v["near_duplicate_rows_kept_count"] == 25 and v["near_duplicate_rows_kept"] == list(range(2, 2 + LISTED))
    assert res["datasets"][0]["record_hashes"] == texts_of(rows, (0,))


# ---------------------------------------------------------------- the verification itself

def _plan_of(two) -> tuple[dict, FileRows]:
    """The plan of dataset a, as erase builds it before writing (the steps erase runs)."""
    with erase_mod.open_catalog(two.cat, read_only=True) as cat:
        (d, _b) = erase_mod._plan(cat, "user_id", ME)
    files = erase_mod._locate([d], SEL)
    return d, files[str(two.a)]


def test_verification_names_every_problem_of_a_copy_that_kept_the_persons_rows(two, tmp_path: Path) -> None:
    d, original = _plan_of(two)
    d["rows_removed"] = []  # a plan that dropped nothing: the copy holds the person's rows
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(two.a.read_bytes())
    with pytest.raises(InputError) as e:
        erase_mod._verify(d, original, copy, "user_id", ME)
    assert e.value.reason == (f"the redacted copy failed verification: 2 of the person's rows are still in it; "
                              f"row(s) [1, 4] still carry {SEL}; 4 text(s) only the person's rows held are still in "
                              "it; nothing was written") and e.value.file == str(two.a)


def test_verification_compares_the_rows_read_back_with_the_originals_kept_rows(two, tmp_path: Path) -> None:
    d, original = _plan_of(two)
    copy = tmp_path / "copy.jsonl"
    erase_mod._redact("jsonl", two.a, copy, set(d["rows_removed"]))
    ok = erase_mod._verify(d, original, copy, "user_id", ME)
    assert ok["rows_kept"] == 4
    wrong = FileRows(original.fingerprint, [(i, h if i != 5 else "0" * 32) for i, h in original.rows])
    with pytest.raises(InputError) as e:
        erase_mod._verify(d, wrong, copy, "user_id", ME)
    assert e.value.reason == ("the redacted copy failed verification: its rows read back are not the original's kept "
                              "rows; nothing was written")


def test_verification_of_a_copy_with_a_changed_unit_stops_there(two, tmp_path: Path) -> None:
    d, original = _plan_of(two)
    copy = tmp_path / "copy.jsonl"
    erase_mod._redact("jsonl", two.a, copy, set(d["rows_removed"]))
    lines = copy.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace('"user_id": "u-', '"user_id": "x-')
    copy.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as e:
        erase_mod._verify(d, original, copy, "user_id", ME)
    assert e.value.reason == ("the redacted copy failed verification: unit 2 of the copy differs from the original's; "
                              "nothing was written")


def test_the_plan_groups_the_persons_rows_per_dataset_from_the_catalog(two, raw_catalog) -> None:
    with erase_mod.open_catalog(two.cat, read_only=True) as cat:
        plan = erase_mod._plan(cat, "user_id", ME)
        assert erase_mod._plan(cat, "user_id", "nobody") == []
    assert [p["dataset_id"] for p in plan] == [1, 2]
    rids = raw_catalog(two.cat, "SELECT dataset_id, list(rid ORDER BY rid) FROM records "
                                "WHERE meta LIKE '%u-0042%' GROUP BY 1 ORDER BY 1")
    assert [(p["dataset_id"], p["_rids"]) for p in plan] == [(i, list(r)) for i, r in rids]
    assert plan[0]["_row_hashes"] == {1: expected_row_hash(two.ra[1]), 4: expected_row_hash(two.ra[4])}
    assert (plan[0]["schema"], plan[0]["mapping"], plan[0]["_shared"], plan[0]["near_duplicate_rows_kept"]) == (
        "alpaca", None, set(), [])


def test_a_mapped_dataset_is_re_read_with_its_mapping(tmp_path: Path) -> None:
    rows = [{"q": r["instruction"], "a": r["output"], "user_id": r["user_id"]} for r in rows_of(4, (2,), "kappa")]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, mapping={"prompt": "q", "response": "a"}, catalog=cat)
    res = erase(field=SEL, out=tmp_path / "out", catalog=cat)
    assert res["datasets"][0]["rows_removed"] == [2]
    assert (tmp_path / "out" / "m.jsonl").read_text(encoding="utf-8") == "".join(
        json.dumps(r) + "\n" for i, r in enumerate(rows) if i != 2)


def test_erase_holds_the_lock_only_while_it_runs(two) -> None:
    """After an erase the write lock is free again (another thread takes it at once)."""
    erase(field=SEL, out=two.out, catalog=two.cat)
    took: list[bool] = []

    def other() -> None:
        with write_lock(two.cat, 0):
            took.append(True)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert took == [True]


# ---------------------------------------------------------------- the file read as it was registered

def test_a_file_whose_first_row_set_the_schema_is_re_read_with_the_registered_one(tmp_path: Path) -> None:
    """The person's row is the first and only text-schema row; the others would be read as prompt/completion
    pairs if they came first. The copy, whose first row is now one of them, is read back with the registered
    schema (else its rows would not be the original's and the erasure would be refused)."""
    rows = [{"text": FIXTURE[50]["output"], "user_id": ME}] + [
        {"text": FIXTURE[51 + i]["output"], "prompt": FIXTURE[51 + i]["instruction"], "completion": f"Reply {i}.",
         "user_id": f"u-{2000 + i}"} for i in range(4)]
    path = write_jsonl(tmp_path / "mix.jsonl", rows)
    cat = tmp_path / "c.duckdb"
    assert provaudit.register(path, catalog=cat)["schema"] == "text"
    res = erase(field=SEL, out=tmp_path / "out", catalog=cat)
    assert res["datasets"][0]["rows_removed"] == [0] and res["datasets"][0]["verified"]["rows_kept"] == 4
    assert (tmp_path / "out" / "mix.jsonl").read_text(encoding="utf-8") == "".join(
        json.dumps(r) + "\n" for r in rows[1:])


def test_a_file_registered_with_its_format_and_bad_rows_skipped_is_re_read_the_same_way(tmp_path: Path) -> None:
    """``rows.data`` holds JSON lines (registered with ``fmt="jsonl"``: its name says no format) and one broken
    line (registered with ``skip_bad``): the copy keeps the broken line byte for byte and drops the person's."""
    good = [{"instruction": FIXTURE[55]["instruction"], "output": FIXTURE[55]["output"], "user_id": "u-1"},
            {"instruction": FIXTURE[56]["instruction"], "output": FIXTURE[56]["output"], "user_id": ME}]
    broken = '{"instruction": "unterminated\n'
    path = tmp_path / "rows.data"
    path.write_text(json.dumps(good[0]) + "\n" + broken + json.dumps(good[1]) + "\n", encoding="utf-8")
    cat = tmp_path / "c.duckdb"
    info = provaudit.register(path, fmt="jsonl", skip_bad=True, catalog=cat)
    assert (info["format"], info["bad_rows"]) == ("jsonl", 1)
    res = erase(field=SEL, out=tmp_path / "out", catalog=cat)
    assert res["datasets"][0]["rows_removed"] == [2]
    assert (tmp_path / "out" / "rows.data").read_text(encoding="utf-8") == json.dumps(good[0]) + "\n" + broken


def test_out_may_be_a_folder_several_levels_deep_that_does_not_exist_yet(two) -> None:
    out = two.out / "x" / "y"
    erase(field=SEL, out=out, catalog=two.cat)
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "b.jsonl"]


def test_an_earlier_folder_copy_and_a_stale_temporary_folder_are_replaced(tmp_path: Path) -> None:
    """A ``save_to_disk`` dataset's copy is a folder: one left in out by an earlier erase, and a temporary one
    left by a killed run, are replaced and removed."""
    import datasets

    rows = rows_of(4, (1,), "kappa")
    src = tmp_path / "hf"
    datasets.Dataset.from_list(rows).save_to_disk(str(src))
    cat = tmp_path / "c.duckdb"
    provaudit.register(src, catalog=cat)
    out = tmp_path / "out"
    (out / "hf").mkdir(parents=True)
    (out / "hf" / "old.txt").write_text("an older copy\n", encoding="utf-8")
    (out / ".provaudit-tmp-hf").mkdir()
    (out / ".provaudit-tmp-hf" / "junk.txt").write_text("left by a killed run\n", encoding="utf-8")
    erase(field=SEL, out=out, catalog=cat)
    assert sorted(p.name for p in out.iterdir()) == ["hf"] and not (out / "hf" / "old.txt").exists()
    assert datasets.load_from_disk(str(out / "hf")).to_list() == [r for i, r in enumerate(rows) if i != 1]


def test_a_writer_that_kept_the_persons_rows_is_caught_by_every_check_of_the_copy(two, monkeypatch,
                                                                                  raw_catalog) -> None:
    """A faulty writer (it copies the file whole but reports the rows removed) past a faulty unit check: the
    rows read back, the person's row hashes, the selector and the person's texts each refuse the copy."""
    monkeypatch.setattr(erase_mod, "_redact", lambda fmt, src, tmp, drop: (shutil.copyfile(src, tmp), len(drop))[1])
    monkeypatch.setattr(erase_mod, "_kept_units_identical", lambda fmt, src, copy, drop: (True, ""))
    with pytest.raises(InputError) as e:
        erase(field=SEL, out=two.out, catalog=two.cat)
    assert e.value.reason == ("the redacted copy failed verification: its rows read back are not the original's kept "
                              f"rows; 2 of the person's rows are still in it; row(s) [1, 4] still carry {SEL}; "
                              "4 text(s) only the person's rows held are still in it; nothing was written")
    assert e.value.file == str(two.a)
    assert list(two.out.iterdir()) == [] and erasures(two.cat, raw_catalog) == []


def test_erase_names_each_step_and_holds_signals_back_while_it_records(two, monkeypatch) -> None:
    """The steps an interruption message names, in order, and the one critical section (the record and the
    renames: a signal there waits until both are done)."""
    from provaudit import interrupt

    phases: list[str] = []
    sections: list[str] = []
    real_critical = interrupt.critical

    def critical(description, **kw):
        sections.append(description)
        return real_critical(description, **kw)

    monkeypatch.setattr(interrupt, "phase", phases.append)
    monkeypatch.setattr(interrupt, "critical", critical)
    erase(field=SEL, out=two.out, catalog=two.cat)
    assert phases == [f"{step} the redacted copy of {p}" for p in (two.a, two.b) for step in ("writing", "verifying")]
    assert sections[-1] == "recording the erasure" and sections.count("recording the erasure") == 1


def test_a_reordered_file_is_re_read_with_its_registered_schema(tmp_path: Path) -> None:
    """The mixed file above, reordered (same fingerprint) so that a row that reads as a prompt/completion pair
    comes first: the file is still read as registered (text), and the person's row is found."""
    rows = [{"text": FIXTURE[50]["output"], "user_id": ME}] + [
        {"text": FIXTURE[51 + i]["output"], "prompt": FIXTURE[51 + i]["instruction"], "completion": f"Reply {i}.",
         "user_id": f"u-{2000 + i}"} for i in range(3)]
    path = write_jsonl(tmp_path / "mix.jsonl", rows)
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, catalog=cat)
    write_jsonl(path, rows[1:] + rows[:1])
    res = erase(field=SEL, out=tmp_path / "out", catalog=cat)
    assert res["datasets"][0]["rows_removed"] == [3] and res["datasets"][0]["moved"] is True


def test_an_edited_file_is_refused_though_a_copy_of_its_new_version_is_registered_elsewhere(tmp_path: Path,
                                                                                             raw_catalog) -> None:
    """Only an entry with the same path may supersede: a copy of the edited file registered under another
    path says nothing of the rows the old version held at this one."""
    rows = rows_of(4, (1,), "kappa")
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, catalog=cat)
    write_jsonl(path, rows + rows_of(9, (), "delta")[8:])
    (tmp_path / "elsewhere").mkdir()
    copy = tmp_path / "elsewhere" / "a_copy.jsonl"
    shutil.copyfile(path, copy)
    provaudit.register(copy, catalog=cat)
    with pytest.raises(InputError) as e:
        erase(field=SEL, out=tmp_path / "out", catalog=cat)
    assert e.value.reason.startswith("file changed since it was registered") and e.value.file == str(path)
    assert erasures(cat, raw_catalog) == []


def test_the_lost_rows_are_counted_when_some_of_the_persons_rows_are_still_there(tmp_path: Path) -> None:
    """Three rows of the person; the outputs of two of them swapped (the fingerprint, over role, text and row
    metadata, is the same): two registered row hashes are not found, the third is."""
    rows = rows_of(6, (1, 3, 5), "epsilon")
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    cat = tmp_path / "c.duckdb"
    provaudit.register(path, catalog=cat)
    edited = [dict(r) for r in rows]
    edited[1]["output"], edited[3]["output"] = rows[3]["output"], rows[1]["output"]
    write_jsonl(path, edited)
    with pytest.raises(InputError) as e:
        erase(field=SEL, out=tmp_path / "out", catalog=cat)
    lost = min(expected_row_hash(rows[1]), expected_row_hash(rows[3]))
    assert e.value.reason == (f"the rows of {SEL} are not all in the file as registered (2 row hash(es) not found, "
                              f"e.g. {lost}); re-register it and retry")


def test_a_dataset_without_stored_settings_is_read_without_a_mapping(two) -> None:
    """A dataset row whose ``meta`` (columns, ``--map`` mapping) is empty, as an older catalog may hold."""
    import duckdb

    con = duckdb.connect(str(two.cat))
    try:
        con.execute("UPDATE datasets SET meta = NULL")
    finally:
        con.close()
    res = erase(field=SEL, out=two.out, catalog=two.cat)
    assert [d["rows_removed"] for d in res["datasets"]] == [[1, 4], [2]]
