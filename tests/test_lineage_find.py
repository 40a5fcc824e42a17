"""Lineage: a planted record is traced to its datasets and (transitively) to checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import provaudit
from provaudit.catalog.lineage import add_checkpoint, lineage_find, list_checkpoints, list_datasets
from provaudit.errors import InputError, UsageError

# a paragraph of ordinary prose that appears in none of the fixtures
UNRELATED = ("The ferry to the island leaves twice a day in summer, but in winter the crossing is often "
             "cancelled when the wind picks up, so visitors are advised to check the harbour office first.")


def planted_text(fixtures: Path) -> str:
    line = (fixtures / "lineage" / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()[17]
    return json.loads(line)["output"]


def build_catalog(fixtures: Path, path: Path) -> Path:
    """sft_train trains ck1; ck2 continues ck1 on dpo_round2; prefs_train trains nothing; ck3 on eval."""
    lin = fixtures / "lineage"
    for f, tag in (("sft_train.jsonl", "train"), ("prefs_train.csv", "train"), ("dpo_round2.jsonl", "train"),
                   ("eval_set.json", "eval")):
        provaudit.register(lin / f, tags=[tag], catalog=path)
    add_checkpoint("ck1", ["sft_train"], catalog=path)
    add_checkpoint("ck2", ["dpo_round2"], parent="ck1", catalog=path)
    add_checkpoint("ck3", ["eval_set"], catalog=path)
    return path


@pytest.fixture(scope="module")
def catalog(fixtures_dir, tmp_path_factory) -> Path:
    return build_catalog(fixtures_dir, tmp_path_factory.mktemp("lineage") / "catalog.duckdb")


def test_planted_record_traced_to_both_datasets_and_both_checkpoints(catalog, fixtures_dir):
    res = lineage_find(text=planted_text(fixtures_dir), catalog=catalog)
    assert [(d["dataset"], d["rows"]) for d in res["datasets"]] == [("sft_train", [17]), ("prefs_train", [9])]
    assert {r["match"] for r in res["records"]} == {"exact"}
    assert {r["role"] for r in res["records"]} == {"response", "chosen"}
    ck = {c["checkpoint"]: c["via"] for c in res["checkpoints"]}
    assert ck == {"ck1": "direct", "ck2": "parent"}


def test_lightly_edited_copy_is_found_as_near_duplicate(catalog, fixtures_dir):
    text = planted_text(fixtures_dir)
    sentences = text.split(". ")
    edited = ". ".join(sentences[:-1]).replace("the", "teh", 1)  # a typo and the last sentence dropped
    assert edited != text and len(edited) > 0.8 * len(text)
    res = lineage_find(text=edited, catalog=catalog)
    assert {r["match"] for r in res["records"]} == {"near"}
    assert [d["dataset"] for d in res["datasets"]] == ["sft_train", "prefs_train"]
    assert {c["checkpoint"] for c in res["checkpoints"]} == {"ck1", "ck2"}


def test_unrelated_record_is_not_found(catalog):
    res = lineage_find(text=UNRELATED, catalog=catalog)
    assert res["n_records"] == 0 and res["datasets"] == [] and res["checkpoints"] == []


def test_field_lookup_returns_every_row_of_the_user(catalog):
    res = lineage_find(field="user_id=u-0042", catalog=catalog)
    assert [(d["dataset"], d["rows"]) for d in res["datasets"]] == [("sft_train", [5, 17]), ("prefs_train", [9])]
    assert res["n_records"] == 7  # 2 alpaca rows x (prompt, response) + 1 hh row x (prompt, chosen, rejected)
    assert {c["checkpoint"] for c in res["checkpoints"]} == {"ck1", "ck2"}
    none = lineage_find(field="user_id=u-9999", catalog=catalog)
    assert none["n_records"] == 0 and none["checkpoints"] == []


def test_checkpoint_of_an_eval_dataset_is_reached_only_through_its_data(catalog):
    res = lineage_find(field="user_id=u-1000", catalog=catalog)
    assert "eval_set" not in [d["dataset"] for d in res["datasets"]]
    assert "ck3" not in [c["checkpoint"] for c in res["checkpoints"]]


def test_file_lookup_matches_each_record_and_skips_the_file_itself(catalog, fixtures_dir, tmp_path):
    probe = tmp_path / "complaint.jsonl"
    rows = [{"text": planted_text(fixtures_dir)}, {"text": UNRELATED}]
    probe.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    res = lineage_find(file=probe, catalog=catalog)
    assert res["query"]["records"] == 2 and res["query"]["records_matched"] == 1
    assert {r["query_id"] for r in res["records"]} == {"complaint:0:text"}
    # a registered file is not reported as containing itself
    own = lineage_find(file=fixtures_dir / "lineage" / "dpo_round2.jsonl", catalog=catalog)
    assert own["query"]["excluded_self"] is True
    assert "dpo_round2" not in [d["dataset"] for d in own["datasets"]]


def test_exactly_one_selector(catalog):
    with pytest.raises(UsageError):
        lineage_find(text="a", field="user_id=1", catalog=catalog)
    with pytest.raises(UsageError):
        lineage_find(field="user_id", catalog=catalog)


def test_checkpoint_registry_errors_and_listing(catalog, fixtures_dir, tmp_path):
    with pytest.raises(InputError, match="no catalog dataset"):
        add_checkpoint("bad", ["no_such_dataset"], catalog=catalog)
    with pytest.raises(InputError, match="no checkpoint named"):
        add_checkpoint("orphan", ["sft_train"], parent="nope", catalog=catalog)
    with pytest.raises(InputError, match="already exists"):
        add_checkpoint("ck1", ["sft_train"], catalog=catalog)
    cks = {c["checkpoint"]: c for c in list_checkpoints(catalog=catalog)}
    assert cks["ck2"]["parent"] == "ck1" and cks["ck2"]["trained_on"] == ["dpo_round2"]
    names = [d["dataset"] for d in list_datasets(catalog=catalog)]
    assert names == ["sft_train", "prefs_train", "dpo_round2", "eval_set"]


def test_trained_on_a_file_path_registers_it_first(fixtures_dir, tmp_path):
    cat = tmp_path / "c.duckdb"
    res = add_checkpoint("ck-file", [str(fixtures_dir / "lineage" / "dpo_round2.jsonl")], catalog=cat)
    assert res["trained_on"][0]["dataset"] == "dpo_round2"
    again = add_checkpoint("ck-file-2", [str(fixtures_dir / "lineage" / "dpo_round2.jsonl")], catalog=cat)
    assert again["trained_on"][0]["dataset_id"] == res["trained_on"][0]["dataset_id"]
    assert len(list_datasets(catalog=cat)) == 1
    fp = res["trained_on"][0]["fingerprint"]
    assert add_checkpoint("ck-prefix", [fp[:10]], catalog=cat)["trained_on"][0]["fingerprint"] == fp
    with pytest.raises(InputError):
        add_checkpoint("ck-short", [fp[:4]], catalog=cat)  # prefixes need 8+ characters


def _reword(text: str, share: float) -> str:
    """Replace a share of the words (every k-th word) with a filler: a heavier edit than LSH tolerates."""
    words = text.split()
    step = max(1, round(1 / share))
    return " ".join("also" if i % step == step // 2 else w for i, w in enumerate(words))


def test_deep_search_finds_heavier_edits_and_still_not_unrelated_text(catalog, fixtures_dir):
    reworded = _reword(planted_text(fixtures_dir), 0.12)
    deep = lineage_find(text=reworded, catalog=catalog, deep=True)
    assert [d["dataset"] for d in deep["datasets"]] == ["sft_train", "prefs_train"]
    assert {c["checkpoint"] for c in deep["checkpoints"]} == {"ck1", "ck2"}
    assert all(r["containment"] >= 0.25 for r in deep["records"] if r["match"] == "deep")
    assert lineage_find(text=UNRELATED, catalog=catalog, deep=True)["n_records"] == 0
    with pytest.raises(UsageError):
        lineage_find(field="user_id=u-0042", catalog=catalog, deep=True)
