"""False-alarm and detection rates of the decoupling flags over many seeds.

Series follow Gao et al. (2022) gold-reward forms with noise (decoupled: RL and best-of-n forms)
or rise together (coupled). A detection is "early" when the first decoupling flag names a
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
        if samples:
            frame, peak = simulate.sample_series(n, 120, form=form, coupled=kind == "coupled", seed=seed)
        else:
            frame, peak = simulate.series(n, form=form, coupled=kind == "coupled", noise=noise, seed=seed)
        path = tmp / f"{kind}_{form}_{seed}.csv"
        frame.write_csv(path)
        rep = analyze_checkpoints([path], seed=seed, bootstrap=200)
        k = first_flag_index(rep)
        if k is not None:
            fired += 1
            lags.append(k - peak)
            if k < peak - 1:
                early += 1
    out = {"case": kind, "form": form, "per_sample": samples, "checkpoints": n, "seeds": seeds,
           "fired_rate": fired / seeds, "early_rate": early / seeds,
           "median_lag_checkpoints": sorted(lags)[len(lags) // 2] if lags else None}
    if not samples:
        out["noise_rel"] = noise
    return out


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
            for n, noise in ((10, 0.05), (16, 0.08)) if not samples else ((8, 0.0),):
                for form in ("rl", "bon"):
                    results.append(run_case("gao", form, seeds, tmp, samples=samples, n=n, noise=noise))
                    results.append(run_case("coupled", form, seeds, tmp, samples=samples, n=n, noise=noise))
    for r in results:
        label = "detection" if r["case"] == "gao" else "false alarm"
        print(f"{r['case']:8s} {r['form']:4s} per_sample={r['per_sample']!s:5s} n={r['checkpoints']:2d} "
              f"noise={r.get('noise_rel', '-')}: {label} rate {r['fired_rate']:.3f}, early {r['early_rate']:.3f}, "
              f"median lag {r['median_lag_checkpoints']}")
    print(f"elapsed {time.time() - t0:.1f}s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
