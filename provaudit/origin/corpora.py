"""Readers for labelled human/model corpora used to build, retrain and benchmark the detector.

Each reader returns a polars frame with ``text``, ``label`` (0 human, 1 model), ``generator``,
``domain`` and ``source``. The paths are always given by the caller: the package never looks for
shared data on its own.
"""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import polars as pl

from provaudit.errors import InputError

LABELLED_SCHEMA = {"text": pl.Utf8, "label": pl.Int8, "generator": pl.Utf8, "domain": pl.Utf8,
                   "source": pl.Utf8}

_FDG_DOMAIN = {"xsum": "news", "writing": "stories", "pubmed": "biomed"}


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=LABELLED_SCHEMA)


def _strip_shared_prefix(a: str, b: str) -> tuple[str, str]:
    """Drop the prompt prefix a human text and its model continuation share (cut at a space)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    cut = a.rfind(" ", 0, n + 1) if n < len(a) else n
    cut = max(cut, 0)
    return a[cut:].strip(), b[cut:].strip()


def read_fast_detect_gpt(folder: Path) -> pl.DataFrame:
    """Fast-DetectGPT ``{domain}_{generator}.raw_data.json`` pairs, with the shared prefix stripped."""
    rows: list[dict] = []
    seen: set[str] = set()
    for f in sorted(Path(folder).glob("*.raw_data.json")):
        dom, gen = f.name.split(".raw_data")[0].split("_", 1)
        data = json.loads(f.read_text())
        for h, m in zip(data["original"], data["sampled"]):
            h2, m2 = _strip_shared_prefix(h, m)
            if h2 not in seen:
                seen.add(h2)
                rows.append({"text": h2, "label": 0, "generator": "human",
                             "domain": _FDG_DOMAIN.get(dom, dom), "source": f"fast-detect-gpt/{f.name}"})
            rows.append({"text": m2, "label": 1, "generator": gen, "domain": _FDG_DOMAIN.get(dom, dom),
                         "source": f"fast-detect-gpt/{f.name}"})
    return _frame(rows)


def read_hc3_plus(path: Path) -> pl.DataFrame:
    """HC3-Plus ``{"text", "label"}`` lines (1 = ChatGPT)."""
    df = pl.read_ndjson(path)
    return df.select(
        pl.col("text").cast(pl.Utf8), pl.col("label").cast(pl.Int8),
        pl.when(pl.col("label") == 1).then(pl.lit("chatgpt")).otherwise(pl.lit("human")).alias("generator"),
        pl.lit("hc3").alias("domain"), pl.lit(f"hc3-plus/{Path(path).name}").alias("source"))


def read_detector_bias(folder: Path) -> pl.DataFrame:
    """Liang et al. detector-bias lists: CS224N abstracts and US 8th-grade essays (human and GPT)."""
    spec = [("CS224N_real_145.json", 0, "human", "abstracts"),
            ("CS224N_gpt3_145.json", 1, "gpt3", "abstracts"),
            ("HewlettStudentEssay_real_88.json", 0, "human", "student_essays"),
            ("HewlettStudentEssay_GPTsimplify_88.json", 1, "gpt4-simplify", "student_essays")]
    rows = []
    for name, label, gen, dom in spec:
        p = Path(folder) / name
        if not p.exists():
            continue
        for d in json.loads(p.read_text()):
            rows.append({"text": d["document"], "label": label, "generator": gen, "domain": dom,
                         "source": f"detector-bias/{name}"})
    return _frame(rows)


_TURN = re.compile(r"\n\n(Human|Assistant): ")


def read_hh_rlhf(path: Path) -> pl.DataFrame:
    """hh-rlhf dialogues split into turns: Human turns are human, Assistant turns the 52B model."""
    rows = []
    seen: set[str] = set()
    with gzip.open(path, "rt") as fh:
        for line in fh:
            d = json.loads(line)
            parts = _TURN.split("\n\n" + d["chosen"].lstrip("\n"))
            for who, txt in zip(parts[1::2], parts[2::2]):
                txt = txt.strip()
                if not txt or txt in seen:
                    continue
                seen.add(txt)
                lab = 0 if who == "Human" else 1
                rows.append({"text": txt, "label": lab, "generator": "human" if lab == 0 else "anthropic-52b",
                             "domain": "dialogue", "source": f"hh-rlhf/{Path(path).name}"})
    return _frame(rows)


def read_alpaca_eval_outputs(folder: Path) -> pl.DataFrame:
    """AlpacaEval model outputs (all model-written), one generator per file."""
    rows = []
    for f in sorted(Path(folder).glob("*.json")):
        for d in json.loads(f.read_text()):
            rows.append({"text": d["output"], "label": 1, "generator": d.get("generator") or f.stem,
                         "domain": "instructions", "source": f"alpaca_eval/model_outputs/{f.name}"})
    return _frame(rows)


def load_shared_corpora(root: Path) -> pl.DataFrame:
    """All labelled corpora under a shared data folder laid out as its MANIFEST describes."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a directory", file=str(root))
    parts = [read_fast_detect_gpt(root / "fast-detect-gpt"),
             read_hc3_plus(root / "hc3-plus" / "en_val_hc3_si.jsonl"),
             read_detector_bias(root / "detector-bias"),
             read_hh_rlhf(root / "hh-rlhf" / "harmless-base_test.jsonl.gz"),
             read_alpaca_eval_outputs(root / "alpaca_eval" / "model_outputs")]
    return pl.concat(parts).filter(pl.col("text").str.len_chars() > 0)
