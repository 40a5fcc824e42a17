"""Plots a person would put in a review: the trend PNG and the checkpoint report charts, rendered."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import polars as pl
import pytest

from provaudit.catalog.store import Catalog
from provaudit.checkpoints import analyze_checkpoints
from provaudit.report import plots, render_html
from provaudit.style.rules import DEFAULTS
from provaudit.style.trends import history_trend, plot_trend, trend_figure

FX = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints"


@pytest.fixture()
def history(tmp_path):
    path = tmp_path / "cat.duckdb"
    with Catalog(path) as cat:
        for i, v in enumerate([0.35, 0.45, 0.60, 0.74]):
            cat.add_scan(inputs=[{"path": f"/data/labels_round{i}.jsonl", "dataset": f"labels_round{i}"}],
                         summary={"teacher": {"teacher_likeness": v, "ci_low": v - 0.03, "ci_high": v + 0.03,
                                              "n": 200}}, passed=True)
    return path


def test_trend_png_is_readable_size_with_names_dates_and_threshold(history, tmp_path):
    _, tr = history_trend(history)
    png = plot_trend(tr, tmp_path / "trend.png")
    height, width = mpimg.imread(png).shape[:2]
    assert (width, height) == (1000, 500)
    fig = trend_figure(tr)
    try:
        ax = fig.axes[0]
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        # each tick names the scan's dataset and its date, not "scan 1..4"
        assert [t.split("\n")[0] for t in ticks] == [f"#{i + 1} labels_round{i}" for i in range(4)]
        assert all(len(t.split("\n")) == 2 and t.split("\n")[1][:2] == "20" for t in ticks)
        threshold = DEFAULTS["teacher"]["max_teacher_likeness"]
        flat = [ln for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1
                and ln.get_ydata()[0] == pytest.approx(threshold)]
        assert flat, "no threshold line at the rule's max_teacher_likeness"
        assert ax.get_xlabel() and "higher = more like the teacher" in ax.get_ylabel()
        assert tr["verdict"] in ax.get_title()
    finally:
        plt.close(fig)


def _overlap(a, b) -> bool:
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


@pytest.mark.parametrize("inputs", [["gao_rl_samples.jsonl", "gao_rl_kl.csv"], ["trainer_state.json"]])
def test_best_label_does_not_overlap_the_title(inputs):
    rep = analyze_checkpoints([FX / f for f in inputs], bootstrap=100)
    assert rep.best_checkpoint is not None
    fig = plots.series_figure(rep)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        best = [t for t in ax.texts if t.get_text().startswith("best")]
        assert len(best) == 1 and rep.best_checkpoint in best[0].get_text()
        title = ax.title.get_window_extent(renderer)
        assert not _overlap(best[0].get_window_extent(renderer), title)
        legend = ax.get_legend().get_window_extent(renderer)
        assert not _overlap(legend, title)
        for label in [*ax.get_xticklabels(), ax.xaxis.label]:  # nor does the legend under the axis
            assert not _overlap(legend, label.get_window_extent(renderer)), label.get_text()
    finally:
        plt.close(fig)


def _binary_copy(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in (FX / "tail_drop_samples.jsonl").read_text().splitlines() if line.strip()]
    out = tmp_path / "binary.jsonl"
    out.write_text("".join(json.dumps({**r, "outcome": 1.0 if r["outcome"] > 0 else 0.0}) + "\n" for r in rows))
    return out


def test_no_quantile_chart_for_a_binary_outcome(tmp_path):
    binary = analyze_checkpoints([_binary_copy(tmp_path)], bootstrap=100)
    assert set(binary.points["outcome"].unique().to_list()) == {0.0, 1.0}
    assert plots.tail_chart(binary) is None and "chart-tails" not in render_html(binary)
    graded = analyze_checkpoints([FX / "tail_drop_samples.jsonl"], bootstrap=100)
    assert plots.tail_chart(graded) is not None and "chart-tails" in render_html(graded)


def test_is_binary():
    assert plots.is_binary(pl.Series([0, 1, 1, None]))
    assert not plots.is_binary(pl.Series([0.0, 0.5, 1.0]))
    assert not plots.is_binary(pl.Series([None], dtype=pl.Float64))
