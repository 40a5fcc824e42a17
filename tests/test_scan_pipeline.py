"""Fingerprints, the scan pipeline, the catalog it writes and the gate, on real fixture data."""
from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import provaudit
from provaudit.cli import main
from provaudit.errors import InputError
from provaudit.fingerprint import (
    _PAD,
    _WORD,
    _normalized_column,
    _word_hash,
    add_fingerprints,
    band_keys,
    combine_shingle,
    dataset_fingerprint,
    estimate_jaccard,
    minhash_signatures,
    normalize_text,
    shingle_hashes,
    text_hash,
)
from provaudit.io import read_records, read_table

ROOT = Path(__file__).resolve().parent.parent
SCAN = ROOT / "fixtures" / "scan"
GATE = ROOT / "rules" / "gate.yaml"


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _json_rows(name: str) -> list[dict]:
    return json.loads((SCAN / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- fingerprints

def test_text_hash_ignores_unicode_form_and_spacing_only() -> None:
    assert text_hash("Caf\u00e9  au\tlait\n") == text_hash("Cafe\u0301 au lait")
    assert text_hash("ﬁne") == text_hash("fine")  # NFKC folds the ligature
    assert text_hash("Cafe au lait") != text_hash("Café au lait")
    assert len(text_hash("x")) == 32


def test_near_duplicates_share_a_band_and_unrelated_texts_do_not() -> None:
    texts = [r["output"] for r in _json_rows("alpaca_eval_gpt4.json")[:40] if len(r["output"].split()) > 60]
    base = texts[0]
    words = base.split()
    rng = random.Random(0)
    for i in rng.sample(range(len(words)), 3):  # a light edit: three words changed
        words[i] = words[i].upper() + "s"
    edited = " ".join(words)
    sig = minhash_signatures([base, edited, texts[1]])
    assert estimate_jaccard(sig[0], sig[1]) > 0.6
    keys = band_keys([base, edited] + texts[1:])
    assert set(keys[0]) & set(keys[1])
    assert not any(set(keys[0]) & set(k) for k in keys[2:])


def test_vectorised_normalization_matches_the_per_text_one() -> None:
    texts = [r["output"] for r in _json_rows("alpaca_eval_gpt4.json")[:300]]
    texts += ["", " ", "a\u00a0b", "x\t\ty", " lead", "trail\n", "a \u2003 b", "\ufb01ne  ", "\u3000wide",
              "Caf\u00e9", "Cafe\u0301", "line\r\nbreak", "tab\tand  two"]
    got = _normalized_column(pl.Series(texts)).to_list()
    assert got == [normalize_text(t) for t in texts]
    assert got[-4] == got[-3] == "Café"


def test_vectorised_shingle_hashes_match_the_word_3gram_definition() -> None:
    """Every text's shingle hashes are exactly the hashes of its word 3-grams, in order (short, empty
    and punctuation-only texts included), combined one text at a time in plain Python."""
    texts = [r["output"] for r in _json_rows("alpaca_eval_gpt4.json")[:200]]
    # "Hello!": one word whose text is more than the word, next to texts without any word ("", "!!!")
    texts += ["", "!!!", "Hello", "Hello!", "Hello, world", "a b c", "Straße café 42", "one  two\tthree four"]
    norm = pl.Series(texts).str.replace_all(r"\s+", " ").str.strip_chars()
    hashes, offsets = shingle_hashes(norm)
    assert offsets[0] == 0 and offsets[-1] == hashes.size and len(offsets) == len(texts) + 1
    pad = int(_PAD)
    for i, text in enumerate(norm.to_list()):
        # words as the Rust regex crate reads \w (letters, marks, decimal digits, connectors): one text at a time
        low = pl.Series([text]).str.to_lowercase()
        words = low.str.extract_all(r"\w+")[0].to_list() or [low[0] or "\x00"]
        if text.isascii():  # where Python's \w agrees, the words are Python's too
            assert words == (_WORD.findall(text.lower()) or [text.lower() or "\x00"])
        h = [_word_hash(w) for w in words] + [pad, pad]
        expected = [combine_shingle(h[j], h[j + 1], h[j + 2]) for j in range(max(len(words) - 2, 1))]
        assert hashes[int(offsets[i]):int(offsets[i + 1])].tolist() == expected, text[:60]


def test_dataset_fingerprint_is_order_independent_and_content_sensitive(tmp_path: Path) -> None:
    lines = (SCAN / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    shuffled = lines[:]
    random.Random(7).shuffle(shuffled)
    a = _write_jsonl(tmp_path / "a.jsonl", [json.loads(x) for x in lines])
    b = _write_jsonl(tmp_path / "b.jsonl", [json.loads(x) for x in shuffled])
    edited_rows = [json.loads(x) for x in lines]
    edited_rows[42]["chosen"] += " Thanks."
    c = _write_jsonl(tmp_path / "c.jsonl", edited_rows)
    fa, fb, fc = (dataset_fingerprint(read_records(p, name="d")) for p in (a, b, c))
    assert fa == fb
    assert fa != fc
    # the same through scan(), across runs and batch sizes
    r1 = provaudit.scan([a], catalog=tmp_path / "c1.duckdb", names=["d"], origin=False, batch_size=7)
    r2 = provaudit.scan([b], catalog=tmp_path / "c2.duckdb", names=["d"], origin=False)
    assert r1.summary["input"]["files"][0]["fingerprint"] == fa == r2.summary["input"]["files"][0]["fingerprint"]


def test_add_fingerprints_columns() -> None:
    df = add_fingerprints(read_table(SCAN / "hh_rlhf.jsonl.gz"))
    assert df["text_hash"].str.len_chars().unique().to_list() == [32]
    assert df["band_keys"].list.len().unique().to_list() == [16]


# ---------------------------------------------------------------- scan + catalog + gate

@pytest.fixture()
def eval_and_batches(tmp_path: Path) -> dict[str, Path]:
    """An eval set (GPT-4 answers to instructions 0-119), a clean batch (Vicuna conversations on other
    instructions) and a leaky batch (the clean one plus 10 eval rows in the same ShareGPT form)."""
    gpt4 = _json_rows("alpaca_eval_gpt4.json")
    vicuna = [json.loads(x) for x in (SCAN / "sharegpt_vicuna.jsonl").read_text(encoding="utf-8").splitlines()]
    leaked = [{"id": f"gpt4-{i}", "conversations": [{"from": "human", "value": r["instruction"]},
                                                    {"from": "gpt", "value": r["output"]}]}
              for i, r in enumerate(gpt4[10:20])]
    paths = {
        "eval": SCAN / "alpaca_eval_gpt4.json",
        "clean": _write_jsonl(tmp_path / "clean.jsonl", vicuna[:60]),
        "leaky": _write_jsonl(tmp_path / "leaky.jsonl", vicuna[:60] + leaked),
        "catalog": tmp_path / "catalog.duckdb",
    }
    provaudit.register(paths["eval"], tags=["eval"], catalog=paths["catalog"])
    return paths


def test_batch_leaking_an_eval_set_fails_the_gate_and_names_it(eval_and_batches: dict[str, Path], tmp_path: Path) -> None:
    p = eval_and_batches
    runner = CliRunner()
    res = runner.invoke(main, ["scan", str(p["leaky"]), "--catalog", str(p["catalog"]), "--gate", str(GATE),
                               "--json", "--no-origin", "--out", str(tmp_path / "out")])
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    leak = summary["overlap"]["by_tag"]["eval"]["alpaca_eval_gpt4"]
    # 10 responses + 10 prompts; short prompts with nothing specific ("What are the best exercises for
    # beginners?") are below the substantive-text floor and reported apart (docs/overlap.md)
    from provaudit.contamination import trivial_reason

    leaked = [t for r in _json_rows("alpaca_eval_gpt4.json")[10:20] for t in (r["instruction"], r["output"])]
    n_sub = sum(trivial_reason(t) is None for t in leaked)
    assert 10 <= n_sub < 20
    assert leak["exact_records"] == n_sub and leak["trivial_records"] == 20 - n_sub
    assert "no_eval_exact_overlap" in summary["gate"]["failed"]
    assert "alpaca_eval_gpt4" in res.stderr
    assert (tmp_path / "out" / "records.parquet").exists()
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary

    res = runner.invoke(main, ["scan", str(p["clean"]), "--catalog", str(p["catalog"]), "--gate", str(GATE),
                               "--json", "--no-origin"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["gate"]["passed"] is True


def test_near_duplicate_leak_is_reported(eval_and_batches: dict[str, Path], tmp_path: Path) -> None:
    p = eval_and_batches
    gpt4 = _json_rows("alpaca_eval_gpt4.json")
    rows = []
    for r in gpt4[30:40]:
        words = r["output"].split()
        words[len(words) // 2] = "indeed"
        rows.append({"instruction": r["instruction"] + " Please.", "output": " ".join(words)})
    batch = _write_jsonl(tmp_path / "edited.jsonl", rows)
    result = provaudit.scan([batch], catalog=p["catalog"], gate=GATE, origin=False)
    leak = result.summary["overlap"]["by_tag"]["eval"]["alpaca_eval_gpt4"]
    assert leak["exact_records"] == 0
    assert leak["near_records"] >= 8
    assert not result.passed and "max_eval_near_overlap" in result.summary["gate"]["failed"]




def test_malformed_line_mid_file_exits_2_and_leaves_catalog_unchanged(eval_and_batches: dict[str, Path],
                                                                        tmp_path: Path, catalog_dump) -> None:
    p = eval_and_batches
    provaudit.scan([p["clean"]], catalog=p["catalog"], origin=False)
    before = catalog_dump(p["catalog"])
    lines = p["clean"].read_text(encoding="utf-8").splitlines()
    lines[30] = lines[30][: len(lines[30]) // 2]
    bad = tmp_path / "broken.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["scan", str(bad), "--catalog", str(p["catalog"]), "--no-origin"])
    assert res.exit_code == 2
    assert f"{bad}:31:" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert catalog_dump(p["catalog"]) == before
    # with --skip-bad the row is skipped, counted and listed
    res = CliRunner().invoke(main, ["scan", str(bad), "--catalog", str(p["catalog"]), "--no-origin", "--skip-bad",
                                    "--json", "--no-record"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["input"]["bad_rows"] == 1 and s["input"]["bad_row_list"][0]["line"] == 31
    assert s["input"]["rows"] == 59


def test_summary_json_is_byte_identical_across_runs(tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        r = provaudit.scan([SCAN / "hh_rlhf.jsonl.gz"], catalog=tmp_path / f"c{i}.duckdb", out=tmp_path / f"o{i}",
                           origin=False, gate=GATE)
        outs.append((r.out_dir / "summary.json").read_bytes())
    assert outs[0] == outs[1]


def test_records_parquet_has_every_computed_column_and_duplicates(tmp_path: Path) -> None:
    rows = _json_rows("wizardlm_outputs.json")[:30]
    dup = dict(rows[3])
    batch = _write_jsonl(tmp_path / "dups.jsonl", rows + [dup])
    result = provaudit.scan([batch], catalog=tmp_path / "c.duckdb", origin=False, gate=GATE)
    df = result.records()
    assert {"record_id", "dataset", "source_row", "role", "text", "meta", "text_hash", "band_keys",
            "exact_dup_of", "near_dup_of"} <= set(df.columns)
    dups = df.filter(pl.col("exact_dup_of").is_not_null())
    assert set(dups["record_id"]) == {"dups:30:prompt", "dups:30:response"}
    assert set(dups["exact_dup_of"]) == {"dups:3:prompt", "dups:3:response"}
    assert result.summary["duplicates"]["exact_duplicates"] == 1
    assert result.summary["duplicates"]["by_role"]["prompt"]["exact_duplicates"] == 1


def test_scan_records_batch_in_catalog_and_later_scans_see_it(tmp_path: Path) -> None:
    cat = tmp_path / "c.duckdb"
    first = provaudit.scan([SCAN / "trl_pairs.jsonl"], catalog=cat, origin=False, tags=["train"])
    assert first.summary["catalog"]["recorded"]
    again = provaudit.scan([SCAN / "trl_pairs.jsonl"], catalog=cat, origin=False)
    assert again.summary["overlap"]["datasets"] == []  # the same dataset is not overlap with itself
    lines = (SCAN / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    part = _write_jsonl(tmp_path / "part.jsonl", [json.loads(x) for x in lines[:25]])
    third = provaudit.scan([part], catalog=cat, origin=False)
    (ov,) = third.summary["overlap"]["datasets"]
    # all 75 records match; the few trivial ones (short replies) are counted apart
    assert ov["exact_records"] + ov["trivial_exact_records"] == 75 and ov["exact_records"] >= 60
    scans = provaudit.Catalog(cat, read_only=True).scans()
    assert scans.height == 3


def test_register_cli_and_bad_gate_file(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["register", str(SCAN / "sharegpt_vicuna.jsonl"), "--tag", "eval", "--catalog",
                               str(tmp_path / "c.duckdb"), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["schema"] == "sharegpt" and info["tags"] == ["eval"] and info["records"] == 160
    bad_gate = tmp_path / "gate.yaml"
    bad_gate.write_text("checks:\n  - id: x\n    metric: duplicates.exact_rate\n")
    res = runner.invoke(main, ["scan", str(SCAN / "trl_pairs.jsonl"), "--catalog", str(tmp_path / "c.duckdb"),
                               "--gate", str(bad_gate), "--no-origin"])
    assert res.exit_code == 2 and "gate.yaml" in res.stderr and "max" in res.stderr


def test_unknown_schema_exits_2_listing_columns(tmp_path: Path) -> None:
    src = _write_jsonl(tmp_path / "odd.jsonl", [{"q": "a", "a": "b"}])
    res = CliRunner().invoke(main, ["scan", str(src), "--catalog", str(tmp_path / "c.duckdb"), "--no-origin"])
    assert res.exit_code == 2
    assert "[q, a]" in res.stderr and "ultrafeedback" in res.stderr
    res = CliRunner().invoke(main, ["scan", str(src), "--catalog", str(tmp_path / "c.duckdb"), "--no-origin",
                                    "--map", "prompt=q", "--map", "response=a", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["input"]["files"][0]["schema"] == "mapped"


def test_scan_of_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        provaudit.scan([tmp_path / "nope.jsonl"], catalog=tmp_path / "c.duckdb")
    assert not (tmp_path / "c.duckdb").exists()
