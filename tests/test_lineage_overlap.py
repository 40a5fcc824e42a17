"""overlap A B: exact, near-duplicate and n-gram contamination between two datasets."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import provaudit
from provaudit.catalog.lineage import ngram_hashes, overlap
from provaudit.errors import UsageError


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_train_eval_prompt_leak_is_found(fixtures_dir):
    lin = fixtures_dir / "lineage"
    res = overlap(lin / "sft_train.jsonl", lin / "eval_set.json")
    # eval instructions 40..59 are sft_train instructions 40..59 (rows shift by one after the planted row 17)
    exact = [r for r in res["records"] if r["match"] == "exact"]
    assert res["exact"]["b_records"] == 20 == len(exact)
    assert {r["b_row"] for r in exact} == set(range(20)) and {r["a_row"] for r in exact} == set(range(41, 61))
    assert all(r["role"] == "prompt" for r in exact)
    assert res["exact"]["b_rate"] == pytest.approx(20 / 80)
    # the near matches are real templated prompts ("I like to host guests ... recipes for <dish>")
    assert all(r["role"] == "prompt" for r in res["records"] if r["match"] == "near")
    assert res["ngram"]["n"] == 13 and res["ngram"]["b_records"] >= 1


def test_near_and_ngram_matches_on_edited_copies(fixtures_dir, tmp_path):
    train = _rows(fixtures_dir / "lineage" / "dpo_round2.jsonl")
    a = _write_jsonl(tmp_path / "train.jsonl", [{"text": r["chosen"].split("Assistant:")[-1].strip()} for r in train])
    texts = [json.loads(x)["text"] for x in a.read_text(encoding="utf-8").splitlines()]
    long_ones = [t for t in texts if len(t.split()) >= 60]
    assert len(long_ones) >= 2
    base, base2 = long_ones[0], long_ones[1]
    words = base.split()
    edited = " ".join(words[:-3] + ["indeed"])  # light edit: last words changed
    span = " ".join(base2.split()[5:25])  # a 20-word quote inside otherwise new text
    quoted = ("Here is a completely different answer about gardening and soil. " + span +
              " And then some further words about tomatoes, watering schedules and mulch.")
    unrelated = "Paris is the capital of France and sits on the river Seine in the north of the country."
    b = _write_jsonl(tmp_path / "eval.jsonl", [{"text": edited}, {"text": quoted}, {"text": unrelated}])
    res = overlap(a, b, ngram=13)
    by_b = {r["b_row"]: r for r in res["records"]}
    assert by_b[0]["match"] == "near" and by_b[0]["a_row"] == texts.index(base)
    assert by_b[1]["match"] == "ngram" and by_b[1]["a_row"] == texts.index(base2)
    assert by_b[1]["shared_ngrams"] >= 20 - 13 + 1  # 20 words hold >= 8 13-grams (\w+ splits more)
    assert 2 not in by_b
    # a longer n-gram than the quote finds no contamination there
    res30 = overlap(a, b, ngram=30)
    assert 1 not in {r["b_row"] for r in res30["records"]}


def test_catalog_names_give_the_same_result_and_survive_a_missing_file(fixtures_dir, tmp_path):
    lin = fixtures_dir / "lineage"
    data = tmp_path / "d"
    shutil.copytree(lin, data)
    cat = tmp_path / "c.duckdb"
    provaudit.register(data / "sft_train.jsonl", tags=["train"], catalog=cat)
    provaudit.register(data / "eval_set.json", tags=["eval"], catalog=cat)
    by_file = overlap(data / "sft_train.jsonl", data / "eval_set.json")
    by_name = overlap("sft_train", "eval_set", catalog=cat)
    assert by_name["exact"] == by_file["exact"] and by_name["near"] == by_file["near"]
    assert by_name["ngram"] == by_file["ngram"]
    (data / "eval_set.json").unlink()
    hashes_only = overlap("sft_train", "eval_set", catalog=cat)
    assert hashes_only["b"]["source"] == "catalog-hashes"
    assert hashes_only["exact"] == by_file["exact"] and hashes_only["near"]["b_records"] == by_file["near"]["b_records"]
    assert hashes_only["ngram"]["available"] is False


def test_ngram_hashes_do_not_cross_text_boundaries():
    h, owner = ngram_hashes(["one two three", "four five six seven"], 3)
    assert owner.tolist() == [0, 1, 1]
    h2, _ = ngram_hashes(["x four five six"], 3)
    assert h2[1] == h[1] and h2[0] not in h and np.unique(h).size == 3
    assert ngram_hashes(["too short"], 3)[0].size == 0


def test_bad_ngram_is_usage_error(fixtures_dir):
    with pytest.raises(UsageError):
        overlap(fixtures_dir / "lineage" / "sft_train.jsonl", fixtures_dir / "lineage" / "eval_set.json", ngram=0)
