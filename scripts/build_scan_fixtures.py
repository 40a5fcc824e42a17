"""Cut the small real-data fixtures under fixtures/scan/ from the public corpora.

Usage: python scripts/build_scan_fixtures.py /path/to/shared/data

Each fixture exercises one input schema or format with real texts (see fixtures/scan/SOURCES.md).
Deterministic: fixed row ranges, no sampling.
"""
from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

import polars as pl

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "scan"


def _jsonl(path: Path, rows: list[dict], gz: bool = False) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    if gz:
        with gzip.GzipFile(path, "wb", mtime=0) as fh:
            fh.write(data.encode("utf-8"))
    else:
        path.write_text(data, encoding="utf-8")


def _hh_turns(transcript: str) -> list[dict]:
    """'\n\nHuman: ...\n\nAssistant: ...' -> [{role, content}, ...]"""
    import re

    parts = re.split(r"\n\n(Human|Assistant): ?", "\n\n" + transcript.lstrip("\n"))
    turns = []
    for i in range(1, len(parts) - 1, 2):
        role = "user" if parts[i] == "Human" else "assistant"
        turns.append({"role": role, "content": parts[i + 1].strip()})
    return turns


def main(shared: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.open(shared / "hh-rlhf" / "harmless-base_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        hh = [json.loads(line) for line in fh]

    # HH-RLHF transcripts, as shipped (gzip JSONL)
    _jsonl(OUT / "hh_rlhf.jsonl.gz", hh[:200], gz=True)

    # TRL pairs, strings: the same HH rows split into prompt / final responses
    trl = []
    for row in hh[200:320]:
        c, r = _hh_turns(row["chosen"]), _hh_turns(row["rejected"])
        if len(c) < 2 or c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
            continue
        prompt = "\n\n".join(f"{t['role']}: {t['content']}" for t in c[:-1])
        trl.append({"prompt": prompt, "chosen": c[-1]["content"], "rejected": r[-1]["content"]})
    _jsonl(OUT / "trl_pairs.jsonl", trl[:100])

    # TRL conversational pairs: message lists (implicit prompt = shared prefix)
    trl_msgs = []
    for row in hh[320:420]:
        c, r = _hh_turns(row["chosen"]), _hh_turns(row["rejected"])
        if c and r and c[-1]["role"] == "assistant" and r[-1]["role"] == "assistant":
            trl_msgs.append({"chosen": c, "rejected": r})
    _jsonl(OUT / "trl_messages.jsonl", trl_msgs[:80])

    # chat messages (SFT conversations) with a user id, for metadata and lineage
    msgs = [{"messages": _hh_turns(row["chosen"]), "user_id": f"u{(i % 7) + 100}"} for i, row in enumerate(hh[420:500])]
    _jsonl(OUT / "chat_messages.jsonl", msgs)

    mo = shared / "alpaca_eval" / "model_outputs"
    gpt4 = json.loads((mo / "gpt4.json").read_text(encoding="utf-8"))
    vicuna = json.loads((mo / "vicuna-13b.json").read_text(encoding="utf-8"))
    oasst = json.loads((mo / "oasst-sft-pythia-12b.json").read_text(encoding="utf-8"))
    wizard = json.loads((mo / "wizardlm-13b.json").read_text(encoding="utf-8"))

    # AlpacaEval model outputs: instruction/output/generator (Alpaca schema), a JSON array
    (OUT / "alpaca_eval_gpt4.json").write_text(json.dumps(gpt4[:120], ensure_ascii=False, indent=1), encoding="utf-8")

    # ShareGPT conversations from vicuna's answers
    share = [{"id": f"vicuna-{i}", "conversations": [{"from": "human", "value": r["instruction"]},
                                                     {"from": "gpt", "value": r["output"]}]}
             for i, r in enumerate(vicuna[120:200])]
    _jsonl(OUT / "sharegpt_vicuna.jsonl", share)

    # prompt/completion as CSV (with a source column) from the human-data control model
    with open(OUT / "oasst_prompt_completion.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "completion", "source"])
        for r in oasst[200:280]:
            w.writerow([r["instruction"], r["output"], r["generator"]])

    # Alpaca SFT data (instruction/input/output) from AlpacaFarm's SFT outputs
    sft = json.loads((shared / "alpaca_farm" / "outputs_sft.json").read_text(encoding="utf-8"))
    (OUT / "alpaca_farm_sft.json").write_text(json.dumps(sft[:100], ensure_ascii=False, indent=1), encoding="utf-8")

    # pairwise GPT-4 judgements (AlpacaEval annotations)
    ann = json.loads((shared / "alpaca_eval" / "annotations" /
                      "alpaca-farm-ppo-human__alpaca_eval_gpt4.json").read_text(encoding="utf-8"))
    (OUT / "alpaca_eval_judgements.json").write_text(json.dumps(ann[:100], ensure_ascii=False, indent=1),
                                                     encoding="utf-8")

    # UltraFeedback-style: one instruction, completions from several models; ratings where a judge gave one
    uf = []
    for a in ann[100:160]:
        pref = a.get("preference")
        r1 = 1.0 if pref == 1 else 0.0 if pref == 2 else 0.5
        uf.append({"instruction": a["instruction"], "source": a.get("dataset"), "completions": [
            {"model": a["generator_1"], "response": a["output_1"], "overall_score": r1},
            {"model": a["generator_2"], "response": a["output_2"], "overall_score": 1.0 - r1},
        ]})
    _jsonl(OUT / "ultrafeedback_style.jsonl", uf)

    # unpaired texts with labels (detector corpora come like this), as Parquet
    hc3 = [json.loads(line) for line in (shared / "hc3-plus" / "en_val_hc3_si.jsonl").open(encoding="utf-8")]
    pl.DataFrame(hc3[:150]).write_parquet(OUT / "hc3_texts.parquet")

    # wizardlm answers to the gpt4 fixture's instructions: a second batch for overlap tests (no text overlap)
    (OUT / "wizardlm_outputs.json").write_text(json.dumps(wizard[:120], ensure_ascii=False, indent=1),
                                               encoding="utf-8")
    print(f"wrote fixtures to {OUT}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
