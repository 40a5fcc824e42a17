"""Generate a realistic preference file of a given size by recombining the real texts in fixtures/.

Every prompt, chosen and rejected text is made of whole sentences cut from the real corpora
shipped under ``fixtures/`` (HH-RLHF dialogues, AlpacaEval / AlpacaFarm / WizardLM / Vicuna
outputs, OASST completions, HC3 and the human-written fast-detect-gpt / detector-bias texts):
at least three runs of one to three consecutive sentences from texts of one source file,
joined until a target length (log-normal, median about 450 characters,
so the mean output is about 650 characters like HH-RLHF) is reached. No random words are made up.

Duplicates are injected at controlled rates so the duplicate stages do real work:
``--dup-rate`` rows reuse an earlier output verbatim (exact duplicates) and ``--near-rate`` rows
reuse one with a light edit (one to three words dropped or doubled: near duplicates of
Jaccard about 0.85-0.95). Earlier outputs come from a fixed-size reservoir, so generation runs
in constant memory at any size. The same seed and sources give a byte-identical file.

Example::

    python bench/generate.py --rows 100000 --out /tmp/prefs_100k.jsonl
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCES = ("fixtures/scan", "fixtures/style")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
RESERVOIR = 4096
MIN_RUNS = 3


@dataclass
class TextPool:
    """Sentences of the real corpora, grouped by source text and source file."""

    prompts: list[list[str]] = field(default_factory=list)  # per source text, its sentences
    outputs: dict[str, list[list[str]]] = field(default_factory=dict)  # source file -> texts -> sentences

    @property
    def n_outputs(self) -> int:
        return sum(len(v) for v in self.outputs.values())


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text) if s and len(s.strip()) > 1]


def load_pool(sources: list[str | Path]) -> TextPool:
    """Read every fixture file under ``sources`` with provaudit's own reader; split texts into sentences."""
    from provaudit.errors import ProvauditError
    from provaudit.io import read_records

    pool = TextPool()
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix not in (".md", ".py"))
                     if p.is_dir() else [p])
    seen: set[str] = set()
    for f in files:
        try:
            batches = list(read_records(f, skip_bad=True))
        except ProvauditError:
            continue
        outs: list[list[str]] = []
        for b in batches:
            for role, text in zip(b["role"].to_list(), b["text"].to_list()):
                if not text or text in seen:
                    continue
                seen.add(text)
                sents = _sentences(text)
                if not sents:
                    continue
                (pool.prompts if role == "prompt" else outs).append(sents)
        if outs:
            pool.outputs[str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f)] = outs
    if not pool.prompts or not pool.outputs:
        raise SystemExit(f"no usable texts under {', '.join(map(str, sources))}")
    return pool


