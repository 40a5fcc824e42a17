"""``provaudit scan`` and ``provaudit register``."""
from __future__ import annotations

import sys

import click

from provaudit.cli.common import CATALOG_OPTION, WAIT_OPTION, echo_json, handle_errors, interruptible
from provaudit.errors import UsageError
from provaudit.progress import tty_enabled


def parse_map(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """``--map text=body --map model=source`` -> {"text": "body", "model": "source"}."""
    if not pairs:
        return None
    mapping = {}
    for p in pairs:
        role, sep, col = p.partition("=")
        if not sep or not role or not col:
            raise UsageError(f"--map expects ROLE=COLUMN, got {p!r}")
        mapping[role.strip()] = col.strip()
    return mapping


MAP_OPTION = click.option("--map", "mapping", multiple=True, metavar="ROLE=COLUMN",
                          help="Read COLUMN as ROLE (text, prompt, chosen, rejected, response, model, rating) "
                               "instead of auto-detecting the schema. Repeatable.")
FORMAT_OPTION = click.option("--format", "fmt", default=None,
                             type=click.Choice(["jsonl", "json", "csv", "tsv", "parquet", "hf_disk", "datasets"]),
                             help="Force the input format (default: from the name and first bytes). "
                                  "'datasets' reads through datasets.load_dataset.")


def _print_human(result, kept: bool) -> None:
    from rich.console import Console

    from provaudit.report.scan import render_scan_markdown

    console = Console(stderr=False, highlight=False, soft_wrap=True)
    console.print(render_scan_markdown(result.summary), markup=False)
    if kept:
        console.print(f"records: {result.records_path}", markup=False)
    else:  # the temporary folder goes with the process: never print a path that will not exist
        console.print("records: not kept (give --out DIR to keep records.parquet, summary.json and summary.md)",
                      markup=False)


@click.command("scan")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@CATALOG_OPTION
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write records.parquet, summary.json and summary.md here: a folder, or a URI of any installed "
                   "fsspec filesystem (file://, s3://, gs://, ...); summary.json is written last.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Scratch folder (parts, shuffle files, DuckDB spill) on a local/shared POSIX path [default: "
                   "under --out, or the temporary folder when --out is a URI; --engine ray with a URI --out "
                   "needs one every node sees].")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout instead of the readable summary.")
@click.option("--gate", type=click.Path(dir_okay=False), default=None,
              help="Gate thresholds (e.g. rules/gate.yaml): exit 1 when a check fails.")
@click.option("--strict", is_flag=True, help="Fail every gate check that was skipped because its stage did not "
                                            "run (no --teacher, no eval set registered).")
@click.option("--skip-bad", is_flag=True, help="Skip malformed rows (counted and listed in the summary) "
                                              "instead of stopping with exit 2.")
@MAP_OPTION
@FORMAT_OPTION
@click.option("--name", "names", multiple=True,
              help="Dataset name for each FILE argument, or each file they expand to, in order (default: file "
                   "stem; a pattern or folder of several files named N: N/<path below it>).")
@click.option("--tag", "tags", multiple=True, default=("scan",), show_default=True,
              help="Tags for the scanned batch when it is recorded in the catalog.")
@click.option("--no-record", is_flag=True, help="Do not add the scanned files to the catalog as datasets.")
@click.option("--no-origin", is_flag=True, help="Skip origin tagging (fingerprints, duplicates and overlap only).")
@click.option("--origin-mode", type=click.Choice(["fast", "full", "sampled"]), default=None,
              help="[default: the --gate file's origin_mode, else fast] "
                   "fast: rules + stylometric detector. full: + the bundled language model's token likelihoods on "
                   "every record of 50+ words (~0.2-0.7 texts/s on 2 shared CPU cores; --device cuda). sampled: fast tags, and the language model on "
                   "--lm-sample output records for the corpus-level estimate (docs/origin.md).")
@click.option("--device", default="cpu", show_default=True, help="Where the language model runs (cpu, cuda).")
@click.option("--lm-sample", type=int, default=400, show_default=True,
              help="Output records the language model scores in --origin-mode sampled.")
