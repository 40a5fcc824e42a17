"""YAML rules for origin tagging: metadata rules (model columns, LLM-judge annotators, generation
parameters) and content rules (signature phrases, overused model words, formatting habits).

A rule file is ``{"rules": [ {id, kind, description, weight, match, tests, roles?}, ... ]}``:

* ``kind: content`` -- ``match: {regex: <Rust/polars regex>, min_count: 1}`` over the record text.
* ``kind: metadata`` -- ``match: {field: model, value: <regex>}`` over the ``model`` column, or
  ``match: {key: <regex>, value: <regex, optional>}`` over the keys (dotted paths for nested
  objects) and string values of the ``meta`` JSON.
* ``weight`` is added to the detector's calibrated log-odds when the rule fires (0 = evidence only).
* ``roles`` limits the roles a rule applies to (default: all for content rules, all but ``prompt``
  for metadata rules, because row metadata describes the completion, not the prompt).
* ``tests: {match: [...], no_match: [...]}`` are examples the suite checks (strings for content
  rules; ``{model: ..., meta: {...}, role: ...}`` objects for metadata rules). An example is a record of a
  role the rule applies to: ``response`` where it does, else the rule's first role (or the example's own).

Files load with ``yaml.safe_load``; a malformed rule raises ``InputError`` naming file and rule.
Later directories override rules of the same id from earlier ones (user rules win).
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from provaudit.errors import InputError
from provaudit.yamlfile import load_yaml


def bundled_rules_dir() -> Path:
    """The bundled origin rules: ``rules/origin`` of the rules folder users edit (provaudit.paths)."""
    from provaudit.paths import rules_dir

    return rules_dir() / "origin"
ROLES = ("prompt", "chosen", "rejected", "response", "text")
_OUTPUT_ROLES = ("chosen", "rejected", "response", "text")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class Rule:
    """One content or metadata rule."""

    id: str
    kind: str
    description: str
    weight: float
    match: dict[str, Any]
    roles: tuple[str, ...]
    tests: dict[str, list[Any]] = field(default_factory=dict)
    source: str = ""


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, string value) pairs of a JSON object; lists keep their parent key."""
    out: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, (dict, list)):
                out.append((key, ""))
                out.extend(_flatten(v, key))
            else:
                out.append((key, "" if v is None else str(v)))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_flatten(v, prefix) if isinstance(v, (dict, list)) else [(prefix, "" if v is None else str(v))])
    return out


