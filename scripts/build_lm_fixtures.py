"""Score a held-out slice of the origin fixtures with the bundled language model (fixtures/origin/lm_features.jsonl).

Usage: python scripts/build_lm_fixtures.py [--labelled fixtures/origin/labelled.jsonl] [--out fixtures/origin]

``labelled.jsonl`` is cut from the shared corpora by ``scripts/build_origin_fixtures.py`` and kept out of
the shipped detectors' training, so these texts are held out. Takes the human news and stories texts
(``HUMAN_PER_DOMAIN`` each) and every text of ``GENERATOR`` there, and stores each text's LM features
(``provaudit.origin.lm.LM_FEATURES``, fp32 CPU, 128 tokens) next to its label: the tests compare the
full detector with the fast one on them without rescoring (rescoring ~60 texts takes minutes on 2 cores),
and rescore one text to check the stored values still hold. Deterministic (first texts in file order).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provaudit.origin.lm import LM_FEATURES, MAX_TOKENS, FeatureCache, cache_root

GENERATOR = "gpt-3.5-turbo"
DOMAINS = ("news", "stories")
HUMAN_PER_DOMAIN = 15


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labelled", type=Path, default=ROOT / "fixtures" / "origin" / "labelled.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "fixtures" / "origin")
    args = ap.parse_args()
    df = pl.read_ndjson(args.labelled).filter(pl.col("domain").is_in(list(DOMAINS)))
    human = pl.concat([df.filter((pl.col("domain") == d) & (pl.col("label") == 0)).head(HUMAN_PER_DOMAIN)
                       for d in DOMAINS])
    model = df.filter(pl.col("generator") == GENERATOR)
    sel = pl.concat([human, model])
    x = FeatureCache(cache_root() / "lm_features" / "fixtures.parquet").features(sel["text"].to_list(), chunk=16)
    rows = []
    for r, feats in zip(sel.iter_rows(named=True), x):
        rows.append({**{k: r[k] for k in ("text", "label", "generator", "domain")},
                     "lm": {f: round(float(v), 6) for f, v in zip(LM_FEATURES, feats)}})
    out = args.out / "lm_features.jsonl"
    out.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    print(f"wrote {out}: {len(rows)} texts ({human.height} human, {model.height} {GENERATOR}), "
          f"{MAX_TOKENS} tokens each")


if __name__ == "__main__":
    main()
