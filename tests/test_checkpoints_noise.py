"""Checkpoint noise from a robust local estimate: a clean series is flagged where its outcome has fallen."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from provaudit.checkpoints import analyze_checkpoints
from provaudit.checkpoints.stats import noise_sigma_local

NOISE = 0.002
PEAK = 10  # 0-based: checkpoint 11 of 20


def _truth() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth outcome bump peaking at checkpoint 11 (not a Gao curve: the Gao forms fit it only
    roughly, R^2 ~0.89 RL / ~0.97 BoN), a rising proxy and a rising KL."""
    i = np.arange(20, dtype=float)
    return 0.35 + 0.2 * np.exp(-0.5 * ((i - PEAK) / 6.0) ** 2), 0.1 + 0.05 * i, (0.3 * (i + 1)) ** 2


def _write(tmp_path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    outcome, proxy, kl = _truth()
    p = tmp_path / f"metrics-{seed}.csv"
    pl.DataFrame({"checkpoint": [f"ckpt-{(k + 1) * 100}" for k in range(20)],
                  "step": [(k + 1) * 100 for k in range(20)], "kl": kl,
                  "proxy_reward": proxy + rng.normal(0, NOISE, 20),
                  "gold_outcome": outcome + rng.normal(0, NOISE, 20)}).write_csv(p)
    return p


def _clearly_fallen() -> int:
    """First checkpoint whose true outcome is below the peak by 5 standard errors of a difference."""
    outcome, _, _ = _truth()
    drop = outcome.max() - outcome
    return int(np.flatnonzero((np.arange(20) > PEAK) & (drop > 5 * math.sqrt(2) * NOISE))[0])


@pytest.mark.parametrize("seed", range(5))
def test_clean_series_is_flagged_within_one_checkpoint_of_the_fall(tmp_path: Path, seed: int) -> None:
    report = analyze_checkpoints([_write(tmp_path, seed)])
    names = [f"ckpt-{(k + 1) * 100}" for k in range(20)]
    first = min(names.index(f.checkpoint) for f in report.flags if f.kind.startswith("decoupling"))
    assert abs(first - _clearly_fallen()) <= 1, (first, _clearly_fallen())


def test_local_noise_estimate_is_near_the_true_noise_where_second_differences_are_not() -> None:
    outcome, _, _ = _truth()
    est = [noise_sigma_local(outcome + np.random.default_rng(s).normal(0, NOISE, 20)) for s in range(40)]
    # median over seeded draws within 25% of the truth (a global Gao fit's residuals read ~4.5x)
    assert abs(np.median(est) / NOISE - 1) < 0.25
    # an exact quadratic has no noise: the leave-one-out quadratic predicts every point exactly
    assert noise_sigma_local(0.1 + 0.3 * np.arange(12) - 0.02 * np.arange(12) ** 2) < 1e-9
