"""Cut the real-data fixtures under fixtures/overlap/ (contamination vs boilerplate overlap tests).

Usage: python scripts/build_overlap_fixtures.py /path/to/shared/data

Deterministic: fixed row ranges, lines copied unchanged (see fixtures/overlap/SOURCES.md).
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "overlap"
HH_ROWS = (1001, 1601)          # the batch: rows 1001-1600 of the HH-RLHF harmless test split
MATH_ROWS = (133, 272, 613, 622, 793)
HH_REUSED = (237, 2291)  # two rows whose last assistant turn is the same 104-word answer to different questions  # AlpacaEval instructions with numbers (one-line math questions)


def main(shared: str) -> None:
    root = Path(shared)
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "hh-rlhf" / "harmless-base_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    data = "".join(line + "\n" for line in lines[HH_ROWS[0]:HH_ROWS[1]])
    with gzip.GzipFile(OUT / "hh_rlhf_1001_1600.jsonl.gz", "wb", mtime=0) as gz:
        gz.write(data.encode("utf-8"))
    (OUT / "hh_rlhf_reused_answer.jsonl").write_text("".join(lines[i] + "\n" for i in HH_REUSED), encoding="utf-8")
    rows = json.loads((root / "alpaca_eval" / "model_outputs" / "gpt4.json").read_text(encoding="utf-8"))
    math = [rows[i] for i in MATH_ROWS]
    (OUT / "alpaca_eval_math.json").write_text(json.dumps(math, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                                               encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
