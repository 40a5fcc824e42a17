"""Every ``provaudit ...`` example in every ``--help`` text, in the README and in docs/*.md runs, against
the bundled fixtures, with the exit code its text documents (the sqlite-utils habit: examples cannot rot).

The examples use short placeholder names (``batch.jsonl``, ``gpt4_outputs.json``); ``PLACEHOLDERS`` says
which bundled fixture stands for each, and the test copies it under that name into a scratch folder that
holds ``rules/`` and ``fixtures/`` too. Each source runs in a folder of its own, examples in order (so a
``register`` comes before the ``scan`` that leaks into it), against the default catalog there. An example
naming a file that is neither here nor in ``PLACEHOLDERS`` fails the test: fix the example, or add it.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import click
import polars as pl
import pytest
from click.testing import CliRunner

from provaudit.cli import main

#: loads the bundled language model (torch): runs on the worker that loads it anyway (conftest)
pytestmark = pytest.mark.torch_models

ROOT = Path(__file__).resolve().parent.parent
FX = ROOT / "fixtures"

#: style examples read these through a slice of their first rows (the full fixtures take ~20 s per converge)
STYLE_ROWS = 60
#: placeholder name in an example -> bundled fixture (copied under the placeholder's name; JSONL files
#: from fixtures/style cut to their first STYLE_ROWS rows)
PLACEHOLDERS: dict[str, Path] = {
    "eval.jsonl": FX / "lineage" / "dpo_round2.jsonl",
    "batch.jsonl": FX / "scan" / "trl_pairs.jsonl",
    "data/prefs.jsonl": FX / "scan" / "trl_pairs.jsonl",
    "data/sft_train.jsonl": FX / "lineage" / "sft_train.jsonl",
    "sft_train.jsonl": FX / "lineage" / "sft_train.jsonl",
    "eval_set.json": FX / "lineage" / "eval_set.json",
    "complaint.jsonl": FX / "lineage" / "dpo_round2.jsonl",
    "trainer_state.json": FX / "checkpoints" / "trainer_state.json",
    "openrlhf_metrics.csv": FX / "checkpoints" / "openrlhf_metrics.csv",
    "sft.jsonl": FX / "checkpoints" / "compare_sft.jsonl",
    "rlhf.jsonl": FX / "checkpoints" / "compare_rlhf.jsonl",
    "gpt4_outputs.json": FX / "style" / "teacher_gpt4.jsonl",
    "gpt4_outputs.jsonl": FX / "style" / "teacher_gpt4.jsonl",
    "gpt4.json": FX / "style" / "teacher_gpt4.jsonl",
    "human_answers.jsonl": FX / "style" / "human.jsonl",
    "my_human_answers.jsonl": FX / "style" / "human.jsonl",
    "labels_v1.jsonl": FX / "style" / "oasst-sft-pythia-12b.jsonl",
    "labels_v2.jsonl": FX / "style" / "vicuna-13b.jsonl",
    "labels_v3.jsonl": FX / "style" / "teacher_gpt4.jsonl",
    "batch1.jsonl": FX / "style" / "oasst-sft-pythia-12b.jsonl",
    "batch2.jsonl": FX / "style" / "vicuna-13b.jsonl",
    "batch3.jsonl": FX / "style" / "teacher_gpt4.jsonl",
    "sft_round1.jsonl": FX / "style" / "oasst-sft-pythia-12b.jsonl",
    "sft_round2.jsonl": FX / "style" / "vicuna-13b.jsonl",
    "prefs.jsonl": FX / "style" / "hh_rlhf_harmless.jsonl",
    "annotations.json": FX / "style" / "alpaca_eval_gpt4_annotations.json",
    "logs_week1.jsonl": FX / "coverage" / "production_same.jsonl",
    "logs_week2.jsonl": FX / "coverage" / "production_shifted.jsonl",
    "logs.jsonl": FX / "coverage" / "production_drifting.jsonl",
    "system_prompt.txt": FX / "coverage" / "system_prompt.txt",
    "A.jsonl": FX / "integrity" / "run_a.jsonl",
    "B.jsonl": FX / "integrity" / "fault_truncated.jsonl",
    "judgments.jsonl": FX / "integrity" / "labels_drift.jsonl.gz",  # decompressed under the example's name
}


def _write_generated(work: Path) -> None:
    """Files the examples name that are cut from fixtures: detector train/held-out texts, rules, a text."""
    lab = pl.read_ndjson(FX / "origin" / "labelled.jsonl").select("text", "label")
    for lab_value, names in ((0, ("human.jsonl", "mine_h.jsonl", "h.jsonl", "held_h.jsonl")),
                             (1, ("model.jsonl", "mine_m.jsonl", "m.jsonl", "held_m.jsonl"))):
        part = lab.filter(pl.col("label") == lab_value).select("text")
        half = min(part.height // 2, 80)  # 80 + 80 texts train a detector in a second or two
        for name in names:
            (part.slice(half, half) if name.startswith("held") else part.head(half)).write_ndjson(work / name)
    rules = work / "my_rules"
    rules.mkdir()
    (rules / "mine.yaml").write_text(
        "rules:\n  - id: my_signoff\n    kind: content\n    description: Signs off as a bot.\n    weight: 1.0\n"
        "    match:\n      regex: '(?i)beep boop'\n    tests:\n      match: ['Done. Beep boop.']\n"
        "      no_match: ['Done, thanks.']\n", encoding="utf-8")
    first = pl.read_ndjson(FX / "lineage" / "sft_train.jsonl").row(0, named=True)
    (work / "complaint.txt").write_text(first["output"], encoding="utf-8")


def _setup(work: Path) -> None:
    for sub in ("rules", "fixtures"):
        (work / sub).symlink_to(ROOT / sub, target_is_directory=True)
    for name, src in PLACEHOLDERS.items():
        dest = work / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.parent.name == "style" and src.suffix == ".jsonl":
            lines = src.read_text(encoding="utf-8").splitlines(keepends=True)[:STYLE_ROWS]
            dest.write_text("".join(lines), encoding="utf-8")
        elif src.suffix == ".gz" and dest.suffix != ".gz":
            import gzip

            dest.write_bytes(gzip.decompress(src.read_bytes()))
        else:
            shutil.copyfile(src, dest)
    _write_generated(work)
    _write_lm_cuts(work)


def _catalog_setup(work: Path) -> None:
    """Datasets the examples name by catalog name (``prefs_train``, ``eval_set``)."""
    runner = CliRunner()
    for path in ("fixtures/lineage/prefs_train.csv", "fixtures/lineage/eval_set.json"):
        r = runner.invoke(main, ["register", str(work / path)], catch_exceptions=False)
        assert r.exit_code == 0, r.output


# ------------------------------------------------------------------------------------------- collecting

def help_examples() -> list[tuple[str, str]]:
    """``(command path, example line)`` from every command's help text."""
    out = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        for line in (cmd.help or "").splitlines():
            s = line.strip()
            if s.startswith("provaudit "):
                out.append((" ".join(path) or "provaudit", s))
        if isinstance(cmd, click.Group):
            for name, sub in sorted(cmd.commands.items()):
                walk(sub, path + [name])

    walk(main, [])
    first = ("register", "checkpoint add", "detector train")  # what later examples read must exist first
    return sorted(out, key=lambda e: 0 if e[0] in first else 1)


