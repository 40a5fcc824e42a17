"""Mutation testing of the SQL inside the decision code: the query logic mutmut cannot reach.

    PYTHONPATH=$PWD python bench/sql_mutation.py overlap          # mutate, run the tests, print the table
    PYTHONPATH=$PWD python bench/sql_mutation.py --list           # the targets, their functions and tests
    PYTHONPATH=$PWD python bench/sql_mutation.py overlap --show   # every mutant: id, line, before -> after
    PYTHONPATH=$PWD python bench/sql_mutation.py overlap --only 'Catalog.overlap_report:1?'  # some again
    PYTHONPATH=$PWD python bench/sql_mutation.py overlap --recheck  # the survivors, against the tests as they are

Much of provaudit's verdict logic is SQL run by DuckDB: which batch records leak an eval set, which are
boilerplate or a reused response, which records are duplicates, which checkpoints a record taints.
mutmut mutates such a query by wrapping its string in ``XX``: it fails to parse, the mutant is killed,
and nothing is learnt about the query. This script mutates the operators *inside* the SQL literals of the
named functions, one at a time, keeping the query valid: a comparison (``=``/``<>``, ``<``/``<=``,
``>``/``>=``), a null test, ``min``/``max``, ``AND``/``OR``, a ``NOT`` or ``DISTINCT`` dropped, a join
kind (``LEFT`` dropped, ``SEMI``/``ANTI`` swapped), ``UNION``/``UNION ALL``, a sort direction, an integer
literal (0 and 1 swapped, others plus one), ``true``/``false``, ``+``/``-``. Expressions of f-strings
(``{...}``) are never touched.

Each target's files are copied into ``build/sql_mutation/<target>/`` with the tests, fixtures and rules;
each mutant is written there, its module's bytecode removed, and the target's tests run with ``-x``
(a failure kills it; a run past the time limit counts as killed, as with mutmut). Mutant ids
(``function:N``) are stable while the function's SQL is unchanged. A surviving mutant is either killed
by a new test or recorded as equivalent in ``docs/testing.md`` ("Equivalent mutants") as
``| `sql:<target>:<id>` | reason |``. Results go to ``build/sql_mutation/<target>.json``.

Not part of CI (.ci/run): a target takes minutes to tens of minutes on two cores.
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from mutation import equivalent_rows  # bench/ is not a package: imported from its folder

#: target -> (file, functions whose SQL literals are mutated (``Class.method`` or ``function``), tests)
TARGETS: dict[str, tuple[str, list[str], list[str]]] = {
    "overlap": ("provaudit/catalog/store.py", ["Catalog.overlap_report", "Catalog.erased_matches"],
                ["tests/test_overlap_contamination.py", "tests/test_pin_contamination.py",
                 "tests/test_scan_pipeline.py", "tests/test_catalog_store.py", "tests/test_scan_gate.py",
                 "tests/test_catalog_band_files.py", "tests/test_pin_scan.py"]),
    "boilerplate": ("provaudit/contamination.py", ["boilerplate_sql"],
                    ["tests/test_pin_contamination.py", "tests/test_overlap_contamination.py"]),
    "prompts": ("provaudit/contamination.py", ["substantive_prompts_sql"],
                ["tests/test_overlap_contamination.py", "tests/test_ray_overlap.py"]),
    "duplicates": ("provaudit/pipeline.py", ["_duplicate_tables", "_duplicate_summary"],
                   ["tests/test_pin_scan.py", "tests/test_scan_pipeline.py"]),
    "taint": ("provaudit/catalog/store.py", ["Catalog.tainted_checkpoints", "Catalog.similar_kept_rows",
                                             "Catalog.match_records"],
              ["tests/test_pin_lineage.py", "tests/test_lineage_find.py", "tests/test_pin_erase_units.py",
               "tests/test_erase.py", "tests/test_pin_erase_flow.py", "tests/test_catalog_store.py"]),
    "erasure": ("provaudit/catalog/store.py", ["Catalog.add_erasure", "Catalog.field_matches"],
                ["tests/test_pin_erase_flow.py", "tests/test_pin_erase_units.py", "tests/test_erase.py",
                 "tests/test_lineage_find.py", "tests/test_pin_lineage.py", "tests/test_catalog_store.py",
                 "tests/test_scan_pipeline.py"]),
    "summaries": ("provaudit/pipeline.py", ["_sample_frame", "_origin_summary", "_teacher_summary"],
                  ["tests/test_scan_origin.py", "tests/test_corpus_estimate.py", "tests/test_pin_origin.py",
                   "tests/test_style_labels.py", "tests/test_scan_gate.py", "tests/test_origin_lm.py"]),
    "lineage": ("provaudit/catalog/lineage.py", ["_side", "lineage_find"],
                ["tests/test_lineage_find.py", "tests/test_pin_lineage.py", "tests/test_lineage_cli.py",
                 "tests/test_lineage_overlap.py"]),
    "erase_plan": ("provaudit/catalog/erase.py", ["_rows_with_field", "_plan"],
                   ["tests/test_pin_erase_flow.py", "tests/test_pin_erase_units.py", "tests/test_erase.py",
                    "tests/test_props_erase.py"]),
    "ray_export": ("provaudit/engine/ray_overlap.py", ["export_catalog_keys"],
                   ["tests/test_ray_overlap.py"]),
    "rows": ("provaudit/catalog/store.py", ["Catalog.row_records", "Catalog._bands_view", "Catalog._views"],
             ["tests/test_catalog_band_files.py", "tests/test_catalog_record_files.py", "tests/test_pin_erase_flow.py",
              "tests/test_erase.py"]),
    "coverage_history": ("provaudit/coverage/history.py", ["coverage_summary"],
                         ["tests/test_coverage.py", "tests/test_coverage_html.py"]),
    "datasets": ("provaudit/catalog/store.py", ["Catalog.add_dataset", "Catalog.resolve_dataset",
                                                "Catalog._insert_records", "Catalog._fill_substance", "Catalog.add_checkpoint",
                                                "Catalog.checkpoints"],
                 ["tests/test_catalog_store.py", "tests/test_pin_lineage.py", "tests/test_catalog_record_files.py",
                  "tests/test_lineage_cli.py", "tests/test_scan_pipeline.py"]),
}

#: a string literal is SQL when it holds one of these
SQL_HINT = re.compile(r"\b(SELECT|JOIN|WHERE|GROUP BY|ORDER BY|FILTER)\b")


@dataclass(frozen=True)
class Operator:
    name: str
    pattern: re.Pattern
    replace: object  # str, or a function of the match giving the replacement


def _int_plus(m: re.Match) -> str:
    n = int(m.group(0))
    return {"0": "1", "1": "0"}.get(m.group(0), str(n + 1))


OPERATORS: list[Operator] = [
    Operator("= -> <>", re.compile(r"(?<![<>!=:])=(?![=>])"), "<>"),
    Operator("<> -> =", re.compile(r"<>"), "="),
    Operator("<= -> <", re.compile(r"<="), "<"),
    Operator(">= -> >", re.compile(r">="), ">"),
    Operator("< -> <=", re.compile(r"(?<![-<])<(?![=>])"), "<="),
    Operator("> -> >=", re.compile(r"(?<![-<>])>(?![=>])"), ">="),
    Operator("IS NULL -> IS NOT NULL", re.compile(r"\bIS NULL\b"), "IS NOT NULL"),
    Operator("IS NOT NULL -> IS NULL", re.compile(r"\bIS NOT NULL\b"), "IS NULL"),
    Operator("min -> max", re.compile(r"\bmin\("), "max("),
    Operator("max -> min", re.compile(r"\bmax\("), "min("),
    Operator("AND -> OR", re.compile(r"(?<!BETWEEN \w)\bAND\b"), "OR"),
    Operator("OR -> AND", re.compile(r"(?<!ORDER )\bOR\b(?! REPLACE)"), "AND"),
    Operator("NOT dropped", re.compile(r"(?<!IS )\bNOT (?!NULL\b)"), ""),
    Operator("DISTINCT dropped", re.compile(r"(?<!IS )(?<!NOT )\bDISTINCT (?!ON\b|FROM\b)"), ""),
    Operator("IS DISTINCT FROM -> IS NOT DISTINCT FROM", re.compile(r"\bIS DISTINCT FROM\b"), "IS NOT DISTINCT FROM"),
    Operator("IS NOT DISTINCT FROM -> IS DISTINCT FROM", re.compile(r"\bIS NOT DISTINCT FROM\b"), "IS DISTINCT FROM"),
    Operator("LEFT JOIN -> JOIN", re.compile(r"\bLEFT JOIN\b"), "JOIN"),
    Operator("SEMI -> ANTI", re.compile(r"\bSEMI JOIN\b"), "ANTI JOIN"),
    Operator("ANTI -> SEMI", re.compile(r"\bANTI JOIN\b"), "SEMI JOIN"),
    Operator("UNION ALL -> UNION", re.compile(r"\bUNION ALL\b"), "UNION"),
    Operator("UNION -> UNION ALL", re.compile(r"\bUNION\b(?! ALL\b)"), "UNION ALL"),
    Operator("ASC -> DESC", re.compile(r"\bASC\b"), "DESC"),
    Operator("DESC -> ASC", re.compile(r"\bDESC\b"), "ASC"),
    Operator("true -> false", re.compile(r"\btrue\b"), "false"),
    Operator("false -> true", re.compile(r"\bfalse\b"), "true"),
    Operator("integer", re.compile(r"(?<![\w.$'])\d+(?![\w.'])"), _int_plus),
    Operator("+ -> -", re.compile(r"(?<=\s)\+(?=\s)"), "-"),
    Operator("- -> +", re.compile(r"(?<=\s)-(?=\s)"), "+"),
]


@dataclass(frozen=True)
class Mutant:
    id: str
    line: int
    op: str
    start: int  # offsets in the file's text
    end: int
    before: str
    after: str


def _offsets(text: str) -> list[int]:
    """Offset of each line's first character (ast positions are line and UTF-8 byte column)."""
    out, pos = [0], 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        out.append(pos)
    return out


