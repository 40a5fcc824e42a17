"""Detection and false-alarm rates of the eval-integrity flags over many seeds (real fixture texts).

Harness: per seed, 100 of the 120 AlpacaEval items of fixtures/integrity/outputs.jsonl, run A and a clean
rerun (fresh scoring noise, 30% of the outputs replaced by a second sample): any harness flag is a false
alarm. Faulted: the rerun with one fault on 20-30% of the samples (rate varies with the seed), scored as
failures: detection = harness_change plus the fault's own flag; the healthy-sample change should not be
significant (5% level). Labelers: simulated pools on the real AlpacaEval pairs of
fixtures/style/alpaca_eval_gpt4_annotations.json (provaudit.style.labelers.simulate_pool), stable or drifting
toward a verbosity-biased judge from batch 3: detection batch relative to the drift start, false flags.

Usage: python bench/integrity.py [--seeds 200] [--label-seeds 200] [--out bench_integrity.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provaudit.checkpoints import harness
from provaudit.checkpoints.faults import inject_fault, rerun, simulate_run
from provaudit.checkpoints.io import load_rules
from provaudit.checkpoints.load import load_inputs
from provaudit.style.labelers import labeler_homogenization, simulate_pool

OWN = {"empty": "harness_empty", "truncated": "harness_truncated", "echo": "harness_echo",
       "duplicate": "harness_duplicate", "extraction": "harness_extraction_failed",
       "scores": "harness_score_missing"}


def assess(tmp: Path, a: list[dict], b: list[dict], seed: int) -> tuple[dict, list]:
    pa, pb = tmp / "a.jsonl", tmp / "b.jsonl"
    for p, rows in ((pa, a), (pb, b)):
        p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rules = load_rules()
    loaded = load_inputs([str(pa), str(pb)], rules, proxy=None, outcome=None, checkpoint_names=["a", "b"])
    return harness.assess(loaded, ["a", "b"], {**rules["thresholds"], "bootstrap": 500}, seed)


def bench_harness(seeds: int, tmp: Path) -> dict:
    items = [json.loads(line) for line in (ROOT / "fixtures/integrity/outputs.jsonl").read_text().splitlines()]
    out: dict = {"seeds": seeds}
    false = 0
    for s in range(seeds):
        rng = np.random.default_rng(s)
        sub = [items[i] for i in sorted(rng.choice(len(items), 100, replace=False))]
        _, flags = assess(tmp, simulate_run(sub, seed=s, item_seed=s), rerun(sub, seed=s + 500, item_seed=s), s)
        false += bool(flags)
    out["clean_rerun_any_harness_flag"] = false / seeds
    for kind, own in OWN.items():
        det = own_det = sig = 0
        shares = []
        for s in range(seeds):
            rng = np.random.default_rng(s)
            sub = [items[i] for i in sorted(rng.choice(len(items), 100, replace=False))]
            rate = 0.2 + 0.1 * rng.random()
            b, _ = inject_fault(rerun(sub, seed=s + 500, item_seed=s), kind, rate, seed=s)
            res, flags = assess(tmp, simulate_run(sub, seed=s, item_seed=s), b, s)
            kinds = {f.kind for f in flags}
            det += "harness_change" in kinds
            own_det += own in kinds
            h = res["pairs"][0]["outcome"].get("healthy") or {}
            sig += bool(h.get("significant"))
            if res["pairs"][0]["outcome"].get("share") is not None:
                shares.append(res["pairs"][0]["outcome"]["share"])
        out[kind] = {"harness_change": det / seeds, "own_flag": own_det / seeds,
                     "healthy_change_significant": sig / seeds,
                     "median_share_carried": float(np.median(shares)) if shares else None}
    return out


def bench_labelers(seeds: int) -> dict:
    pairs = json.loads((ROOT / "fixtures/style/alpaca_eval_gpt4_annotations.json").read_text())
    cache: dict = {}

    def run(df):
        return labeler_homogenization(df, by="batch", detail=False, embeddings=cache, n_boot=200)

    stable = sum(run(simulate_pool(pairs, seed=10_000 + s))["homogenizing"] for s in range(seeds))
    lags = []
    for s in range(seeds):
        res = run(simulate_pool(pairs, drift_start=3, seed=s))
        first = res["trend"]["first_flagged_batch"]
        lags.append(None if first is None else int(first[1:]) - 3)
    got = [x for x in lags if x is not None]
    return {"seeds": seeds, "stable_false_flag_rate": stable / seeds, "drift_detected": len(got) / seeds,
            "drift_detected_within_2_batches": sum(0 <= x <= 2 for x in got) / seeds,
            "lag_counts": {str(k): got.count(k) for k in sorted(set(got))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--label-seeds", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    t = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        res = {"harness": bench_harness(args.seeds, Path(tmp))}
    res["harness"]["seconds"] = round(time.time() - t, 1)
    if args.label_seeds:
        t = time.time()
        res["labelers"] = bench_labelers(args.label_seeds)
        res["labelers"]["seconds"] = round(time.time() - t, 1)
    text = json.dumps(res, indent=2, sort_keys=True)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