@click.option("--rules", "rules_dirs", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Extra rule folders (YAML), added to the bundled rules/origin.")
@click.option("--teacher", type=click.Path(), default=None,
              help="Teacher samples: adds teacher likeness to the summary.")
@click.option("--human", type=click.Path(), default=None, help="Human reference samples for --teacher.")
@click.option("--workers", type=int, default=0, show_default=True,
              help="Local worker processes for the batch stages (0: one per core for inputs of 50,000+ rows, "
                   "else in-process). The output is identical for any number.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Run the batch stages locally or on Ray Data (set RAY_ADDRESS to use a cluster).")
@click.option("--batch-size", type=int, default=10_000, show_default=True, help="Source rows per record batch.")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr (default: on when stdout and stderr are terminals and not --json).")
@WAIT_OPTION
@handle_errors
@interruptible("nothing was recorded in the catalog (unchanged) and no outputs were written")
def scan_cmd(files, catalog_path, out, work_dir, as_json, gate, strict, skip_bad, mapping, fmt, names, tags, no_record, no_origin,
             origin_mode, device, lm_sample, rules_dirs, teacher, human, workers, engine, batch_size, progress, wait) -> None:
    """Scan preference or fine-tune FILES: fingerprint every record, find duplicates and overlap
    with the catalog (e.g. a registered eval set), tag each record's origin, and gate the batch.
    A FILE may be a quoted glob pattern ('shards/*.jsonl', 'corpus/**/*.parquet') or a folder of
    data files: each file it holds is one input, sorted by path.

    Exit codes: 0 pass, 1 gate failed, 2 bad input or usage, 3 catalog busy past --wait,
    130 / 143 interrupted by SIGINT / SIGTERM (nothing recorded, no outputs written).

    Example:

        provaudit register eval.jsonl --tag eval
        provaudit scan batch.jsonl --gate rules/gate.yaml --out out/
    """
    from provaudit.pipeline import scan

    if progress is None:
        progress = tty_enabled(as_json)
    result = scan(list(files), catalog=catalog_path, out=out, gate=gate, names=list(names) or None,
                  mapping=parse_map(mapping), fmt=fmt, skip_bad=skip_bad, tags=tags, record=not no_record,
                  origin=not no_origin, origin_mode=origin_mode, rules_dirs=rules_dirs, teacher=teacher,
                  human=human, workers=workers, engine=engine, batch_size=batch_size, progress=progress, wait=wait,
                  strict=strict, device=device, lm_sample=lm_sample, work_dir=work_dir)
    if as_json:
        echo_json(result.summary)
    else:
        _print_human(result, kept=out is not None)
    for r in result.gate:
        if r.status == "fail":
            click.echo(f"gate: {r.line()}", err=True)
    skipped = [r.id for r in result.gate if r.status == "skipped"]
    if skipped:
        click.echo(f"gate: skipped (stage did not run; --strict fails them): {', '.join(skipped)}", err=True)
    sys.exit(result.exit_code)


@click.command("register")
@click.argument("file", type=click.Path())
@click.option("--tag", "tags", multiple=True, help="Tag the dataset (e.g. eval, train). Repeatable.")
@click.option("--name", default=None, help="Dataset name (default: file stem).")
@CATALOG_OPTION
@MAP_OPTION
@FORMAT_OPTION
@click.option("--skip-bad", is_flag=True, help="Skip malformed rows instead of stopping.")
@click.option("--json", "as_json", is_flag=True, help="Print the registration as JSON.")
@WAIT_OPTION
@handle_errors
@interruptible("nothing was added to the catalog (unchanged)")
def register_cmd(file, tags, name, catalog_path, mapping, fmt, skip_bad, as_json, wait) -> None:
    """Add FILE to the catalog as a dataset (fingerprints only), e.g. an eval set scans must not leak.

    Example:

        provaudit register fixtures/lineage/eval_set.json --tag eval
    """
    from provaudit.pipeline import register

    info = register(file, tags=tags, name=name, catalog=catalog_path, mapping=parse_map(mapping), fmt=fmt,
                    skip_bad=skip_bad, progress=tty_enabled(as_json), wait=wait)
    if as_json:
        echo_json(info)
    else:
        click.echo(f"registered {info['dataset']} ({info['records']} records, {info['rows']} rows, schema "
                   f"{info['schema']}) as dataset {info['dataset_id']} tags [{', '.join(info['tags'])}] "
                   f"fingerprint {info['fingerprint']} in {info['catalog']}")


COMMANDS = [scan_cmd, register_cmd]
