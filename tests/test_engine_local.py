"""The local process-pool engine: same batches out, in order, bounded read-ahead, errors surface."""
from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from provaudit.cli import main
from provaudit.engine.local import run_pool
from provaudit.io import read_records
from provaudit.pipeline import StageOptions, process_batch, scan

ROOT = Path(__file__).resolve().parent.parent
HH = ROOT / "fixtures" / "scan" / "hh_rlhf.jsonl.gz"
TRL = ROOT / "fixtures" / "scan" / "trl_pairs.jsonl"
OPTS = StageOptions(origin=False)


def test_run_pool_matches_serial_in_order() -> None:
    batches = list(read_records(HH, batch_size=23))
    assert len(batches) > 4
    serial = [process_batch(b, OPTS) for b in batches]
    pooled = list(run_pool(iter(batches), OPTS, 2))
    assert len(pooled) == len(serial)
    for a, b in zip(serial, pooled):
        assert_frame_equal(a, b)
    # order really is input order: record ids ascend batch by batch
    rows = [r for f in pooled for r in f["source_row"].to_list()]
    assert rows == sorted(rows)


def test_run_pool_reads_ahead_a_bounded_number_of_batches() -> None:
    batches = list(read_records(TRL, batch_size=5))
    pulled = []

    def source():
        for i, b in enumerate(batches):
            pulled.append(i)
            yield b

    gen = run_pool(source(), OPTS, 2, max_in_flight=3)
    first = next(gen)
    assert first.height == batches[0].height
    assert len(pulled) <= 3  # not the whole input
    rest = list(gen)
    assert 1 + len(rest) == len(batches)


def test_run_pool_reraises_a_worker_failure() -> None:
    good = next(read_records(TRL, batch_size=5))
    bad = good.drop("text")
    with pytest.raises(Exception, match="text"):
        list(run_pool(iter([good, bad, good]), OPTS, 2))


def test_scan_with_workers_gives_identical_outputs(tmp_path: Path) -> None:
    one = scan([HH, TRL], catalog=tmp_path / "a.duckdb", out=tmp_path / "a", origin=False, batch_size=40)
    two = scan([HH, TRL], catalog=tmp_path / "b.duckdb", out=tmp_path / "b", origin=False, batch_size=40,
               workers=2)
    assert_frame_equal(one.records(), two.records())
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()
    assert one.summary["duplicates"]["records"] > 0


def test_cli_workers_option(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["scan", str(TRL), "--no-origin", "--workers", "2", "--batch-size", "30",
                                    "--catalog", str(tmp_path / "c.duckdb"), "--out", str(tmp_path / "o"),
                                    "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["input"]["rows"] == pl.read_ndjson(TRL).height


def test_worker_environment_sets_allocator_defaults_only_while_open(monkeypatch):
    from provaudit.engine.local import WORKER_ENV, worker_environment

    monkeypatch.setenv("MALLOC_TOP_PAD_", "123")  # a user's own value is kept
    monkeypatch.delenv("_RJEM_MALLOC_CONF", raising=False)
    with worker_environment():
        assert os.environ["MALLOC_TOP_PAD_"] == "123"
        assert os.environ["_RJEM_MALLOC_CONF"] == WORKER_ENV["_RJEM_MALLOC_CONF"]
    assert "_RJEM_MALLOC_CONF" not in os.environ and os.environ["MALLOC_TOP_PAD_"] == "123"
