"""The lineage commands are thin: same data as the API, JSON deterministic, errors exit 2."""
from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from provaudit.cli import main


def test_cli_round_trip(fixtures_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fixtures_dir / "lineage", data)
    cat = str(tmp_path / "c.duckdb")
    run = CliRunner().invoke

    r = run(main, ["checkpoint", "add", "ck1", "--trained-on", str(data / "sft_train.jsonl"), "--catalog", cat])
    assert r.exit_code == 0, r.output
    r = run(main, ["checkpoint", "add", "ck2", "--trained-on", f"{data / 'dpo_round2.jsonl'},{data / 'prefs_train.csv'}",
                   "--parent", "ck1", "--catalog", cat, "--json"])
    assert r.exit_code == 0, r.output
    assert [d["dataset"] for d in json.loads(r.output)["trained_on"]] == ["dpo_round2", "prefs_train"]

    r = run(main, ["datasets", "--catalog", cat, "--json"])
    assert [d["dataset"] for d in json.loads(r.output)] == ["sft_train", "dpo_round2", "prefs_train"]

    r1 = run(main, ["lineage", "find", "--field", "user_id=u-0042", "--catalog", cat, "--json"])
    r2 = run(main, ["lineage", "find", "--field", "user_id=u-0042", "--catalog", cat, "--json"])
    assert r1.exit_code == 0 and r1.output == r2.output  # deterministic JSON
    found = json.loads(r1.output)
    assert {c["checkpoint"] for c in found["checkpoints"]} == {"ck1", "ck2"}
    r = run(main, ["lineage", "find", "--field", "user_id=u-0042", "--catalog", cat])
    assert "ck2" in r.output and "prefs_train" in r.output

    r = run(main, ["erase", "--field", "user_id=u-0042", "--out", str(tmp_path / "red"), "--dry-run", "--catalog", cat])
    assert r.exit_code == 0 and "would remove 3 row(s)" in r.output and not (tmp_path / "red").exists()

    r = run(main, ["overlap", str(data / "sft_train.jsonl"), str(data / "eval_set.json"), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["exact"]["b_records"] == 20

    r = run(main, ["checkpoint", "list", "--catalog", cat])
    assert r.exit_code == 0 and "ck2" in r.output


def test_cli_errors_exit_2(tmp_path, fixtures_dir):
    run = CliRunner().invoke
    r = run(main, ["lineage", "find", "--field", "user_id", "--catalog", str(tmp_path / "c.duckdb")])
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    r = run(main, ["lineage", "find", "--text", "hello", "--catalog", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 2 and "no catalog" in r.output
    r = run(main, ["checkpoint", "add", "x", "--trained-on", "nothing-like-this", "--catalog", str(tmp_path / "c.duckdb")])
    assert r.exit_code == 2 and "nothing-like-this" in r.output
