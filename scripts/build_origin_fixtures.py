"""Cut the small origin fixtures (fixtures/origin/) from the shared corpora.

Usage: python scripts/build_origin_fixtures.py /work/shared/data [--out fixtures/origin]

Writes ``labelled.jsonl`` (``text, label, generator, domain, source``; texts of at least 50 words,
capped at 2,000 characters at a word boundary) and ``mixed_batch.jsonl`` (an unlabelled
``{"text"}`` batch for the scan demo: 30 human + 30 model texts not in ``labelled.jsonl``, with the
truth in ``mixed_batch_truth.json``). Seeded, so reruns give identical files.
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

from provaudit.origin.corpora import load_shared_corpora

# (domain, label) -> how many texts; generators within a cell are sampled evenly.
PLAN = {("news", 0): 50, ("news", 1): 40, ("stories", 0): 50, ("stories", 1): 40, ("abstracts", 0): 40,
        ("abstracts", 1): 40, ("student_essays", 0): 30, ("hc3", 0): 40, ("hc3", 1): 40, ("dialogue", 0): 20,
        ("dialogue", 1): 20, ("instructions", 1): 72}
MAX_CHARS = 2000


def _cap(t: str) -> str:
    if len(t) <= MAX_CHARS:
        return t
    cut = t.rfind(" ", 0, MAX_CHARS)
    return t[: cut if cut > 0 else MAX_CHARS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shared", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "fixtures" / "origin")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    df = load_shared_corpora(args.shared).filter(pl.col("generator") != "gpt4-simplify")
    df = df.filter(pl.col("text").str.count_matches(r"\S+") >= 50).with_columns(
        pl.col("text").map_elements(_cap, return_dtype=pl.Utf8))
    picked, rest = [], []
    for (dom, lab), n in PLAN.items():
        cell = df.filter((pl.col("domain") == dom) & (pl.col("label") == lab))
        gens = sorted(cell["generator"].unique().to_list())
        per = int(np.ceil(n / len(gens)))
        for g in gens:
            sub = cell.filter(pl.col("generator") == g)
            order = rng.permutation(sub.height)
            picked.append(sub[np.sort(order[:per]).tolist()])
            rest.append(sub[np.sort(order[per:per + 4]).tolist()])
    lab = pl.concat(picked)
    args.out.mkdir(parents=True, exist_ok=True)
    lab.write_ndjson(args.out / "labelled.jsonl")
    pool = pl.concat(rest)
    h = pool.filter(pl.col("label") == 0)
    m = pool.filter(pl.col("label") == 1)
    h = h[np.sort(rng.permutation(h.height)[:30]).tolist()]
    m = m[np.sort(rng.permutation(m.height)[:30]).tolist()]
    mixed = pl.concat([h, m])
    mixed = mixed[rng.permutation(mixed.height).tolist()]
    mixed.select("text").write_ndjson(args.out / "mixed_batch.jsonl")
    truth = {"labels": mixed["label"].to_list(), "generators": mixed["generator"].to_list(),
             "model_fraction": round(float(mixed["label"].mean()), 4)}
    (args.out / "mixed_batch_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    print(lab.group_by("domain", "label").len().sort("domain", "label"))
    print(f"wrote {args.out}: {lab.height} labelled, {mixed.height} mixed")


if __name__ == "__main__":
    main()
