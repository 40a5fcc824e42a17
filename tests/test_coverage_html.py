"""The coverage HTML report renders in headless Chromium: map, window and catalog trend charts, clusters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from provaudit.coverage import coverage
from provaudit.coverage.history import coverage_history
from provaudit.report.coverage import render_coverage_html
from tests.test_report_html import _chromium, _run

FX = Path(__file__).resolve().parent.parent / "fixtures" / "coverage"


@pytest.mark.chromium
@pytest.mark.slow
def test_coverage_report_renders_map_trend_and_clusters(tmp_path: Path) -> None:
    exe = _chromium()
    cat = tmp_path / "c.duckdb"
    coverage(FX / "eval.json", [FX / "production_same.jsonl"], n_perm=100, catalog=cat, record=True)
    res = coverage(
        FX / "eval.json", [FX / "production_drifting.jsonl"], by="day", n_perm=100, catalog=cat, record=True
    )
    hist = coverage_history(cat)
    assert hist.height == 2
    page = tmp_path / "coverage.html"
    page.write_text(render_coverage_html(res, hist), encoding="utf-8")
    out = _run(exe, ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()])
    assert out.returncode == 0, out.stderr[-2000:]
    body = re.search(r"<body[^>]*>", out.stdout).group(0)
    assert int(re.search(r'data-charts-visible="(\d+)"', body).group(1)) == 3  # map, windows, catalog runs
    assert int(re.search(r'data-flags-visible="(\d+)"', body).group(1)) == len(res.summary["uncovered"]) > 0
    for u in res.summary["uncovered"]:
        assert u["examples"][0]["record_id"] in out.stdout
    assert "2026-04-03" in out.stdout and "run 2" in out.stdout
    shot = tmp_path / "shot.png"
    _run(exe, ["--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()])
    assert shot.exists() and shot.stat().st_size > 20000
