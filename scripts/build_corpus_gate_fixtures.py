"""Cut fixtures/origin/gpt4_simplified_essays.jsonl: GPT-4 text the shipped detector never trained on.

Usage: python scripts/build_corpus_gate_fixtures.py /path/to/shared/data

The 88 GPT-4 rewrites of US 8th-grade essays (Weixin-Liang/ChatGPT-Detector-Bias,
HewlettStudentEssay_GPTsimplify_88.json, MIT), unchanged, as {"text"} lines. scripts/build_detector.py
does not train on them (the student_essays domain has human texts only).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "origin" / "gpt4_simplified_essays.jsonl"


def main(shared: str) -> None:
    src = Path(shared) / "detector-bias" / "HewlettStudentEssay_GPTsimplify_88.json"
    rows = json.loads(src.read_text(encoding="utf-8"))
    OUT.write_text("".join(json.dumps({"text": r["document"]}, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
