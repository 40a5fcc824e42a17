"""``provaudit coverage``: thin over :mod:`provaudit.coverage`."""

from __future__ import annotations

import sys

import click

from provaudit import progress
from provaudit.cli.common import CATALOG_OPTION, JSON_OPTION, echo_json, handle_errors, text_table
from provaudit.errors import UsageError


@click.command("coverage")
@click.argument("production", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--eval",
    "eval_path",
    required=True,
    type=click.Path(exists=True),
    help="The eval set (any format and schema provaudit reads).",
)
@click.option(
    "--prompt",
    "prompt_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A system prompt (text or a YAML list of rules): report which rules no eval case exercises.",
)
@click.option(
    "--by",
    default=None,
    help="Column (or metadata key) whose values split production into time "
    "windows; default: one window per PRODUCTION file, in the order given.",
)
@click.option(
    "--unit",
    type=click.Choice(["prompt", "record"]),
    default="prompt",
    show_default=True,
    help="Compare prompts, or whole records (every text of a row joined).",
)
@click.option(
    "--method",
    type=click.Choice(["mixture", "classifier", "neighbour"]),
    default="mixture",
    show_default=True,
    help="How 'close to the eval set' is scored (see docs/coverage.md).",
)
@click.option(
    "--backend",
    type=click.Choice(["static", "minilm"]),
    default="static",
    show_default=True,
    help="Embedding backend (static: fast distillation of MiniLM; minilm: the full model).",
)
@click.option(
    "--quantile",
    default=0.95,
    show_default=True,
    help="Calibration quantile of the eval set's own scores (classifier, neighbour; stale units).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="A fixed closeness threshold instead of the calibrated one (logit or cosine distance).",
)
@click.option(
    "--alpha", default=0.01, show_default=True, help="Drift test level (windows: alpha / n_windows)."
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), default=None, help="Write the HTML report here."
)
@click.option(
    "--gate",
    "gate_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Gate file with checks over the coverage summary (e.g. rules/gate-coverage.yaml).",
)
@CATALOG_OPTION
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Store the run in the catalog (for provaudit trend).",
)
@JSON_OPTION
@handle_errors
def coverage_cmd(
    production: tuple[str, ...],
    eval_path: str,
    prompt_path: str | None,
    by: str | None,
    unit: str,
    method: str,
    backend: str,
    quantile: float,
    threshold: float | None,
    alpha: float,
    seed: int,
    html_path: str | None,
    gate_path: str | None,
    catalog_path: str | None,
    record: bool,
    as_json: bool,
) -> None:
    """Does the EVAL set still look like PRODUCTION traffic? Coverage, uncovered clusters, stale cases, drift.

    Exit code 0, 1 when a --gate check fails, 2 on bad input.

    Example:

    \b
        provaudit coverage --eval eval.jsonl logs_week1.jsonl logs_week2.jsonl --html coverage.html
        provaudit coverage --eval eval.jsonl logs.jsonl --by day --gate rules/gate-coverage.yaml --json
        provaudit coverage --prompt system_prompt.txt --eval eval.jsonl
    """
    from provaudit.coverage import coverage, prompt_coverage

    if prompt_path is not None:
        if production:
            raise UsageError("--prompt compares a system prompt with the eval set; give no PRODUCTION files")
        res = prompt_coverage(prompt_path, eval_path, backend=backend)
        if as_json:
            echo_json(res)
            return
        rows = [
            (r["id"], "no" if not r["tested"] else "yes", r["n_cases"], r["best_similarity"], r["rule"])
            for r in res["rules"]
        ]
        click.echo(text_table(rows, ("rule", "tested", "cases", "best_sim", "text"), max_cell=70))
        click.echo(f"{res['n_untested']} of {res['n_rules']} rules have no eval case")
        return
    if not production:
        raise UsageError("give PRODUCTION files (or --prompt FILE)")
    with progress.session(progress.tty_enabled(as_json)):
        progress.step(f"reading {eval_path} and {len(production)} production file(s)")
        result = coverage(
            eval_path,
            list(production),
            unit=unit,
            by=by,
            backend=backend,
            method=method,
            quantile=quantile,
            threshold=threshold,
            alpha=alpha,
            seed=seed,
            gate=gate_path,
            catalog=catalog_path,
            record=record,
        )
    s = result.summary
    if html_path:
        from provaudit.coverage.history import coverage_history
        from provaudit.report.coverage import render_coverage_html

        hist = coverage_history(catalog_path) if record else None
        with open(html_path, "w", encoding="utf-8") as fh:
            fh.write(render_coverage_html(result, hist))
    if as_json:
        echo_json(s)
    else:
        d = s["drift"]
        click.echo(
            f"coverage {s['coverage']:.3f} [{s['coverage_ci'][0]:.3f}, {s['coverage_ci'][1]:.3f}] of "
            f"{s['n_production']} production units by {s['n_eval']} eval units "
            f"({s['threshold']['method']} threshold {s['threshold']['value']}: {s['threshold']['how']})"
        )
        click.echo(
            f"drift: p={d['p_value']} effect={d['effect']} detected={d['detected']}; "
            f"trend: {d['trend']['direction']}"
        )
        rows = [
            (w["window"], w["n"], w["coverage"], f"{dw['p_value']}", dw["detected"])
            for w, dw in zip(s["windows"], d["windows"])
        ]
        click.echo(text_table(rows, ("window", "n", "coverage", "drift_p", "detected")))
        uc = s["uncovered_clustered"]
        click.echo(
            f"uncovered clusters ({len(s['uncovered'])}) of the {uc['n']} units confidently new "
            f"({uc['share']} of production; uncovered in all: {s['uncovered_share']}):"
        )
        rows = [
            (u["cluster"], u["size"], u["share"], u["label"], u["examples"][0]["text"])
            for u in s["uncovered"][:10]
        ]
        click.echo(text_table(rows, ("cluster", "size", "share", "label", "example")))
        click.echo(f"stale eval units: {s['stale']['n']} ({s['stale']['share']})")
        for c in s.get("gate", {}).get("checks", []):
            if c["status"] == "fail":
                click.echo(f"FAIL {c['id']}: {c['value']} {c['threshold']}", err=True)
    if not result.passed:
        sys.exit(1)


COMMANDS: list = [coverage_cmd]
