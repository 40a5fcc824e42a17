"""Detector training data comes from any file provaudit reads, not only plain text files."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from provaudit.origin.detector import as_frame

SCAN = Path(__file__).resolve().parent.parent / "fixtures" / "scan"


def test_preference_file_gives_its_responses_not_its_prompts() -> None:
    from provaudit.io import read_table

    df = as_frame(SCAN / "hh_rlhf.jsonl.gz", 1)
    records = read_table(SCAN / "hh_rlhf.jsonl.gz")
    outputs = records.filter(pl.col("role") != "prompt")["text"].to_list()
    assert df.height == 400  # 200 rows x (chosen, rejected)
    assert df["text"].to_list() == outputs


def test_txt_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first text\n\nsecond text\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "third", "domain": "news"}\n', encoding="utf-8")
    df = as_frame(tmp_path, 0)
    assert sorted(df["text"].to_list()) == ["first text", "second text", "third"]
    assert set(df["domain"].to_list()) == {"all", "news"}
    assert isinstance(df, pl.DataFrame)
