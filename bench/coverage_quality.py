"""Quality figures of provaudit coverage on the bundled real prompts (fixtures/coverage).

Usage: python bench/coverage_quality.py [--seeds 20]

Prints, for each production fixture: coverage with its interval, the covered share of each kind of
traffic (ground truth: the fixture's ``kind`` column), drift p-value and verdict, per-window p-values, and
the share of red-team prompts among the members of the three largest uncovered clusters. Then the false
alarm rate: ``--seeds`` random same-pool splits of eval + production_same (300 eval / 250 production in
two windows), each run through the whole pipeline; an alarm is ``drift.detected``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FX = ROOT / "fixtures" / "coverage"


def main() -> None:
    from provaudit.coverage import coverage
    from provaudit.coverage.inputs import Units

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    out: dict = {}
    for name in ("production_same.jsonl", "production_shifted.jsonl", "production_drifting.jsonl"):
        rows = [json.loads(line) for line in (FX / name).read_text(encoding="utf-8").splitlines()]
        kinds = np.array([r["kind"] for r in rows])
        res = coverage(FX / "eval.json", [FX / name], by="day")
        s, pf = res.summary, res.production_units.sort("source_row")
        cov = pf["covered"].to_numpy()
        top = [u["cluster"] for u in s["uncovered"][:3]]
        members = pf.filter(pl.col("cluster").is_in(top))["source_row"].to_numpy()
        out[name] = {
            "coverage": s["coverage"],
            "coverage_ci": s["coverage_ci"],
            "covered_by_kind": {k: round(float(cov[kinds == k].mean()), 3) for k in sorted(set(kinds))},
            "drift_p": s["drift"]["p_value"],
            "drift_effect": s["drift"]["effect"],
            "detected": s["drift"]["detected"],
            "windows": [
                (w["window"], c["coverage"], w["p_value"], w["detected"])
                for w, c in zip(s["drift"]["windows"], s["windows"])
            ],
            "top3_clusters_redteam_share": round(float((kinds[members] == "hh").mean()), 3)
            if len(members)
            else None,
            "stale_share": s["stale"]["share"],
        }
    ev = [r["instruction"] for r in json.loads((FX / "eval.json").read_text(encoding="utf-8"))]
    prod = [
        json.loads(line)["messages"][0]["content"]
        for line in (FX / "production_same.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    pool = ev + prod
    alarms, covs = 0, []
    for seed in range(args.seeds):
        idx = np.random.default_rng(10_000 + seed).permutation(len(pool))

        def units(ix: np.ndarray, name: str, windows: bool) -> Units:
            w = [f"w{k * 2 // len(ix)}" for k in range(len(ix))] if windows else ["all"] * len(ix)
            f = pl.DataFrame(
                {
                    "record_id": [f"{name}:{i}" for i in ix],
                    "text": [pool[i] for i in ix],
                    "source_file": name,
                    "source_row": [int(i) for i in ix],
                    "window": w,
                }
            )
            return Units(f, [{"path": name, "fingerprint": "-", "n_units": len(ix)}])

        s = coverage(units(idx[:300], "eval", False), units(idx[300:], "prod", True), seed=seed).summary
        alarms += s["drift"]["detected"]
        covs.append(s["coverage"])
    out["same_pool"] = {
        "trials": args.seeds,
        "alarms": alarms,
        "false_alarm_rate": alarms / args.seeds,
        "coverage_mean": round(float(np.mean(covs)), 3),
        "coverage_range": [min(covs), max(covs)],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
