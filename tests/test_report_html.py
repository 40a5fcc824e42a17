"""The HTML report renders in headless Chromium with its charts and flags visible."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from provaudit.checkpoints import analyze_checkpoints
from provaudit.report import render_html

FX = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (Debian package 'chromium'); required when CI is set")
        pytest.skip("chromium not installed (apt-get install chromium); the CI run installs it")
    return exe


def _run(exe: str, args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=120, check=False)


@pytest.mark.chromium
@pytest.mark.slow
@pytest.mark.parametrize("inputs", [["tail_drop_samples.jsonl"], ["trainer_state.json"]])
def test_html_renders_charts_and_flags(tmp_path: Path, inputs: list[str]) -> None:
    exe = _chromium()
    rep = analyze_checkpoints([FX / f for f in inputs], bootstrap=200)
    assert rep.flags
    page = tmp_path / "report.html"
    page.write_text(render_html(rep), encoding="utf-8")
    res = _run(exe, ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()])
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body[^>]*>", res.stdout)
    assert body, res.stdout[:500]
    charts = int(re.search(r'data-charts-visible="(\d+)"', body.group(0)).group(1))
    flags = int(re.search(r'data-flags-visible="(\d+)"', body.group(0)).group(1))
    assert charts >= 2
    assert flags == len(rep.flags)
    for f in rep.flags:
        assert f.kind in res.stdout
    shot = tmp_path / "shot.png"
    res = _run(exe, ["--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()])
    assert shot.exists() and shot.stat().st_size > 20000  # a blank page compresses to a few kB


@pytest.mark.chromium
@pytest.mark.slow
def test_integrity_sections_render(tmp_path: Path) -> None:
    """A harness-faulted comparison with labeler judgments: harness and labeler charts and flags visible."""
    from provaudit.checkpoints import compare
    from provaudit.report.integrity import render_labelers_html

    exe = _chromium()
    fx = FX.parent / "integrity"
    rep = compare(fx / "run_a.jsonl", fx / "fault_truncated.jsonl", bootstrap=200,
                  labels=[fx / "labels_drift.jsonl.gz"], label_opts={"by": "batch", "n_boot": 100, "detail": False})
    kinds = {f.kind for f in rep.flags}
    assert {"harness_change", "harness_truncated", "homogenizing"} <= kinds
    pages = {"report.html": (render_html(rep), len(rep.flags)),
             "labelers.html": (render_labelers_html(rep.labelers), 1)}
    doms = {}
    for name, (text, n_flags) in pages.items():
        page = tmp_path / name
        page.write_text(text, encoding="utf-8")
        res = _run(exe, ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()])
        assert res.returncode == 0, res.stderr[-2000:]
        doms[name] = res.stdout
        body = re.search(r"<body[^>]*>", res.stdout).group(0)
        assert int(re.search(r'data-flags-visible="(\d+)"', body).group(1)) == n_flags
        charts = int(re.search(r'data-charts-visible="(\d+)"', body).group(1))
        assert charts >= (3 if name == "report.html" else 1)
    dom = doms["report.html"]
    for chart in ("chart-harness", "chart-harness-change", "chart-labelers"):
        assert f'id="{chart}"' in dom
    assert "Harness health" in dom and "Labeler homogenization" in dom


_OVERLAP_JS = """<script>
(function(){
  var texts=Array.prototype.slice.call(document.querySelectorAll('#chart-series svg text'));
  function find(p){return texts.filter(function(t){return t.textContent.indexOf(p)===0;})[0];}
  var best=find('best'), title=find('Proxy and outcome');
  var a=best.getBoundingClientRect(), b=title.getBoundingClientRect();
  var hit=!(a.right<=b.left||b.right<=a.left||a.bottom<=b.top||b.bottom<=a.top);
  document.body.setAttribute('data-best-overlaps-title', hit?'1':'0');
  document.body.setAttribute('data-best-text', best.textContent);
})();
</script>"""


@pytest.mark.chromium
@pytest.mark.slow
def test_best_label_clear_of_title_in_the_browser(tmp_path: Path) -> None:
    """Measured in the rendered page: the 'best' label and the chart title do not intersect."""
    exe = _chromium()
    rep = analyze_checkpoints([FX / "gao_rl_samples.jsonl", FX / "gao_rl_kl.csv"], bootstrap=100)
    page = tmp_path / "report.html"
    page.write_text(render_html(rep).replace("</body>", _OVERLAP_JS + "</body>"), encoding="utf-8")
    res = _run(exe, ["--virtual-time-budget=5000", "--window-size=1200,1600", "--dump-dom", page.as_uri()])
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body[^>]*>", res.stdout).group(0)
    assert 'data-best-overlaps-title="0"' in body, body
    assert f"best: {rep.best_checkpoint}" in body
