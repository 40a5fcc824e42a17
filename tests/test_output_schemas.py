"""Every field docs/outputs.md documents is present, with its type, in the real outputs of the commands
run on the bundled fixtures; nested values are objects and lists, not JSON text."""
from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from provaudit.cli import main

ROOT = Path(__file__).resolve().parent.parent
FX = ROOT / "fixtures"
DOC = ROOT / "docs" / "outputs.md"
TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "object": dict, "list": list}
MISSING = object()


def documented() -> dict[str, list[tuple[str, str]]]:
    """``{schema name: [(field path, type), ...]}`` from the tables of docs/outputs.md (type with an
    ``, optional`` suffix when the field may be absent)."""
    out: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"<!-- schema: (\w+) -->", line)
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        m = re.match(r"\| `([^`]+)` \| ([a-z]+\??(?:, optional)?) \|", line)
        if m and current is not None:
            current.append((m.group(1), m.group(2)))
    return out


def _tokens(path: str) -> list[str]:
    return [t for part in path.split(".") for t in ([part[:-2], "[]"] if part.endswith("[]") else [part]) if t]


def _resolve(obj, toks: list[str], where: str):
    """Leaf values at ``toks`` (``[]``: every element, ``*``: every value); MISSING where a key is absent.
    A null parent yields nothing (its own entry says whether it may be null)."""
    if not toks:
        yield where, obj
        return
    t, rest = toks[0], toks[1:]
    if obj is None:
        return
    if t == "[]":
        assert isinstance(obj, list), f"{where}: expected a list, got {type(obj).__name__}: {obj!r:.80}"
        for i, el in enumerate(obj):
            yield from _resolve(el, rest, f"{where}[{i}]")
    elif t == "*":
        assert isinstance(obj, dict), f"{where}: expected an object, got {type(obj).__name__}: {obj!r:.80}"
        for k, v in obj.items():
            yield from _resolve(v, rest, f"{where}.{k}")
    else:
        assert isinstance(obj, dict), f"{where}: expected an object, got {type(obj).__name__}: {obj!r:.80}"
        if t not in obj:
            yield f"{where}.{t}", MISSING
        else:
            yield from _resolve(obj[t], rest, f"{where}.{t}")


def check(schema: list[tuple[str, str]], outputs: list) -> list[str]:
    """Problems: fields missing or of another type in any output, or never seen in any."""
    problems = []
    optional = [p for p, t in schema if t.endswith(", optional")]
    for path, typ in schema:
        may_be_absent = any(path == o or path.startswith((o + ".", o + "[]")) for o in optional)
        typ = typ.removesuffix(", optional")
        seen = 0
        for n, out in enumerate(outputs):
            for where, v in _resolve(out, _tokens(path), f"output{n}"):
                if v is MISSING:
                    if not may_be_absent:
                        problems.append(f"{path}: missing at {where}")
                elif v is None:
                    seen += 1
                    if not typ.endswith("?"):
                        problems.append(f"{path}: null at {where} but documented as {typ}")
                else:
                    seen += 1
                    want = TYPES[typ.rstrip("?")]
                    if not isinstance(v, want) or (want is int and isinstance(v, bool)):
                        problems.append(f"{path}: {type(v).__name__} at {where}, documented as {typ}: {v!r:.60}")
        # an optional element of a list may never occur (the list is legitimately empty in every output
        # checked); every other documented field must be seen at least once
        if not seen and not (may_be_absent and "[]" in path):
            problems.append(f"{path}: never present in the outputs checked")
    return problems


