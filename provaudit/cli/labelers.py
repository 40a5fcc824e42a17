"""``provaudit labelers``: labeler homogenization per batch, thin over :mod:`provaudit.style.labelers`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from provaudit import progress
from provaudit.cli.common import JSON_OPTION, echo_json, handle_errors, text_table


def _f(v: object, nd: int = 3) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.{nd}f}"


@click.command("labelers")
@click.argument("labels", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--by", default=None, help="Batch column, or a time column cut into --batches equal-count batches "
                                         "(default: one batch per file).")
@click.option("--batches", "n_batches", default=6, show_default=True, help="Batches when --by is a time column.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reference judge labels (item id + label) to measure agreement with.")
@click.option("--scores", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Eval scores (batch, checkpoint, score) for the variance across checkpoints per batch.")
@click.option("--teacher", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Judge/teacher reference texts for the label-origin verdict.")
@click.option("--seed", default=0, show_default=True)
@JSON_OPTION
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a self-contained HTML page (table and chart) to this file.")
@click.option("--gate", is_flag=True, help="Exit 1 when the homogenizing flag fires.")
@handle_errors
def labelers_cmd(labels: tuple[Path, ...], by: str | None, n_batches: int, reference: str | None,
                 scores: str | None, teacher: str | None, seed: int, as_json: bool, html_path: Path | None,
                 gate: bool) -> None:
    """Have the labelers converged on one taste? Agreement, chosen diversity and label origin per batch.

    LABELS: judgments, one row per (item, annotator): item_id, annotator, label (1/2 = output_1/output_2
    wins, 0 = tie), output_1, output_2, and a batch or time column (--by).

    \b
    Example:
      provaudit labelers fixtures/integrity/labels_drift.jsonl.gz --by batch --html labelers.html
    """
    from provaudit.report.integrity import render_labelers_html
    from provaudit.style.labelers import labeler_homogenization

    with progress.session(progress.tty_enabled(as_json)):
        progress.step("agreement, chosen-response diversity and label origin per batch")
        res = labeler_homogenization([str(p) for p in labels], by=by, n_batches=n_batches, reference=reference,
                                     scores=scores, teacher=teacher, seed=seed)
    if html_path is not None:
        tmp = html_path.with_name(f".{html_path.name}.tmp")
        tmp.write_text(render_labelers_html(res), encoding="utf-8")
        tmp.replace(html_path)
    if as_json:
        from provaudit.checkpoints.model import rnd

        echo_json(rnd(res))
    else:
        rows = [[b["batch"], b["n_items"], _f(b.get("alpha_nominal")), _f(b.get("reference_agreement")),
                 _f(b.get("chosen_diversity_rel")), (b.get("label_origin") or {}).get("verdict", "-")]
                for b in res["batches"]]
        click.echo(text_table(rows, ["batch", "items", "alpha", "ref_agree", "chosen_div_rel", "origin"]))
        tr = res["trend"]
        if tr.get("testable"):
            click.echo(f"trend: agreement {tr['agreement_slope']:+.4f}/batch, chosen diversity "
                       f"{tr['diversity_slope']:+.4f}/batch")
        for f in res["flags"]:
            click.echo(f"  {f['kind']} @ {f['checkpoint']}: {f['evidence']}")
        if not res["flags"]:
            click.echo("no homogenizing flag")
    if gate and res["homogenizing"]:
        sys.exit(1)


COMMANDS: list = [labelers_cmd]
