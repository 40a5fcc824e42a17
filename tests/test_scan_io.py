"""Readers and schema detection: every supported schema and format, read from real fixture data."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from provaudit.errors import InputError, UsageError
from provaudit.io import RECORD_SCHEMA, RecordReader, read_records, read_table

SCAN = Path(__file__).resolve().parent.parent / "fixtures" / "scan"


@pytest.mark.parametrize(
    ("name", "fmt", "schema", "roles"),
    [
        ("hh_rlhf.jsonl.gz", "jsonl", "hh_rlhf", {"prompt", "chosen", "rejected"}),
        ("trl_pairs.jsonl", "jsonl", "trl", {"prompt", "chosen", "rejected"}),
        ("trl_messages.jsonl", "jsonl", "trl", {"prompt", "chosen", "rejected"}),
        ("chat_messages.jsonl", "jsonl", "messages", {"prompt", "response"}),
        ("sharegpt_vicuna.jsonl", "jsonl", "sharegpt", {"prompt", "response"}),
        ("alpaca_eval_gpt4.json", "json", "alpaca", {"prompt", "response"}),
        ("alpaca_farm_sft.json", "json", "alpaca", {"prompt", "response"}),
        ("oasst_prompt_completion.csv", "csv", "prompt_completion", {"prompt", "response"}),
        ("ultrafeedback_style.jsonl", "jsonl", "ultrafeedback", {"prompt", "response"}),
        ("alpaca_eval_judgements.json", "json", "pairwise", {"prompt", "chosen", "rejected"}),
        ("hc3_texts.parquet", "parquet", "text", {"text"}),
    ],
)
def test_every_schema_is_detected(name: str, fmt: str, schema: str, roles: set[str]) -> None:
    reader = RecordReader(SCAN / name)
    df = pl.concat(list(reader.batches()))
    assert reader.fmt == fmt
    assert reader.schema is not None and reader.schema.name == schema
    assert roles <= set(df["role"].unique())
    assert dict(df.schema) == RECORD_SCHEMA
    assert df["record_id"].n_unique() == df.height
    assert df["text"].str.len_chars().min() >= 0
    assert df["source_row"].max() == reader.n_rows - 1


def test_hh_transcripts_split_into_shared_prompt_and_final_responses() -> None:
    with gzip.open(SCAN / "hh_rlhf.jsonl.gz", "rt", encoding="utf-8") as fh:
        raw = json.loads(fh.readline())
    df = read_table(SCAN / "hh_rlhf.jsonl.gz").filter(pl.col("source_row") == 0)
    by_role = dict(zip(df["role"], df["text"]))
    assert raw["chosen"].endswith(by_role["chosen"])
    assert raw["rejected"].endswith(by_role["rejected"])
    assert "Assistant:" not in by_role["chosen"]
    assert raw["chosen"].strip().startswith(by_role["prompt"][:40])


def test_ultrafeedback_keeps_models_and_ratings() -> None:
    df = read_table(SCAN / "ultrafeedback_style.jsonl").filter(pl.col("role") == "response")
    assert df["model"].null_count() == 0
    assert {"text_davinci_003", "alpaca-farm-ppo-human"} <= set(df["model"].unique())
    assert df["rating"].null_count() == 0


def test_pairwise_preference_decides_chosen() -> None:
    raw = json.loads((SCAN / "alpaca_eval_judgements.json").read_text(encoding="utf-8"))
    df = read_table(SCAN / "alpaca_eval_judgements.json")
    for i, row in enumerate(raw[:20]):
        rows = df.filter(pl.col("source_row") == i)
        chosen = rows.filter(pl.col("role") == "chosen")["text"].to_list()
        if row["preference"] == 1:
            assert chosen == [row["output_1"]]
        elif row["preference"] == 2:
            assert chosen == [row["output_2"]]


def test_metadata_columns_are_kept_as_json() -> None:
    df = read_table(SCAN / "chat_messages.jsonl")
    assert json.loads(df["meta"][0]) == {"user_id": "u100"}
    csv_df = read_table(SCAN / "oasst_prompt_completion.csv")
    assert json.loads(csv_df["meta"][0]) == {"source": "oasst-sft-pythia-12b"}


def test_save_to_disk_folder_and_datasets_loader(tmp_path: Path) -> None:
    import datasets

    rows = [json.loads(line) for line in (SCAN / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    datasets.Dataset.from_list(rows[:30]).save_to_disk(str(tmp_path / "ds"))
    reader = RecordReader(tmp_path / "ds")
    df = pl.concat(list(reader.batches()))
    assert reader.fmt == "hf_disk" and reader.schema.name == "trl"
    assert df.filter(pl.col("role") == "chosen")["text"].to_list() == [r["chosen"] for r in rows[:30]]
    via_loader = read_table(SCAN / "trl_pairs.jsonl", fmt="datasets")
    assert via_loader["text"].to_list() == read_table(SCAN / "trl_pairs.jsonl")["text"].to_list()


def test_map_overrides_unknown_columns(tmp_path: Path) -> None:
    src = tmp_path / "qa.jsonl"
    src.write_text(json.dumps({"question": "Why is the sky blue?", "answer": "Rayleigh scattering.", "who": "x"}) + "\n")
    with pytest.raises(InputError) as err:
        read_table(src)
    msg = str(err.value)
    assert "question" in msg and "answer" in msg and "hh_rlhf" in msg and "--map" in msg
    df = read_table(src, mapping={"prompt": "question", "response": "answer"})
    assert df["role"].to_list() == ["prompt", "response"]
    assert json.loads(df["meta"][0]) == {"who": "x"}
    with pytest.raises(UsageError):
        read_table(src, mapping={"bogus": "question"})


def test_batches_are_bounded_and_ids_stable() -> None:
    batches = list(read_records(SCAN / "hh_rlhf.jsonl.gz", batch_size=64))
    assert len(batches) == 4
    assert all(b["source_row"].n_unique() <= 64 for b in batches)
    again = pl.concat(list(read_records(SCAN / "hh_rlhf.jsonl.gz", batch_size=1000)))
    assert pl.concat(batches)["record_id"].to_list() == again["record_id"].to_list()


# ---------------------------------------------------------------- bad input

def _lines(path: Path, n: int = 6) -> list[str]:
    return (SCAN / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()[:n]


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    lines = _lines(tmp_path)
    lines[3] = lines[3][:-5]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        read_table(bad)
    assert f"{bad}:4:" in str(err.value) and "malformed JSON" in str(err.value)
    reader = RecordReader(bad, skip_bad=True)
    df = pl.concat(list(reader.batches()))
    assert reader.n_rows == 5 and len(reader.bad_rows) == 1 and reader.bad_rows[0].line == 4
    assert df["source_row"].n_unique() == 5


def test_missing_field_and_wrong_type_name_the_field(tmp_path: Path) -> None:
    rows = [json.loads(x) for x in _lines(tmp_path, 3)]
    del rows[1]["rejected"]
    rows[2]["chosen"] = 42
    bad = tmp_path / "fields.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError) as err:
        read_table(bad)
    assert err.value.line == 2 and err.value.field == "rejected"
    reader = RecordReader(bad, skip_bad=True)
    list(reader.batches())
    assert [(b.line, b.field) for b in reader.bad_rows] == [(2, "rejected"), (3, "chosen")]


def test_invalid_utf8_empty_and_oversized(tmp_path: Path) -> None:
    lines = _lines(tmp_path, 3)
    bad = tmp_path / "utf8.jsonl"
    bad.write_bytes((lines[0] + "\n").encode() + b'{"text": "caf\xe9"}\n')
    with pytest.raises(InputError) as err:
        read_table(bad)
    assert err.value.line == 2 and "UTF-8" in str(err.value)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_table(empty)
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"text": "word " * 11_000_000}) + "\n")  # ~55 MB single record
    with pytest.raises(InputError) as err:
        read_table(big)
    assert err.value.line == 1 and "limit" in str(err.value)


def test_csv_with_wrong_column_count(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('prompt,completion\n"hi","hello"\n"a","b","c"\n')
    with pytest.raises(InputError) as err:
        read_table(bad)
    assert err.value.line == 3


@pytest.mark.parametrize("name", ["hh_rlhf.jsonl.gz", "oasst_prompt_completion.csv", "alpaca_farm_sft.json"])
def test_a_damaged_gzip_file_is_a_one_line_error_with_exit_2(tmp_path: Path, name: str) -> None:
    """Cut in half: every text format names the file and the stream error (EOFError used to reach click
    from CSV and JSON arrays, which printed "Aborted!" with exit 1)."""
    from click.testing import CliRunner

    from provaudit.cli import main

    blob = (SCAN / name).read_bytes()
    blob = blob if name.endswith(".gz") else gzip.compress(blob)
    path = tmp_path / (name if name.endswith(".gz") else name + ".gz")
    path.write_bytes(blob[: len(blob) // 2])
    res = CliRunner().invoke(main, ["scan", str(path), "--catalog", str(tmp_path / "c.duckdb"), "--no-origin"])
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {path}: cannot read compressed stream (Compressed file ended before the "
                                  "end-of-stream marker was reached)")