def _pos(lines: list[str], starts: list[int], lineno: int, col: int) -> int:
    """Text offset of an ast (line, byte column) position."""
    return starts[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8"))


def _functions(tree: ast.Module, names: list[str]) -> dict[str, ast.AST]:
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            found[node.name] = node
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                q = f"{node.name}.{sub.name}" if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) else ""
                if q in names:
                    found[q] = sub
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"functions not found: {missing}")
    return found


def _masked(segment: str) -> list[tuple[int, int]]:
    """Spans of an f-string literal's source that are expressions (``{...}``), ``{{``/``}}`` escapes aside."""
    spans, i, depth, start = [], 0, 0, 0
    while i < len(segment):
        c = segment[i]
        if depth == 0 and c in "{}" and segment[i:i + 2] in ("{{", "}}"):
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
        i += 1
    return spans


def _string_nodes(fn: ast.AST) -> list[ast.AST]:
    """The function's string literals (plain and f-strings, outermost only), in source order."""
    out: list[ast.AST] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.JoinedStr) or (isinstance(child, ast.Constant) and isinstance(child.value, str)):
                out.append(child)
            else:
                walk(child)

    walk(fn)
    return sorted(out, key=lambda n: (n.lineno, n.col_offset))


def mutants(path: Path, functions: list[str]) -> list[Mutant]:
    """Every mutant of the SQL literals of ``functions`` in ``path``, ids ``function:N`` in source order."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    starts = _offsets(text)
    tree = ast.parse(text)
    out: list[Mutant] = []
    for qual, fn in _functions(tree, functions).items():
        found: list[tuple[int, int, str, str, str]] = []
        for node in _string_nodes(fn):
            a = _pos(lines, starts, node.lineno, node.col_offset)
            b = _pos(lines, starts, node.end_lineno, node.end_col_offset)
            seg = text[a:b]
            if not SQL_HINT.search(seg):
                continue
            masked = _masked(seg) if isinstance(node, ast.JoinedStr) else []
            for op in OPERATORS:
                for m in op.pattern.finditer(seg):
                    if any(s < m.end() and m.start() < e for s, e in masked):
                        continue
                    rep = op.replace(m) if callable(op.replace) else op.replace
                    found.append((a + m.start(), a + m.end(), op.name, m.group(0), rep))
        for n, (s, e, op, before, after) in enumerate(sorted(found)):
            out.append(Mutant(f"{qual}:{n}", text.count("\n", 0, s) + 1, op, s, e, before, after))
    return out


def apply(text: str, m: Mutant) -> str:
    return text[:m.start] + m.after + text[m.end:]


def context(text: str, m: Mutant, width: int = 40) -> str:
    """The mutated spot with some SQL around it, on one line."""
    a, b = max(0, m.start - width), min(len(text), m.end + width)
    return " ".join(f"{text[a:m.start]}[{m.before} -> {m.after}]{text[m.end:b]}".split())


def equivalent() -> dict[str, str]:
    """``sql:<target>:<id>`` -> reason, from docs/testing.md (the table bench/mutation.py reads too)."""
    return equivalent_rows(r"sql:\w+:[\w.]+:\d+")


def _prepare(target: str) -> Path:
    work = ROOT / "build" / "sql_mutation" / target
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("provaudit", "tests", "fixtures", "rules", "docs", "bench"):
        shutil.copytree(ROOT / d, work / d, ignore=ignore)
    for f in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / f, work / f)
    return work


def _run_tests(work: Path, tests: list[str], timeout: float) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(work))
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               "--hypothesis-profile=mutation", *tests], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "survived", 1: "killed"}.get(done.returncode, f"exit {done.returncode}")


def run(target: str, only: list[str] | None = None) -> dict:
    path, functions, tests = TARGETS[target]
    work = _prepare(target)
    src = work / path
    original = src.read_text(encoding="utf-8")
    pyc = src.parent / "__pycache__"
    t0 = time.time()
    base = _run_tests(work, tests, timeout=1800)
    baseline_s = time.time() - t0
    if base != "survived":
        raise SystemExit(f"{target}: the unmutated tests do not pass ({base}); run them in {work}")
    saved = ROOT / "build" / "sql_mutation" / f"{target}.json"
    prior = json.loads(saved.read_text()) if only and saved.exists() else {"statuses": {}}
    saved.parent.mkdir(parents=True, exist_ok=True)
    statuses: dict[str, dict] = dict(prior["statuses"])
    todo = [m for m in mutants(src, functions) if not only or any(fnmatch.fnmatchcase(m.id, g) for g in only)]

    def save() -> dict:  # after every mutant: an interrupted run keeps what it ran (merge it with --only)
        result = {"target": target, "file": path, "functions": functions, "tests": tests, "statuses": statuses,
                  "baseline_s": round(baseline_s, 1), "seconds": round(time.time() - t0)}
        saved.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        return result

    try:
        for m in todo:
            src.write_text(apply(original, m), encoding="utf-8")
            shutil.rmtree(pyc, ignore_errors=True)  # a same-size edit within a second would keep stale bytecode
            status = _run_tests(work, tests, timeout=max(60.0, 3 * baseline_s))
            statuses[m.id] = {"status": "killed" if status in ("killed", "timeout") else status, "line": m.line,
                              "op": m.op, "context": context(original, m)}
            print(f"{m.id} (line {m.line}, {m.op}): {statuses[m.id]['status']}", flush=True)
            save()
    finally:
        src.write_text(original, encoding="utf-8")
    return save()


def tabulate(results: list[dict]) -> str:
    eq = equivalent()
    rows = ["| target | file: functions | mutants | killed | survived | equivalent | other | score |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        st = {k: v["status"] for k, v in r["statuses"].items()}
        killed = sum(v == "killed" for v in st.values())
        surv = [k for k, v in st.items() if v == "survived"]
        n_eq = sum(f"sql:{r['target']}:{k}" in eq for k in surv)
        other = len(st) - killed - len(surv)
        denom = killed + len(surv) - n_eq
        score = f"{100 * killed / denom:.1f}%" if denom else "n/a"
        rows.append(f"| {r['target']} | {r['file']}: {', '.join(r['functions'])} | {len(st)} | {killed} "
                    f"| {len(surv) - n_eq} | {n_eq} | {other} | {score} |")
    return "\n".join(rows)


def survivor_ids(r: dict) -> list[str]:
    """Ids of the saved result's survivors not recorded as equivalent."""
    eq = equivalent()
    return [k for k, v in sorted(r["statuses"].items())
            if v["status"] == "survived" and f"sql:{r['target']}:{k}" not in eq]


