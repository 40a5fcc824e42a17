"""Quality figures of provaudit coverage on the bundled real prompts (fixtures/coverage).

Usage: python bench/coverage_quality.py [--seeds 20] [--shared /work/shared/data [--mix-seeds 3]]

Prints, for each production fixture: coverage with its interval, the covered share of each kind of
traffic (ground truth: the fixture's ``kind`` column), drift p-value and verdict, per-window p-values, and
the share of red-team prompts among the members of the three largest uncovered clusters and the share of
production in clusters (the uncovered units confidently new). Then the false
alarm rate: ``--seeds`` random same-pool splits of eval + production_same (300 eval / 250 production in
two windows), each run through the whole pipeline; an alarm is ``drift.detected``.

With ``--shared`` (the shared corpora, MANIFEST.md there) it also measures held-out traffic mixes: for each
``--mix-seeds`` seed, 300 AlpacaEval instructions drawn as eval and 200 production prompts of which 25%, 50%
or 75% are a new kind (HH-RLHF red-team first turns, PubMedQA questions, XSum news articles, CS224N
abstracts; the rest other AlpacaEval instructions), plus a stale case (eval with 20% red-team prompts,
production AlpacaEval only). Per mix: the true covered share, coverage by ``method="mixture"`` (the
default) and by the 0.95-quantile threshold (``method="classifier"``, computed on the same scores), the
covered share of the new kind, the new kind's share among the members of the three largest uncovered
clusters, the clustered share of production and of the new kind, and how often drift is detected.
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
    ap.add_argument("--shared", help="the shared corpora (/work/shared/data): also measure held-out mixes")
    ap.add_argument("--mix-seeds", type=int, default=3)
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
            "clustered_share": s["uncovered_clustered"]["share"],
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
    if args.shared:
        out["mixes"] = mixes(Path(args.shared), args.mix_seeds)
    print(json.dumps(out, indent=1))


def _first_human(t: str) -> str:
    import re

    parts = re.split(r"\n\n(Human|Assistant): ?", "\n\n" + t.lstrip("\n"))
    return parts[2].strip() if len(parts) > 2 and parts[1] == "Human" else ""


def _pools(shared: Path) -> tuple[list[str], dict[str, list[str]]]:
    import gzip

    alpaca = list(
        dict.fromkeys(r["instruction"] for r in json.loads((shared / "alpaca_eval/model_outputs/gpt4.json").read_text()))
    )
    hh: dict[str, str] = {}
    with gzip.open(shared / "hh-rlhf/harmless-base_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            t = _first_human(json.loads(line)["chosen"])
            if len(t) >= 15:
                hh.setdefault(t.lower(), t)
    fdg = shared / "fast-detect-gpt"
    pubmed = json.loads((fdg / "pubmed_davinci.raw_data.json").read_text())["original"]
    new = {
        "red-team": list(hh.values()),
        "pubmed": list(dict.fromkeys(x.split(" Answer:")[0].removeprefix("Question: ").strip() for x in pubmed)),
        "news": json.loads((fdg / "xsum_gpt-neox-20b.raw_data.json").read_text())["original"],
        "abstracts": [d["document"] for d in json.loads((shared / "detector-bias/CS224N_real_145.json").read_text())],
    }
    return alpaca, new


def mixes(shared: Path, seeds: int) -> dict:
    from provaudit.coverage import coverage
    from provaudit.coverage.inputs import Units

    alpaca, new = _pools(shared)

    def units(texts: list[str], name: str, windows: bool) -> Units:
        n = len(texts)
        f = pl.DataFrame(
            {
                "record_id": [f"{name}:{i}" for i in range(n)],
                "text": texts,
                "source_file": name,
                "source_row": list(range(n)),
                "window": [f"w{k * 2 // n}" for k in range(n)] if windows else ["all"] * n,
            }
        )
        return Units(f, [{"path": name, "fingerprint": "-", "n_units": n}])

    cases = [(k, f) for k in new for f in (0.25, 0.5, 0.75)] + [("stale: eval 20% red-team", 0.0)]
    table = {}
    for kind, frac in cases:
        rows = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            a = [alpaca[i] for i in rng.permutation(len(alpaca))]
            if kind.startswith("stale"):
                red = new["red-team"]
                ev = a[:240] + [red[i] for i in rng.choice(len(red), 60, replace=False)]
                prod, is_new = a[240:440], np.zeros(200, dtype=bool)
            else:
                pool = new[kind]
                k = min(int(200 * frac), len(pool))
                ev = a[:300]
                prod = a[300 : 300 + 200 - k] + [pool[i] for i in rng.choice(len(pool), k, replace=False)]
                is_new = np.r_[np.zeros(200 - k, dtype=bool), np.ones(k, dtype=bool)]
                order = rng.permutation(len(prod))
                prod, is_new = [prod[i] for i in order], is_new[order]
            res = coverage(units(ev, "eval", False), units(prod, "prod", True), seed=seed, n_perm=200, n_boot=300)
            s, pf = res.summary, res.production_units.sort("source_row")
            e_score, p_score = res.eval_units["score"].to_numpy(), pf["score"].to_numpy()
            top = [u["cluster"] for u in s["uncovered"][:3]]
            members = pf.filter(pl.col("cluster").is_in(top))["source_row"].to_numpy()
            rows.append(
                {
                    "truth": 1 - float(is_new.mean()),
                    "mixture": s["coverage"],
                    "ci_holds_truth": s["coverage_ci"][0] <= 1 - float(is_new.mean()) <= s["coverage_ci"][1],
                    "q95": float(np.mean(p_score <= np.quantile(e_score, 0.95))),
                    "new_covered": float(pf["covered"].to_numpy()[is_new].mean()) if is_new.any() else None,
                    "top3_new": float(is_new[members].mean()) if len(members) and is_new.any() else None,
                    "clustered": s["uncovered_clustered"]["share"],
                    "clustered_new_of_new": float(
                        (pf["cluster"].to_numpy()[is_new] >= 0).mean()) if is_new.any() else None,
                    "detected": s["drift"]["detected"],
                }
            )

        def agg(key: str, rows: list[dict] = rows) -> list | None:
            v = [r[key] for r in rows if r[key] is not None]
            return [round(float(np.mean(v)), 3), round(float(min(v)), 3), round(float(max(v)), 3)] if v else None

        table[f"{kind} {int(frac * 100)}%"] = {
            "truth": round(float(np.mean([r["truth"] for r in rows])), 3),
            "mixture [mean, min, max]": agg("mixture"),
            "q95_threshold [mean, min, max]": agg("q95"),
            "ci_holds_truth": sum(r["ci_holds_truth"] for r in rows),
            "new_kind_covered": agg("new_covered"),
            "top3_clusters_new_share": agg("top3_new"),
            "clustered_share": agg("clustered"),
            "new_kind_clustered": agg("clustered_new_of_new"),
            "drift_detected": sum(r["detected"] for r in rows),
            "trials": len(rows),
        }
        print(kind, frac, table[f"{kind} {int(frac * 100)}%"], file=sys.stderr, flush=True)
    return table


if __name__ == "__main__":
    main()
