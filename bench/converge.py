"""Real-data checks of the style area (writes a Markdown report and a JSON file).

Usage: python bench/converge.py /work/shared/data [--out out/bench_converge] [--backend static|minilm]

1. Real models on the same AlpacaEval instructions: teacher = GPT-4 outputs on the even-numbered
   instructions; every model (GPT-4 itself included) is scored on the odd-numbered ones (403 texts),
   so no scored text is in the teacher reference. Human reference: the shipped default.
2. Known-proportion mixes: held-out GPT-4 answers mixed with held-out human texts (fast-detect-gpt
   originals and HC3 human answers, not in the human reference) at 0-100%, 5 draws each.
3. Label origin on the full HH-RLHF harmless test split and the full GPT-4-judged AlpacaEval pairs.
4. Trend: AlpacaFarm SFT -> PPO (trained on simulated LLM-judge feedback) with text-davinci-003
   (the AlpacaFarm reference outputs) as teacher.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provaudit.style import converge, label_origin
from provaudit.style.teacher import get_teacher_model
from provaudit.style.trends import trend

MODELS = ["gpt4", "gpt4_1106_preview", "text_davinci_003", "alpaca-7b", "vicuna-13b", "wizardlm-13b",
          "zephyr-7b-beta", "llama-2-7b-chat-hf", "oasst-sft-pythia-12b"]
ROLE = {"gpt4": "teacher (held-out half)", "gpt4_1106_preview": "teacher family", "text_davinci_003": "teacher of Alpaca",
        "alpaca-7b": "distilled (davinci-003)", "vicuna-13b": "distilled (ChatGPT)", "wizardlm-13b": "distilled (ChatGPT)",
        "zephyr-7b-beta": "distilled (GPT-4 UltraChat/UltraFeedback)", "llama-2-7b-chat-hf": "non-distilled control",
        "oasst-sft-pythia-12b": "human-data control"}


def outputs(data: Path, name: str) -> list[str]:
    return [r["output"] for r in json.loads((data / "alpaca_eval" / "model_outputs" / f"{name}.json").read_text())]


def held_out_human(data: Path) -> list[str]:
    texts = []
    for name in ("writing", "xsum"):
        d = json.loads((data / "fast-detect-gpt" / f"{name}_gpt-3.5-turbo.raw_data.json").read_text())
        texts += [t.strip() for t in d["original"]]
    for line in (data / "hc3-plus" / "en_val_hc3_si.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        if r["label"] == 0 and len(r["text"]) >= 200:
            texts.append(r["text"].strip())
        if len(texts) >= 700:
            break
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, default=Path("out/bench_converge"))
    ap.add_argument("--backend", choices=["static", "minilm"], default="static")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"backend": args.backend}
    md: list[str] = []
    t0 = time.time()

    gpt4 = outputs(args.data, "gpt4")
    teacher = gpt4[0::2]
    batches = [outputs(args.data, m)[1::2] for m in MODELS]
    res = converge(batches, teacher, None, backend=args.backend, n_boot=500, names=MODELS)
    report["models"] = res
    md += ["## Real models on the same 805 AlpacaEval instructions (teacher: GPT-4, even instructions)",
           "", (f"Scored: each model's outputs on the 403 odd instructions. Backend: {args.backend}. "
           "Human reference: shipped default."), "",
           ("| model | lineage | teacher_likeness [95% CI] | teacher_fraction [CI] | word MLE | style pos | "
           "embed pos | phrase rate / teacher's |"), "|---|---|---|---|---|---|---|---|"]
    for m, r in zip(MODELS, res):
        tf = r["teacher_fraction"]
        md.append(f"| {m} | {ROLE[m]} | {r['teacher_likeness']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
                  f"{tf['alpha']:.2f} [{tf['ci_low']:.2f}, {tf['ci_high']:.2f}] | {r['word_mixture']['alpha']:.2f} | "
                  f"{r['stylometry']['position']:.2f} | {r['embedding']['position']:.2f} | "
                  f"{r['phrases']['relative_to_teacher']:.2f} |")
    print("\n".join(md[-len(MODELS):]), flush=True)

    # 2. known proportions
    human = held_out_human(args.data)
    th = gpt4[1::2]
    model = get_teacher_model(teacher, None, backend=args.backend)
    rows = []
    for p in (0.0, 0.10, 0.25, 0.50, 0.75, 1.00):
        fr, sc, wm = [], [], []
        for s in range(5):
            rng = np.random.default_rng(s)
            n = 300
            k = round(p * n)
            mix = [th[i] for i in rng.permutation(len(th))[:k]] + [human[i] for i in rng.permutation(len(human))[:n - k]]
            lr = model.log_ratio(mix)
            fr.append(model.fraction(lr, n_boot=0)[0])
            sc.append(float(np.mean(1 / (1 + np.exp(-lr)))))
            from provaudit.mixture import estimate_mixture
            wm.append(estimate_mixture(mix, model.word_reference, n_boot=0).alpha)
        rows.append({"true": p, "teacher_fraction_mean": round(float(np.mean(fr)), 4),
                     "teacher_fraction_max_abs_err": round(float(np.max(np.abs(np.array(fr) - p))), 4),
                     "word_mle_mean": round(float(np.mean(wm)), 4), "teacher_likeness_mean": round(float(np.mean(sc)), 4)})
    report["known_mixes"] = rows
    md += ["", "## Known-proportion mixes (held-out GPT-4 answers + held-out human texts, n=300, 5 draws)", "",
           "| true | teacher_fraction (mean) | worst draw error | word-only MLE (mean) | teacher_likeness (mean) |",
           "|---|---|---|---|---|"]
    md += [f"| {r['true']:.2f} | {r['teacher_fraction_mean']:.3f} | {r['teacher_fraction_max_abs_err']:.3f} | "
           f"{r['word_mle_mean']:.3f} | {r['teacher_likeness_mean']:.3f} |" for r in rows]

    # 3. label origin, full files
    with gzip.open(args.data / "hh-rlhf" / "harmless-base_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        hh_rows = [json.loads(line) for line in fh]
    hh_path = args.out / "hh_rlhf_harmless_test.jsonl"
    hh_path.write_text("".join(json.dumps(r) + "\n" for r in hh_rows), encoding="utf-8")
    ae_path = args.data / "alpaca_eval" / "annotations" / "alpaca-farm-ppo-human__alpaca_eval_gpt4.json"
    md += ["", "## Label origin (teacher reference: GPT-4 outputs)", ""]
    report["label_origin"] = {}
    for name, path in (("hh-rlhf harmless test (human labels)", hh_path), ("AlpacaEval GPT-4 judge", ae_path)):
        lo = label_origin(str(path), teacher=teacher, backend=args.backend, name=name)
        report["label_origin"][name] = lo
        md.append(f"- **{name}**: {lo['verdict']} (AI evidence {lo['ai_evidence']}, human {lo['human_evidence']}, "
                  f"{lo['measures']['n_pairs']} pairs)")
        md += [f"  - [{e['points_to']} +{e['weight']}] {e['detail']}" for e in lo["evidence"]]

    # 4. AlpacaFarm SFT -> RLHF trend with davinci-003 reference outputs as teacher
    farm = {k: [r["output"] for r in json.loads((args.data / "alpaca_farm" / f"outputs_{k}.json").read_text())]
            for k in ("baseline", "sft", "rlhf")}
    fr = converge([farm["sft"], farm["rlhf"]], outputs(args.data, "text_davinci_003"), None, backend=args.backend,
                  n_boot=500, names=["alpacafarm-sft", "alpacafarm-ppo"])
    tr = trend(fr)
    report["alpaca_farm"] = {"batches": fr, "trend": tr}
    md += ["", "## AlpacaFarm SFT -> PPO (teacher: text-davinci-003 AlpacaEval outputs)", ""]
    md += [f"- {r['batch']}: teacher_likeness {r['teacher_likeness']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}], "
           f"fraction {r['teacher_fraction']['alpha']:.2f}" for r in fr]
    md.append(f"- slope {tr['slope']:+.3f} [{tr['slope_ci_low']:+.3f}, {tr['slope_ci_high']:+.3f}] -> {tr['verdict']}")
    md += ["", f"_bench/converge.py, {time.time() - t0:.0f} s wall_"]

    (args.out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (args.out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n",
                                          encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
