"""Seeded synthetic checkpoint series with known ground truth (tests, benchmark, demo fixtures).

Gold reward follows the functional forms of Gao et al. (2022) in d = sqrt(KL):
RL ``R(d) = d (a - b log d)`` and best-of-n ``R(d) = d (a - b d)``; the proxy rises monotonically.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl


def gold(d: np.ndarray, form: str, a: float, b: float) -> np.ndarray:
    """Gao et al. gold reward at d = sqrt(KL)."""
    d = np.asarray(d, dtype=float)
    if form == "rl":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, d * (a - b * np.log(np.where(d > 0, d, 1.0))), 0.0)
    if form == "bon":
        return d * (a - b * d)
    raise ValueError(form)


def peak_d(form: str, a: float, b: float) -> float:
    """d at which the gold reward peaks."""
    return math.exp(a / b - 1.0) if form == "rl" else a / (2.0 * b)


def kl_grid(n: int, form: str, a: float, b: float, span: float = 2.2, start: float = 0.15) -> np.ndarray:
    """KL values of n checkpoints, evenly spaced in d from ``start`` to ``span`` x the gold peak."""
    return np.linspace(start, span * peak_d(form, a, b), n) ** 2


def series(n: int = 10, *, form: str = "rl", coupled: bool = False, noise: float = 0.05, seed: int = 0,
           a: float = 1.0, b: float | None = None, plateau: bool = False) -> tuple[pl.DataFrame, int]:
    """A per-checkpoint metrics table (checkpoint, step, kl, proxy, outcome) and the true peak index.

    ``coupled=True`` gives a series where the outcome rises with the proxy (no decoupling; the
    returned peak index is the last checkpoint); ``plateau=True`` follows the Gao curve up to its peak
    and stays flat there (proxy up, outcome flat: not a decoupling). ``noise`` is the outcome noise sd relative to the
    gold peak height; the proxy gets the same relative noise.
    """
    rng = np.random.default_rng(seed)
    b = (0.5 if form == "rl" else 0.25) if b is None else b
    kl = kl_grid(n, form, a, b)
    d = np.sqrt(kl)
    height = float(gold(np.array([peak_d(form, a, b)]), form, a, b)[0])
    proxy_true = a * d  # the proxy keeps rising
    if coupled:
        gold_true = height * (1 - np.exp(-d / peak_d(form, a, b)))  # rises and saturates, never falls
    else:
        gold_true = gold(d, form, a, b)
        if plateau:
            gold_true = np.maximum.accumulate(gold_true)
    peak = int(np.argmax(gold_true))
    scale_p = float(np.ptp(proxy_true)) or 1.0
    frame = pl.DataFrame({
        "checkpoint": [f"ckpt-{(k + 1) * 100}" for k in range(n)],
        "step": [(k + 1) * 100 for k in range(n)],
        "kl": kl,
        "proxy_reward": proxy_true + rng.normal(0, noise * scale_p / 2, n),
        "gold_outcome": gold_true + rng.normal(0, noise * height, n),
    })
    return frame, peak


def sample_series(n: int = 8, n_samples: int = 150, *, form: str = "rl", coupled: bool = False,
                  item_sd: float = 0.5, noise_sd: float = 0.6, seed: int = 0, a: float = 1.0,
                  b: float | None = None, plateau: bool = False) -> tuple[pl.DataFrame, int]:
    """Per-sample results (checkpoint, sample_id, proxy, outcome) around the Gao curves, and the peak index.

    Each sample has a fixed difficulty shared by all checkpoints (so paired tests are sharper) plus
    independent per-checkpoint noise of sd ``noise_sd``.
    """
    rng = np.random.default_rng(seed)
    frame, peak = series(n, form=form, coupled=coupled, noise=0.0, seed=seed, a=a, b=b, plateau=plateau)
    item = rng.normal(0, item_sd, n_samples)
    rows = []
    for k, row in enumerate(frame.iter_rows(named=True)):
        o = row["gold_outcome"] + item + rng.normal(0, noise_sd, n_samples)
        p = row["proxy_reward"] + 0.5 * item + rng.normal(0, noise_sd, n_samples)
        for i in range(n_samples):
            rows.append({"checkpoint": row["checkpoint"], "step": row["step"], "sample_id": f"s{i:04d}",
                         "proxy_reward": float(p[i]), "gold_outcome": float(o[i])})
    return pl.DataFrame(rows), peak
