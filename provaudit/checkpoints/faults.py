"""Seeded evaluation runs over real outputs, with harness faults injected (fixtures, tests, bench).

``simulate_run`` scores real model outputs with a documented synthetic process: item quality
q ~ N(0, 1) (fixed per item by ``item_seed``), a judge win ``outcome_judge_win`` ~ Bernoulli(sigmoid(q))
drawn afresh per run, a reward ``rm_score`` = q + 0.3 z(log words) + N(0, 0.5), an ``extracted_answer``
(the first sentence) and the generation settings. ``inject_fault`` then breaks a share of one run's
samples the way real harness bugs do and scores the broken samples as failures (win 0, reward - 1.5).
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

FAULT_KINDS = ("empty", "truncated", "echo", "duplicate", "extraction", "template", "scores")
TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:"


def _first_sentence(text: str) -> str:
    m = re.match(r"\s*(.{1,200}?[.!?])(\s|$)", text, re.DOTALL)
    return (m.group(1) if m else text.strip()[:200]).strip()


def simulate_run(items: list[dict[str, Any]], *, seed: int, item_seed: int = 0, checkpoint: str = "ckpt",
                 response_key: str = "output") -> list[dict[str, Any]]:
    """One evaluation run: a row per item (sample_id, prompt, response, scores, settings)."""
    q = np.random.default_rng(item_seed).normal(0.0, 1.0, size=len(items))
    rng = np.random.default_rng(seed)
    texts = [it[response_key] for it in items]
    lw = np.log1p([len(t.split()) for t in texts])
    z = (lw - lw.mean()) / (lw.std() or 1.0)
    win = (rng.random(len(items)) < 1 / (1 + np.exp(-q))).astype(float)
    rm = q + 0.3 * z + rng.normal(0.0, 0.5, size=len(items))
    rows = []
    for k, it in enumerate(items):
        rows.append({"sample_id": it["sample_id"], "checkpoint": checkpoint, "prompt": it["instruction"],
                     "response": texts[k], "outcome_judge_win": float(win[k]), "rm_score": round(float(rm[k]), 4),
                     "extracted_answer": _first_sentence(texts[k]), "temperature": 0.7, "max_new_tokens": 512,
                     "prompt_template": "plain"})
    return rows


def rerun(items: list[dict[str, Any]], *, seed: int, item_seed: int = 0, checkpoint: str = "ckpt-rerun",
          swap: float = 0.3, alt_key: str = "alt_output") -> list[dict[str, Any]]:
    """A clean rerun of the same checkpoint: fresh scoring noise, and a share ``swap`` of the outputs
    replaced by a second sample (a sibling model's real output on the same instruction)."""
    rng = np.random.default_rng([seed, 1])
    mixed = [dict(it, output=it[alt_key]) if it.get(alt_key) and rng.random() < swap else it for it in items]
    return simulate_run(mixed, seed=seed + 10_000, item_seed=item_seed, checkpoint=checkpoint)


def inject_fault(rows: list[dict[str, Any]], kind: str, rate: float, *, seed: int) -> tuple[list[dict[str, Any]],
                                                                                           list[str]]:
    """Break ``rate`` of the rows (``kind`` in FAULT_KINDS); returns the new rows and the broken sample ids."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
    rng = np.random.default_rng([seed, 2])
    out = [dict(r) for r in rows]
    n = len(out)
    k = round(rate * n)
    if kind == "template":  # every prompt rewrapped, sampling settings changed: scores not failures
        for r in out:
            r["prompt"] = TEMPLATE.format(instruction=r["prompt"])
            r["prompt_template"] = "alpaca"
            r["temperature"] = 1.0
        return out, [r["sample_id"] for r in out]
    if kind == "truncated":  # a character cap that cuts the longest `rate` of the outputs
        lens = np.array([len(r["response"]) for r in out])
        cap = int(np.sort(lens)[n - k - 1]) if k < n else 1
        hit = [i for i in range(n) if lens[i] > cap]
    else:
        hit = sorted(rng.choice(n, size=k, replace=False).tolist())
    donor = out[hit[0]]["response"] if hit else ""
    for i in hit:
        r = out[i]
        if kind == "empty":
            r["response"] = "" if rng.random() < 0.7 else "  \n"
        elif kind == "truncated":
            r["response"] = r["response"][:cap]
        elif kind == "echo":
            r["response"] = r["prompt"]
        elif kind == "duplicate":
            r["response"] = donor
        elif kind == "extraction":
            r["extracted_answer"] = None if rng.random() < 0.5 else "[invalid]"
        if kind == "scores":
            r["outcome_judge_win"] = None if rng.random() < 0.5 else "error"
            continue
        r["outcome_judge_win"] = 0.0
        if kind != "extraction":
            r["rm_score"] = round(float(r["rm_score"]) - 1.5, 4)
        if kind in ("empty", "truncated", "echo", "duplicate"):
            r["extracted_answer"] = _first_sentence(r["response"]) if r["response"].strip() else None
    return out, [out[i]["sample_id"] for i in hit]

