"""Benchmark: provaudit coverage on 100k production prompts (target: under a minute on 2 cores).

Usage: python bench/coverage.py [--n 100000] [--backend static]

Production: the real prompts of fixtures/coverage (AlpacaEval instructions and HH-RLHF red-team prompts,
about 1 in 5 red-team), each request one of them with two of its words dropped (positions drawn from a
seeded generator), so nearly all ``--n`` requests are distinct texts of realistic length (``--repeat``:
the prompts unchanged, traffic that repeats); written as chat-log JSONL with a ``day`` column (10 days).
Eval: fixtures/coverage/eval.json. Times the whole call from reading files to the summary
and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--backend", default="static")
    ap.add_argument("--repeat", action="store_true", help="repeat the fixture prompts unchanged")
    args = ap.parse_args()
    fx = ROOT / "fixtures" / "coverage"
    pool = [
        json.loads(line)["messages"][0]["content"]
        for name in ("production_same.jsonl", "production_shifted.jsonl", "production_drifting.jsonl")
        for line in (fx / name).read_text(encoding="utf-8").splitlines()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        prod = Path(tmp) / "production.jsonl"
        rng = np.random.default_rng(0)
        texts: set[str] = set()
        with prod.open("w", encoding="utf-8") as fh:
            for i in range(args.n):
                text = pool[(i * 7919) % len(pool)]
                words = text.split(" ")
                if not args.repeat and len(words) > 3:
                    drop = set(rng.choice(len(words), 2, replace=False).tolist())
                    text = " ".join(w for k, w in enumerate(words) if k not in drop)
                texts.add(text)
                fh.write(
                    json.dumps(
                        {
                            "messages": [{"role": "user", "content": text}],
                            "day": f"2026-05-{1 + i * 10 // args.n:02d}",
                        }
                    )
                    + "\n"
                )
        from provaudit.coverage import coverage

        t0, c0 = time.perf_counter(), time.process_time()
        res = coverage(ROOT / "fixtures" / "coverage" / "eval.json", [prod], by="day", backend=args.backend)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = res.summary
    print(
        json.dumps(
            {
                "load_average_1min": round(os.getloadavg()[0], 1),
                "n_production": s["n_production"],
                "distinct_texts": len(texts),
                "seconds": round(dt, 2),
                "cpu_seconds": round(cpu, 1),
                "records_per_s": round(s["n_production"] / dt),
                "coverage": s["coverage"],
                "coverage_ci": s["coverage_ci"],
                "drift_p": s["drift"]["p_value"],
                "detected": s["drift"]["detected"],
                "n_clusters": len(s["uncovered"]),
                "top_cluster": s["uncovered"][0]["label"] if s["uncovered"] else None,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
