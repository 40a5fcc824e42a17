"""Leak-gate false alarms on clean splits and planted-leak detection (issue 11, docs/overlap.md).

Usage: python bench/overlap.py /path/to/shared/data [--splits 3] [--plant 20] [--json-out FILE]

For each corpus (HH-RLHF harmless test, UltraFeedback-style pairs built from the AlpacaEval GPT-4
annotations, AlpacaEval GPT-4 outputs) the rows are cut into ``--splits`` contiguous splits; every
split is registered as an eval set and every other split scanned against it with rules/gate.yaml.
A clean split that fails ``no_eval_exact_overlap`` or ``max_eval_near_overlap`` is a false alarm.
"Before" counts every matched record (the rule before issue 11: trivial matches included); "after"
counts substantive texts only. Then ``--plant`` eval records of 20+ words are added to the scanned
split (as prompt/completion rows) and the leak check must count every one of them.
``reused`` counts batch outputs that match an eval output only under a different prompt (a reused
response, not the eval case: docs/overlap.md), reported apart and not a leak.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provaudit.pipeline import register, scan

GATE = Path(__file__).resolve().parent.parent / "rules" / "gate.yaml"
NEAR_MAX = 0.01  # rules/gate.yaml max_eval_near_overlap


def _corpora(shared: Path) -> dict[str, tuple[list[dict], list[str]]]:
    """name -> (rows, long texts of each row usable as planted leaks)."""
    with gzip.open(shared / "hh-rlhf" / "harmless-base_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        hh = [json.loads(line) for line in fh]
    ann = json.loads((shared / "alpaca_eval" / "annotations" /
                      "alpaca-farm-ppo-human__alpaca_eval_gpt4.json").read_text(encoding="utf-8"))
    uf = []
    for a in ann:
        pref = a.get("preference")
        r1 = 1.0 if pref == 1 else 0.0 if pref == 2 else 0.5
        uf.append({"instruction": a["instruction"], "completions": [
            {"model": a["generator_1"], "response": a["output_1"], "overall_score": r1},
            {"model": a["generator_2"], "response": a["output_2"], "overall_score": 1.0 - r1}]})
    ae = json.loads((shared / "alpaca_eval" / "model_outputs" / "gpt4.json").read_text(encoding="utf-8"))
    ae = [{"instruction": r["instruction"], "output": r["output"], "generator": r["generator"]} for r in ae]

    def hh_last(t: str) -> str:
        return t.rsplit("\n\nAssistant:", 1)[-1].strip()

    return {"hh-rlhf": (hh, [hh_last(r["chosen"]) for r in hh]),
            "ultrafeedback-style": (uf, [r["completions"][0]["response"] for r in uf]),
            "alpaca_eval": (ae, [r["output"] for r in ae])}


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _leak_values(ov: dict | None) -> tuple[dict, dict]:
    if not ov:
        z = {"exact": 0, "near_rate": 0.0}
        return z, z
    total = ov["batch_records"] or 1
    trivial_near = ov["trivial_records"] - ov["trivial_exact_records"]
    before = {"exact": ov["exact_records"] + ov["trivial_exact_records"],
              "near_rate": round((ov["near_records"] + trivial_near) / total, 6)}
    after = {"exact": ov["exact_records"], "near_rate": ov["near_rate"]}
    return before, after


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shared")
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--plant", type=int, default=20)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, (rows, longs) in _corpora(Path(args.shared)).items():
            k = args.splits
            bounds = [round(i * len(rows) / k) for i in range(k + 1)]
            files = [_write(work / f"{name}-{i}.jsonl", rows[bounds[i]:bounds[i + 1]]) for i in range(k)]
            res = {"pairs": 0, "false_alarms_before": 0, "false_alarms_after": 0, "trivial_matches": 0,
                   "planted": 0, "planted_caught": 0, "examples_before": [], "alarms_after": [],
                   "reused": 0, "reused_examples": []}
            for i in range(k):
                cat = work / f"{name}-cat-{i}.duckdb"
                register(files[i], tags=["eval"], catalog=cat, name=f"eval{i}")
                plant = [t for t in longs[bounds[i]:bounds[i + 1]] if len(re.findall(r"\w+", t)) >= 20]
                plant = plant[:: max(1, len(plant) // args.plant)][: args.plant]
                leak = _write(work / f"{name}-leak-{i}.jsonl",
                              [{"prompt": "Continue.", "completion": t} for t in plant])
                for j in range(k):
                    if j == i:
                        continue
                    r = scan(files[j], catalog=cat, gate=GATE, record=False, origin=False)
                    ov = next(iter(r.summary["overlap"]["datasets"]), None)
                    before, after = _leak_values(ov)
                    res["pairs"] += 1
                    alarm_b = before["exact"] > 0 or before["near_rate"] > NEAR_MAX
                    alarm_a = after["exact"] > 0 or after["near_rate"] > NEAR_MAX
                    res["false_alarms_before"] += alarm_b
                    res["false_alarms_after"] += alarm_a
                    res["trivial_matches"] += ov["trivial_records"] if ov else 0
                    res["reused"] += (ov or {}).get("reused_records", 0)
                    if ov and ov.get("reused_examples") and len(res["reused_examples"]) < 3:
                        res["reused_examples"].append({"eval": i, "batch": j, "examples": ov["reused_examples"][:2]})
                    if alarm_b and len(res["examples_before"]) < 3:
                        res["examples_before"].append({"eval": i, "batch": j, **before,
                                                       "trivial": (ov or {}).get("trivial_examples", [])[:3]})
                    if alarm_a:
                        res["alarms_after"].append({"eval": i, "batch": j, **after, "examples": ov["examples"]})
                    rl = scan([files[j], leak], catalog=cat, gate=GATE, record=False, origin=False)
                    ovl = next(iter(rl.summary["overlap"]["datasets"]), None) or {}
                    # the planted rows' prompt ("Continue.") is trivial: every new substantive match is a leak
                    caught = ovl.get("exact_records", 0) - after["exact"]
                    res["planted"] += len(plant)
                    if "no_eval_exact_overlap" in rl.summary["gate"]["failed"]:
                        res["planted_caught"] += min(caught, len(plant))
            report[name] = res
            print(f"{name}: {res['pairs']} clean split pairs, leak-gate false alarms before {res['false_alarms_before']}"
                  f", after {res['false_alarms_after']} ({res['trivial_matches']} trivial matches, {res['reused']} reused "
              f"responses reported apart); "
                  f"planted 20+ word leaks caught {res['planted_caught']}/{res['planted']}", flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False))


if __name__ == "__main__":
    main()