@dataclass
class RuleSet:
    """An ordered collection of rules that can be applied to a record batch."""

    rules: list[Rule]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rules]

    def get(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def apply(self, records: pl.DataFrame) -> tuple[list[list[str]], np.ndarray]:
        """Rule ids fired per record and the summed weight per record."""
        hit, weight = self._hit_matrix(records)
        combos, inv = self._combos(hit)
        return [list(combos[k]) for k in inv], weight

    def _combos(self, hit: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
        """Distinct fired-rule lists (rule order) and each record's index into them."""
        n = hit.shape[0]
        if hit.shape[1] == 0 or n == 0:
            return [[]], np.zeros(n, dtype=np.int64)
        packed = np.packbits(hit, axis=1)
        uniq, inv = np.unique(packed, axis=0, return_inverse=True)
        bits = np.unpackbits(uniq, axis=1, count=hit.shape[1]).astype(bool)
        ids = self.ids
        combos = [[ids[j] for j in np.flatnonzero(row)] for row in bits]
        return combos, np.asarray(inv).reshape(-1)

    def _hit_matrix(self, records: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Boolean matrix (records x rules, in rule order) of fired rules and the summed weights."""
        n = records.height
        roles = records["role"] if "role" in records.columns else pl.Series([None] * n, dtype=pl.Utf8)
        hits: dict[str, np.ndarray] = {}
        content = [r for r in self.rules if r.kind == "content"]
        if content:
            t = records["text"].cast(pl.Utf8).fill_null("") if "text" in records.columns else pl.Series([""] * n)
            hits.update(_content_hits(t, content))
        meta_rules = [r for r in self.rules if r.kind == "metadata"]
        if meta_rules:
            hits.update(self._apply_metadata(records, meta_rules))
        hit = np.zeros((n, len(self.rules)), dtype=bool)
        weight = np.zeros(n)
        # roles as codes into their distinct values, so each rule's role filter is one lookup
        role_arr = roles.cast(pl.Utf8).to_numpy()
        codes = np.zeros(n, dtype=np.int64)
        uniq_roles: list[Any] = []
        if n:
            role_codes: dict[Any, int] = {}
            for ro in role_arr:
                if ro not in role_codes:
                    role_codes[ro] = len(role_codes)
            uniq_roles = list(role_codes)
            codes = np.fromiter((role_codes[ro] for ro in role_arr), dtype=np.int64, count=n)
        for j, r in enumerate(self.rules):
            allowed = np.array([ro is None or ro in r.roles for ro in uniq_roles], dtype=bool)[codes] if n \
                else np.zeros(0, dtype=bool)
            h = hits[r.id] & allowed
            hit[:, j] = h
            weight += h * r.weight
        return hit, weight

    @staticmethod
    def _apply_metadata(records: pl.DataFrame, rules: list[Rule]) -> dict[str, np.ndarray]:
        n = records.height
        out = {r.id: np.zeros(n, dtype=bool) for r in rules}
        model_col = records["model"].cast(pl.Utf8).to_list() if "model" in records.columns else [None] * n
        metas = records["meta"].cast(pl.Utf8).to_list() if "meta" in records.columns else [None] * n
        cache: dict[str, list[tuple[str, str]]] = {}
        compiled = {r.id: (re.compile(r.match["key"]) if "key" in r.match else None,
                           re.compile(r.match["value"]) if r.match.get("value") else None) for r in rules}
        # the hits depend only on (model, meta), so each distinct pair is evaluated once
        ids = list(out)
        row_hits: dict[tuple[Any, Any], int] = {}
        combos: list[list[bool]] = []
        which = np.empty(n, dtype=np.int64)
        for i in range(n):
            key = (model_col[i], metas[i])
            c = row_hits.get(key)
            if c is None:
                m = metas[i]
                pairs: list[tuple[str, str]] = []
                if m and m not in ("{}", "null"):
                    if m not in cache:
                        try:
                            cache[m] = _flatten(json.loads(m))
                        except json.JSONDecodeError:
                            cache[m] = []
                    pairs = cache[m]
                row = dict.fromkeys(ids, False)
                for r in rules:
                    kre, vre = compiled[r.id]
                    if r.match.get("field") == "model":
                        v = model_col[i]
                        row[r.id] = bool(v) and (vre is None or vre.search(v) is not None)
                    elif pairs:
                        row[r.id] = bool(any(kre.search(k) and (vre is None or (v and vre.search(v)))
                                             for k, v in pairs))
                c = row_hits[key] = len(combos)
                combos.append([row[rid] for rid in ids])
            which[i] = c
        if n:
            table = np.array(combos, dtype=bool).reshape(len(combos), len(ids))
            for j, rid in enumerate(ids):
                out[rid] = table[which, j].copy()
        return out

    def test(self) -> list[str]:
        """Run every rule's own examples; returns failure messages (empty when all pass)."""
        failures = []
        for r in self.rules:
            # an example is a record of a role the rule applies to (a response where it does), unless a
            # metadata example names its role
            role = "response" if "response" in r.roles else r.roles[0]
            for expect, key in ((True, "match"), (False, "no_match")):
                for ex in r.tests.get(key, []):
                    if r.kind == "content":
                        rec = {"text": str(ex), "role": role, "model": None, "meta": "{}"}
                    else:
                        rec = {"text": "", "role": ex.get("role", role), "model": ex.get("model"),
                               "meta": json.dumps(ex.get("meta", {}), sort_keys=True)}
                    fired, _ = RuleSet([r]).apply(pl.DataFrame([rec], schema={
                        "text": pl.Utf8, "role": pl.Utf8, "model": pl.Utf8, "meta": pl.Utf8}))
                    if (r.id in fired[0]) != expect:
                        failures.append(f"{r.source}: rule '{r.id}': example expected to "
                                        f"{'match' if expect else 'not match'}: {ex!r}")
        return failures


def _strip_word_boundaries(rx: str) -> str | None:
    """``rx`` without its ``\\b``/``\\B`` assertions (outside character classes), or None when it has none
    or cannot be rewritten safely. Dropping zero-width assertions only widens what matches, so a text
    the stripped pattern does not match cannot match ``rx``; the stripped pattern avoids the slow
    Unicode word-boundary search on non-ASCII text, which makes it a cheap exact prefilter."""
    out: list[str] = []
    i, depth, changed = 0, 0, False
    while i < len(rx):
        c = rx[i]
        if c == "\\":
            pair = rx[i:i + 2]
            if pair in ("\\b", "\\B") and depth == 0:
                if rx[i + 2:i + 3] == "{":
                    return None
                changed = True
            else:
                out.append(pair)
            i += 2
            continue
        if c == "[":
            out.append(c)
            depth += 1
            i += 1
            if rx[i:i + 1] == "^":
                out.append("^")
                i += 1
            if rx[i:i + 1] == "]":  # a leading ] is a literal
                out.append("]")
                i += 1
            continue
        if c == "]" and depth:
            depth -= 1
        out.append(c)
        i += 1
    if not changed or depth:
        return None
    stripped = "".join(out)
    try:
        pl.Series([""]).str.contains(stripped)
    except pl.exceptions.PolarsError:
        return None
    return stripped


def _content_hits(t: pl.Series, content: list[Rule]) -> dict[str, np.ndarray]:
    """``count_matches(regex) >= min_count`` per content rule; rules with word boundaries count only on
    the texts their boundary-free prefilter matches (the rest cannot match)."""
    frame = pl.DataFrame({"t": t})
    plain = [r for r in content if _strip_word_boundaries(r.match["regex"]) is None]
    pre = [r for r in content if r not in plain]
    exprs = [(pl.col("t").str.count_matches(r.match["regex"]) >= int(r.match.get("min_count", 1))).alias(r.id)
             for r in plain]
    exprs += [pl.col("t").str.contains(_strip_word_boundaries(r.match["regex"])).alias(r.id) for r in pre]
    res = frame.select(exprs) if exprs else pl.DataFrame()
    out = {r.id: res[r.id].to_numpy() for r in plain}
    for r in pre:
        mask = res[r.id].to_numpy()
        h = np.zeros(len(t), dtype=bool)
        idx = np.flatnonzero(mask)
        if idx.size:
            sub = t.gather(idx).str.count_matches(r.match["regex"]) >= int(r.match.get("min_count", 1))
            h[idx] = sub.to_numpy()
        out[r.id] = h
    return out


def regex_error_reason(message: str, pattern: str) -> str:
    """The reason in a Rust regex parse error as polars raises it, e.g. ``unclosed group at character 1``.

    The error's first line is only ``regex error: regex parse error:``; the reason is its ``error: ...`` line,
    and a line of carets under the echoed pattern (indented 4) marks where. The character (1-based) is given
    for single-line patterns only. Anything else: its first line, cut to 120 characters."""
    lines = message.splitlines()
    reason = next((ln[len("error: "):].strip() for ln in lines if ln.startswith("error: ")), "")
    if not reason:
        return lines[0][:120] if lines else "unparseable"
    caret = next((ln for ln in lines if ln.strip() and set(ln.strip()) == {"^"}), None)
    if caret is not None and "\n" not in pattern:
        reason += f" at character {len(caret) - len(caret.lstrip()) - 3}"
    return reason[:120]


def _parse_rule(raw: Any, file: str, idx: int) -> Rule:
    rid = raw.get("id") if isinstance(raw, dict) else None
    where = f"rule '{rid}'" if rid else f"rule #{idx}"

    def bad(msg: str, fld: str) -> InputError:
        return InputError(f"{where}: {msg}", file=file, field=fld)

    if not isinstance(raw, dict):
        raise bad("must be a mapping", "rules")
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        raise bad("id must be lower_snake_case", "id")
    kind = raw.get("kind")
    if kind not in ("content", "metadata"):
        raise bad("kind must be 'content' or 'metadata'", "kind")
    desc = raw.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise bad("description is required", "description")
    w = raw.get("weight")
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not -10 <= w <= 10:
        raise bad("weight must be a number in [-10, 10]", "weight")
    match = raw.get("match")
    if not isinstance(match, dict):
        raise bad("match must be a mapping", "match")
    unknown = set(raw) - {"id", "kind", "description", "weight", "match", "tests", "roles"}
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}", min(unknown))
    if kind == "content":
        rx = match.get("regex")
        if not isinstance(rx, str) or not rx:
            raise bad("content rules need match.regex", "match.regex")
        try:
            pl.Series(["x"]).str.count_matches(rx)
        except pl.exceptions.PolarsError as exc:  # ComputeError on a bad pattern
            raise bad(f"invalid regex ({regex_error_reason(str(exc), rx)})", "match.regex") from None
        mc = match.get("min_count", 1)
        if isinstance(mc, bool) or not isinstance(mc, int) or mc < 1:
            raise bad("min_count must be a positive integer", "match.min_count")
    else:
        if match.get("field") not in (None, "model"):
            raise bad("field must be 'model' (or use key)", "match.field")
        if match.get("field") is None and not isinstance(match.get("key"), str):
            raise bad("metadata rules need match.field: model or match.key", "match.key")
        for fld in ("key", "value"):
            if fld in match:
                try:
                    re.compile(str(match[fld]))
                except re.error as exc:
                    raise bad(f"invalid regex ({exc})", f"match.{fld}") from None
    roles = raw.get("roles", list(ROLES if kind == "content" else _OUTPUT_ROLES))
    if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
        raise bad(f"roles must be a list drawn from {list(ROLES)}", "roles")
    tests = raw.get("tests", {}) or {}
    if not isinstance(tests, dict) or set(tests) - {"match", "no_match"} or \
            any(not isinstance(v, list) for v in tests.values()):
        raise bad("tests must be {match: [...], no_match: [...]}", "tests")
    if not tests.get("match"):
        raise bad("tests.match needs at least one example", "tests.match")
    if kind == "metadata" and any(not isinstance(e, dict) for v in tests.values() for e in v):
        raise bad("metadata rule examples are {model: ..., meta: {...}} objects", "tests")
    return Rule(id=rid, kind=kind, description=desc.strip(), weight=float(w), match=dict(match),
                roles=tuple(roles), tests=tests, source=file)


def load_rule_file(path: Path) -> list[Rule]:
    """Parse one YAML rule file."""
    data = load_yaml(path, what="rules file")
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise InputError("expected a mapping with a 'rules' list", file=str(path), field="rules")
    rules = [_parse_rule(r, str(path), i) for i, r in enumerate(data["rules"])]
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise InputError(f"rule '{r.id}': duplicate id", file=str(path), field="id")
        seen.add(r.id)
    return rules


def load_rules(dirs: Sequence[Path | str] | None = None, *, bundled: bool = True) -> RuleSet:
    """The bundled rules plus those in ``dirs`` (YAML files, or single files); later ids override."""
    paths: list[Path] = [bundled_rules_dir()] if bundled else []
    paths += [Path(d) for d in (dirs or [])]
    by_id: dict[str, Rule] = {}
    for p in paths:
        if not p.exists():
            raise InputError("rules path not found", file=str(p))
        files = sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml"))) if p.is_dir() else [p]
        for f in files:
            for r in load_rule_file(f):
                by_id.pop(r.id, None)
                by_id[r.id] = r
    return RuleSet(list(by_id.values()))
