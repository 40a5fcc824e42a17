"""Small, seeded statistics used by the checkpoint analyses.

Everything here is deterministic for a given ``numpy.random.Generator`` seed. Significance
decisions use a z (or t) statistic against a Bonferroni-adjusted one-sided threshold; the
bootstrap provides the intervals shown to users.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass
class Diff:
    """A difference ``b - a`` with its standard error and a two-sided interval."""

    value: float
    se: float
    lo: float
    hi: float
    n: int
    paired: bool

    def z(self) -> float:
        """Signed z statistic (value / se); 0 when the se is 0 and the value 0."""
        if self.se <= 0:
            return 0.0 if self.value == 0 else math.copysign(1e9, self.value)
        return self.value / self.se


def one_sided_threshold(alpha: float, m: int, df: float | None = None) -> float:
    """Critical value for a one-sided test at family-wise level ``alpha`` over ``m`` tests (Bonferroni)."""
    level = 1.0 - alpha / max(int(m), 1)
    if df is None or df <= 0 or not math.isfinite(df):
        return float(sps.norm.ppf(level))
    return float(sps.t.ppf(level, df))


def _quantile_stat(q: float | None):
    if q is None:
        return lambda x, axis=-1: np.mean(x, axis=axis)
    return lambda x, axis=-1: np.quantile(x, q, axis=axis)


def bootstrap_diff(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, *, paired: bool,
                   q: float | None = None, n_boot: int = 1000, level: float = 0.95) -> Diff:
    """Bootstrap the difference of a statistic (mean, or quantile ``q``) between samples ``b`` and ``a``.

    ``paired`` resamples the same item indices for both sides (aligned arrays, same item order).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    stat = _quantile_stat(q)
    value = float(stat(b) - stat(a))
    budget = 5_000_000 if q is None else 1_000_000  # bound time and memory on large files (quantiles sort)
    n_boot = max(200, min(n_boot, budget // max(len(a), len(b), 1)))
    if paired:
        n = len(a)
        idx = rng.integers(0, n, size=(n_boot, n))
        boots = stat(b[idx], axis=1) - stat(a[idx], axis=1)
    else:
        ia = rng.integers(0, len(a), size=(n_boot, len(a)))
        ib = rng.integers(0, len(b), size=(n_boot, len(b)))
        boots = stat(b[ib], axis=1) - stat(a[ia], axis=1)
    se = float(np.std(boots, ddof=1)) if n_boot > 1 else 0.0
    if q is None:
        # the analytic se of a mean difference is steadier than the bootstrap se at B=1000
        if paired:
            d = b - a
            se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
        else:
            va = np.var(a, ddof=1) / len(a) if len(a) > 1 else 0.0
            vb = np.var(b, ddof=1) / len(b) if len(b) > 1 else 0.0
            se = float(math.sqrt(va + vb))
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [tail, 1.0 - tail])
    return Diff(value, se, float(lo), float(hi), int(min(len(a), len(b))), paired)


def bootstrap_ci(x: np.ndarray, rng: np.random.Generator, *, q: float | None = None, n_boot: int = 1000,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (or quantile ``q``) of ``x``."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        v = float(x[0]) if len(x) else float("nan")
        return v, v
    stat = _quantile_stat(q)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    boots = stat(x[idx], axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [tail, 1.0 - tail])
    return float(lo), float(hi)


def noise_sigma(y: np.ndarray) -> float:
    """Noise scale of a series from its second differences (robust MAD; smooth trends cancel).

    For i.i.d. noise of scale s, a second difference has variance 6 s^2.
    """
    y = np.asarray(y, dtype=float)
    if len(y) < 3:
        return float("nan")
    d2 = y[2:] - 2 * y[1:-1] + y[:-2]
    mad = float(np.median(np.abs(d2 - np.median(d2)))) / 0.6745
    rms = float(np.sqrt(np.mean(d2 ** 2)))
    # the MAD is robust to a few bends of the trend; never let it fall far below the RMS on short series
    s = max(mad, 0.5 * rms) if len(d2) < 8 else mad
    return s / math.sqrt(6.0)


LOCAL_HALF_WINDOW = 3  # neighbours on each side of the local quadratic that predicts a checkpoint


def noise_sigma_local(y: np.ndarray, x: np.ndarray | None = None, half: int = LOCAL_HALF_WINDOW) -> float:
    """Noise scale of a series from leave-one-out residuals of a local quadratic smoother (robust MAD).

    Each point is predicted by a quadratic fitted to its ``2 * half`` nearest neighbours (itself left
    out), so smooth trends, peaks included, do not leak into the residuals the way they do into
    second differences or into the residuals of a global curve that fits the shape only roughly.
    With i.i.d. noise of scale s a residual has variance s^2 (1 + x0' (X'X)^-1 x0); the residuals are
    standardised by that factor and s is their MAD / 0.6745 (robust to a few outliers and kinks).
    Falls back to :func:`noise_sigma` below ``2 * half + 1`` points.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 2 * half + 1:
        return noise_sigma(y)
    x = np.arange(n, dtype=float) if x is None else np.asarray(x, dtype=float)
    z = []
    for i in range(n):
        lo = min(max(0, i - half), n - 2 * half - 1)
        idx = [j for j in range(lo, lo + 2 * half + 1) if j != i]
        t = x[idx] - x[i]
        scale = float(np.max(np.abs(t))) or 1.0
        X = np.vander(t / scale, 3, increasing=True)
        beta, *_ = np.linalg.lstsq(X, y[idx], rcond=None)
        inv = np.linalg.pinv(X.T @ X)
        lev = float(inv[0, 0])  # x0 = (1, 0, 0): the prediction at the left-out point
        z.append((y[i] - beta[0]) / math.sqrt(1.0 + lev))
    z = np.asarray(z)
    return float(np.median(np.abs(z - np.median(z)))) / 0.6745


def rank_correlation(x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Spearman and Kendall rank correlations with their p-values (None with fewer than 3 points)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"spearman": None, "spearman_p": None, "kendall": None, "kendall_p": None}
    rho, p = sps.spearmanr(x, y)
    tau, tp = sps.kendalltau(x, y)
    return {"spearman": float(rho), "spearman_p": float(p), "kendall": float(tau), "kendall_p": float(tp)}


def fit_gao(d: np.ndarray, y: np.ndarray, form: str) -> dict[str, float | str | None] | None:
    """Least-squares fit of the Gao et al. (2022) gold-reward forms with an offset c.

    ``rl``: y = c + d (a - b log d); ``bon``: y = c + d (a - b d), with d = sqrt(KL). Both are linear
    in (c, a, b). Returns the coefficients, the fit quality and the peak (d*, KL*) when b > 0.
    """
    d = np.asarray(d, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(d) & np.isfinite(y) & (d >= 0)
    d, y = d[ok], y[ok]
    if len(d) < 4 or np.ptp(d) == 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        dlog = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    if form == "rl":
        X = np.column_stack([np.ones_like(d), d, -dlog])
    elif form == "bon":
        X = np.column_stack([np.ones_like(d), d, -d * d])
    else:
        raise ValueError(form)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    c, a, b = (float(v) for v in coef)
    resid = y - X @ coef
    sse = float(resid @ resid)
    sst = float(((y - y.mean()) ** 2).sum())
    n, k = len(y), 3
    aic = n * math.log(max(sse, 1e-300) / n) + 2 * k
    peak_d: float | None = None
    if b > 0:
        try:
            peak_d = math.exp(a / b - 1.0) if form == "rl" else a / (2.0 * b)
        except OverflowError:  # b ~ 0+ (a straight line): no turn at any reachable KL
            peak_d = None
        if peak_d is not None and (not math.isfinite(peak_d) or peak_d <= 0):
            peak_d = None
    return {"form": form, "c": c, "a": a, "b": b, "sse": sse, "r2": 1.0 - sse / sst if sst > 0 else None,
            "aic": aic, "peak_d": peak_d, "peak_kl": None if peak_d is None else peak_d ** 2,
            "peak_value": None if peak_d is None else float(
                c + (peak_d * (a - b * math.log(peak_d)) if form == "rl" else peak_d * (a - b * peak_d)))}


def smooth3(y: np.ndarray) -> np.ndarray:
    """Running median of 3 then running mean of 3 (ends kept): a robust smoother for peak finding."""
    y = np.asarray(y, dtype=float)
    if len(y) < 3:
        return y.copy()
    med = y.copy()
    med[1:-1] = np.median(np.stack([y[:-2], y[1:-1], y[2:]]), axis=0)
    out = med.copy()
    out[1:-1] = (med[:-2] + med[1:-1] + med[2:]) / 3.0
    return out


def robust_peak(y: np.ndarray) -> int:
    """Index of the peak of a noisy series: argmax of the robustly smoothed series."""
    y = np.asarray(y, dtype=float)
    return int(np.argmax(smooth3(y)))


def weighted_slope(x: np.ndarray, y: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """OLS slope of y on x and its standard error from per-point standard errors ``se``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx == 0:
        return 0.0, float("inf")
    w = xc / sxx
    return float(w @ y), float(math.sqrt(float(w ** 2 @ np.asarray(se, dtype=float) ** 2)))


def wilcoxon_p(d: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (None if all zero or too few)."""
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    if len(d) < 5:
        return None
    return float(sps.wilcoxon(d).pvalue)


def sign_test_p(d: np.ndarray) -> float | None:
    """Two-sided exact sign-test p-value of paired differences (ties dropped)."""
    d = np.asarray(d, dtype=float)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    if pos + neg == 0:
        return None
    return float(sps.binomtest(pos, pos + neg, 0.5).pvalue)
