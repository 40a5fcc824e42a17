"""Build the eval-integrity fixtures: real outputs, seeded harness faults, simulated annotator pools.

Usage: python scripts/build_integrity_fixtures.py /work/shared/data [--out fixtures/integrity]

* ``outputs.jsonl``: 120 AlpacaEval instructions (both outputs at most 1,500 characters) with the real
  vicuna-13b output and, as a second sample of the same instruction, the wizardlm-13b output.
* ``run_a.jsonl`` (checkpoint A), ``rerun_a.jsonl`` (a clean rerun of A: fresh scoring noise, 30% of the
  outputs replaced by the second sample) and ``fault_<kind>.jsonl`` (the rerun with a harness fault on 25%
  of the samples: empty, truncated, echo, duplicate, extraction, scores; template rewraps every prompt and
  changes the temperature), scored by :mod:`provaudit.checkpoints.faults` (seeds below).
* ``labels_drift.jsonl.gz``: 6 batches x 60 real AlpacaEval pairs (from
  ``fixtures/style/alpaca_eval_gpt4_annotations.json``) x 3 of 5 simulated annotators that follow a
  verbosity-biased judge from batch b03 (:func:`provaudit.style.labelers.simulate_pool`).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provaudit.checkpoints.faults import FAULT_KINDS, inject_fault, rerun, simulate_run
from provaudit.style.labelers import simulate_pool

SEED = 15
N_ITEMS = 120
MAX_CHARS = 1500


def write_jsonl(path: Path, rows: list[dict]) -> None:
    opener = (lambda: gzip.GzipFile(path, "wb", mtime=0)) if path.suffix == ".gz" else None
    if opener is not None:  # byte-identical rebuilds: no timestamp in the gzip header
        with opener() as raw, io.TextIOWrapper(raw, encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n")
        return
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n")


def load_items(data: Path) -> list[dict]:
    src = data / "alpaca_eval" / "model_outputs"
    a = json.loads((src / "vicuna-13b.json").read_text(encoding="utf-8"))
    b = json.loads((src / "wizardlm-13b.json").read_text(encoding="utf-8"))
    items = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x["instruction"] != y["instruction"]:
            continue
        if not (x["output"].strip() and y["output"].strip()):
            continue
        if len(x["output"]) > MAX_CHARS or len(y["output"]) > MAX_CHARS:
            continue
        items.append({"sample_id": f"ae-{i}", "instruction": x["instruction"], "output": x["output"].strip(),
                      "alt_output": y["output"].strip(), "dataset": x["dataset"]})
        if len(items) == N_ITEMS:
            break
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="path of the shared data (with alpaca_eval/)")
    ap.add_argument("--out", type=Path, default=ROOT / "fixtures" / "integrity")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    items = load_items(args.data)
    write_jsonl(args.out / "outputs.jsonl", items)
    write_jsonl(args.out / "run_a.jsonl", simulate_run(items, seed=SEED, item_seed=SEED, checkpoint="A"))
    again = rerun(items, seed=SEED + 1, item_seed=SEED, checkpoint="A")
    write_jsonl(args.out / "rerun_a.jsonl", again)
    for kind in FAULT_KINDS:
        rows, _ = inject_fault(again, kind, 0.25, seed=SEED + 2)
        write_jsonl(args.out / f"fault_{kind}.jsonl", rows)
    pairs = json.loads((ROOT / "fixtures" / "style" / "alpaca_eval_gpt4_annotations.json").read_text(encoding="utf-8"))
    drift = simulate_pool(pairs, n_batches=6, items_per_batch=60, drift_start=3, seed=SEED)
    write_jsonl(args.out / "labels_drift.jsonl.gz", drift.to_dicts())
    print(f"wrote {len(items)} items and {len(FAULT_KINDS) + 4} files to {args.out}")


if __name__ == "__main__":
    main()
