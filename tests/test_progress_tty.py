"""Progress: named steps on a terminal (checked in a pseudo-terminal), nothing in JSON or piped output."""
from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from provaudit import progress
from provaudit.cli import main

ROOT = Path(__file__).resolve().parent.parent
FX = ROOT / "fixtures"
SPINNER = re.compile("[\u280b\u2819\u2839\u2838\u283c\u2834\u2826\u2827\u2807\u280f]")  # rich's dots spinner
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", COLUMNS="160", TERM="xterm")


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            b = os.read(fd, 65536)
        except OSError:  # EIO once the child closed its end
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def run_in_pty(args: list[str], cwd: Path, *, stdout_pipe: bool = False) -> tuple[int, str, str]:
    """Run ``python -m provaudit ARGS`` with a pseudo-terminal as stderr (and as stdout unless
    ``stdout_pipe``); returns (exit code, terminal text, piped stdout)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "provaudit", *args], stdin=slave, stderr=slave,
                         stdout=subprocess.PIPE if stdout_pipe else slave, cwd=cwd, env=_env(), close_fds=True)
    os.close(slave)
    term = _read_all(master)
    piped = p.stdout.read() if stdout_pipe else b""
    p.wait(timeout=300)
    os.close(master)
    return p.returncode, term.decode("utf-8", "replace"), piped.decode("utf-8")


@pytest.mark.slow
def test_scan_in_a_terminal_names_its_steps(tmp_path):
    rc, term, _ = run_in_pty(["scan", str(FX / "scan" / "trl_pairs.jsonl"), "--catalog", str(tmp_path / "c.duckdb"),
                              "--out", str(tmp_path / "o")], tmp_path)
    assert rc == 0, term[-2000:]
    assert SPINNER.search(term), "no spinner frame on the terminal"
    plain = ANSI.sub("", term)
    assert "reading, fingerprinting, tagging trl_pairs.jsonl" in plain and "/100 rows" in plain
    assert "# provaudit scan" in plain  # the summary follows the (transient) progress


@pytest.mark.slow
def test_json_in_a_terminal_has_no_progress_and_parses(tmp_path):
    args = ["scan", str(FX / "scan" / "trl_pairs.jsonl"), "--catalog", str(tmp_path / "c.duckdb"), "--json"]
    rc, term, _ = run_in_pty(args, tmp_path)
    assert rc == 0, term[-2000:]
    assert not SPINNER.search(term) and "\x1b[" not in term
    assert json.loads(term.replace("\r\n", "\n"))["input"]["rows"] == 100
    # forced on (--progress): it goes to the terminal (stderr), stdout stays pure JSON
    rc, term, out = run_in_pty([*args, "--progress", "--no-record"], tmp_path, stdout_pipe=True)
    assert rc == 0, term[-2000:]
    assert SPINNER.search(term) and "reading, fingerprinting, tagging" in ANSI.sub("", term)
    assert json.loads(out)["input"]["rows"] == 100


@pytest.mark.slow
def test_converge_in_a_terminal_shows_its_long_steps(tmp_path):
    batch = tmp_path / "b.jsonl"
    batch.write_text("".join((FX / "style" / "vicuna-13b.jsonl").read_text().splitlines(True)[:40]))
    teacher = tmp_path / "t.jsonl"
    teacher.write_text("".join((FX / "style" / "teacher_gpt4.jsonl").read_text().splitlines(True)[:80]))
    human = tmp_path / "h.jsonl"
    human.write_text("".join((FX / "style" / "human.jsonl").read_text().splitlines(True)[:80]))
    rc, term, _ = run_in_pty(["converge", "--teacher", str(teacher), "--human", str(human), "--n-boot", "20",
                              str(batch)], tmp_path)
    assert rc == 0, term[-2000:]
    plain = ANSI.sub("", term)
    assert SPINNER.search(term) and "fitting the teacher model" in plain
    assert "teacher_likeness" in plain


def test_piped_output_never_carries_progress(tmp_path):
    r = subprocess.run([sys.executable, "-m", "provaudit", "origin", "rules"], capture_output=True, text=True,
                       env=_env(), cwd=tmp_path, timeout=120, check=False)
    assert r.returncode == 0 and "sig_as_an_ai" in r.stdout
    assert "\x1b[" not in r.stdout + r.stderr and not SPINNER.search(r.stdout + r.stderr)


def test_tty_enabled_needs_both_streams_and_no_json(monkeypatch):
    class Tty:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    for out, err, as_json, want in [(True, True, False, True), (True, True, True, False),
                                    (False, True, False, False), (True, False, False, False)]:
        monkeypatch.setattr(sys, "stdout", Tty(out))
        monkeypatch.setattr(sys, "stderr", Tty(err))
        assert progress.tty_enabled(as_json) is want


def test_no_session_means_no_output(capsys):
    progress.step("nothing to show")
    progress.advance()
    assert list(progress.steps([1, 2], "x")) == [1, 2]
    with progress.bar(False) as b:
        b.add_task("quiet", total=3)
    assert capsys.readouterr() == ("", "")


def _steps_of(argv: list[str], cwd: Path, monkeypatch) -> list[str]:
    monkeypatch.chdir(cwd)
    with progress.session(True) as s:
        r = CliRunner().invoke(main, argv)
    assert r.exit_code in (0, 1), r.output
    return s.history


def test_every_scan_step_is_named_in_order(tmp_path, monkeypatch):
    steps = _steps_of(["scan", str(FX / "scan" / "trl_pairs.jsonl"), "--catalog", str(tmp_path / "c.duckdb"),
                       "--gate", str(ROOT / "rules" / "gate.yaml")], tmp_path, monkeypatch)
    want = ["reading, fingerprinting, tagging trl_pairs.jsonl", "duplicate grouping: starting",
            "finalize: duplicate groups", "duplicate summary", "origin and teacher estimates",
            "catalog checks: overlap and erased records", "writing records.parquet", "writing summary",
            "committing to the catalog"]
    assert steps == want


def test_detector_eval_names_its_step(tmp_path, monkeypatch):
    import polars as pl

    lab = pl.read_ndjson(FX / "origin" / "labelled.jsonl")
    for value, name in ((0, "h.jsonl"), (1, "m.jsonl")):
        lab.filter(pl.col("label") == value).head(40).select("text").write_ndjson(tmp_path / name)
    steps = _steps_of(["detector", "eval", "--human", "h.jsonl", "--model", "m.jsonl"], tmp_path, monkeypatch)
    assert steps == ["evaluating the detector on h.jsonl and m.jsonl"]


@pytest.mark.parametrize("argv,expect", [
    (["label-origin", str(FX / "style" / "alpaca_eval_gpt4_annotations.json")], ["reading preference pairs",
                                                                               "assessing"]),
    (["diversity", str(FX / "lineage" / "sft_train.jsonl")], ["reading the human reference",
                                                              "measuring diversity of sft_train"]),
    (["lineage", "find", "--text", "hello there"], ["searching the catalog"]),
    (["trend"], ["reading the scan history"]),
    (["checkpoints", str(FX / "checkpoints" / "trainer_state.json"), "--out", "rep"],
     ["analysing checkpoints"]),
    (["coverage", "--eval", str(FX / "coverage" / "eval.json"), str(FX / "coverage" / "production_same.jsonl"),
      "--no-record"], ["reading", "embedding", "nearest eval neighbours", "coverage interval", "drift"]),
    (["labelers", str(FX / "integrity" / "labels_drift.jsonl.gz"), "--by", "batch"], ["agreement"]),
])
def test_other_long_commands_name_their_steps(argv, expect, tmp_path, monkeypatch):
    if argv[0] in ("lineage", "trend"):  # they read a catalog: make one
        r = CliRunner().invoke(main, ["register", str(FX / "lineage" / "sft_train.jsonl"), "--catalog",
                                      str(tmp_path / ".provaudit" / "catalog.duckdb")])
        assert r.exit_code == 0, r.output
    steps = _steps_of(argv, tmp_path, monkeypatch)
    for e in expect:
        assert any(s.startswith(e) for s in steps), (e, steps)
