"""``provaudit converge``, ``trend``, ``label-origin`` and ``diversity``: thin over :mod:`provaudit.style`."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from provaudit import progress
from provaudit.cli.common import CATALOG_OPTION, JSON_OPTION, echo_json, handle_errors, text_table

RULES_OPTION = click.option("--rules", "rules_path", type=click.Path(dir_okay=False), default=None,
                            help="Thresholds file (default: rules/converge.yaml, else built-in defaults).")
BACKEND_OPTION = click.option("--backend", type=click.Choice(["static", "minilm"]), default="static",
                              show_default=True, help="Embedding backend (static: fast distillation of MiniLM).")
HUMAN_OPTION = click.option("--human", type=click.Path(exists=True, dir_okay=False), default=None,
                            help="Human reference texts (default: the human reference shipped with provaudit).")



def _f(v: Any, nd: int = 3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _trend_line(tr: dict[str, Any]) -> str:
    if tr.get("slope") is None:
        return f"trend: {tr.get('note', 'not enough steps')}"
    return (f"trend ({tr['metric']}): slope {tr['slope']:+.4f}/step [{tr['slope_ci_low']:+.4f}, "
            f"{tr['slope_ci_high']:+.4f}], Kendall tau {_f(tr['kendall_tau'], 2)} (p={_f(tr['kendall_p'], 3)}) "
            f"-> {tr['verdict']}")


@click.command("converge")
@click.argument("batches", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--teacher", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Texts written by the teacher model (any format provaudit reads).")
@HUMAN_OPTION
@BACKEND_OPTION
@click.option("--n-boot", default=200, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--seed", default=0, show_default=True)
@click.option("--trend/--no-trend", "with_trend", default=None,
              help="Trend over the batches' order: --trend adds it to --json output ({batches, trend}); "
                   "--no-trend leaves it out of the table too.")
@RULES_OPTION
@JSON_OPTION
@handle_errors
def converge_cmd(batches: tuple[str, ...], teacher: str, human: str | None, backend: str, n_boot: int, seed: int,
                 with_trend: bool | None, rules_path: str | None, as_json: bool) -> None:
    """Teacher-likeness of each BATCH (in the order given) with a bootstrap interval.

    The headline teacher_likeness is the mean P(teacher | text) (0.5 = undecided); the components
    (teacher fraction, word-mixture MLE, stylometry, embedding, over-used phrases) stand beside it.
    With two or more batches the trend over their order is reported too.

    Example:

    \b
        provaudit converge --teacher gpt4_outputs.json labels_v1.jsonl labels_v2.jsonl labels_v3.jsonl
        provaudit converge --teacher gpt4.json --human human_answers.jsonl --json batch.jsonl
    """
    from provaudit.style import converge
    from provaudit.style.trends import trend

    with progress.session(progress.tty_enabled(as_json)):
        res = converge(list(batches), teacher, human, backend=backend, n_boot=n_boot, seed=seed)
    want_trend = with_trend if with_trend is not None else not as_json
    tr = trend(res, rules=rules_path, seed=seed) if len(res) >= 2 and want_trend else None
    if as_json:
        echo_json({"batches": res, "trend": tr} if with_trend else res)
        return
    rows = [(r["batch"], r["n"], f"{_f(r['teacher_likeness'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]",
             (f"{_f(r['teacher_fraction']['alpha'], 2)} [{_f(r['teacher_fraction']['ci_low'], 2)}, "
             f"{_f(r['teacher_fraction']['ci_high'], 2)}]"),
             _f(r["word_mixture"]["alpha"], 2), _f(r["stylometry"]["position"], 2), _f(r["embedding"]["position"], 2),
             _f(r["phrases"]["relative_to_teacher"], 2)) for r in res]
    click.echo(_text_table(rows, ("batch", "n", "teacher_likeness [95% CI]", "teacher_fraction", "word_mle",
                             "style_pos", "embed_pos", "phrase_rel")))
    if tr is not None:
        click.echo(_trend_line(tr))


@click.command("trend")
@CATALOG_OPTION
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG plot of teacher-likeness per scan here.")
@RULES_OPTION
@JSON_OPTION
@handle_errors
def trend_cmd(catalog_path: str | None, plot_path: str | None, rules_path: str | None, as_json: bool) -> None:
    """Scan history from the catalog: teacher-likeness per scan and its trend.

    Scans run with a teacher reference (``provaudit scan --teacher ...``) carry the measures.

    Example:

    \b
        provaudit trend --catalog .provaudit/catalog.duckdb --plot teacher_trend.png
    """
    from provaudit.coverage.history import coverage_history
    from provaudit.style.trends import history_trend, plot_trend

    with progress.session(progress.tty_enabled(as_json)):
        progress.step("reading the scan history")
        hist, tr = history_trend(catalog_path, rules=rules_path)
        cov = coverage_history(catalog_path)
        if plot_path and tr["points"]:
            progress.step(f"plotting {plot_path}")
            plot_trend(tr, plot_path)
    if as_json:
        echo_json({"scans": hist.to_dicts(), "trend": tr, "plot": plot_path if tr["points"] else None,
                   "coverage": cov.to_dicts()})
        return
    if cov.height:  # provaudit coverage runs recorded in the catalog
        click.echo(_text_table([(r["run_id"], r["created_at"][:19], _f(r["coverage"]),
                                 f"[{_f(r['coverage_ci_low'])}, {_f(r['coverage_ci_high'])}]",
                                 _f(r["uncovered_top_share"]), r["drift_detected"])
                                for r in cov.iter_rows(named=True)],
                               ("coverage run", "created_at", "coverage", "95% CI", "top_uncovered", "drift")))
    with_teacher = hist.filter(hist["teacher_likeness"].is_not_null())
    if with_teacher.is_empty():
        click.echo(f"no scan with a teacher reference among {hist.height} scan(s) in the catalog: run "
                   "`provaudit scan --teacher TEACHER_FILE ...` to record teacher likeness")
        return
    rows = [(r["scan_id"], r["started_at"][:19], ", ".join(r["datasets"]), _f(r["teacher_likeness"]),
             f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]", _f(r["teacher_fraction"], 2), r["n"],
             _f(r["diversity_floor_ratio"], 2)) for r in with_teacher.iter_rows(named=True)]
    click.echo(_text_table(rows, ("scan", "started_at", "datasets", "teacher_likeness", "95% CI", "fraction", "n",
                                  "div_floor")))
    if with_teacher.height < hist.height:
        click.echo(f"({hist.height - with_teacher.height} scan(s) without a teacher reference not shown)")
    click.echo(_trend_line(tr))
    if plot_path and tr["points"]:
        click.echo(f"plot: {plot_path}")


@click.command("label-origin")
@click.argument("pairs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--teacher", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Texts of the suspected judge/teacher model (enables the teacher-preference signal).")
@HUMAN_OPTION
@BACKEND_OPTION
@RULES_OPTION
@JSON_OPTION
@handle_errors
def label_origin_cmd(pairs: tuple[str, ...], teacher: str | None, human: str | None, backend: str,
                     rules_path: str | None, as_json: bool) -> None:
    """Do the preference labels in PAIRS look human or AI-judge made? Verdict plus evidence.

    Example:

    \b
        provaudit label-origin --teacher gpt4_outputs.json prefs.jsonl
        provaudit label-origin --json annotations.json
    """
    from provaudit.style import label_origin

    with progress.session(progress.tty_enabled(as_json)):
        res = [label_origin(p, teacher, human, rules=rules_path, backend=backend, name=p) for p in pairs]
    if as_json:
        echo_json(res)
        return
    for r in res:
        click.echo(f"{r['batch']}: {r['verdict']} (AI evidence {r['ai_evidence']}, human evidence "
                   f"{r['human_evidence']}, {r['measures']['n_pairs']} pairs)")
        for e in r["evidence"] or [{"points_to": "-", "weight": 0, "detail": "no evidence either way"}]:
            click.echo(f"  [{e['points_to']} +{e['weight']}] {e['detail']}")
        for c in r.get("consistent_with_human", []):
            click.echo(f"  [consistent with human, not evidence] {c['detail']}")
        for nc in r.get("not_computed", []):
            click.echo(f"  [not computed] {nc['signal']}: {nc['reason']}")
        m = r["measures"]
        extras = [f"ties {_pct(m.get('tie_rate'))} of pairs"]
        for key, what in (("length_preference", "chosen longer"), ("teacher_preference", "chosen more teacher-like"),
                          ("position_first", "chosen shown first")):
            if key in m and m[key]["share"] is not None:
                extras.append(f"{what} in {_pct(m[key]['share'])} of {m[key]['n']} pairs")
        click.echo("  measures: " + ", ".join(extras))
        for a in r.get("annotators", []):
            click.echo(f"  annotator {a['annotator']}: {a['verdict']} ({a['measures']['n_pairs']} pairs)")


@click.command("diversity")
@click.argument("batches", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@HUMAN_OPTION
@BACKEND_OPTION
@RULES_OPTION
@JSON_OPTION
@handle_errors
def diversity_cmd(batches: tuple[str, ...], human: str | None, backend: str, rules_path: str | None,
                  as_json: bool) -> None:
    """Diversity / homogenisation of each BATCH relative to a human reference.

    Ratios are batch / human, oriented so that below 1 means less diverse than the human reference;
    a batch whose lowest ratio (floor_ratio) is under rules/converge.yaml's
    diversity.min_diversity_ratio is flagged.

    Example:

    \b
        provaudit diversity --human human_answers.jsonl sft_round1.jsonl sft_round2.jsonl
    """
    from provaudit.style import diversity
    from provaudit.style.inputs import load_texts, source_name
    from provaudit.style.rules import load_rules

    floor = float(load_rules(rules_path)["diversity"]["min_diversity_ratio"])
    res = []
    with progress.session(progress.tty_enabled(as_json)):
        progress.step("reading the human reference")
        ref = load_texts(human, what="human reference") if human else None
        for i, b in enumerate(batches):
            progress.step(f"measuring diversity of {source_name(b, i)} ({i + 1}/{len(batches)})")
            d = diversity(load_texts(b, what=f"batch {b}"), ref, backend=backend)
            res.append({"batch": source_name(b, i), **d, **diversity_verdict(d, floor)})
    if as_json:
        echo_json(res)
        return
    rows = [(r["batch"], r["n"], r["compression_ratio"], r["ngram_diversity"], r["homogenization"],
             r["embedding_spread"], r.get("diversity_floor_ratio"), r["verdict"]) for r in res]
    click.echo(_text_table(rows, ("batch", "n", "compression", "ngram_div", "homogenization", "spread",
                                  "floor_ratio (vs human)", "verdict")))
    click.echo(f"floor_ratio = lowest batch/human diversity ratio (below 1 = less diverse than human); "
               f"rule: flagged below {floor:g} (diversity.min_diversity_ratio)")


def diversity_verdict(d: dict[str, Any], floor: float) -> dict[str, Any]:
    """``verdict`` of one batch against the floor rule, with the rule and its direction."""
    ratio = d.get("diversity_floor_ratio")
    if ratio is None:
        verdict = "no human reference"
    elif ratio < floor:
        verdict = f"FLAGGED: less diverse than human ({ratio:.2f} < {floor:g})"
    else:
        verdict = f"ok ({ratio:.2f} >= {floor:g})"
    return {"verdict": verdict, "flagged": ratio is not None and ratio < floor,
            "rule": {"min_diversity_ratio": floor, "direction": "below is bad"}}


COMMANDS: list = [converge_cmd, trend_cmd, label_origin_cmd, diversity_cmd]


def _text_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    return text_table(rows, header, max_cell=40)
