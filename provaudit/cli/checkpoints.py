"""Commands of the checkpoints area: ``provaudit checkpoints`` and ``provaudit compare``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from provaudit import progress
from provaudit.cli.common import echo_json, handle_errors


def _common(fn: Any) -> Any:
    opts = [
        click.option("--proxy", default=None, help="Proxy column (default: detected from names, rules file)."),
        click.option("--outcome", default=None, help="Outcome column (default: detected from names, rules file)."),
        click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="Rules YAML (default: rules/checkpoints.yaml)."),
        click.option("--teacher", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="Teacher outputs (JSON/JSONL with an output/response/text column) for the "
                          "teacher-likeness confound."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap."),
        click.option("--alpha", type=float, default=None, help="Family-wise level of each test family."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Write report.html, report.md and report.json into this directory."),
        click.option("--json", "as_json", is_flag=True, help="Print flags, best_checkpoint and summary as JSON."),
        click.option("--gate", is_flag=True, help="Exit 1 when a flag of a family in the rules' gate.fail_on "
                                                   "fires (decoupling, harness, homogenizing)."),
        click.option("--labels", multiple=True, type=click.Path(exists=True, dir_okay=False),
                     help="Labeler judgments (repeatable) for the labeler-homogenization section."),
        click.option("--labels-by", default=None, help="Batch or time column of --labels (see provaudit labelers)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _emit(report: Any, out_dir: Path | None, as_json: bool, gate: bool) -> None:
    from provaudit.report import render_html, render_json, render_markdown

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (("report.html", render_html(report)), ("report.md", render_markdown(report)),
                           ("report.json", render_json(report))):
            tmp = out_dir / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(out_dir / name)
    d = report.to_dict()
    if as_json:
        echo_json({"flags": d["flags"], "best_checkpoint": d["best_checkpoint"], "decoupled": d["decoupled"],
                   "summary": d["summary"], "proxy": d["proxy"], "outcome": d["outcome"],
                   "checkpoints": d["checkpoints"], "gate_failed": d["gate_failed"]})
    else:
        click.echo(f"{len(report.checkpoints)} checkpoints, proxy={report.proxy}, outcome={report.outcome}, "
                   f"best={report.best_checkpoint}, decoupled={'yes' if report.decoupled else 'no'}")
        for fl in report.flags:
            click.echo(f"  {fl.kind} @ {fl.checkpoint}: {fl.evidence}")
        if out_dir is not None:
            click.echo(f"wrote {out_dir / 'report.html'}, report.md, report.json")
    if gate and report.gate_failed:
        sys.exit(1)


@click.command("checkpoints")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@_common
@handle_errors
def checkpoints_cmd(inputs: tuple[Path, ...], proxy: str | None, outcome: str | None, rules: Path | None,
                    teacher: Path | None, seed: int, alpha: float | None, out_dir: Path | None, as_json: bool,
                    gate: bool, labels: tuple[str, ...], labels_by: str | None) -> None:
    """Find where the proxy reward and the real outcome came apart across checkpoints.

    INPUT files: per-checkpoint metrics (CSV/JSONL/Parquet), per-sample results (checkpoint,
    sample id, proxy, outcome, optional response/slice), TRL trainer_state.json or OpenRLHF CSV.

    \b
    Example:
      provaudit checkpoints fixtures/checkpoints/gao_rl_samples.jsonl --out report/ --gate
      provaudit checkpoints trainer_state.json --proxy objective/scores --outcome eval_task_success --json
    """
    from provaudit.checkpoints import analyze_checkpoints

    with progress.session(progress.tty_enabled(as_json)):
        progress.step("analysing checkpoints (bootstrap intervals)")
        report = analyze_checkpoints(list(inputs), proxy=proxy, outcome=outcome, rules=rules, seed=seed,
                                     teacher=teacher, alpha=alpha, labels=list(labels) or None,
                                     label_opts={"by": labels_by})
    _emit(report, out_dir, as_json, gate)  # after the (transient) progress display is gone


@click.command("compare")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@_common
@handle_errors
def compare_cmd(a: Path, b: Path, proxy: str | None, outcome: str | None, rules: Path | None,
                teacher: Path | None, seed: int, alpha: float | None, out_dir: Path | None, as_json: bool,
                gate: bool, labels: tuple[str, ...], labels_by: str | None) -> None:
    """Compare two checkpoints' per-sample results (A before, B after) with paired significance.

    \b
    Example:
      provaudit compare fixtures/checkpoints/compare_sft.jsonl fixtures/checkpoints/compare_rlhf.jsonl --out cmp/
    """
    from provaudit.checkpoints import compare

    with progress.session(progress.tty_enabled(as_json)):
        progress.step(f"comparing {a.name} and {b.name} (paired tests)")
        report = compare(a, b, proxy=proxy, outcome=outcome, rules=rules, seed=seed, teacher=teacher, alpha=alpha,
                         labels=list(labels) or None, label_opts={"by": labels_by})
    _emit(report, out_dir, as_json, gate)


COMMANDS: list = [checkpoints_cmd, compare_cmd]
