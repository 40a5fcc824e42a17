"""Cut the small real-text fixtures of the style area from the shared corpora.

Usage: python scripts/build_style_fixtures.py /work/shared/data [--out fixtures/style]
Deterministic: fixed index ranges (no sampling), so re-running gives identical files.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    print(f"{path}: {len(rows)} rows")


def _strip_pubmed(text: str) -> str:
    m = re.search(r"Answer:\s*", text)
    return text[m.end():] if m else text


def human_rows(data: Path) -> list[dict]:
    """Human-written texts from several genres (essays, news, stories, abstracts, answers)."""
    rows: list[dict] = []
    fdg = data / "fast-detect-gpt"
    for name, n in (("writing", 120), ("xsum", 120), ("pubmed", 100)):
        d = json.loads((fdg / f"{name}_gpt-3.5-turbo.raw_data.json").read_text())
        for i, text in enumerate(d["original"][:n]):
            text = _strip_pubmed(text) if name == "pubmed" else text
            rows.append({"source": f"fast-detect-gpt/{name}", "index": i, "text": text.strip()})
    for name, n in (("CS224N_real_145", 100), ("HewlettStudentEssay_real_88", 60)):
        d = json.loads((data / "detector-bias" / f"{name}.json").read_text())
        for i, r in enumerate(d[:n]):
            rows.append({"source": f"detector-bias/{name}", "index": i, "text": r["document"].strip()})
    k = 0
    with open(data / "hc3-plus" / "en_val_hc3_si.jsonl", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            r = json.loads(line)
            if r["label"] == 0 and len(r["text"]) >= 200:
                rows.append({"source": "hc3-plus/en_val_hc3_si", "index": i, "text": r["text"].strip()})
                k += 1
                if k >= 200:
                    break
    return rows


def default_human_reference(data: Path) -> list[dict]:
    """MIT-licensed human texts shipped in the package as the default human reference."""
    rows: list[dict] = []
    fdg = data / "fast-detect-gpt"
    for name, lo, hi in (("xsum_gpt-neox-20b", 200, 380), ("writing_gpt-j-6B", 200, 380),
                         ("pubmed_davinci", 100, 150)):
        d = json.loads((fdg / f"{name}.raw_data.json").read_text())
        for i, text in enumerate(d["original"][lo:hi], start=lo):
            text = _strip_pubmed(text) if name.startswith("pubmed") else text
            rows.append({"source": f"fast-detect-gpt/{name}", "index": i, "text": text.strip()})
    for name, lo in (("CS224N_real_145", 100), ("HewlettStudentEssay_real_88", 60)):
        d = json.loads((data / "detector-bias" / f"{name}.json").read_text())
        rows.extend({"source": f"detector-bias/{name}", "index": i, "text": r["document"].strip()}
                    for i, r in enumerate(d[lo:], start=lo))
    return rows


def model_rows(data: Path, name: str, n: int, start: int = 0) -> list[dict]:
    d = json.loads((data / "alpaca_eval" / "model_outputs" / f"{name}.json").read_text())
    return [{"generator": r["generator"], "index": i, "instruction": r["instruction"], "text": r["output"]}
            for i, r in enumerate(d) if start <= i < start + n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="the shared data directory (contains MANIFEST.md)")
    ap.add_argument("--out", type=Path, default=ROOT / "fixtures" / "style")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "human.jsonl", human_rows(args.data))
    _write_jsonl(out / "teacher_gpt4.jsonl", model_rows(args.data, "gpt4", 500))
    for name in ("vicuna-13b", "oasst-sft-pythia-12b"):
        _write_jsonl(out / f"{name}.jsonl", model_rows(args.data, name, 150, start=500))
    ann = json.loads((args.data / "alpaca_eval" / "annotations"
                      / "alpaca-farm-ppo-human__alpaca_eval_gpt4.json").read_text())
    (out / "alpaca_eval_gpt4_annotations.json").write_text(
        json.dumps(ann[:300], ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{out / 'alpaca_eval_gpt4_annotations.json'}: 300 rows")
    with gzip.open(args.data / "hh-rlhf" / "harmless-base_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        hh = [json.loads(next(fh)) for _ in range(300)]
    _write_jsonl(out / "hh_rlhf_harmless.jsonl", hh)
    pkg = ROOT / "provaudit" / "style" / "data" / "human_reference.jsonl.gz"
    pkg.parent.mkdir(parents=True, exist_ok=True)
    rows = default_human_reference(args.data)
    with open(pkg, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode())
    print(f"{pkg}: {len(rows)} rows")


if __name__ == "__main__":
    main()