def doc_examples(path: Path) -> list[str]:
    """``provaudit ...`` lines of the ```bash blocks of a Markdown file (``.venv/bin/`` and a leading
    ``bash scripts/setup.sh &&`` dropped)."""
    lines, in_bash = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_bash = line.strip() in ("```bash", "```sh", "```console")
            continue
        if not in_bash:
            continue
        s = re.sub(r"^bash scripts/setup\.sh\s*&&\s*", "", line.strip()).replace(".venv/bin/provaudit", "provaudit")
        if s.startswith("provaudit "):
            lines.append(s)
    return lines


#: the language-model examples (origin mode full / sampled) score each text with SmolLM2 at a few texts/s
#: on a CPU: they run on small cuts of the same files (LM_CUTS), with the same flags
LM_LINE = re.compile(r"--(?:origin-)?mode (?:full|sampled)|gate-human-data")  # the last runs the LM on a sample
#: placeholder -> (its cut, rows, words kept per text): the batch's texts stay past the 50-word LM threshold;
#: the detector-training texts need 25+ words (``min_train_words``), and 20 of them (the fewest it trains on)
LM_CUTS = {"batch.jsonl": ("lm_batch.jsonl", 1, 60), "h.jsonl": ("lm_h.jsonl", 10, 30),
           "m.jsonl": ("lm_m.jsonl", 10, 30)}


def _lm_line(line: str) -> str:
    """An LM example on its small inputs; ``--device cuda`` runs on the CPU where torch has no CUDA (the
    flag's parsing and pass-through are still exercised)."""
    import torch

    for name, (cut, _, _) in LM_CUTS.items():
        line = re.sub(rf"(?<![\w/]){re.escape(name)}", cut, line)
    if not torch.cuda.is_available():
        line = line.replace("--device cuda", "--device cpu")
    return line


def _cut_words(value, words: int):
    """Every text in ``value`` cut to its first ``words`` words (the LM's scoring time is linear in tokens)."""
    if isinstance(value, str):
        return " ".join(value.split()[:words])
    if isinstance(value, list):
        return [_cut_words(v, words) for v in value]
    if isinstance(value, dict):
        return {k: _cut_words(v, words) for k, v in value.items()}
    return value


