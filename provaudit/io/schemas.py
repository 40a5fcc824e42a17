"""Schema detection: turn one raw row into normalized text records.

A schema knows which columns it needs, how to recognise a row, and how to split the row
into records with a role (prompt / chosen / rejected / response / text). Detection looks
at the first row; every later row must fit the same schema, and a row that does not names
the field that is wrong.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class FieldError(Exception):
    """A row that does not fit its schema; ``field`` names the column."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Rec:
    role: str
    text: str
    k: int | None = None          # position among several records of the same role in one row
    model: str | None = None
    rating: float | None = None


@dataclass(frozen=True)
class Schema:
    name: str
    description: str
    detect: Callable[[dict[str, Any]], bool]
    extract: Callable[[dict[str, Any]], list[Rec]]
    consumes: Callable[[dict[str, Any]], set[str]]
    needs: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------- helpers

def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _need_str(row: dict[str, Any], key: str, *, allow_empty: bool = True) -> str:
    if key not in row:
        raise FieldError(key, "missing field")
    v = row[key]
    if not isinstance(v, str):
        raise FieldError(key, f"expected a string, got {_type_name(v)}")
    if not allow_empty and not v.strip():
        raise FieldError(key, "empty text")
    return v


def _opt_str(row: dict[str, Any], key: str) -> str | None:
    v = row.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, (str, int, float)):
        raise FieldError(key, f"expected a string, got {_type_name(v)}")
    return str(v)


