"""``provaudit origin tag|rules`` and ``provaudit detector train|eval``: thin over :mod:`provaudit.origin`."""
from __future__ import annotations

from pathlib import Path

import click

from provaudit import progress
from provaudit.cli.common import JSON_OPTION, echo_json, handle_errors, text_table

RULES_DIR_OPTION = click.option("--rules", "rules_dirs", multiple=True, type=click.Path(exists=True),
                                help="Extra rules folder or YAML file (repeatable); added to the bundled rules.")
DEVICE_OPTION = click.option("--device", default="cpu", show_default=True,
                             help="Where the language model runs in mode full (cpu, cuda).")
LM_MODE_OPTION = click.option("--mode", type=click.Choice(["fast", "full"]), default="fast", show_default=True,
                              help="fast: stylometric features. full: + the bundled language model's features.")
DETECTOR_OPTION = click.option("--detector", "detector_path", type=click.Path(exists=True), default=None,
                               help="Detector folder or detector.json (default: the shipped detector).")


@click.group("origin")
def origin_group() -> None:
    """Human-or-model origin tags, with evidence, and the rules behind them."""


@origin_group.command("tag")
@click.argument("path", type=click.Path(exists=True))
@RULES_DIR_OPTION
@DETECTOR_OPTION
@click.option("--mode", type=click.Choice(["fast", "full", "sampled"]), default="fast", show_default=True,
              help="fast: stylometric detector. full: + the bundled language model (docs/origin.md). "
                   "sampled tags like fast here (the LM sample is a scan summary).")
@DEVICE_OPTION
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress on stderr, with a bar in --mode full (default: on when stdout and stderr are terminals).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write the tagged records to this Parquet file.")
@click.option("--records", "show_records", default=0, show_default=True,
              help="Also print the first N records' origin, p_model and evidence.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Mixture reference JSON for the word_mixture estimate (default: the shipped one).")
@click.option("--seed", default=0, show_default=True)
@handle_errors
def tag_cmd(path: str, rules_dirs: tuple[str, ...], detector_path: str | None, mode: str, device: str,
            show_progress: bool | None, out_path: str | None, show_records: int, reference: str | None,
            seed: int) -> None:
    """Tag every record of PATH human / model / unknown and print the batch summary as JSON.

    The summary has counts, model_fraction (model / decided records), the rule fire counts, the
    corpus-level estimate (EM over the detector's calibrated posteriors; its interval also spans the
    detector's per-domain error rates; status unreliable with the reason when it cannot decide) and,
    for comparison, the Liang et al. 2024 word mixture MLE (word_mixture, against --reference).

    Example:

        provaudit origin tag data/prefs.jsonl --records 5 --out tagged.parquet
    """
    from provaudit.origin import summarize_origin, tag_file

    if show_progress is None:
        show_progress = progress.tty_enabled()
    tagged = tag_file(path, rules_dirs=list(rules_dirs) or None, detector=detector_path, mode=mode, device=device,
                      progress=show_progress)
    if out_path:
        tmp = Path(out_path).with_suffix(".parquet.tmp")
        tagged.write_parquet(tmp)
        tmp.replace(out_path)
    out = {"summary": summarize_origin(tagged, reference=reference, seed=seed)}
    if show_records:
        out["records"] = tagged.head(show_records).select(
            "record_id", "role", "origin", "p_model", "rules_fired", "evidence").to_dicts()
    echo_json(out)


@origin_group.command("rules")
@RULES_DIR_OPTION
@click.option("--test/--no-test", "run_tests", default=True, show_default=True,
              help="Run every rule's own match / no_match examples.")
