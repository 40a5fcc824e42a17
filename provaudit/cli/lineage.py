"""``provaudit checkpoint``, ``lineage find``, ``erase``, ``overlap`` and ``datasets``: thin over
:mod:`provaudit.catalog.lineage` and :mod:`provaudit.catalog.erase`."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from provaudit import progress
from provaudit.cli.common import (
    CATALOG_OPTION,
    JSON_OPTION,
    WAIT_OPTION,
    echo_json,
    handle_errors,
    interruptible,
    text_table,
)


def _ckpt_lines(checkpoints: list[dict]) -> str:
    if not checkpoints:
        return "checkpoints: none"
    rows = [(c["checkpoint"], c["via"], c["parent"] or "", ", ".join(c["trained_on_affected"])) for c in checkpoints]
    return "checkpoints trained on this data (retrain or unlearn):\n" + _text_table(
        rows, ("checkpoint", "via", "parent", "affected datasets it trained on"))


# ---------------------------------------------------------------- checkpoint add / list

@click.group("checkpoint")
def checkpoint_group() -> None:
    """Register checkpoints and the datasets they were trained on."""


@checkpoint_group.command("add")
@click.argument("name")
@click.option("--trained-on", "trained_on", multiple=True, metavar="DATASET",
              help="Catalog dataset name or fingerprint, or a file (registered first if absent). "
                   "Repeatable; commas also separate.")
@click.option("--parent", default=None, metavar="CKPT", help="Checkpoint this one continued from.")
@CATALOG_OPTION
@JSON_OPTION
@handle_errors
def checkpoint_add(name: str, trained_on: tuple[str, ...], parent: str | None, catalog_path: str | None,
                   as_json: bool) -> None:
    """Record that checkpoint NAME was trained on the given datasets (optionally from --parent).

    Example:

    \b
        provaudit checkpoint add sft-v1 --trained-on sft_train.jsonl
        provaudit checkpoint add dpo-v1 --trained-on prefs_train --parent sft-v1
    """
    from provaudit.catalog.lineage import add_checkpoint

    refs = [r.strip() for item in trained_on for r in item.split(",") if r.strip()]
    res = add_checkpoint(name, refs, parent=parent, catalog=catalog_path)
    if as_json:
        echo_json(res)
        return
    names = ", ".join(f"{d['dataset']} ({d['fingerprint'][:12]})" for d in res["trained_on"]) or "-"
    click.echo(f"checkpoint {res['checkpoint']} (id {res['checkpoint_id']}) trained on {names}"
               + (f", continued from {res['parent']}" if res["parent"] else ""))


@checkpoint_group.command("list")
@CATALOG_OPTION
@JSON_OPTION
@handle_errors
def checkpoint_list(catalog_path: str | None, as_json: bool) -> None:
    """List registered checkpoints, their parents and training datasets.

    Example:

    \b
        provaudit checkpoint list --json
    """
    from provaudit.catalog.lineage import list_checkpoints

    res = list_checkpoints(catalog=catalog_path)
    if as_json:
        echo_json(res)
        return
    click.echo(_text_table([(c["checkpoint"], c["parent"] or "", ", ".join(c["trained_on"]), c["added_at"]) for c in res],
                      ("checkpoint", "parent", "trained on", "added")))


# ---------------------------------------------------------------- lineage find

@click.group("lineage")
def lineage_group() -> None:
    """Trace records to catalog datasets and the checkpoints trained on them."""


@lineage_group.command("find")
@click.option("--text", default=None, help="A text: exact and near-duplicate matches.")
@click.option("--file", "file", type=click.Path(exists=True), default=None, help="Every record of this file.")
@click.option("--field", default=None, metavar="KEY=VALUE", help="A metadata value, e.g. user_id=123.")
@click.option("--deep", is_flag=True, help="With --text: also re-read the registered files for records holding "
                                          "part of the text (word n-grams); slower, finds heavier edits.")
@click.option("--ngram", type=int, default=5, show_default=True, help="Word n-gram length for --deep.")
@click.option("--min-containment", type=float, default=0.25, show_default=True,
              help="For --deep: share of the text's n-grams a record must hold.")
@CATALOG_OPTION
@JSON_OPTION
@handle_errors
def lineage_find_cmd(text: str | None, file: str | None, field: str | None, deep: bool, ngram: int,
                     min_containment: float, catalog_path: str | None, as_json: bool) -> None:
    """Find matching records, their datasets and rows, and every checkpoint (through parents)
    trained on them.

    Example:

    \b
        provaudit lineage find --field user_id=u-0042
        provaudit lineage find --text "I want to cancel my order 1234" --json
        provaudit lineage find --text "$(cat complaint.txt)" --deep
    """
    from provaudit.catalog.lineage import lineage_find

    with progress.session(progress.tty_enabled(as_json)):
        progress.step("searching the catalog" + (" and re-reading registered files (--deep)" if deep else ""))
        res = lineage_find(text=text, file=file, field=field, catalog=catalog_path, deep=deep, ngram=ngram,
                           min_containment=min_containment)
    if as_json:
        echo_json(res)
        return
    click.echo(f"{res['n_records']} matching record(s) in {len(res['datasets'])} dataset(s)")
    if res["datasets"]:
        click.echo(_text_table([(d["dataset"], d["fingerprint"][:12], ",".join(d["tags"]), d["records"],
                            ",".join(map(str, d["rows"][:20])) + (" ..." if len(d["rows"]) > 20 else ""),
                            ",".join(d["matches"]), d["path"]) for d in res["datasets"]],
                          ("dataset", "fingerprint", "tags", "records", "rows", "match", "path")))
    if res["records"]:
        shown = res["records"][:20]
        click.echo(_text_table([(r["record_id"], r["dataset"], r["source_row"], r["role"], r["match"]) for r in shown],
                          ("record", "dataset", "row", "role", "match")))
        if res["n_records"] > len(shown):
            click.echo(f"... {res['n_records'] - len(shown)} more (use --json)")
    click.echo(_ckpt_lines(res["checkpoints"]))


# ---------------------------------------------------------------- erase

@click.command("erase")
@click.option("--field", required=True, metavar="KEY=VALUE", help="Rows whose metadata has this value, e.g. user_id=123.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the redacted copies.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed and which checkpoints are tainted; write nothing.")
@CATALOG_OPTION
@JSON_OPTION
@WAIT_OPTION
@handle_errors
@interruptible("no erasure was recorded and no redacted copy was written")
def erase_cmd(field: str, out: str, dry_run: bool, catalog_path: str | None, as_json: bool,
              wait: float | None) -> None:
    """Write redacted copies (original format, originals untouched) of every dataset holding the
    rows, record the erasure in the catalog and list the checkpoints to retrain or unlearn.

    Rows are found by their row hashes in the catalog wherever they now are in the file, and every
    copy is verified (none of the person's rows left, every other row unchanged) before it is
    reported. A file whose rows changed since registration is refused (exit 2), nothing written.
    A later `provaudit scan` of a batch that brings an erased record back fails the gate
    (check no_erased_records in rules/gate.yaml).

    Example:

    \b
        provaudit erase --field user_id=u-0042 --out redacted/ --dry-run
        provaudit erase --field user_id=u-0042 --out redacted/
    """
    from provaudit.catalog.erase import erase

    res = erase(field=field, out=out, dry_run=dry_run, catalog=catalog_path, wait=wait)
    if as_json:
        echo_json(res)
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{res['selector']}: {verb} {res['n_rows']} row(s) / {res['n_records']} record(s) "
               f"from {len(res['datasets'])} dataset(s)" + ("" if dry_run else f" (erasure {res['erasure_id']})"))
    if res["datasets"]:
        click.echo(_text_table([(d["dataset"], d["fingerprint"][:12], d["format"], _rows(d["rows_removed"]),
                                 _rows(d["registered_rows"]), len(d["record_hashes"]), d["status"], _verified(d),
                                 d["output"]) for d in res["datasets"]],
                               ("dataset", "fingerprint", "format", "rows now", "rows registered", "hashes checked",
                                "status", "verified", "redacted copy")))
    click.echo(_ckpt_lines(res["checkpoints"]))


def _rows(rows: list[int]) -> str:
    return ",".join(map(str, rows[:20])) + (" ..." if len(rows) > 20 else "")


def _verified(d: dict) -> str:
    v = d.get("verified")
    if not v:
        return "-"
    near = v["near_duplicate_rows_kept_count"]
    return f"ok, {v['rows_kept']} rows kept" + (f", {near} near-dup rows of others kept" if near else "")


# ---------------------------------------------------------------- overlap

@click.command("overlap")
@click.argument("a")
@click.argument("b")
@click.option("--ngram", type=int, default=13, show_default=True, help="Word n-gram length for contamination.")
@CATALOG_OPTION
@JSON_OPTION
@handle_errors
def overlap_cmd(a: str, b: str, ngram: int, catalog_path: str | None, as_json: bool) -> None:
    """Exact, near-duplicate and n-gram overlap between A (e.g. train) and B (e.g. eval): files
    or catalog dataset names/fingerprints. Rates are shares of each side's records.

    Example:

    \b
        provaudit overlap sft_train.jsonl eval_set.json --ngram 13
    """
    from provaudit.catalog.lineage import overlap

    with progress.session(progress.tty_enabled(as_json)):
        progress.step(f"comparing {a} and {b} (exact, near, {ngram}-gram)")
        res = overlap(a, b, ngram=ngram, catalog=catalog_path)
    if as_json:
        echo_json(res)
        return
    ng = res["ngram"]
    rows = [("exact", res["exact"]["b_records"], res["exact"]["b_rate"], res["exact"]["a_records"], res["exact"]["a_rate"]),
            ("near", res["near"]["b_records"], res["near"]["b_rate"], res["near"]["a_records"], res["near"]["a_rate"])]
    if ng.get("available", True):
        rows.append((f"{ng['n']}-gram", ng["b_records"], ng["b_rate"], ng["a_records"], ng["a_rate"]))
    click.echo(f"A = {res['a']['name']} ({res['a']['records']} records), B = {res['b']['name']} "
               f"({res['b']['records']} records)")
    click.echo(_text_table(rows, ("overlap", "B records", "B rate", "A records", "A rate")))
    if not ng.get("available", True):
        click.echo(f"n-gram check skipped: {ng['reason']}")
    if res["records"]:
        click.echo(_text_table([(r["b_record_id"], r["a_record_id"], r["match"]) for r in res["records"][:50]],
                          ("B record", "A record", "match")))
        if res["n_listed"] > 50:
            click.echo(f"... {res['n_listed'] - 50} more (use --json)")


# ---------------------------------------------------------------- datasets

@click.command("datasets")
@CATALOG_OPTION
@JSON_OPTION
@handle_errors
def datasets_cmd(catalog_path: str | None, as_json: bool) -> None:
    """List the catalog's datasets: name, fingerprint, tags, records, path.

    Example:

    \b
        provaudit datasets --json
    """
    from provaudit.catalog.lineage import list_datasets

    res = list_datasets(catalog=catalog_path)
    if as_json:
        echo_json(res)
        return
    click.echo(_text_table([(d["dataset_id"], d["dataset"], d["fingerprint"][:12], ",".join(d["tags"]), d["records"],
                        d["format"], d["path"]) for d in res],
                      ("id", "dataset", "fingerprint", "tags", "records", "format", "path")))


COMMANDS: list = [checkpoint_group, lineage_group, erase_cmd, overlap_cmd, datasets_cmd]


def _text_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    return text_table(rows, header, max_cell=60)