def _opt_float(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise FieldError(key, f"expected a number, got {v!r:.40}") from None


def _is_messages(v: Any, role_key: str = "role", content_key: str = "content") -> bool:
    return (isinstance(v, list) and len(v) > 0 and isinstance(v[0], dict)
            and role_key in v[0] and content_key in v[0])


_ASSISTANT = {"assistant", "gpt", "model", "bot", "chatgpt", "bing", "claude"}
_USERISH = {"user", "human", "system", "prompter", "tool", "function", "ipython"}


def _messages(v: Any, fld: str, role_key: str = "role", content_key: str = "content") -> list[tuple[str, str]]:
    if not isinstance(v, list) or not v:
        raise FieldError(fld, f"expected a non-empty list of messages, got {_type_name(v)}")
    out = []
    for i, m in enumerate(v):
        if not isinstance(m, dict):
            raise FieldError(f"{fld}[{i}]", f"expected a message object, got {_type_name(m)}")
        if role_key not in m or content_key not in m:
            raise FieldError(f"{fld}[{i}]", f"message needs '{role_key}' and '{content_key}'")
        content = m[content_key]
        if isinstance(content, list):  # multimodal content parts: keep the text parts
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise FieldError(f"{fld}[{i}].{content_key}", f"expected a string, got {_type_name(content)}")
        role = m[role_key]
        if not isinstance(role, str):
            raise FieldError(f"{fld}[{i}].{role_key}", f"expected a string, got {_type_name(role)}")
        out.append((role.lower(), content))
    return out


def _render(turns: Sequence[tuple[str, str]]) -> str:
    """One prompt text from turns: the content alone for a single turn, labelled turns otherwise."""
    if len(turns) == 1:
        return turns[0][1]
    return "\n\n".join(f"{role}: {content}" for role, content in turns)


def _split_last_assistant(turns: list[tuple[str, str]], fld: str) -> tuple[list[tuple[str, str]], str]:
    if turns[-1][0] not in _ASSISTANT:
        raise FieldError(fld, f"the last message is from '{turns[-1][0]}', expected an assistant turn")
    return turns[:-1], turns[-1][1]


# ---------------------------------------------------------------- TRL preference pairs

def _trl_detect(row: dict[str, Any]) -> bool:
    if "chosen" not in row or "rejected" not in row:
        return False
    if "prompt" in row:
        return True
    return _is_messages(row.get("chosen"))


def _trl_side(row: dict[str, Any], key: str) -> tuple[list[tuple[str, str]] | None, str]:
    v = row.get(key)
    if key not in row:
        raise FieldError(key, "missing field")
    if isinstance(v, str):
        return None, v
    if isinstance(v, list):
        turns = _messages(v, key)
        prefix, last = _split_last_assistant(turns, key)
        return prefix, last
    raise FieldError(key, f"expected a string or a list of messages, got {_type_name(v)}")


def _trl_extract(row: dict[str, Any]) -> list[Rec]:
    prompt_text: str | None = None
    if "prompt" in row:
        p = row["prompt"]
        if isinstance(p, str):
            prompt_text = p
        elif isinstance(p, list):
            prompt_text = _render(_messages(p, "prompt"))
        else:
            raise FieldError("prompt", f"expected a string or a list of messages, got {_type_name(p)}")
    c_prefix, chosen = _trl_side(row, "chosen")
    _, rejected = _trl_side(row, "rejected")
    if prompt_text is None:  # implicit prompt: the shared prefix of the chosen conversation
        prompt_text = _render(c_prefix) if c_prefix else ""
    recs = []
    if prompt_text:
        recs.append(Rec("prompt", prompt_text))
    recs += [Rec("chosen", chosen, model=_opt_str(row, "chosen_model"), rating=_opt_float(row, "score_chosen")),
             Rec("rejected", rejected, model=_opt_str(row, "rejected_model"),
                 rating=_opt_float(row, "score_rejected"))]
    return recs


# ---------------------------------------------------------------- HH-RLHF transcripts

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def _hh_detect(row: dict[str, Any]) -> bool:
    c = row.get("chosen")
    return ("chosen" in row and "rejected" in row and "prompt" not in row and isinstance(c, str)
            and "Assistant:" in c and ("Human:" in c))


def _hh_split(text: str, fld: str) -> tuple[str, str]:
    """Split a transcript into (prompt up to the last 'Assistant:', final assistant response)."""
    if not isinstance(text, str):
        raise FieldError(fld, f"expected a transcript string, got {_type_name(text)}")
    idx = text.rfind("\n\nAssistant:")
    skip = len("\n\nAssistant:")
    if idx < 0:
        idx = text.rfind("Assistant:")
        skip = len("Assistant:")
        if idx < 0:
            raise FieldError(fld, "no 'Assistant:' turn in the transcript")
    return text[:idx].strip(), text[idx + skip:].strip()


def _hh_extract(row: dict[str, Any]) -> list[Rec]:
    c_prompt, chosen = _hh_split(row["chosen"], "chosen")
    if "rejected" not in row:
        raise FieldError("rejected", "missing field")
    r_prompt, rejected = _hh_split(row["rejected"], "rejected")
    recs = [Rec("prompt", c_prompt)] if c_prompt else []
    if r_prompt != c_prompt and r_prompt:
        recs.append(Rec("prompt", r_prompt, k=1))  # rare: transcripts that differ before the last turn
    return recs + [Rec("chosen", chosen), Rec("rejected", rejected)]


# ---------------------------------------------------------------- UltraFeedback-style

_COMPLETION_TEXT = ("response", "text", "output", "completion", "content")
_COMPLETION_MODEL = ("model", "model_name", "generator")
_COMPLETION_RATING = ("overall_score", "rating", "score", "fine-grained_score")


def _uf_detect(row: dict[str, Any]) -> bool:
    comps = row.get("completions")
    return (isinstance(comps, list) and any(k in row for k in ("instruction", "prompt"))
            and (not comps or isinstance(comps[0], dict)))


def _uf_extract(row: dict[str, Any]) -> list[Rec]:
    pkey = "instruction" if "instruction" in row else "prompt"
    recs = [Rec("prompt", _need_str(row, pkey))]
    comps = row["completions"]
    if not isinstance(comps, list):
        raise FieldError("completions", f"expected a list, got {_type_name(comps)}")
    for i, c in enumerate(comps):
        if not isinstance(c, dict):
            raise FieldError(f"completions[{i}]", f"expected an object, got {_type_name(c)}")
        tkey = next((k for k in _COMPLETION_TEXT if k in c), None)
        if tkey is None or not isinstance(c[tkey], str):
            raise FieldError(f"completions[{i}]", f"no text field (one of {', '.join(_COMPLETION_TEXT)})")
        mkey = next((k for k in _COMPLETION_MODEL if k in c), None)
        rkey = next((k for k in _COMPLETION_RATING if k in c and c[k] is not None), None)
        rating = None
        if rkey is not None:
            try:
                rating = float(c[rkey])
            except (TypeError, ValueError):
                rating = None
        recs.append(Rec("response", c[tkey], k=i, model=str(c[mkey]) if mkey else None, rating=rating))
    return recs


# ---------------------------------------------------------------- pairwise judgements (AlpacaEval annotations)

def _pair_detect(row: dict[str, Any]) -> bool:
    return "output_1" in row and "output_2" in row and "instruction" in row


def _pair_extract(row: dict[str, Any]) -> list[Rec]:
    prompt = _need_str(row, "instruction")
    o1, o2 = _need_str(row, "output_1"), _need_str(row, "output_2")
    m1, m2 = _opt_str(row, "generator_1"), _opt_str(row, "generator_2")
    pref = _opt_float(row, "preference")
    recs = [Rec("prompt", prompt)]
    if pref is not None and pref <= 1.0 + 1e-9 and pref >= 1.0 - 1e-9:
        return recs + [Rec("chosen", o1, model=m1), Rec("rejected", o2, model=m2)]
    if pref is not None and abs(pref - 2.0) < 1e-9:
        return recs + [Rec("chosen", o2, model=m2), Rec("rejected", o1, model=m1)]
    # tie (0, 1.5) or no preference: two unranked responses
    return recs + [Rec("response", o1, k=0, model=m1), Rec("response", o2, k=1, model=m2)]


# ---------------------------------------------------------------- Alpaca / SFT

def _alpaca_detect(row: dict[str, Any]) -> bool:
    return "instruction" in row and "output" in row


def _alpaca_extract(row: dict[str, Any]) -> list[Rec]:
    instruction = _need_str(row, "instruction")
    inp = row.get("input")
    if inp is not None and not isinstance(inp, str):
        raise FieldError("input", f"expected a string, got {_type_name(inp)}")
    prompt = f"{instruction}\n\n{inp}" if inp else instruction
    model = _opt_str(row, "generator") or _opt_str(row, "model")
    return [Rec("prompt", prompt), Rec("response", _need_str(row, "output"), model=model)]


# ---------------------------------------------------------------- chat messages and ShareGPT

def _turn_records(turns: list[tuple[str, str]]) -> list[Rec]:
    recs: list[Rec] = []
    kp = kr = 0
    for role, content in turns:
        if role in _ASSISTANT:
            recs.append(Rec("response", content, k=kr))
            kr += 1
        else:
            recs.append(Rec("prompt", content, k=kp))
            kp += 1
    return recs


def _messages_detect(row: dict[str, Any]) -> bool:
    return _is_messages(row.get("messages"))


def _messages_extract(row: dict[str, Any]) -> list[Rec]:
    return _turn_records(_messages(row.get("messages"), "messages"))


def _sharegpt_detect(row: dict[str, Any]) -> bool:
    return _is_messages(row.get("conversations"), "from", "value")


def _sharegpt_extract(row: dict[str, Any]) -> list[Rec]:
    turns = _messages(row.get("conversations"), "conversations", "from", "value")
    return _turn_records(turns)


# ---------------------------------------------------------------- prompt/completion and text

def _pc_detect(row: dict[str, Any]) -> bool:
    return "prompt" in row and ("completion" in row or "response" in row)


def _pc_extract(row: dict[str, Any]) -> list[Rec]:
    ckey = "completion" if "completion" in row else "response"
    recs = []
    p = row.get("prompt")
    if isinstance(p, list):
        recs.append(Rec("prompt", _render(_messages(p, "prompt"))))
    else:
        recs.append(Rec("prompt", _need_str(row, "prompt")))
    c = row.get(ckey)
    if isinstance(c, list):
        c = "\n\n".join(content for _, content in _messages(c, ckey))
    elif not isinstance(c, str):
        raise FieldError(ckey, f"expected a string, got {_type_name(c)}")
    model = _opt_str(row, "model") or _opt_str(row, "generator")
    return recs + [Rec("response", c, model=model)]


_TEXT_KEYS = ("text", "document", "content")


def _text_detect(row: dict[str, Any]) -> bool:
    return any(k in row and isinstance(row[k], str) for k in _TEXT_KEYS)


def _text_extract(row: dict[str, Any]) -> list[Rec]:
    key = next((k for k in _TEXT_KEYS if k in row), "text")
    model = _opt_str(row, "model") or _opt_str(row, "generator")
    return [Rec("text", _need_str(row, key), model=model)]


def _keys(*names: str) -> Callable[[dict[str, Any]], set[str]]:
    return lambda row: {n for n in names if n in row}


SCHEMAS: tuple[Schema, ...] = (
    Schema("trl", "TRL preference pairs: prompt/chosen/rejected as strings or message lists",
           _trl_detect, _trl_extract,
           _keys("prompt", "chosen", "rejected", "chosen_model", "rejected_model", "score_chosen", "score_rejected"),
           ("prompt", "chosen", "rejected")),
    Schema("hh_rlhf", "HH-RLHF transcripts: chosen/rejected holding Human:/Assistant: turns",
           _hh_detect, _hh_extract, _keys("chosen", "rejected"), ("chosen", "rejected")),
    Schema("ultrafeedback", "UltraFeedback-style: instruction plus a list of rated completions with model names",
           _uf_detect, _uf_extract, _keys("instruction", "prompt", "completions"), ("instruction", "completions")),
    Schema("pairwise", "pairwise judgements: instruction, output_1/output_2, preference (AlpacaEval annotations)",
           _pair_detect, _pair_extract, _keys("instruction", "output_1", "output_2", "generator_1", "generator_2"),
           ("instruction", "output_1", "output_2")),
    Schema("alpaca", "Alpaca SFT: instruction/input/output", _alpaca_detect, _alpaca_extract,
           _keys("instruction", "input", "output", "generator"), ("instruction", "output")),
    Schema("messages", "chat messages: messages = [{role, content}, ...]", _messages_detect, _messages_extract,
           _keys("messages"), ("messages",)),
    Schema("sharegpt", "ShareGPT: conversations = [{from, value}, ...]", _sharegpt_detect, _sharegpt_extract,
           _keys("conversations"), ("conversations",)),
    Schema("prompt_completion", "plain prompt/completion (or prompt/response)", _pc_detect, _pc_extract,
           _keys("prompt", "completion", "response", "model", "generator"), ("prompt", "completion")),
    Schema("text", "unpaired texts: a single text column (text/document/content)", _text_detect, _text_extract,
           _keys("text", "document", "content", "model", "generator"), ("text",)),
)

SCHEMA_NAMES = tuple(s.name for s in SCHEMAS) + ("mapped",)


def known_schemas_line() -> str:
    return "; ".join(f"{s.name} ({', '.join(s.needs)})" for s in SCHEMAS)


def detect_schema(row: dict[str, Any]) -> Schema | None:
    for schema in SCHEMAS:
        if schema.detect(row):
            return schema
    return None


def schema_by_name(name: str) -> Schema | None:
    return next((s for s in SCHEMAS if s.name == name), None)


# ---------------------------------------------------------------- --map overrides

MAP_TARGETS = ("text", "prompt", "chosen", "rejected", "response", "model", "rating")


def mapped_schema(mapping: dict[str, str]) -> Schema:
    """A schema from ``--map role=column`` pairs, e.g. {"prompt": "question", "chosen": "good", "rejected": "bad"}."""
    bad = sorted(set(mapping) - set(MAP_TARGETS))
    if bad:
        raise ValueError(f"--map targets must be among {', '.join(MAP_TARGETS)}; got {', '.join(bad)}")
    text_roles = [r for r in ("prompt", "chosen", "rejected", "response", "text") if r in mapping]
    if not text_roles:
        raise ValueError("--map needs at least one text role (text, prompt, chosen, rejected or response)")

    def extract(row: dict[str, Any]) -> list[Rec]:
        model = _opt_str(row, mapping["model"]) if "model" in mapping else None
        rating = _opt_float(row, mapping["rating"]) if "rating" in mapping else None
        recs = []
        for role in text_roles:
            col = mapping[role]
            v = row.get(col)
            if col not in row:
                raise FieldError(col, "missing field")
            if isinstance(v, list) and _is_messages(v):
                v = _render(_messages(v, col))
            if not isinstance(v, str):
                raise FieldError(col, f"expected a string, got {_type_name(v)}")
            is_output = role != "prompt"
            recs.append(Rec(role, v, model=model if is_output else None, rating=rating if is_output else None))
        return recs

    cols = set(mapping.values())
    return Schema("mapped", "columns given with --map", lambda row: all(c in row for c in cols), extract,
                  lambda row: cols & set(row), tuple(mapping.values()))
