"""bench/sql_mutation.py: the mutants of SQL literals are the ones documented, valid Python, one change each,
never inside an f-string's expressions; its targets name functions that exist and hold SQL."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import sql_mutation as sm

SOURCE = '''
EXAMPLES = 5


class Store:
    def report(self, src, ids):
        note = "not SQL: a = b and c <> d"
        return self.con.execute(
            f"""SELECT a.id, min(a.kind) FROM {src} a LEFT JOIN b ON b.id = a.id
                WHERE a.n >= 2 AND a.why IS NULL OR a.k <> 'x' AND a.m IS NOT NULL
                AND a.id NOT IN ({", ".join(str(i) for i in ids if i <= 3)}) ORDER BY a.id DESC LIMIT {EXAMPLES}""")


def other():
    return "SELECT count(DISTINCT h) FROM t WHERE p IS DISTINCT FROM q UNION ALL SELECT 1 FROM u"
'''


def _mutants(tmp_path: Path, functions: list[str]) -> tuple[str, list[sm.Mutant]]:
    path = tmp_path / "mod.py"
    path.write_text(SOURCE, encoding="utf-8")
    return SOURCE, sm.mutants(path, functions)


def test_each_operator_of_the_sql_and_nothing_else(tmp_path: Path) -> None:
    text, ms = _mutants(tmp_path, ["Store.report", "other"])
    got = [(m.id, m.before, m.after) for m in ms]
    assert got == [
        ("Store.report:0", "min(", "max("),
        ("Store.report:1", "LEFT JOIN", "JOIN"),
        ("Store.report:2", "=", "<>"),
        ("Store.report:3", ">=", ">"),
        ("Store.report:4", "2", "3"),
        ("Store.report:5", "AND", "OR"),
        ("Store.report:6", "IS NULL", "IS NOT NULL"),
        ("Store.report:7", "OR", "AND"),
        ("Store.report:8", "<>", "="),
        ("Store.report:9", "AND", "OR"),
        ("Store.report:10", "IS NOT NULL", "IS NULL"),
        ("Store.report:11", "AND", "OR"),
        ("Store.report:12", "NOT ", ""),
        ("Store.report:13", "DESC", "ASC"),
        ("other:0", "DISTINCT ", ""),
        ("other:1", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"),
        ("other:2", "UNION ALL", "UNION"),
        ("other:3", "1", "0"),
    ]
    # the f-string's expressions ({src}, the join over ids with its own <=, {EXAMPLES}) and the plain string
    # that is not SQL are left alone
    for m in ms:
        mutated = sm.apply(text, m)
        ast.parse(mutated)  # still Python
        assert mutated[:m.start] == text[:m.start] and mutated[m.start + len(m.after):] == text[m.end:]
        assert text[m.start:m.end] == m.before
        assert m.line == text.count("\n", 0, m.start) + 1


def test_the_context_shows_the_change_in_place(tmp_path: Path) -> None:
    text, ms = _mutants(tmp_path, ["other"])
    assert sm.context(text, ms[1], width=12) == "M t WHERE p [IS DISTINCT FROM -> IS NOT DISTINCT FROM] q UNION ALL"


def test_an_unknown_function_is_an_error(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(SystemExit, match="missing_fn"):
        _mutants(tmp_path, ["Store.report", "missing_fn"])


def test_every_target_names_functions_with_sql_and_existing_tests() -> None:
    for name, (path, functions, tests) in sm.TARGETS.items():
        ms = sm.mutants(ROOT / path, functions)
        assert {m.id.rsplit(":", 1)[0] for m in ms} == set(functions), name
        assert all((ROOT / t).is_file() for t in tests), name
