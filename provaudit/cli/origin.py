"""``provaudit origin tag|rules`` and ``provaudit detector train|eval``: thin over :mod:`provaudit.origin`."""
from __future__ import annotations

from pathlib import Path

import click

from provaudit.cli.common import JSON_OPTION, echo_json, handle_errors

RULES_DIR_OPTION = click.option("--rules", "rules_dirs", multiple=True, type=click.Path(exists=True),
                                help="Extra rules folder or YAML file (repeatable); added to the bundled rules.")
DETECTOR_OPTION = click.option("--detector", "detector_path", type=click.Path(exists=True), default=None,
                               help="Detector folder or detector.json (default: the shipped detector).")


@click.group("origin")
def origin_group() -> None:
    """Human-or-model origin tags, with evidence, and the rules behind them."""


@origin_group.command("tag")
@click.argument("path", type=click.Path(exists=True))
@RULES_DIR_OPTION
@DETECTOR_OPTION
@click.option("--mode", type=click.Choice(["fast", "full"]), default="fast", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write the tagged records to this Parquet file.")
@click.option("--records", "show_records", default=0, show_default=True,
              help="Also print the first N records' origin, p_model and evidence.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Mixture reference JSON for the word_mixture estimate (default: the shipped one).")
@click.option("--seed", default=0, show_default=True)
@handle_errors
def tag_cmd(path: str, rules_dirs: tuple[str, ...], detector_path: str | None, mode: str, out_path: str | None,
            show_records: int, reference: str | None, seed: int) -> None:
    """Tag every record of PATH human / model / unknown and print the batch summary as JSON.

    The summary has counts, model_fraction (model / decided records), the rule fire counts, the
    corpus-level estimate (EM over the detector's calibrated posteriors; its interval also spans the
    detector's per-domain error rates; status unreliable with the reason when it cannot decide) and,
    for comparison, the Liang et al. 2024 word mixture MLE (word_mixture, against --reference).

    Example:

        provaudit origin tag data/prefs.jsonl --records 5 --out tagged.parquet
    """
    from provaudit.origin import summarize_origin, tag_file

    tagged = tag_file(path, rules_dirs=list(rules_dirs) or None, detector=detector_path, mode=mode)
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
@handle_errors
def rules_cmd(rules_dirs: tuple[str, ...], run_tests: bool) -> None:
    """List the loaded origin rules (bundled plus --rules) and check their examples.

    Exits 1 when an example fails.

    Example:

        provaudit origin rules --rules my_rules/
    """
    from provaudit.origin import load_rules

    rs = load_rules(list(rules_dirs) or None)
    failures = rs.test() if run_tests else []
    echo_json({"rules": [{"id": r.id, "kind": r.kind, "weight": r.weight, "description": r.description,
                          "source": r.source} for r in rs.rules], "test_failures": failures})
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
@JSON_OPTION
@handle_errors
def train_cmd(human: str, model_path: str, out: str, fpr: float, seed: int, as_json: bool) -> None:
    """Train a calibrated detector and print its out-of-fold metrics (AUROC, TPR at the chosen FPR,
    threshold, per-domain FPR; --json for the full metrics). Warns on stderr when the per-domain
    threshold rule moves the threshold by more than 0.10, naming the domain that forced it.

    Example:

        provaudit detector train --human human.jsonl --model model.jsonl --out my_detector/
    """
    from provaudit.origin import train_detector

    _print_metrics(train_detector(human, model_path, out, nominal_fpr=fpr, seed=seed), as_json,
                   f"detector trained into {out} (out-of-fold metrics, texts of >= min_words words)")


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
@JSON_OPTION
@handle_errors
def eval_cmd(human: str, model_path: str, detector_path: str | None, as_json: bool) -> None:
    """AUROC, TPR at 1% and 5% FPR, calibration error and a per-domain table on held-out texts.

    A 'domain' field in .jsonl/.parquet inputs gives the per-domain table.

    Example:

        provaudit detector eval --human held_h.jsonl --model held_m.jsonl --detector my_detector/
    """
    from provaudit.origin import evaluate_detector, load_detector

    det = load_detector(detector_path) if detector_path else None
    _print_metrics(evaluate_detector(human, model_path, det), as_json,
                   f"detector {detector_path or '(shipped)'} on held-out texts")


COMMANDS: list = [origin_group, detector_group]