def _slice(src: Path, dest: Path, n: int) -> Path:
    dest.write_text("".join(src.read_text(encoding="utf-8").splitlines(True)[:n]), encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, list]:
    d = tmp_path_factory.mktemp("outputs")
    cat = ["--catalog", str(d / "c.duckdb")]
    t = _slice(FX / "style" / "teacher_gpt4.jsonl", d / "teacher.jsonl", 80)
    h = _slice(FX / "style" / "human.jsonl", d / "human.jsonl", 80)
    b1 = _slice(FX / "style" / "oasst-sft-pythia-12b.jsonl", d / "b1.jsonl", 40)
    b2 = _slice(FX / "style" / "vicuna-13b.jsonl", d / "b2.jsonl", 40)
    runner = CliRunner()

    def run(*args, ok=(0,)):
        r = runner.invoke(main, [str(a) for a in args])
        assert r.exit_code in ok, r.output
        return r.stdout  # gate failures go to stderr

    def js(*args, ok=(0,)):
        return json.loads(run(*args, "--json", ok=ok))

    out: dict[str, list] = {}
    out["register"] = [js("register", FX / "lineage" / "eval_set.json", "--tag", "eval", *cat)]
    run("register", FX / "lineage" / "sft_train.jsonl", "--tag", "train", *cat)
    out["checkpoint_add"] = [js("checkpoint", "add", "sft-v1", "--trained-on", "sft_train", *cat),
                             js("checkpoint", "add", "dpo-v1", "--trained-on", "eval_set", "--parent", "sft-v1", *cat)]
    first = js("scan", FX / "scan" / "trl_pairs.jsonl", *cat, ok=(0, 1))
    teacher_scan = js("scan", FX / "lineage" / "dpo_round2.jsonl", "--teacher", t, "--human", h, "--gate",
                      ROOT / "rules" / "gate.yaml", "--out", d / "out", "--no-record", *cat, ok=(0, 1))
    out["scan"] = [first, teacher_scan]
    out["records"] = pl.read_parquet(d / "out" / "records.parquet").to_dicts()  # each row is checked
    out["records_schema"] = [pl.read_parquet_schema(d / "out" / "records.parquet")]
    out["origin_tag"] = [json.loads(run("origin", "tag", FX / "scan" / "trl_pairs.jsonl", "--records", 3))]
    out["origin_rules"] = [js("origin", "rules")]
    out["trend"] = [js("trend", *cat)]
    out["converge"] = [js("converge", "--teacher", t, "--human", h, "--n-boot", 20, b1, b2)]
    out["diversity"] = [js("diversity", "--human", h, b2)]
    out["label_origin"] = [js("label-origin", FX / "style" / "alpaca_eval_gpt4_annotations.json")]
    out["datasets"] = [js("datasets", *cat)]
    out["lineage_find"] = [js("lineage", "find", "--field", "user_id=u-0042", *cat)]
    out["overlap"] = [js("overlap", FX / "lineage" / "sft_train.jsonl", "eval_set", *cat)]
    out["checkpoint_list"] = [js("checkpoint", "list", *cat)]
    out["erase"] = [js("erase", "--field", "user_id=u-0042", "--out", d / "redacted", "--dry-run", *cat)]
    out["checkpoints"] = [js("checkpoints", FX / "checkpoints" / "tail_drop_samples.jsonl"),
                          js("compare", FX / "checkpoints" / "compare_sft.jsonl",
                             FX / "checkpoints" / "compare_rlhf.jsonl")]
    return out


def test_every_output_has_a_documented_schema():
    assert set(documented()) == {"records", "scan", "register", "origin_tag", "origin_rules", "trend", "converge",
                                 "diversity", "label_origin", "datasets", "lineage_find", "overlap",
                                 "checkpoint_list", "checkpoints", "erase", "checkpoint_add"}


@pytest.mark.slow
def test_every_documented_field_is_in_the_real_outputs(outputs):
    docs = documented()
    problems = []
    for name, schema in docs.items():
        assert schema, f"no fields documented for {name}"
        problems += [f"[{name}] {p}" for p in check(schema, outputs[name])]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_nested_values_are_typed_not_json_text(outputs):
    schema = outputs["records_schema"][0]
    assert isinstance(schema["evidence"], pl.Struct) and isinstance(schema["band_keys"], pl.List)
    feats = dict(schema["evidence"].to_schema())["features"]
    assert feats == pl.List(pl.Struct({"name": pl.Utf8, "value": pl.Float64, "contribution": pl.Float64}))
    assert isinstance(outputs["origin_tag"][0]["records"][0]["evidence"], dict)
    assert all(isinstance(i, dict) for s in outputs["trend"][0]["scans"] for i in s["inputs"])


def test_the_checker_catches_missing_and_mistyped_fields():
    schema = [("a.b", "int"), ("a.c[].d", "str?"), ("e", "object"), ("f", "object, optional"), ("f.g", "int")]
    assert check(schema, [{"a": {"b": 1, "c": [{"d": None}, {"d": "x"}]}, "e": {}},
                          {"a": {"b": 2, "c": []}, "e": {}, "f": {"g": 3}}]) == []
    assert check(schema, [{"a": {"b": 1, "c": []}, "e": {}}]) == ["a.c[].d: never present in the outputs checked",
                                                                  "f: never present in the outputs checked",
                                                                  "f.g: never present in the outputs checked"]
    problems = check(schema, [{"a": {"b": "1", "c": [{}]}, "e": "{}"}])
    assert any(p.startswith("a.b: str") for p in problems)
    assert any(p.startswith("a.c[].d: missing") for p in problems)
    assert any(p.startswith("e: str") for p in problems)  # JSON text where an object is documented
