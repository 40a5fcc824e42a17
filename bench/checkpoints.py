"""False-alarm and detection rates of the decoupling flags over many seeds.

Series follow Gao et al. (2022) gold-reward forms with noise (decoupled: RL and best-of-n forms),
rise together (coupled) or rise to the Gao peak and stay flat (plateau: proxy up, outcome flat). A detection is "early" when the first decoupling flag names a
checkpoint more than one before the true outcome peak.

Usage: python bench/checkpoints.py [--seeds 200] [--out bench_checkpoints.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from provaudit.checkpoints import DECOUPLING_KINDS, analyze_checkpoints, simulate


def first_flag_index(report) -> int | None:
    """Index of the earliest checkpoint named by a decoupling flag (None if none fired)."""
    names = report.checkpoints
    idx = [names.index(f.checkpoint) for f in report.flags if f.kind in DECOUPLING_KINDS]
    return min(idx) if idx else None


def run_case(kind: str, form: str, seeds: int, tmp: Path, *, samples: bool, n: int, noise: float) -> dict:
    fired = early = 0
    lags = []
    for seed in range(seeds):
        shape = {"coupled": kind == "coupled", "plateau": kind == "plateau"}
        if samples:
            frame, peak = simulate.sample_series(n, 120, form=form, seed=seed, **shape)
        else:
            frame, peak = simulate.series(n, form=form, noise=noise, seed=seed, **shape)
        path = tmp / f"{kind}_{form}_{seed}.csv"
        frame.write_csv(path)
        rep = analyze_checkpoints([path], seed=seed, bootstrap=200)
        k = first_flag_index(rep)
        if k is not None:
            fired += 1
            lags.append(k - peak)
            if kind == "gao" and k < peak - 1:
                early += 1
    out = {"case": kind, "form": form, "per_sample": samples, "checkpoints": n, "seeds": seeds,
           "fired_rate": fired / seeds, "early_rate": early / seeds,
           "median_lag_checkpoints": sorted(lags)[len(lags) // 2] if lags else None}
    if not samples:
        out["noise_rel"] = noise
    return out


def null_other_flags(seeds: int, tmp: Path) -> dict:
    """False-alarm rates of tail_regression and see_saw on series without any tail drop or trade-off.

    Per-sample series rise together (coupled Gao form) with five random slices of equal size and
    two extra per-checkpoint metrics that are independent noise.
    """
    import numpy as np
    import polars as pl

    tail = saw = 0
    for seed in range(seeds):
        frame, _ = simulate.sample_series(6, 150, coupled=True, seed=20000 + seed)
        rng = np.random.default_rng(seed)
        ids = sorted(frame["sample_id"].unique().to_list())
        slices = dict(zip(ids, rng.choice(["a", "b", "c", "d", "e"], len(ids)), strict=True))
        frame = frame.with_columns(pl.col("sample_id").replace_strict(slices).alias("slice"))
        names = frame["checkpoint"].unique(maintain_order=True).to_list()
        metrics = pl.DataFrame({"checkpoint": names, "refusal_rate": 0.8 + rng.normal(0, 0.02, len(names)),
                                "completion_rate": 0.8 + rng.normal(0, 0.02, len(names))})
        sp, mp = tmp / f"null_{seed}.csv", tmp / f"null_m_{seed}.csv"
        frame.write_csv(sp)
        metrics.write_csv(mp)
        rep = analyze_checkpoints([sp, mp], seed=seed, bootstrap=200)
        kinds = {f.kind for f in rep.flags}
        tail += "tail_regression" in kinds
        saw += "see_saw" in kinds
    return {"case": "null_tail_seesaw", "seeds": seeds, "tail_regression_rate": tail / seeds,
            "see_saw_rate": saw / seeds}


def perf(tmp: Path, n: int = 20, items: int = 2000) -> dict:
    """Wall time of analyze_checkpoints + render_html on n checkpoints x items per-sample rows (target < 30 s)."""
    from provaudit.report import render_html

    frame, _ = simulate.sample_series(n, items, seed=0)
    path = tmp / "perf.parquet"
    frame.write_parquet(path)
    t0 = time.time()
    rep = analyze_checkpoints([path])
    t1 = time.time()
    render_html(rep)
    return {"case": "perf", "rows": frame.height, "analyze_s": round(t1 - t0, 2),
            "render_html_s": round(time.time() - t1, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    t0 = time.time()
    results = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for samples in (False, True):
            seeds = args.seeds if not samples else max(args.seeds // 4, 10)
            for n, noise in ((10, 0.05), (16, 0.08), (24, 0.08)) if not samples else ((8, 0.0),):
                for form in ("rl", "bon"):
                    results.append(run_case("gao", form, seeds, tmp, samples=samples, n=n, noise=noise))
                    results.append(run_case("coupled", form, seeds, tmp, samples=samples, n=n, noise=noise))
                    results.append(run_case("plateau", form, seeds, tmp, samples=samples, n=n, noise=noise))
        nul = null_other_flags(max(args.seeds // 4, 10), tmp)
        speed = perf(tmp)
    print(f"perf: {speed['rows']} per-sample rows analysed in {speed['analyze_s']}s, HTML in {speed['render_html_s']}s "
          "(target < 30 s)")
    print(f"null series ({nul['seeds']} seeds): tail_regression false-alarm rate {nul['tail_regression_rate']:.3f}, "
          f"see_saw false-alarm rate {nul['see_saw_rate']:.3f}")
    for r in results:
        label = "detection" if r["case"] == "gao" else "false alarm"
        print(f"{r['case']:8s} {r['form']:4s} per_sample={r['per_sample']!s:5s} n={r['checkpoints']:2d} "
              f"noise={r.get('noise_rel', '-')}: {label} rate {r['fired_rate']:.3f}, early {r['early_rate']:.3f}, "
              f"median lag {r['median_lag_checkpoints']}")
    print(f"elapsed {time.time() - t0:.1f}s")
    if args.out:
        args.out.write_text(json.dumps([*results, nul, speed], indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
