"""Taint through generations: a checkpoint is affected when it, or any ancestor through ``--parent``,
trained on a dataset holding the record; ``via``/``depth`` say how (0 = direct, else generations down
the parent chain from the nearest directly trained ancestor). Expected values come from a plain
breadth-first walk of the registry written here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import provaudit
from provaudit.catalog.lineage import add_checkpoint, lineage_find, list_checkpoints

# name -> (trained on, parent)
REGISTRY = {
    "ck1": (["sft_train"], None),
    "ck2": (["dpo_round2"], "ck1"),
    "ck3": (["eval_set"], "ck2"),
    "ck4": (["eval_set"], "ck3"),      # three generations below ck1
    "ck5": (["eval_set"], "ck1"),      # a second branch of ck1
    "ck6": (["dpo_round2"], None),     # an unrelated root
    "ck7": (["prefs_train"], "ck6"),   # directly trained on the other dataset holding the record
    "ck8": (["eval_set"], "ck7"),
    "ck9": (["eval_set"], "ck6"),      # a sibling of ck7 under the unrelated root: never tainted
}


@pytest.fixture(scope="module")
def catalog(fixtures_dir: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "catalog.duckdb"
    lin = fixtures_dir / "lineage"
    for f in ("sft_train.jsonl", "prefs_train.csv", "dpo_round2.jsonl", "eval_set.json"):
        provaudit.register(lin / f, tags=["train"], catalog=path)
    for name, (on, parent) in REGISTRY.items():
        add_checkpoint(name, on, parent=parent, catalog=path)
    return path


def expected_taint(datasets: set[str]) -> dict[str, tuple[str, int, list[str]]]:
    direct = {n for n, (on, _) in REGISTRY.items() if set(on) & datasets}
    depth = {n: 0 for n in direct}
    frontier = sorted(direct)
    while frontier:
        nxt = []
        for p in frontier:
            for child, (_, parent) in REGISTRY.items():
                if parent == p and child not in depth:
                    depth[child] = depth[p] + 1
                    nxt.append(child)
        frontier = nxt
    return {n: ("direct" if d == 0 else "parent", d, sorted(set(REGISTRY[n][0]) & datasets))
            for n, d in depth.items()}


def test_taint_reaches_every_descendant_at_its_depth(catalog: Path, fixtures_dir: Path) -> None:
    line = (fixtures_dir / "lineage" / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()[17]
    res = lineage_find(text=json.loads(line)["output"], catalog=catalog)
    holding = {d["dataset"] for d in res["datasets"]}
    assert holding == {"sft_train", "prefs_train"}
    want = expected_taint(holding)
    got = {c["checkpoint"]: (c["via"], c["depth"], c["trained_on_affected"]) for c in res["checkpoints"]}
    assert got == want
    assert set(got) == {"ck1", "ck2", "ck3", "ck4", "ck5", "ck7", "ck8"}
    assert got["ck4"] == ("parent", 3, []) and got["ck7"] == ("direct", 0, ["prefs_train"])
    parents = {c["checkpoint"]: c["parent"] for c in res["checkpoints"]}
    assert parents == {n: REGISTRY[n][1] for n in got}
    assert [c["checkpoint"] for c in res["checkpoints"]] == sorted(got, key=lambda n: list(REGISTRY).index(n))


def test_taint_of_a_dataset_only_a_leaf_trained_on(catalog: Path, fixtures_dir: Path) -> None:
    """A record only in eval_set taints the checkpoints trained on it and their descendants, not ancestors."""
    ev = json.loads((fixtures_dir / "lineage" / "eval_set.json").read_text(encoding="utf-8"))
    res = lineage_find(text=ev[0]["output"], catalog=catalog)
    holding = {d["dataset"] for d in res["datasets"]}
    assert holding == {"eval_set"}
    want = expected_taint(holding)
    got = {c["checkpoint"]: (c["via"], c["depth"], c["trained_on_affected"]) for c in res["checkpoints"]}
    assert got == want
    assert set(got) == {"ck3", "ck4", "ck5", "ck8", "ck9"} and got["ck4"][:2] == ("direct", 0)


def test_registry_lists_every_parent_link(catalog: Path) -> None:
    listed = {c["checkpoint"]: (c["trained_on"], c["parent"]) for c in list_checkpoints(catalog=catalog)}
    assert listed == {n: (on, parent) for n, (on, parent) in REGISTRY.items()}


def test_selector_and_parameter_errors(catalog: Path) -> None:
    from provaudit.errors import UsageError

    bad = [{}, {"text": "a", "file": "b.jsonl"}, {"field": "user_id=1", "deep": True}, {"text": "x", "ngram": 0},
           {"text": "x", "min_containment": 0.0}, {"text": "x", "min_containment": 1.01}, {"text": "  \n "}]
    for kw in bad:
        with pytest.raises(UsageError):
            lineage_find(catalog=catalog, **kw)
    lineage_find(text="x", min_containment=1.0, ngram=1, catalog=catalog)   # the inclusive ends are allowed
    with pytest.raises(UsageError):
        add_checkpoint("nothing", [], catalog=catalog)


def test_a_checkpoint_with_only_a_parent_inherits_its_taint(tmp_path: Path, fixtures_dir: Path) -> None:
    cat = tmp_path / "c.duckdb"
    provaudit.register(fixtures_dir / "lineage" / "sft_train.jsonl", catalog=cat)
    root = add_checkpoint("root", ["sft_train"], catalog=cat)
    child = add_checkpoint("merged", [], parent="root", catalog=cat)
    assert child["parent"] == "root" and child["trained_on"] == []
    assert (root["checkpoint_id"], child["checkpoint_id"]) == (1, 2)  # numbered from 1, one after the last
    # listed although trained on no dataset of its own
    assert [(c["checkpoint"], c["parent"], c["trained_on"]) for c in list_checkpoints(catalog=cat)] == [
        ("root", None, ["sft_train"]), ("merged", "root", [])]
    res = lineage_find(field="user_id=u-0042", catalog=cat)
    assert [(c["checkpoint"], c["via"], c["depth"]) for c in res["checkpoints"]] == [("root", "direct", 0),
                                                                                    ("merged", "parent", 1)]


def test_find_reports_records_and_datasets_in_full(catalog: Path, fixtures_dir: Path) -> None:
    res = lineage_find(field="user_id=u-0042", catalog=catalog)
    assert res["query"] == {"field": "user_id", "value": "u-0042"} and res["truncated"] is False
    by_ds = {d["dataset"]: d for d in res["datasets"]}
    sft = by_ds["sft_train"]
    assert sft["rows"] == [5, 17] and sft["records"] == 4 and sft["matches"] == ["field"]
    assert sft["tags"] == ["train"] and sft["path"] == str(fixtures_dir / "lineage" / "sft_train.jsonl")
    assert by_ds["prefs_train"]["records"] == 3
    rec = {(r["dataset"], r["source_row"], r["role"]) for r in res["records"]}
    assert rec == {("sft_train", 5, "prompt"), ("sft_train", 5, "response"), ("sft_train", 17, "prompt"),
                   ("sft_train", 17, "response"), ("prefs_train", 9, "prompt"), ("prefs_train", 9, "chosen"),
                   ("prefs_train", 9, "rejected")}
    assert all(r["record_id"] == f"{r['dataset']}:{r['source_row']}:{r['role']}" and r["match"] == "field"
               and r["fingerprint"] == by_ds[r["dataset"]]["fingerprint"] for r in res["records"])
    assert all(r["pair_id"] == f"{r['dataset']}:{r['source_row']}" for r in res["records"])
    assert all(r["dataset_id"] == by_ds[r["dataset"]]["dataset_id"] for r in res["records"])
    assert sorted(r["record_id"] for r in res["records"]) == sorted(
        f"{d}:{row}:{role}" for d, row, role in rec)


def test_text_query_reports_its_hash_and_the_band_evidence(catalog: Path, fixtures_dir: Path) -> None:
    from provaudit.fingerprint import text_hash

    line = (fixtures_dir / "lineage" / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()[17]
    text = json.loads(line)["output"]
    res = lineage_find(text=text, catalog=catalog)
    assert res["query"] == {"text": text, "text_hash": text_hash(text)}
    assert res["n_records"] == len(res["records"]) == 2 and res["truncated"] is False
    # an identical text shares every one of the 16 bands; deep-search fields are absent from LSH matches
    assert all(r["query_id"] == "query:0" and r["shared_bands"] == 16 and "containment" not in r
               for r in res["records"])
    assert [(d["dataset"], d["records"], d["rows"], d["matches"], d["tags"]) for d in res["datasets"]] == [
        ("sft_train", 1, [17], ["exact"], ["train"]), ("prefs_train", 1, [9], ["exact"], ["train"])]


def test_listing_is_capped_and_says_so(catalog: Path, monkeypatch) -> None:
    from provaudit.catalog import lineage

    monkeypatch.setattr(lineage, "MAX_LISTED", 7)
    res = lineage_find(field="user_id=u-0042", catalog=catalog)
    assert res["n_records"] == 7 and len(res["records"]) == 7 and res["truncated"] is False
    monkeypatch.setattr(lineage, "MAX_LISTED", 3)
    res = lineage_find(field="user_id=u-0042", catalog=catalog)
    assert res["n_records"] == 7 and len(res["records"]) == 3 and res["truncated"] is True
    assert sum(d["records"] for d in res["datasets"]) == 7      # the per-dataset counts are not capped


def test_file_query_names_the_file_and_its_fingerprint(catalog: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    from provaudit.catalog.lineage import file_fingerprint

    line = (fixtures_dir / "lineage" / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()[17]
    probe = tmp_path / "probe.jsonl"
    probe.write_text(json.dumps({"text": json.loads(line)["output"]}) + "\n" + json.dumps({"text": "hello"}) + "\n")
    res = lineage_find(file=probe, catalog=catalog)
    assert res["query"] == {"file": str(probe), "fingerprint": file_fingerprint(probe), "records": 2,
                            "excluded_self": False, "records_matched": 1}
    empty = tmp_path / "none.jsonl"
    empty.write_text(json.dumps({"text": "nothing like it anywhere in the catalog at all"}) + "\n")
    assert lineage_find(file=empty, catalog=catalog)["query"]["records_matched"] == 0


def test_checkpoint_registration_result_and_listing_fields(tmp_path: Path, fixtures_dir: Path) -> None:
    import re

    from provaudit.catalog.lineage import list_datasets
    from provaudit.errors import InputError, UsageError

    cat = tmp_path / "c.duckdb"
    provaudit.register(fixtures_dir / "lineage" / "sft_train.jsonl", catalog=cat)
    provaudit.register(fixtures_dir / "lineage" / "eval_set.json", catalog=cat)
    ds = {d["dataset"]: d for d in list_datasets(catalog=cat)}
    res = add_checkpoint("a", ["sft_train", "eval_set"], catalog=cat)
    assert res == {"checkpoint": "a", "checkpoint_id": res["checkpoint_id"], "parent": None, "trained_on": [
        {"dataset": n, "fingerprint": ds[n]["fingerprint"], "dataset_id": ds[n]["dataset_id"]}
        for n in ("sft_train", "eval_set")]}
    b = add_checkpoint("b", ["eval_set"], parent="a", catalog=cat)
    assert b["parent"] == "a" and b["checkpoint_id"] != res["checkpoint_id"]
    listed = list_checkpoints(catalog=cat)
    assert [(c["checkpoint"], c["checkpoint_id"], c["parent"], c["trained_on"], c["trained_on_fingerprints"])
            for c in listed] == [
        ("a", res["checkpoint_id"], None, ["sft_train", "eval_set"],
         [ds["sft_train"]["fingerprint"], ds["eval_set"]["fingerprint"]]),
        ("b", b["checkpoint_id"], "a", ["eval_set"], [ds["eval_set"]["fingerprint"]])]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", c["added_at"]) for c in listed)
    for bad in ("", "   "):
        with pytest.raises(UsageError, match=r"^a checkpoint needs a non-empty name$"):
            add_checkpoint(bad, ["sft_train"], catalog=cat)
    with pytest.raises(UsageError, match=r"^give --trained-on DATASET \(and/or --parent CKPT\)$"):
        add_checkpoint("c", [], catalog=cat)
    with pytest.raises(InputError, match="no checkpoint named 'zz'") as e:
        add_checkpoint("c", ["sft_train"], parent="zz", catalog=cat)
    assert e.value.file == str(cat)
    assert [c["checkpoint"] for c in list_checkpoints(catalog=cat)] == ["a", "b"]   # nothing half-added


def test_deep_search_keeps_records_at_or_above_the_containment_and_names_missing_files(
        tmp_path: Path, fixtures_dir: Path, monkeypatch) -> None:
    import functools
    import shutil

    import provaudit.io
    from provaudit.catalog.lineage import _WORD, list_datasets
    from provaudit.errors import UsageError
    from provaudit.fingerprint import normalize_text

    lin = fixtures_dir / "lineage"
    cat = tmp_path / "c.duckdb"
    # registered under its own name and format (not what the file name says): re-read the same way
    shutil.copy(lin / "sft_train.jsonl", tmp_path / "a.data")
    shutil.copy(lin / "prefs_train.csv", tmp_path / "b.csv")
    provaudit.register(tmp_path / "a.data", name="sft", fmt="jsonl", catalog=cat)
    provaudit.register(tmp_path / "b.csv", catalog=cat)
    fp_b = {d["dataset"]: d["fingerprint"] for d in list_datasets(catalog=cat)}["b"]
    (tmp_path / "b.csv").unlink()
    # a dataset without a recorded path (catalogs written by other tools) is skipped the same way
    shutil.copy(lin / "eval_set.json", tmp_path / "e.json")
    provaudit.register(tmp_path / "e.json", catalog=cat)
    import duckdb

    with duckdb.connect(str(cat)) as con:
        con.execute("UPDATE datasets SET path = NULL WHERE name = 'e'")
        fp_e = con.execute("SELECT fingerprint FROM datasets WHERE name = 'e'").fetchone()[0]
    line = (lin / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()[17]
    original = json.loads(line)["output"]
    words = original.split()
    query = " ".join("also" if i % 8 == 4 else w for i, w in enumerate(words))   # every 8th word replaced

    def grams(t: str) -> set[tuple[str, ...]]:
        ws = _WORD.findall(normalize_text(t).lower())
        return {tuple(ws[i:i + 5]) for i in range(len(ws) - 4)}

    q = grams(query)
    shared = len(q & grams(original))
    c = shared / len(q)
    assert 0.05 < c < 0.5 and c * len(q) == shared      # the containment times the n-gram count is exact
    # small batches: the file is re-read in several, most without a match
    monkeypatch.setattr(provaudit.io, "RecordReader", functools.partial(provaudit.io.RecordReader, batch_size=3))
    res = lineage_find(text=query, catalog=cat, deep=True, min_containment=c)    # at the containment; 5-grams
    deep = [r for r in res["records"] if r["match"] == "deep"]
    assert [(r["record_id"], r["dataset"], r["source_row"], r["role"]) for r in deep] == [
        ("sft:17:response", "sft", 17, "response")]
    assert deep[0]["containment"] == round(c, 4) and deep[0]["query_id"] == "query:0"
    assert deep[0]["shared_bands"] == 0 and deep[0]["pair_id"] == "sft:17"
    assert res["query"]["deep"] is True and res["query"]["ngram"] == 5 and res["query"]["min_containment"] == c
    # a record the band keys already found is listed once, as that match
    both = lineage_find(text=original, catalog=cat, deep=True)
    # (the missing file b's copy is still found through the catalog's band keys)
    assert sorted((r["record_id"], r["match"]) for r in both["records"]) == [
        ("b:9:chosen", "exact"), ("sft:17:response", "exact")]
    defaults = lineage_find(text=query, catalog=cat, deep=True)["query"]
    assert (defaults["ngram"], defaults["min_containment"]) == (5, 0.25)
    for kw in ({}, {"text": "a", "field": "user_id=1"}):
        with pytest.raises(UsageError, match=r"^give exactly one of --text, --file or --field$"):
            lineage_find(catalog=cat, **kw)
    with pytest.raises(UsageError, match=r"^--deep works with --text only$"):
        lineage_find(field="user_id=1", deep=True, catalog=cat)
    for kw in ({"ngram": 0}, {"min_containment": 0.0}, {"min_containment": 1.5}):
        with pytest.raises(UsageError, match=r"^--ngram must be >= 1 and the containment in \(0, 1\]$"):
            lineage_find(text="x", catalog=cat, **kw)
    with pytest.raises(UsageError, match=r"^--text is empty$"):
        lineage_find(text=" \n ", catalog=cat)
    assert res["query"]["deep_skipped"] == [{"dataset": "b", "fingerprint": fp_b, "reason": "file missing"},
                                            {"dataset": "e", "fingerprint": fp_e, "reason": "file missing"}]
    above = lineage_find(text=query, catalog=cat, deep=True, ngram=5, min_containment=c + 0.5 / len(q))
    assert not [r for r in above["records"] if r["match"] == "deep"]
    with pytest.raises(UsageError, match="at least 5 words"):
        lineage_find(text="two words", catalog=cat, deep=True, ngram=5)


def test_listing_reads_without_creating_a_catalog(tmp_path: Path) -> None:
    from provaudit.errors import InputError

    missing = tmp_path / "none.duckdb"
    with pytest.raises(InputError, match="no catalog here"):
        list_checkpoints(catalog=missing)
    with pytest.raises(InputError, match="no catalog here"):
        lineage_find(field="user_id=u-1", catalog=missing)
    assert not missing.exists()