class Generator:
    """Deterministic stream of preference rows ``{"prompt", "chosen", "rejected"}``."""

    def __init__(self, pool: TextPool, *, seed: int = 0, dup_rate: float = 0.02, near_rate: float = 0.03,
                 median_chars: int = 450, sigma: float = 0.45) -> None:
        self.pool = pool
        self.rng = random.Random(seed)
        self.dup_rate = dup_rate
        self.near_rate = near_rate
        self.mu = math.log(median_chars)
        self.sigma = sigma
        self.files = sorted(pool.outputs)
        self.reservoir: list[str] = []
        self.seen_outputs = 0
        self.injected = {"exact": 0, "near": 0}

    def _target(self) -> int:
        return int(min(4000, max(200, self.rng.lognormvariate(self.mu, self.sigma))))

    def _compose(self, texts: list[list[str]], target: int) -> str:
        """At least three runs of 1-3 consecutive real sentences from texts of one source, up to ``target`` chars.

        Three independent runs make accidental exact or near copies between outputs vanishingly
        rare, so the duplicate rates of the file are the injected ones.
        """
        rng = self.rng
        parts: list[str] = []
        n = runs = tries = 0
        while n < target or runs < MIN_RUNS:
            src = texts[rng.randrange(len(texts))]
            start = rng.randrange(len(src))
            run = src[start:start + rng.randint(1, 3)]
            tries += 1
            if runs and n + len(run[0]) > 2 * target and tries < 20:  # keep one long sentence from dominating
                continue
            for s in run:
                parts.append(s)
                n += len(s) + 1
            runs += 1
        return " ".join(parts)

    def _prompt(self) -> str:
        rng = self.rng
        p = self.pool.prompts[rng.randrange(len(self.pool.prompts))]
        start = rng.randrange(len(p))
        text = " ".join(p[start:start + rng.randint(1, 4)])
        if rng.random() < 0.5:  # most prompts become unique by a second real sentence
            q = self.pool.prompts[rng.randrange(len(self.pool.prompts))]
            text = f"{text} {q[rng.randrange(len(q))]}"
        return text

    def _near(self, text: str) -> str:
        words = text.split(" ")
        if len(words) < 12:
            return text + " " + words[-1]
        for _ in range(self.rng.randint(1, 3)):
            i = self.rng.randrange(1, len(words) - 1)
            if self.rng.random() < 0.5:
                del words[i]
            else:
                words.insert(i, words[i])
        return " ".join(words)

    def _output(self) -> str:
        r = self.rng.random()
        if self.reservoir and r < self.dup_rate:
            self.injected["exact"] += 1
            return self.reservoir[self.rng.randrange(len(self.reservoir))]
        if self.reservoir and r < self.dup_rate + self.near_rate:
            self.injected["near"] += 1
            return self._near(self.reservoir[self.rng.randrange(len(self.reservoir))])
        texts = self.pool.outputs[self.files[self.rng.randrange(len(self.files))]]
        out = self._compose(texts, self._target())
        self.seen_outputs += 1
        if len(self.reservoir) < RESERVOIR:
            self.reservoir.append(out)
        else:
            j = self.rng.randrange(self.seen_outputs)
            if j < RESERVOIR:
                self.reservoir[j] = out
        return out

    def row(self) -> dict[str, str]:
        prompt = self._prompt()
        chosen = self._output()
        rejected = self._output()
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


@functools.lru_cache(maxsize=4)
def _pool(sources: tuple[Path, ...]) -> TextPool:
    """:func:`load_pool`, read once per process for the same sources (the generator only reads it)."""
    return load_pool(list(sources))


def generate(out: str | Path, rows: int, *, seed: int = 0, dup_rate: float = 0.02, near_rate: float = 0.03,
             sources: list[str | Path] | None = None) -> dict:
    """Write ``rows`` preference rows as JSONL to ``out``; return a manifest (also ``<out>.manifest.json``)."""
    srcs = [ROOT / s for s in DEFAULT_SOURCES] if sources is None else [Path(s) for s in sources]
    pool = _pool(tuple(srcs))
    gen = Generator(pool, seed=seed, dup_rate=dup_rate, near_rate=near_rate)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    chars = 0
    with open(out, "w", encoding="utf-8") as fh:
        for _ in range(rows):
            r = gen.row()
            chars += len(r["chosen"]) + len(r["rejected"])
            fh.write(json.dumps(r, ensure_ascii=False))
            fh.write("\n")
    manifest = {
        "rows": rows, "records": 3 * rows, "seed": seed, "dup_rate": dup_rate, "near_rate": near_rate,
        "injected_exact_outputs": gen.injected["exact"], "injected_near_outputs": gen.injected["near"],
        "mean_output_chars": round(chars / max(1, 2 * rows), 1),
        "sources": sorted(pool.outputs), "source_texts": pool.n_outputs + len(pool.prompts),
        "bytes": out.stat().st_size,
    }
    Path(f"{out}.manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, required=True, help="preference rows to write (3 records each)")
    ap.add_argument("--out", required=True, help="output JSONL path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dup-rate", type=float, default=0.02, help="share of outputs that are exact copies")
    ap.add_argument("--near-rate", type=float, default=0.03, help="share of outputs that are light edits")
    ap.add_argument("--source", action="append", default=None,
                    help=f"fixture folder or file to recombine (repeatable; default {', '.join(DEFAULT_SOURCES)})")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    m = generate(a.out, a.rows, seed=a.seed, dup_rate=a.dup_rate, near_rate=a.near_rate, sources=a.source)
    m["seconds"] = round(time.perf_counter() - t, 1)
    json.dump(m, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
