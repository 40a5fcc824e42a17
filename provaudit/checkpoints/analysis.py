"""The analyses behind the checkpoint report: decoupling, over-optimisation, length and teacher
confounds, tail regressions per slice and quantile, and see-saws between opposing metrics.

Significance: every flag comes from a test family with a family-wise level ``alpha`` (Bonferroni
inside the family). With per-sample data the standard errors come from the samples (paired by
sample id when the checkpoints share items) and intervals from a seeded bootstrap; with only a
metrics table the noise is estimated from the leave-one-out residuals of a local quadratic smoother
(robust MAD; :func:`noise_sigma_local`) and a t threshold is used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from provaudit.checkpoints.model import Flag
from provaudit.checkpoints.stats import (
    Diff,
    bootstrap_diff,
    fit_gao,
    noise_sigma_local,
    one_sided_threshold,
    rank_correlation,
    robust_peak,
    sign_test_p,
    smooth3,
    weighted_slope,
    wilcoxon_p,
)

Z95 = 1.959963984540054


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


@dataclass
class Ctx:
    """Shared state of one analysis run."""

    series: pl.DataFrame
    samples: pl.DataFrame | None
    thresholds: dict[str, Any]
    seed: int

    def __post_init__(self) -> None:
        self.names: list[str] = self.series["checkpoint"].to_list()
        self.n = len(self.names)
        self.P = self.series["proxy"].to_numpy().astype(float)
        self.O = self.series["outcome"].to_numpy().astype(float)
        self.x = (self.series["step"].to_numpy().astype(float) if "step" in self.series.columns
                  and self.series["step"].null_count() == 0 else np.arange(self.n, dtype=float))
        self.alpha = float(self.thresholds.get("alpha", 0.01))
        self.n_boot = int(self.thresholds.get("bootstrap", 1000))
        self.level = float(self.thresholds.get("interval_level", 0.95))
        self._by_ckpt: dict[str, pl.DataFrame] = {}
        if self.samples is not None:
            for name in self.names:
                self._by_ckpt[name] = self.samples.filter(pl.col("checkpoint") == name).sort("sample_id")
            self.df = None
            self.seP = self.series["proxy_se"].fill_null(0.0).to_numpy().astype(float)
            self.seO = self.series["outcome_se"].fill_null(0.0).to_numpy().astype(float)
        else:
            self.df = max(self.n - 3, 1)
            sp, so = noise_sigma_local(self.P, self.x), noise_sigma_local(self.O, self.x)
            # with fewer than 3 checkpoints no noise estimate exists: nothing can be significant
            self.seP = np.full(self.n, sp if math.isfinite(sp) else np.inf)
            self.seO = np.full(self.n, so if math.isfinite(so) else np.inf)
            self.sigma = {"proxy": sp, "outcome": so}
            given = {r: self.series[f"{r}_se"].to_numpy().astype(float) for r in ("proxy", "outcome")
                     if f"{r}_se" in self.series.columns and self.series[f"{r}_se"].null_count() == 0}
            if "proxy" in given:
                self.seP = given["proxy"]
            if "outcome" in given:  # reported standard errors: z thresholds instead of t
                self.seO = given["outcome"]
                self.df = None

    def noise_from_fit(self, over: dict[str, Any]) -> list[str]:
        """Metrics-only series with KL: the outcome noise from a Gao fit's residuals, when the form fits.

        The fit's residual scale is used only when it is no larger than the local-smoother estimate
        (the form then describes the series at least as well as a local quadratic, and pools more
        points). A form that fits only roughly leaves the shape misfit in its residuals: an inflated
        noise that delays every flag, so the robust local estimate stays.
        """
        fits = over.get("gao_fits") or {}
        chosen = fits.get(over.get("gao_form")) if fits else None
        if self.samples is not None or self.df is None or chosen is None or self.n < 6:
            return []
        if (chosen.get("r2") or 0) < 0.8:
            return []
        s = math.sqrt(chosen["sse"] / (self.n - 3))
        local = self.sigma["outcome"]
        if math.isfinite(local) and s > local:
            return [(f"Gao {chosen['form'].upper()} fit residual scale {_fmt(s)} exceeds the local-smoother noise "
                     f"{_fmt(local)} (the form fits only roughly): the local estimate is kept")]
        self.seO = np.full(self.n, s)
        self.sigma["outcome"] = s
        return [f"outcome noise from the residuals of the Gao {chosen['form'].upper()} fit: {_fmt(s)}"]

    def rng(self, *key: Any) -> np.random.Generator:
        """A generator seeded from the run seed and a stable key (order-independent results)."""
        h = 0
        for part in key:
            for ch in str(part):
                h = (h * 131 + ord(ch)) % (2 ** 31)
        return np.random.default_rng([self.seed, h])

    def ckpt(self, i: int) -> pl.DataFrame:
        return self._by_ckpt[self.names[i]]

    def aligned(self, i: int, j: int, frame_filter: pl.Expr | None = None) -> tuple[pl.DataFrame, pl.DataFrame,
                                                                                      bool]:
        """Samples of checkpoints i and j, inner-joined on sample id when most ids are shared."""
        a, b = self.ckpt(i), self.ckpt(j)
        if frame_filter is not None:
            a, b = a.filter(frame_filter), b.filter(frame_filter)
        common = set(a["sample_id"]) & set(b["sample_id"])
        if len(common) >= 0.8 * max(min(a.height, b.height), 1) and len(common) >= 2:
            keep = pl.col("sample_id").is_in(sorted(common))
            return a.filter(keep).sort("sample_id"), b.filter(keep).sort("sample_id"), True
        return a, b, False

    def diff(self, i: int, j: int, what: str, q: float | None = None) -> Diff:
        """Change of the proxy or outcome (mean, or quantile q) from checkpoint i to j."""
        if self.samples is None:
            y = self.P if what == "proxy" else self.O
            s = self.seP if what == "proxy" else self.seO
            se = math.sqrt(float(s[i]) ** 2 + float(s[j]) ** 2)
            v = float(y[j] - y[i])
            return Diff(v, float(se), v - Z95 * se, v + Z95 * se, 1, False)
        a, b, paired = self.aligned(i, j)
        return bootstrap_diff(a[what].to_numpy(), b[what].to_numpy(), self.rng(what, i, j, q), paired=paired,
                              q=q, n_boot=self.n_boot, level=self.level)


def correlation(ctx: Ctx) -> dict[str, Any]:
    """Rank correlation of proxy and outcome across checkpoints."""
    out = rank_correlation(ctx.P, ctx.O)
    out["n_checkpoints"] = ctx.n
    return out


def decoupling(ctx: Ctx, best: int) -> list[Flag]:
    """Proxy up while outcome down: after the best checkpoint, between neighbours and over windows."""
    flags: list[Flag] = []
    n, names = ctx.n, ctx.names
    # 1. sustained: outcome significantly below the best checkpoint while the proxy is above it
    later = list(range(best + 1, n))
    if later:
        # the best checkpoint is the maximum of the earlier ones: union bound over every (earlier, later) pair
        thr = one_sided_threshold(ctx.alpha, (best + 1) * len(later), ctx.df)
        hits = []
        for j in later:
            dp, do = ctx.diff(best, j, "proxy"), ctx.diff(best, j, "outcome")
            if dp.value > 0 and do.z() < -thr:
                hits.append((j, dp, do))
        if hits:
            j, dp, do = hits[0]
            flags.append(Flag(
                "decoupling", names[j],
                f"outcome {_fmt(do.value)} below the best checkpoint {names[best]} (z={_fmt(do.z())}, threshold "
                f"{_fmt(thr)}) while the proxy is {_fmt(dp.value)} higher",
                [do.lo, do.hi], metric="outcome", value=do.value, p_value=_p_one_sided(do.z(), ctx.df),
                details={"from": names[best], "proxy_change": dp.value, "proxy_interval": [dp.lo, dp.hi],
                         "paired": do.paired, "threshold_z": thr,
                         "checkpoints_flagged": [names[h[0]] for h in hits]}))
    # 1b. trend after the best checkpoint (the best itself excluded: its value is selected as the maximum)
    ends = list(range(best + 3, n))
    if ends:
        thr = one_sided_threshold(ctx.alpha, len(ends), ctx.df)
        hits = []
        for j in ends:
            sl = slice(best + 1, j + 1)
            xs = np.arange(j - best, dtype=float)
            bp, sp = weighted_slope(xs, ctx.P[sl], ctx.seP[sl])
            bo, so = weighted_slope(xs, ctx.O[sl], ctx.seO[sl])
            zo = bo / so if so > 0 else 0.0
            if bp > 0 and zo < -thr:
                hits.append((j, bp, bo, so, zo))
        if hits:
            j, bp, bo, so, zo = hits[0]
            flags.append(Flag(
                "decoupling_trend", names[j],
                f"after the best checkpoint {names[best]}, over {names[best + 1]}..{names[j]} the outcome falls "
                f"{_fmt(-bo)} per checkpoint (z={_fmt(zo)}, threshold {_fmt(thr)}) while the proxy rises "
                f"{_fmt(bp)} per checkpoint",
                [bo - Z95 * so, bo + Z95 * so], metric="outcome_slope", value=bo, p_value=_p_one_sided(zo, ctx.df),
                details={"from": names[best], "window": [names[best + 1], names[j]], "proxy_slope": bp,
                         "threshold_z": thr, "checkpoints_flagged": [names[h[0]] for h in hits]}))
    # 2. consecutive checkpoints
    if n >= 2:
        thr = one_sided_threshold(ctx.alpha, n - 1, ctx.df)
        hits = []
        for i in range(n - 1):
            dp, do = ctx.diff(i, i + 1, "proxy"), ctx.diff(i, i + 1, "outcome")
            if dp.z() > thr and do.z() < -thr:
                hits.append((i, dp, do))
        if hits:
            i, dp, do = hits[0]
            flags.append(Flag(
                "decoupling_step", names[i + 1],
                f"from {names[i]} to {names[i + 1]} the proxy rose {_fmt(dp.value)} (z={_fmt(dp.z())}) while the "
                f"outcome fell {_fmt(-do.value)} (z={_fmt(do.z())})",
                [do.lo, do.hi], metric="outcome", value=do.value, p_value=_p_one_sided(do.z(), ctx.df),
                details={"from": names[i], "proxy_change": dp.value, "proxy_interval": [dp.lo, dp.hi],
                         "threshold_z": thr, "checkpoints_flagged": [names[h[0] + 1] for h in hits]}))
    # 3. sliding windows
    w = int(ctx.thresholds.get("window", 4))
    if n >= w >= 3:
        m = n - w + 1
        thr = one_sided_threshold(ctx.alpha, m, ctx.df)
        hits = []
        for k in range(m):
            sl = slice(k, k + w)
            xs = np.arange(w, dtype=float)  # per-checkpoint slope: steps may be unevenly spaced
            bp, sp = weighted_slope(xs, ctx.P[sl], ctx.seP[sl])
            bo, so = weighted_slope(xs, ctx.O[sl], ctx.seO[sl])
            zp = bp / sp if sp > 0 else 0.0
            zo = bo / so if so > 0 else 0.0
            if zp > thr and zo < -thr:
                hits.append((k, bp, bo, so, zo))
        if hits:
            k, bp, bo, so, zo = hits[0]
            end = k + w - 1
            flags.append(Flag(
                "decoupling_window", names[end],
                f"over {names[k]}..{names[end]} the proxy trend is +{_fmt(bp)} per checkpoint while the outcome "
                f"trend is {_fmt(bo)} per checkpoint (z={_fmt(zo)}, threshold {_fmt(thr)})",
                [bo - Z95 * so, bo + Z95 * so], metric="outcome_slope", value=bo,
                p_value=_p_one_sided(zo, ctx.df),
                details={"window": [names[k], names[end]], "proxy_slope": bp, "threshold_z": thr,
                         "checkpoints_flagged": [names[h[0] + w - 1] for h in hits]}))
    return flags


def _p_one_sided(z: float, df: float | None) -> float:
    from scipy import stats as sps

    if df is None:
        return float(sps.norm.sf(abs(z)))
    return float(sps.t.sf(abs(z), df))


def overoptimization(ctx: Ctx, kl: np.ndarray | None) -> tuple[dict[str, Any], list[Flag]]:
    """Best checkpoint by outcome, how far the proxy kept rising past it, and the Gao et al. fit on KL."""
    best = int(np.argmax(ctx.O))
    out: dict[str, Any] = {"best_index": best, "best_checkpoint": ctx.names[best],
                           "checkpoints_past_best": ctx.n - 1 - best,
                           "proxy_rise_past_best": float(np.max(ctx.P[best:]) - ctx.P[best]),
                           "proxy_change_past_best": float(ctx.P[-1] - ctx.P[best]),
                           "outcome_drop_from_best": float(ctx.O[best] - ctx.O[-1]),
                           "smoothed_peak_checkpoint": ctx.names[robust_peak(ctx.O)],
                           "method": "argmax of outcome; robust smoothed peak alongside"}
    span = float(np.ptp(ctx.P))
    out["proxy_rise_past_best_share"] = out["proxy_rise_past_best"] / span if span > 0 else 0.0
    if ctx.x is not None:
        out["steps_past_best"] = float(ctx.x[-1] - ctx.x[best])
    flags: list[Flag] = []
    if kl is not None and np.isfinite(kl).sum() >= 4:
        ok = np.isfinite(kl) & (kl >= 0)
        d = np.sqrt(kl[ok])
        fits = {form: fit_gao(d, ctx.O[ok], form) for form in ("rl", "bon")}
        fits = {k: v for k, v in fits.items() if v is not None}
        if fits:
            chosen = min(fits.values(), key=lambda f: f["aic"])
            out["gao_fits"] = fits
            out["gao_form"] = chosen["form"]
            out["peak_kl"] = chosen["peak_kl"]
            if chosen["peak_kl"] is not None:
                k = int(np.nanargmin(np.abs(kl - chosen["peak_kl"])))  # a checkpoint without KL is never nearest
                out["peak_checkpoint_fit"] = ctx.names[k]
                inside = float(np.nanmin(kl)) < chosen["peak_kl"] < float(np.nanmax(kl))
                out["peak_inside_observed_kl"] = bool(inside)
                if inside and (chosen["r2"] or 0) >= 0.5 and k < ctx.n - 1:
                    flags.append(Flag(
                        "overoptimization", ctx.names[k],
                        f"Gao et al. {chosen['form'].upper()} form (R^2={_fmt(chosen['r2'])}) peaks at KL="
                        f"{_fmt(chosen['peak_kl'])} (nearest checkpoint {ctx.names[k]}); training continued to "
                        f"KL={_fmt(float(np.nanmax(kl)))} and the proxy rose {_fmt(out['proxy_rise_past_best'])} "
                        f"past the best checkpoint {ctx.names[best]}",
                        None, metric="kl", value=chosen["peak_kl"],
                        details={"form": chosen["form"], "a": chosen["a"], "b": chosen["b"], "c": chosen["c"]}))
    else:
        out["gao_fits"] = None
        out["smoothed_outcome"] = smooth3(ctx.O).tolist()
    return out, flags


def confound(ctx: Ctx, covariate: str, label: str, share_threshold: float, first: int = 0,
             last: int | None = None) -> tuple[dict[str, Any], list[Flag]]:
    """How much of the proxy gain between two checkpoints a per-sample covariate explains.

    Two estimates: the within-checkpoint regression slope of proxy on the covariate times the
    covariate's shift, and the within-bucket comparison of Singhal et al. (2023): the proxy gain
    inside covariate-quantile buckets, averaged with the pooled bucket weights.
    """
    last = ctx.n - 1 if last is None else last
    if ctx.samples is None or covariate not in ctx.samples.columns or ctx.n < 2:
        return {}, []
    a, b = ctx.ckpt(first), ctx.ckpt(last)
    a = a.filter(pl.col(covariate).is_not_null())
    b = b.filter(pl.col(covariate).is_not_null())
    if a.height < 5 or b.height < 5:
        return {}, []
    rng = ctx.rng("confound", covariate)

    def estimate(pa, ca, pb, cb):
        gain = pb.mean() - pa.mean()
        pc = np.concatenate([pa - pa.mean(), pb - pb.mean()])
        cc = np.concatenate([ca - ca.mean(), cb - cb.mean()])
        sxx = float(cc @ cc)
        beta = float(cc @ pc) / sxx if sxx > 0 else 0.0
        explained = beta * (cb.mean() - ca.mean())
        k = int(ctx.thresholds.get("length_buckets", 5))
        edges = np.quantile(np.concatenate([ca, cb]), np.linspace(0, 1, k + 1))
        edges[-1] = np.inf
        ba = np.clip(np.searchsorted(edges, ca, side="right") - 1, 0, k - 1)
        bb = np.clip(np.searchsorted(edges, cb, side="right") - 1, 0, k - 1)
        num, den = 0.0, 0.0
        for q in range(k):
            ma, mb = ba == q, bb == q
            if ma.sum() >= 2 and mb.sum() >= 2:
                wq = ma.sum() + mb.sum()
                num += wq * (pb[mb].mean() - pa[ma].mean())
                den += wq
        controlled = num / den if den > 0 else float("nan")
        return gain, beta, explained, controlled

    pa, ca = a["proxy"].to_numpy(), a[covariate].to_numpy()
    pb, cb = b["proxy"].to_numpy(), b[covariate].to_numpy()
    gain, beta, explained, controlled = estimate(pa, ca, pb, cb)
    shares, cshares = [], []
    for _ in range(min(ctx.n_boot, 400)):
        ia = rng.integers(0, len(pa), len(pa))
        ib = rng.integers(0, len(pb), len(pb))
        g, _, e, c = estimate(pa[ia], ca[ia], pb[ib], cb[ib])
        if g != 0:
            shares.append(e / g)
            cshares.append(1 - c / g)
    share = explained / gain if gain != 0 else float("nan")
    bucket_share = 1 - controlled / gain if gain != 0 and math.isfinite(controlled) else float("nan")
    tail = (1 - ctx.level) / 2
    share_ci = [float(np.quantile(shares, tail)), float(np.quantile(shares, 1 - tail))] if shares else None
    dp = ctx.diff(first, last, "proxy")
    out = {"covariate": covariate, "from": ctx.names[first], "to": ctx.names[last], "proxy_gain": gain,
           "proxy_gain_interval": [dp.lo, dp.hi], "covariate_from": float(ca.mean()), "covariate_to": float(cb.mean()),
           "slope_within_checkpoint": beta, "gain_explained": explained, "share": share, "share_interval": share_ci,
           "bucket_controlled_gain": controlled, "bucket_share": bucket_share,
           "bucket_share_interval": ([float(np.quantile(cshares, tail)), float(np.quantile(cshares, 1 - tail))]
                                     if cshares else None)}
    flags: list[Flag] = []
    thr = one_sided_threshold(ctx.alpha, 1, None)
    combined = np.nanmean([share, bucket_share]) if math.isfinite(share) or math.isfinite(bucket_share) else np.nan
    out["combined_share"] = float(combined) if math.isfinite(combined) else None
    lower_ok = share_ci is None or share_ci[0] > 0
    if gain > 0 and dp.z() > thr and math.isfinite(combined) and combined >= share_threshold and lower_ok:
        flags.append(Flag(
            f"{label}_confound", ctx.names[last],
            f"{label} explains {_fmt(100 * min(combined, 1.0))}% of the proxy gain {_fmt(gain)} from "
            f"{ctx.names[first]} to {ctx.names[last]} (regression share {_fmt(share)}, within-bucket share "
            f"{_fmt(bucket_share)}); mean {covariate} {_fmt(ca.mean())} -> {_fmt(cb.mean())}",
            share_ci, metric=f"{label}_share", value=float(combined),
            details={"bucket_controlled_gain": controlled, "slope": beta}))
    return out, flags


def length_series(ctx: Ctx) -> dict[str, Any]:
    """Across-checkpoint association of mean length and proxy (correlational only)."""
    if "length" not in ctx.series.columns or ctx.series["length"].null_count() > ctx.n - 3:
        return {}
    L = ctx.series["length"].to_numpy().astype(float)
    ok = np.isfinite(L)
    if ok.sum() < 3 or np.ptp(L[ok]) == 0:
        return {}
    slope, _ = np.polyfit(L[ok], ctx.P[ok], 1)
    r = float(np.corrcoef(L[ok], ctx.P[ok])[0, 1])
    return {"series_slope": float(slope), "series_r2": r * r, "series_length_from": float(L[ok][0]),
            "series_length_to": float(L[ok][-1]),
            "note": "across checkpoints only: length and proxy both trend with training, so this is not causal"}


def win_rates(ctx: Ctx) -> pl.DataFrame | None:
    """Raw and length-controlled win rates per checkpoint (AlpacaEval LC style logistic model)."""
    s = ctx.samples
    if s is None or not {"preference", "baseline_length", "length"} <= set(s.columns):
        return None
    from sklearn.linear_model import LogisticRegression

    rows = []
    for i, name in enumerate(ctx.names):
        c = ctx.ckpt(i).filter(pl.col("preference").is_not_null() & pl.col("baseline_length").is_not_null()
                               & pl.col("length").is_not_null())
        if c.height < 10:
            continue
        pref = c["preference"].to_numpy()
        dl = c["length"].to_numpy() - c["baseline_length"].to_numpy()
        sd = float(np.std(dl)) or 1.0
        feat = np.tanh(dl / sd).reshape(-1, 1)
        X = np.vstack([feat, feat])
        y = np.concatenate([np.ones(len(pref)), np.zeros(len(pref))])
        w = np.concatenate([pref, 1 - pref])
        keep = w > 0
        if len(set(y[keep])) < 2:
            lc = float(np.mean(pref))
            coef = 0.0
        else:
            model = LogisticRegression(C=10.0, solver="lbfgs").fit(X[keep], y[keep], sample_weight=w[keep])
            lc = float(1 / (1 + math.exp(-float(model.intercept_[0]))))
            coef = float(model.coef_[0][0])
        rows.append({"checkpoint": name, "n": c.height, "win_rate": float(np.mean(pref)),
                     "lc_win_rate": lc, "length_coef": coef, "mean_length_diff": float(np.mean(dl))})
    return pl.DataFrame(rows) if rows else None


def tails(ctx: Ctx, pairs: list[tuple[int, int]]) -> tuple[pl.DataFrame | None, list[Flag]]:
    """Per slice and per low quantile changes with intervals; flags drops hidden under a flat median."""
    if ctx.samples is None:
        return None, []
    quantiles = [float(q) for q in ctx.thresholds.get("tail_quantiles", [0.05, 0.1])]
    min_slice = int(ctx.thresholds.get("min_slice_size", 20))
    binary = ctx.samples["outcome"].n_unique() <= 2
    has_slice = "slice" in ctx.samples.columns and ctx.samples["slice"].null_count() < ctx.samples.height
    slices = sorted(ctx.samples["slice"].drop_nulls().unique().to_list()) if has_slice else []
    m_q = max(len(pairs) * len(quantiles), 1)
    m_s = max(len(pairs) * len(slices), 1)
    thr_q = one_sided_threshold(ctx.alpha, m_q, None)
    thr_s = one_sided_threshold(ctx.alpha, m_s, None)
    rows, flags = [], []
    for i, j in pairs:
        a, b, paired = ctx.aligned(i, j)
        oa, ob = a["outcome"].to_numpy(), b["outcome"].to_numpy()
        med = bootstrap_diff(oa, ob, ctx.rng("median", i, j), paired=paired, q=0.5, n_boot=ctx.n_boot,
                             level=ctx.level)
        mean = bootstrap_diff(oa, ob, ctx.rng("mean", i, j), paired=paired, n_boot=ctx.n_boot, level=ctx.level)
        median_flat = med.lo <= 0 <= med.hi or med.value >= 0
        base = {"from": ctx.names[i], "to": ctx.names[j], "slice": "(all)"}
        for stat, d in (("mean", mean), ("median", med)):
            rows.append({**base, "stat": stat, "n": d.n, "delta": d.value, "lo": d.lo, "hi": d.hi, "z": d.z(),
                         "flagged": False})
        if not binary:
            for q in quantiles:
                d = bootstrap_diff(oa, ob, ctx.rng("q", q, i, j), paired=paired, q=q, n_boot=ctx.n_boot,
                                   level=ctx.level)
                hit = d.z() < -thr_q and median_flat and d.hi < 0
                rows.append({**base, "stat": f"p{round(q * 100):g}", "n": d.n, "delta": d.value, "lo": d.lo,
                             "hi": d.hi, "z": d.z(), "flagged": hit})
                if hit:
                    flags.append(Flag(
                        "tail_regression", ctx.names[j],
                        f"p{round(q * 100):g} of the outcome fell {_fmt(-d.value)} from {ctx.names[i]} to "
                        f"{ctx.names[j]} while the median moved {_fmt(med.value)} (interval {_fmt(med.lo)}.."
                        f"{_fmt(med.hi)})", [d.lo, d.hi], metric=f"outcome_p{round(q * 100):g}", value=d.value,
                        p_value=_p_one_sided(d.z(), None),
                        details={"slice": "(all)", "from": ctx.names[i], "median_change": med.value,
                                 "threshold_z": thr_q, "tests_in_family": m_q}))
        for sl in slices:
            fa, fb, pr = ctx.aligned(i, j, pl.col("slice") == sl)
            if fa.height < 2 or fb.height < 2:
                continue
            d = bootstrap_diff(fa["outcome"].to_numpy(), fb["outcome"].to_numpy(), ctx.rng("slice", sl, i, j),
                               paired=pr, n_boot=ctx.n_boot, level=ctx.level)
            big = min(fa.height, fb.height) >= min_slice
            hit = big and d.z() < -thr_s and median_flat and d.hi < 0
            rows.append({"from": ctx.names[i], "to": ctx.names[j], "slice": str(sl), "stat": "mean", "n": d.n,
                         "delta": d.value, "lo": d.lo, "hi": d.hi, "z": d.z(), "flagged": hit})
            if hit:
                flags.append(Flag(
                    "tail_regression", ctx.names[j],
                    f"slice {sl!r}: mean outcome fell {_fmt(-d.value)} from {ctx.names[i]} to {ctx.names[j]} "
                    f"(z={_fmt(d.z())}, threshold {_fmt(thr_s)} over {m_s} slice tests) while the overall median "
                    f"moved {_fmt(med.value)}", [d.lo, d.hi], metric="outcome_mean", value=d.value,
                    p_value=_p_one_sided(d.z(), None),
                    details={"slice": str(sl), "from": ctx.names[i], "median_change": med.value,
                             "threshold_z": thr_s, "tests_in_family": m_s, "n": d.n}))
    table = pl.DataFrame(rows) if rows else None
    return table, flags


def slice_table(ctx: Ctx) -> pl.DataFrame | None:
    """Mean outcome and proxy per slice and checkpoint (the report's slice table)."""
    s = ctx.samples
    if s is None or "slice" not in s.columns:
        return None
    t = (s.filter(pl.col("slice").is_not_null()).group_by(["slice", "checkpoint"])
         .agg(pl.len().alias("n"), pl.col("outcome").mean().alias("outcome"), pl.col("proxy").mean().alias("proxy")))
    order = {n: i for i, n in enumerate(ctx.names)}
    return (t.with_columns(pl.col("checkpoint").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
            .sort(["slice", "_o"]).drop("_o"))


def seesaw(ctx: Ctx, extra: list[str], pair_rules: list[dict[str, str]],
           eval_patterns: list[str] | None = None) -> tuple[list[dict[str, Any]], list[Flag]]:
    """Two opposing metrics that alternate across releases (one improves exactly when the other drops).

    Candidates: pairs named by ``pair_rules``; failing those, pairs of evaluation-like metrics (names
    matching ``eval_patterns``; training internals such as clip fractions move together mechanically);
    and per-slice outcome series.
    """
    import re

    from provaudit.checkpoints.io import match_column

    metrics: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for c in extra:
        v = ctx.series[c].to_numpy().astype(float)
        if np.isfinite(v).all() and np.ptp(v) > 0:
            metrics[c] = (v, None)
    cands: list[tuple[str, str]] = []
    for rule in pair_rules:
        ra, rb = re.compile(rule["a"], re.IGNORECASE), re.compile(rule["b"], re.IGNORECASE)
        for a in metrics:
            for b in metrics:
                if a != b and ra.fullmatch(a) and rb.fullmatch(b) and (a, b) not in cands:
                    cands.append((a, b))
    if not cands and len(metrics) >= 2:
        names = sorted(m for m in metrics if eval_patterns is None or match_column([m], eval_patterns))
        cands = [(a, b) for k, a in enumerate(names) for b in names[k + 1:]]
    st = slice_table(ctx)
    if st is not None:
        min_slice = int(ctx.thresholds.get("min_slice_size", 20))
        for sl in sorted(st["slice"].unique().to_list()):
            sub = st.filter(pl.col("slice") == sl)
            if sub.height == ctx.n and sub["n"].min() >= min_slice:
                y = sub["outcome"].to_numpy().astype(float)
                se = [ctx.ckpt(i).filter(pl.col("slice") == sl)["outcome"].std() / math.sqrt(max(sub["n"][i], 1))
                      for i in range(ctx.n)]
                metrics[f"outcome[{sl}]"] = (y, np.asarray(se, dtype=float))
        slice_keys = sorted(k for k in metrics if k.startswith("outcome["))
        cands += [(a, b) for k, a in enumerate(slice_keys) for b in slice_keys[k + 1:]]
    results, flags = [], []
    if ctx.n < 4 or not cands:
        return results, flags
    min_tr = int(ctx.thresholds.get("seesaw_min_transitions", 3))
    share_thr = float(ctx.thresholds.get("seesaw_opposed_share", 0.75))
    m = len(cands)
    for a, b in cands:
        ya, sa = metrics[a]
        yb, sb = metrics[b]
        da, db = np.diff(ya), np.diff(yb)
        moving = (da != 0) & (db != 0)
        if sa is not None and sb is not None:  # only moves larger than their noise count
            moving &= (np.abs(da) > Z95 * np.sqrt(sa[1:] ** 2 + sa[:-1] ** 2)) & \
                      (np.abs(db) > Z95 * np.sqrt(sb[1:] ** 2 + sb[:-1] ** 2))
        opposed = moving & (np.sign(da) != np.sign(db))
        winners = np.sign(da[opposed])
        alternations = int((winners[1:] != winners[:-1]).sum()) if len(winners) > 1 else 0
        share = float(opposed.sum() / len(da))
        r = float(np.corrcoef(da, db)[0, 1]) if np.std(da) > 0 and np.std(db) > 0 else 0.0
        rng = ctx.rng("seesaw", a, b)
        pb = rng.permuted(np.tile(db, (2000, 1)), axis=1)
        ca, cb = da - da.mean(), pb - pb.mean(axis=1, keepdims=True)
        denom = np.sqrt((ca ** 2).sum()) * np.sqrt((cb ** 2).sum(axis=1))
        perms = np.where(denom > 0, (cb @ ca) / np.where(denom > 0, denom, 1.0), 0.0)
        p = float((1 + np.sum(perms <= r)) / (1 + len(perms)))
        level_r = float(np.corrcoef(ya, yb)[0, 1])
        # a trade-off moves the levels against each other too; independent noise does not
        hit = (int(opposed.sum()) >= min_tr and share >= share_thr and alternations >= 2 and r < 0
               and level_r <= -0.5 and p <= float(ctx.thresholds.get("seesaw_alpha", 0.01)) / m)
        last = int(np.nonzero(opposed)[0][-1]) + 1 if opposed.any() else None
        res = {"a": a, "b": b, "opposed_transitions": int(opposed.sum()), "transitions": len(da),
               "opposed_share": share, "alternations": alternations, "diff_correlation": r, "p_value": p,
               "level_correlation": level_r,
               "tests_in_family": m, "flagged": bool(hit)}
        results.append(res)
        if hit:
            seq = " ".join("+" if w > 0 else "-" for w in np.sign(da))
            flags.append(Flag(
                "see_saw", ctx.names[last] if last is not None else None,
                f"{a} and {b} moved in opposite directions in {int(opposed.sum())} of {len(da)} releases, the "
                f"winner switching {alternations} times ({a}: {seq}); correlation of changes {_fmt(r)}, "
                f"permutation p={_fmt(p)} over {m} candidate pairs",
                None, metric=f"{a}|{b}", value=r, p_value=p, details=res))
    return results, flags


def pair_stats(ctx: Ctx) -> dict[str, Any]:
    """Paired significance of the proxy and outcome change between the two checkpoints of ``compare``."""
    a, b, paired = ctx.aligned(0, 1)
    out: dict[str, Any] = {"a": ctx.names[0], "b": ctx.names[1], "paired": paired, "n_a": ctx.ckpt(0).height,
                           "n_b": ctx.ckpt(1).height, "n_paired": a.height if paired else 0}
    for what in ("proxy", "outcome"):
        d = ctx.diff(0, 1, what)
        entry = {"a_mean": float(a[what].mean()), "b_mean": float(b[what].mean()), "delta": d.value,
                 "interval": [d.lo, d.hi], "z": d.z(), "p_bootstrap_normal": 2 * _p_one_sided(d.z(), None)}
        if paired:
            dd = b[what].to_numpy() - a[what].to_numpy()
            entry["wilcoxon_p"] = wilcoxon_p(dd)
            entry["sign_test_p"] = sign_test_p(dd)
            entry["b_better_share"] = float((dd > 0).mean())
            entry["b_worse_share"] = float((dd < 0).mean())
        out[what] = entry
    return out