def _write_lm_cuts(work: Path) -> None:
    for name, (cut, rows, words) in LM_CUTS.items():
        lines = (work / name).read_text(encoding="utf-8").splitlines()[:rows]
        (work / cut).write_text("".join(json.dumps(_cut_words(json.loads(x), words)) + "\n" for x in lines),
                                encoding="utf-8")


def _argv(line: str, work: Path) -> list[str]:
    if LM_LINE.search(line):
        line = _lm_line(line)
    line = re.sub(r"\$\(cat ([^)]+)\)", lambda m: (work / m.group(1)).read_text(encoding="utf-8")
                  .replace('"', '\\"'), line)
    argv = shlex.split(line, comments=True)
    assert argv[0] == "provaudit", line
    return argv[1:]


def _allowed_exit(argv: list[str]) -> set[int]:
    """0, and 1 where the help documents it: a gate (scan's own, or --gate) may fail on real data."""
    return {0, 1} if ("--gate" in argv or argv[:1] == ["scan"]) else {0}


#: commands that neither read nor write the catalog: a line of one of them that an earlier source (in
#: ``_sources()`` order) shows too runs there only (a test per source, each in a folder of its own; lines of other
#: commands build the state that later lines read, so each source runs them all)
STATELESS = {"converge", "checkpoints", "compare", "diversity", "label-origin", "labelers"}
DOCS = ["README.md", "docs/lineage.md", "docs/origin.md", "docs/style.md", "docs/checkpoints.md"]


def _sources() -> dict[str, list[str]]:
    """Every source's example lines: the help texts first, then DOCS in order."""
    return {"help": [line for _, line in help_examples()], **{doc: doc_examples(ROOT / doc) for doc in DOCS}}


def _shown_earlier(source: str) -> set[str]:
    """Lines of ``source`` that run in an earlier source instead (stateless commands only)."""
    earlier: set[str] = set()
    for name, lines in _sources().items():
        if name == source:
            return {line for line in lines if line in earlier and shlex.split(line)[1] in STATELESS}
        earlier.update(lines)
    raise KeyError(source)


def _run_all(examples: list[str], work: Path, monkeypatch: pytest.MonkeyPatch,
             skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
    monkeypatch.chdir(work)
    _setup(work)
    _catalog_setup(work)
    failures = []
    runner = CliRunner()
    for line in examples:
        if line in skip:
            continue
        argv = _argv(line, work)
        r = runner.invoke(main, argv)
        if r.exit_code not in _allowed_exit(argv):
            tail = (r.output or "").strip().splitlines()[-3:]
            failures.append(f"{line}\n  -> exit {r.exit_code}: {' | '.join(tail)} {r.exception!r}")
    return failures


# ------------------------------------------------------------------------------------------------ tests

def test_every_help_text_has_an_example_and_the_collector_finds_them():
    ex = help_examples()
    commands = {c for c, _ in ex}
    assert {"scan", "register", "converge", "trend", "origin rules", "lineage find", "datasets"} <= commands
    assert all(not line.startswith("provaudit register fixtures/scan/alpaca_eval_gpt4_outputs") for _, line in ex)
    for _, line in ex:  # every fixture path an example names exists
        for tok in shlex.split(line.replace("$(", "(")):
            if tok.startswith("fixtures/"):
                assert (ROOT / tok).exists(), line


@pytest.mark.slow
def test_help_examples_run(tmp_path, monkeypatch):
    failures = _run_all([line for _, line in help_examples()], tmp_path, monkeypatch)
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_doc_examples_run(doc, tmp_path, monkeypatch):
    examples = doc_examples(ROOT / doc)
    assert examples, f"no provaudit examples found in {doc}"
    failures = _run_all(examples, tmp_path, monkeypatch, skip=_shown_earlier(doc))
    assert not failures, "\n".join(failures)


def test_a_stateless_line_runs_in_its_first_source_only():
    """The README's labelers and checkpoints lines are in the help texts too (they run there), its scan
    line too (it runs in both: a scan records into its source's catalog)."""
    readme = _shown_earlier("README.md")
    assert any(line.startswith("provaudit labelers ") for line in readme)
    assert not any(line.startswith(("provaudit scan ", "provaudit register ")) for line in readme)
    assert _shown_earlier("help") == set()
    shown = set(_sources()["help"])
    assert readme <= shown and _shown_earlier("docs/checkpoints.md")  # gao checkpoints: in the README


def test_an_example_that_names_a_missing_file_fails(tmp_path, monkeypatch):
    """The harness itself: a rotten example is caught, not skipped."""
    failures = _run_all(["provaudit scan no_such_batch.jsonl --gate rules/gate.yaml"], tmp_path, monkeypatch)
    assert len(failures) == 1 and "exit 2" in failures[0]
