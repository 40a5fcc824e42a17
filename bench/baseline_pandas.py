"""The naive alternative ``bench/scan.py`` compares against: pandas + datasketch + scikit-learn.

It does the same work as a default ``provaudit scan`` the way a one-off notebook would:
load the whole file with pandas, melt it into one row per text, normalize and hash every
text (exact duplicates), MinHash + MinHashLSH (datasketch, 128 permutations, 16 bands x 8
rows: near duplicates), score each text with a TF-IDF + logistic-regression origin model trained
on the human and model texts shipped in ``fixtures/style``, and write a Parquet table.

Example::

    python bench/baseline_pandas.py prefs.jsonl --out /tmp/baseline.parquet
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "fixtures" / "style"
_WORD = re.compile(r"\w+")


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def _shingles(norm: str) -> list[bytes]:
    w = _WORD.findall(norm.lower())
    if len(w) < 3:
        return [" ".join(w).encode()]
    return [" ".join(w[i:i + 3]).encode() for i in range(len(w) - 2)]


def train_origin_model():
    """TF-IDF (word 1-2 grams) + logistic regression: human.jsonl vs the model-written fixture files."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = [], []
    for name, label in (("human.jsonl", 0), ("teacher_gpt4.jsonl", 1), ("vicuna-13b.jsonl", 1),
                        ("oasst-sft-pythia-12b.jsonl", 1)):
        with open(STYLE / name, encoding="utf-8") as fh:
            for line in fh:
                texts.append(json.loads(line)["text"])
                labels.append(label)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                          LogisticRegression(max_iter=1000, C=4.0))
    model.fit(texts, labels)
    return model


def run(path: str | Path, out: str | Path) -> dict:
    """Run the naive pipeline over a preference JSONL file; return counts and timings."""
    import hashlib

    import pandas as pd
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    df = pd.read_json(path, lines=True)
    df["row"] = range(len(df))
    recs = df.melt(id_vars=["row"], value_vars=[c for c in ("prompt", "chosen", "rejected") if c in df],
                   var_name="role", value_name="text").sort_values(["row", "role"], kind="stable")
    recs["norm"] = recs["text"].map(_normalize)
    recs["text_hash"] = recs["norm"].map(lambda s: hashlib.md5(s.encode()).hexdigest())
    recs["exact_dup"] = recs.duplicated("text_hash")
    lsh = MinHashLSH(num_perm=128, params=(16, 8))
    near = []
    for i, (norm, dup) in enumerate(zip(recs["norm"], recs["exact_dup"])):
        if dup:
            near.append(False)
            continue
        m = MinHash(num_perm=128, seed=1)
        m.update_batch(_shingles(norm))
        near.append(bool(lsh.query(m)))
        lsh.insert(i, m)
    recs["near_dup"] = near
    model = train_origin_model()
    recs["p_model"] = model.predict_proba(recs["text"].tolist())[:, 1]
    recs.drop(columns=["norm"]).to_parquet(out)
    outputs = recs[recs["role"] != "prompt"]
    return {"rows": len(df), "records": len(recs), "seconds": time.perf_counter() - t0,
            "exact_duplicates": int(outputs["exact_dup"].sum()), "near_duplicates": int(outputs["near_dup"].sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.input, a.out), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
