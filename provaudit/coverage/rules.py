"""Prompt rules without tests: split a system prompt into rules and find the eval cases exercising each.

A rule is one line, bullet or numbered item of the prompt (sentences of a longer line are separate
rules), or one item of a YAML list (``rules:`` key or a top-level list). Headings (``#``) and short
lines ending in ``:`` are not rules. An eval case exercises a rule when

- embedding: the cosine similarity of rule and case, after removing the eval cases' mean embedding,
  is at least ``min_similarity``, or
- lexical: the case contains rule keywords that are topical (in at most 5% of the eval cases) and whose
  IDF weight (over the eval cases) is at least ``min_lexical`` of the rule's total; a single keyword
  must be confirmed by the embedding: the case is among the 10% of eval cases most similar to the rule
  (so "build" alone does not make a case about building a pipeline exercise a rule about explosives).
  Keywords: the rule's words minus stop words and instruction words such as *always*, *never*, *user*,
  *answer*; plural and -ing/-ed endings folded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from provaudit.errors import InputError

DEFAULTS = {
    "min_similarity": 0.55,
    "min_lexical": 0.25,
    "confirm_quantile": 0.9,
    "max_df": 0.05,
    "examples": 5,
}
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|[a-z][.)])\s+")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_WORD = re.compile(r"[a-z][a-z0-9'-]+")
INSTRUCTION_WORDS = frozenset(
    [
        "always",
        "never",
        "must",
        "should",
        "user",
        "users",
        "assistant",
        "answer",
        "answers",
        "respond",
        "response",
        "responses",
        "reply",
        "asks",
        "ask",
        "asked",
        "request",
        "requests",
        "requested",
        "give",
        "gives",
        "provide",
        "use",
        "using",
        "when",
        "unless",
        "only",
        "don't",
        "do",
        "does",
        "make",
        "sure",
        "please",
        "you",
        "your",
        "yourself",
        "instead",
        "like",
        "want",
        "wants",
    ]
)


def _stem(w: str) -> str:
    for suf in ("ing", "ies", "es", "ed", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 4:
            return w[: -len(suf)] + ("y" if suf == "ies" else "")
    return w


def _keywords(text: str) -> set[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = (w.strip("'-") for w in _WORD.findall(text.lower()))
    return {
        _stem(w) for w in words if len(w) > 2 and w not in ENGLISH_STOP_WORDS and w not in INSTRUCTION_WORDS
    }


def _centred_sims(r: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Cosine similarities after removing the eval cases' mean vector (the component every text shares,
    which otherwise puts every rule close to every case)."""
    mu = e.mean(axis=0)

    def unit(x: np.ndarray) -> np.ndarray:
        x = x - mu
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, n, out=np.zeros_like(x), where=n > 0)

    return unit(r) @ unit(e).T


def split_rules(prompt: str | Path) -> list[dict[str, Any]]:
    """Rules of a system prompt file (text or YAML list): ``[{id, text, line}]`` in prompt order."""
    p = Path(prompt)
    if not p.exists():
        raise InputError("file not found", file=str(prompt))
    if p.suffix.lower() in (".yaml", ".yml"):
        from provaudit.yamlfile import load_yaml

        doc = load_yaml(p, what="system prompt rules")
        items = doc.get("rules") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise InputError("expected a YAML list of rules (or a 'rules:' list)", file=str(p), field="rules")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise InputError(
                    f"rule {i} is {type(item).__name__}, expected a non-empty string",
                    file=str(p),
                    field=f"rules[{i}]",
                )
            out.append({"id": f"R{i + 1}", "text": item.strip(), "line": None})
        return out
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", file=str(p)) from exc
    out = []
    for no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#") or (line.endswith(":") and len(line.split()) <= 6):
            continue
        body = _BULLET.sub("", line)
        sents = [s.strip() for s in _SENT.split(body) if len(s.split()) >= 3]
        for k, s in enumerate(sents):
            out.append({"id": f"L{no}" + (f".{k + 1}" if len(sents) > 1 else ""), "text": s, "line": no})
    if not out:
        raise InputError("no rules found (lines, bullets or sentences of three words or more)", file=str(p))
    return out


def prompt_coverage(
    prompt: str | Path,
    eval: Any,
    *,
    backend: str = "static",
    min_similarity: float = DEFAULTS["min_similarity"],
    min_lexical: float = DEFAULTS["min_lexical"],
) -> dict[str, Any]:
    """For each rule of ``prompt``, the eval cases (prompts) that exercise it; untested rules first."""
    from provaudit.coverage.core import _as_units, _cut, _embed, _r

    rules = split_rules(prompt)
    ev = _as_units(eval, unit="prompt", by=None, what="eval")
    texts, ids = ev.frame["text"].to_list(), ev.frame["record_id"].to_list()
    sims = _centred_sims(_embed([r["text"] for r in rules], backend), _embed(texts, backend))
    case_kw = [_keywords(t) for t in texts]
    df: dict[str, int] = {}
    for kws in case_kw:
        for w in kws:
            df[w] = df.get(w, 0) + 1
    n = len(texts)
    max_df = max(1, int(DEFAULTS["max_df"] * n))
    out = []
    for i, rule in enumerate(rules):
        kws = sorted(_keywords(rule["text"]))
        idf = {w: float(np.log((n + 1) / (df.get(w, 0) + 1)) + 1.0) for w in kws}
        total = sum(idf.values())
        confirm = float(np.quantile(sims[i], DEFAULTS["confirm_quantile"])) if n else 0.0
        matches = []
        for j in range(n):
            hit = [w for w in kws if w in case_kw[j] and df.get(w, 0) <= max_df]
            lex = sum(idf[w] for w in hit) / total if total else 0.0
            by_emb = bool(sims[i, j] >= min_similarity)
            by_lex = bool(hit and lex >= min_lexical and (len(hit) >= 2 or sims[i, j] >= confirm))
            if by_emb or by_lex:
                matches.append((-float(sims[i, j]) - lex, j, hit, lex, by_emb, by_lex))
        matches.sort()
        out.append(
            {
                "id": rule["id"],
                "rule": rule["text"],
                "line": rule["line"],
                "n_cases": len(matches),
                "tested": bool(matches),
                "keywords": kws,
                "case_ids": [ids[j] for _, j, *_ in matches],
                "best_similarity": _r(float(sims[i].max())) if n else None,
                "cases": [
                    {
                        "record_id": ids[j],
                        "text": _cut(texts[j], 200),
                        "similarity": _r(float(sims[i, j])),
                        "lexical": _r(lex),
                        "keywords": hit,
                        "match": "both" if be and bl else ("embedding" if be else "lexical"),
                    }
                    for _, j, hit, lex, be, bl in matches[: DEFAULTS["examples"]]
                ],
            }
        )
    order = sorted(range(len(out)), key=lambda k: (out[k]["tested"], out[k]["n_cases"], k))
    ranked = [out[k] for k in order]
    return {
        "prompt": str(prompt),
        "eval": ev.inputs[0],
        "backend": backend,
        "n_rules": len(out),
        "n_untested": sum(not r["tested"] for r in out),
        "untested_share": _r(sum(not r["tested"] for r in out) / len(out)),
        "min_similarity": min_similarity,
        "min_lexical": min_lexical,
        "rules": ranked,
    }
