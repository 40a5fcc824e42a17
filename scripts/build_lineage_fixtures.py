"""Cut the lineage/erasure fixtures (fixtures/lineage/) from the shared corpora.

Usage: python scripts/build_lineage_fixtures.py /work/shared/data [fixtures/lineage]

Deterministic: fixed row ranges, no randomness. Adds a synthetic ``user_id`` column (the
corpora have none) so that subject-access and erasure requests can be exercised, and plants
one real human-written essay (ChatGPT-Detector-Bias, Hewlett student essay #0) as a response in
two training sets under user ``u-0042``: the record lineage tests trace.
"""
from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

PLANTED_USER = "u-0042"
PLANTED_PROMPT = "Write a short essay for your class about the topic you were given."


def user_for(i: int, offset: int) -> str:
    """Deterministic synthetic user ids, never equal to the planted user."""
    return f"u-{1000 + (offset + i * 7) % 37:04d}"


def main(shared: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    planted = json.loads((shared / "detector-bias/HewlettStudentEssay_real_88.json").read_text())[0]["document"]
    planted = planted.strip()

    # 1. SFT set (Alpaca schema, JSONL): alpaca-7b outputs 0..59, planted essay at row 17
    alpaca = json.loads((shared / "alpaca_eval/model_outputs/alpaca-7b.json").read_text())
    rows = []
    for i, r in enumerate(alpaca[:60]):
        user = PLANTED_USER if i == 5 else user_for(i, 0)
        rows.append({"instruction": r["instruction"], "output": r["output"], "generator": r["generator"],
                     "user_id": user})
    rows.insert(17, {"instruction": PLANTED_PROMPT, "output": planted, "generator": "human",
                     "user_id": PLANTED_USER})
    with open(out / "sft_train.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")

    # 2. preference set (HH-RLHF transcripts, CSV with multi-line quoted cells): rows 0..29, planted at row 9
    with gzip.open(shared / "hh-rlhf/harmless-base_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        hh = [json.loads(line) for line in fh]
    prefs = [{"chosen": r["chosen"], "rejected": r["rejected"], "user_id": user_for(i, 11)}
             for i, r in enumerate(hh[:30])]
    prefix = f"\n\nHuman: {PLANTED_PROMPT}\n\nAssistant: "
    prefs.insert(9, {"chosen": prefix + planted, "rejected": prefix + "I can't write that for you.",
                     "user_id": PLANTED_USER})
    with open(out / "prefs_train.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["chosen", "rejected", "user_id"])
        w.writeheader()
        w.writerows(prefs)

    # 3. continued fine-tune data for a child checkpoint (HH-RLHF, JSONL): rows 100..129, no planted user
    with open(out / "dpo_round2.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for i, r in enumerate(hh[100:130]):
            fh.write(json.dumps({"chosen": r["chosen"], "rejected": r["rejected"], "user_id": user_for(i, 23)},
                                ensure_ascii=False) + "\n")

    # 4. eval set (JSON array): GPT-4 outputs on instructions 40..79 (20 instructions shared with the SFT set)
    gpt4 = json.loads((shared / "alpaca_eval/model_outputs/gpt4.json").read_text())
    evals = [{"instruction": r["instruction"], "output": r["output"], "generator": r["generator"]}
             for r in gpt4[40:80]]
    (out / "eval_set.json").write_text(json.dumps(evals, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path("fixtures/lineage"))
