"""Benchmark: provaudit coverage on 100k production prompts (target: under a minute on 2 cores).

Usage: python bench/coverage.py [--n 100000] [--backend static]

Production: the real prompts of fixtures/coverage (AlpacaEval instructions and HH-RLHF red-team prompts,
about 1 in 5 red-team) repeated in turn to ``--n`` requests (traffic repeats), written as chat-log JSONL
with a ``day`` column (10 days); eval: fixtures/coverage/eval.json. Times the whole call from reading files to the summary
and prints the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--backend", default="static")
    args = ap.parse_args()
    fx = ROOT / "fixtures" / "coverage"
    pool = [json.loads(line)["messages"][0]["content"]
            for name in ("production_same.jsonl", "production_shifted.jsonl", "production_drifting.jsonl")
            for line in (fx / name).read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        prod = Path(tmp) / "production.jsonl"
        with prod.open("w", encoding="utf-8") as fh:
            for i in range(args.n):
                text = pool[(i * 7919) % len(pool)]
                fh.write(json.dumps({"messages": [{"role": "user", "content": text}],
                                     "day": f"2026-05-{1 + i * 10 // args.n:02d}"}) + "\n")
        from provaudit.coverage import coverage

        t0 = time.perf_counter()
        res = coverage(ROOT / "fixtures" / "coverage" / "eval.json", [prod], by="day", backend=args.backend)
        dt = time.perf_counter() - t0
    s = res.summary
    print(json.dumps({"n_production": s["n_production"], "seconds": round(dt, 2),
                      "records_per_s": round(s["n_production"] / dt), "coverage": s["coverage"],
                      "coverage_ci": s["coverage_ci"], "drift_p": s["drift"]["p_value"],
                      "detected": s["drift"]["detected"], "n_clusters": len(s["uncovered"]),
                      "top_cluster": s["uncovered"][0]["label"] if s["uncovered"] else None}, indent=1))


if __name__ == "__main__":
    main()