def survivors(r: dict) -> list[str]:
    return [f"{k} (line {r['statuses'][k]['line']}, {r['statuses'][k]['op']}): {r['statuses'][k]['context']}"
            for k in survivor_ids(r)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    ap.add_argument("--list", action="store_true", help="the targets, their functions and tests")
    ap.add_argument("--show", action="store_true", help="list the mutants without running them")
    ap.add_argument("--only", nargs="+", help="mutant ids or globs (function:N) to run again")
    ap.add_argument("--recheck", action="store_true",
                    help="run the saved survivors not recorded as equivalent again (after new tests)")
    ap.add_argument("--table", action="store_true", help="the table of the saved results, running nothing")
    args = ap.parse_args(argv)
    names = args.targets or list(TARGETS)
    bad = [n for n in names if n not in TARGETS]
    if bad:
        ap.error(f"unknown target(s) {bad}; choose from {list(TARGETS)}")
    if args.list:
        for n in names:
            p, f, t = TARGETS[n]
            print(f"{n}: {p} ({', '.join(f)}; {len(mutants(ROOT / p, f))} mutants)\n  tests: {' '.join(t)}")
        return 0
    if args.show:
        for n in names:
            p, f, _ = TARGETS[n]
            text = (ROOT / p).read_text(encoding="utf-8")
            for m in mutants(ROOT / p, f):
                print(f"{n}:{m.id} line {m.line} {m.op}: {context(text, m)}")
        return 0
    results = []
    for n in names:
        saved = ROOT / "build" / "sql_mutation" / f"{n}.json"
        if args.table:
            if saved.exists():
                results.append(json.loads(saved.read_text()))
            continue
        only = args.only
        if args.recheck:
            if not saved.exists():
                ap.error(f"no saved results of {n} to re-check ({saved})")
            only = survivor_ids(json.loads(saved.read_text()))
            if not only:
                results.append(json.loads(saved.read_text()))
                continue
        results.append(run(n, only))
    print(tabulate(results))
    for r in results:
        for line in survivors(r):
            print(f"survived: {r['target']}:{line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