@JSON_OPTION
@handle_errors
def rules_cmd(rules_dirs: tuple[str, ...], run_tests: bool, as_json: bool) -> None:
    """List the loaded origin rules (bundled plus --rules) as a table and check their examples.

    Exits 1 when an example fails.

    Example:

    \b
        provaudit origin rules
        provaudit origin rules --rules rules/origin --json
    """
    from provaudit.origin import load_rules

    rs = load_rules(list(rules_dirs) or None)
    failures = rs.test() if run_tests else []
    rules = [{"id": r.id, "kind": r.kind, "weight": r.weight, "description": r.description, "source": r.source}
             for r in rs.rules]
    if as_json:
        echo_json({"rules": rules, "test_failures": failures})
    else:
        click.echo(text_table([(r["id"], r["kind"], f"{r['weight']:+g}", Path(r["source"]).name if r["source"] else "",
                                r["description"]) for r in rules], ("rule", "kind", "weight", "file", "description")))
        click.echo(f"{len(rules)} rules; weight = log-odds added to p_model when the rule fires "
                   "(positive = model evidence, negative = human evidence, 0 = shown as evidence only)")
        if run_tests:
            click.echo(f"rule examples: {len(failures)} failure(s)" if failures else "rule examples: all pass")
        for f in failures:
            click.echo(f"  FAIL {f}", err=True)
    if failures:
        raise SystemExit(1)


@click.group("detector")
def detector_group() -> None:
    """Train and evaluate the human-vs-model detector on your own data."""


@detector_group.command("train")
@click.option("--human", required=True, type=click.Path(exists=True),
              help="Human-written texts: .txt (one per line), .jsonl/.json/.parquet with a 'text' field, or a folder.")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True),
              help="Model-written texts, same formats.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for detector.json and metrics.json.")
@click.option("--fpr", default=0.05, show_default=True, help="Nominal false-positive rate on human text for the threshold.")
@click.option("--seed", default=0, show_default=True)
@LM_MODE_OPTION
@DEVICE_OPTION
@JSON_OPTION
@handle_errors
def train_cmd(human: str, model_path: str, out: str, fpr: float, seed: int, mode: str, device: str,
              as_json: bool) -> None:
    """Train a calibrated detector and print its out-of-fold metrics (AUROC, TPR at the chosen FPR,
    threshold, per-domain FPR; --json for the full metrics). Warns on stderr when the per-domain
    threshold rule moves the threshold by more than 0.10, naming the domain that forced it.

    Example:

        provaudit detector train --human human.jsonl --model model.jsonl --out my_detector/
    """
    from provaudit.origin import train_detector

    with progress.session(progress.tty_enabled(as_json)):
        progress.step(f"training the detector on {human} and {model_path}")
        metrics = train_detector(human, model_path, out, nominal_fpr=fpr, seed=seed, mode=mode,
                                 device=device)
    _print_metrics(metrics, as_json, f"detector trained into {out} (out-of-fold metrics, texts of >= min_words words)")


def _print_metrics(metrics: dict, as_json: bool, title: str) -> None:
    from provaudit.report.detector import render_detector_metrics, threshold_warning

    if as_json:
        echo_json(metrics)
    else:
        click.echo(render_detector_metrics(metrics, title=title))
    warning = threshold_warning(metrics)
    if warning:
        click.echo(warning, err=True)


@detector_group.command("eval")
@click.option("--human", required=True, type=click.Path(exists=True), help="Held-out human-written texts.")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True), help="Held-out model-written texts.")
@DETECTOR_OPTION
@LM_MODE_OPTION
@DEVICE_OPTION
@JSON_OPTION
@handle_errors
def eval_cmd(human: str, model_path: str, detector_path: str | None, mode: str, device: str, as_json: bool) -> None:
    """AUROC, TPR at 1% and 5% FPR, calibration error and a per-domain table on held-out texts.

    A 'domain' field in .jsonl/.parquet inputs gives the per-domain table.

    Example:

        provaudit detector eval --human held_h.jsonl --model held_m.jsonl --detector my_detector/
    """
    from provaudit.origin import evaluate_detector, load_detector

    with progress.session(progress.tty_enabled(as_json)):
        progress.step(f"evaluating the detector on {human} and {model_path}")
        det = load_detector(detector_path) if detector_path else None
        metrics = evaluate_detector(human, model_path, det, mode=mode, device=device)
    _print_metrics(metrics, as_json, f"detector {detector_path or '(shipped)'} on held-out texts")


COMMANDS: list = [origin_group, detector_group]
