"""Mutation testing of the decision modules with mutmut 3, one module at a time.

    PYTHONPATH=$PWD python bench/mutation.py                 # every module below
    PYTHONPATH=$PWD python bench/mutation.py gate mixture    # some of them
    PYTHONPATH=$PWD python bench/mutation.py --list          # the modules and their tests
    PYTHONPATH=$PWD python bench/mutation.py tagging --recheck tests/test_pin_origin_summary.py  # survivors vs new tests

For each module the project (``provaudit/``, ``tests/``, ``fixtures/``, ``rules/``, ``pyproject.toml``)
is copied into ``build/mutation/<module>/`` with a ``[tool.mutmut]`` section that mutates only that
module and runs only the tests that pin it; mutmut then copies that into ``mutants/`` and runs the
tests once per mutant. The table printed at the end counts, per module, the mutants killed (a test
failed, or the mutant timed out), survived, and survived but recorded as equivalent (same behaviour
as the original; listed with the reason in ``docs/testing.md``, under "Equivalent mutants"). The
score is killed / (killed + survived - equivalent). Mutant names (``module.x_function__mutmut_N``)
are stable while the function's source is unchanged; after an edit re-check the equivalent list.

Not part of CI (.ci/run): a full run takes tens of minutes on two cores.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parent.parent

# module name -> (file to mutate, the tests that pin it, the decision functions to mutate: mutmut name globs,
# None for every function of the file)
MODULES: dict[str, tuple[str, list[str], list[str] | None]] = {
    "gate": ("provaudit/gate.py", ["tests/test_pin_gate.py", "tests/test_props_gate.py", "tests/test_scan_gate.py"],
             None),
    "fingerprint": ("provaudit/fingerprint/__init__.py",
                    ["tests/test_pin_fingerprint.py", "tests/test_props_fingerprint.py"]
                    + [f"tests/test_scan_pipeline.py::test_{t}" for t in (
                        "text_hash_ignores_unicode_form_and_spacing_only", "vectorised_normalization_matches_the_per_text_one",
                        "vectorised_shingle_hashes_match_the_word_3gram_definition")], None),
    "mixture": ("provaudit/mixture.py", ["tests/test_pin_mixture.py", "tests/test_pin_intervals.py", "tests/test_mixture.py"],
                None),
    "stats": ("provaudit/checkpoints/stats.py",
              ["tests/test_pin_stats.py", "tests/test_pin_decoupling.py", "tests/test_pin_intervals.py"], None),
    "decoupling": ("provaudit/checkpoints/analysis.py",
                   ["tests/test_pin_decoupling.py", "tests/test_pin_decoupling_ctx.py"],
                   ["*.x_decoupling__*", "*.xǁCtxǁ__post_init____*", "*.xǁCtxǁdiff__*", "*.x_correlation__*",
                    "*.x__p_one_sided__*"]),
    "checkpoint_rules": ("provaudit/checkpoints/analysis.py",
                         ["tests/test_pin_checkpoint_rules.py"],
                         ["*.x_tails__*", "*.x_confound__*", "*.x_overoptimization__*"]),
    "labelers_trend": ("provaudit/style/labelers.py", ["tests/test_pin_labelers_trend.py"],
                       ["*.x__trend__*", "*.x__wls__*"]),
    "coverage_stats": ("provaudit/coverage/stats.py", ["tests/test_pin_coverage_stats.py", "tests/test_coverage.py"],
                       [f"*.x_{f}__*" for f in ("nearest", "coverage_ci", "mixture_coverage", "mixture_ci",
                                                "rank_threshold", "new_traffic_fdr", "mmd_test")]),
    # how coverage() puts the statistics together into the verdict (threshold, windows, stale, drift at
    # alpha and alpha / k, the clusters of new traffic), and the trend over windows
    "coverage_core": ("provaudit/coverage/core.py", ["tests/test_pin_coverage_core.py"],
                      ["*.x_coverage__*", "*.x__trend__*"]),
    "harness": ("provaudit/checkpoints/harness.py", ["tests/test_pin_harness.py", "tests/test_harness.py"],
                [f"*.x_{f}__*" for f in ("_status", "_truncated", "_scale", "health_change", "_mcnemar_p", "_wilson")]),
    "tagging": ("provaudit/origin/tagging.py",
                ["tests/test_pin_origin.py", "tests/test_pin_origin_fallback.py", "tests/test_pin_origin_summary.py",
                 "tests/test_pin_origin_modes.py",
                 "tests/test_origin_tagging.py"],
                [f"*.x_{f}__*" for f in ("tag_origin", "_tag", "_evidence", "_top_k_order", "summarize_origin")]),
    "detector": ("provaudit/origin/detector.py",
                 ["tests/test_pin_detector.py", "tests/test_pin_origin.py", "tests/test_origin_detector.py"],
                 ["*.xǁDetectorǁ*", "*.x__sigmoid__*", "*.x__transform__*", "*.x_load_detector__*",
                  "*.x_fit_detector__*", "*.x_tpr_at_fpr__*", "*.x_score_metrics__*"]),
    "lineage": ("provaudit/catalog/lineage.py", ["tests/test_pin_lineage.py", "tests/test_lineage_find.py"],
                ["*.x_add_checkpoint__*", "*.x_lineage_find__*", "*.x__summarize__*", "*.x_list_checkpoints__*",
                 "*.x__deep_matches__*"]),
    "erase": ("provaudit/catalog/erase.py", ["tests/test_pin_erase_units.py", "tests/test_props_erase.py",
                                             "tests/test_erase.py"],
              [f"*.x_{f}__*" for f in ("_copy_except", "_is_blank", "_line_units", "_redact_lines", "_redact_json",
                                       "_redact", "_concrete_format", "_same_value", "_kept_units_identical",
                                       "_rows_with_field", "_targets")] + ["*.xǁ_CapturingLinesǁ*"]),
    # erase's orchestration: what the catalog says to remove (_plan), where those rows are now (_locate),
    # the copy's verification, the write-verify-record-rename sequence, and the row hashes all of it matches by
    "erase_flow": ("provaudit/catalog/erase.py",
                   ["tests/test_pin_erase_flow.py", "tests/test_erase.py"],
                   [f"*.x_{f}__*" for f in ("erase", "_plan", "_locate", "_verify", "_write_verified", "_remove",
                                            "read_rows", "_frame_row_hashes", "row_hash")]),
    "contamination": ("provaudit/contamination.py",
                      ["tests/test_pin_contamination.py", "tests/test_overlap_contamination.py"], None),
    "corpus": ("provaudit/origin/corpus.py",
               ["tests/test_pin_corpus.py"]
               + [f"tests/test_corpus_estimate.py::test_{t}" for t in (
                   "acc_is_the_textbook_formula", "em_recovers_known_shares_and_the_interval_covers_them",
                   "rates_from_scores_match_a_direct_count", "wide_error_rate_range_makes_the_estimate_unreliable_with_the_reason",
                   "em_matches_a_grid_search_of_the_likelihood")]
               + [f"tests/test_corpus_fit.py::test_{t}" for t in (
                   "the_stored_reference_is_the_pooled_sum_of_its_domains_and_holds_every_training_text",
                   "binned_mixture_mle_matches_a_direct_maximisation", "coarse_to_fine_search_equals_the_full_grid_bit_for_bit",
                   "a_batch_drawn_from_a_reference_mixture_fits_and_its_range_holds_the_truth",
                   "a_shape_no_mixture_can_make_fits_no_pair", "the_interval_holds_every_fitting_pairs_interval_on_gpt4_rewrites")],
               None),
    "labels": ("provaudit/style/labels.py", ["tests/test_pin_labels.py", "tests/test_style_labels.py"], None),
    # teacher convergence per batch (a batch's place between human and teacher, the teacher-like fraction) and
    # the diversity measures
    "converge": ("provaudit/style/converge.py", ["tests/test_pin_converge.py", "tests/test_style_teacher.py"], None),
    "diversity": ("provaudit/style/diversity.py", ["tests/test_pin_diversity.py", "tests/test_style_teacher.py",
                                                  "tests/test_output_text.py"], None),
    "style_trend": ("provaudit/style/trends.py", ["tests/test_pin_style_trend.py", "tests/test_style_trend_cli.py"],
                    ["*.x_trend__*", "*.x__get__*", "*.x__interval_keys__*"]),
    # the rule engine behind origin tagging's evidence (metadata and content rules, rule files and their tests)
    # the catalog's write lock and busy-file retries: who may write, how long a writer queues, what it says
    "lock": ("provaudit/catalog/lock.py", ["tests/test_pin_lock.py"], None),
    # which system-prompt rules no eval case exercises: the rule splitter and the embedding/lexical match
    "prompt_rules": ("provaudit/coverage/rules.py", ["tests/test_pin_prompt_rules.py"], None),
    # SIGINT / SIGTERM: the exit codes, the held signals of a commit, library use, blocked delivery
    "interrupt": ("provaudit/interrupt.py", ["tests/test_pin_interrupt.py"], None),
    # the language model's per-text features from the logits (the full detector's inputs)
    "lm_stats": ("provaudit/origin/lm.py", ["tests/test_pin_lm_stats.py"], ["*.x__token_stats__*"]),
    "origin_rules": ("provaudit/origin/rules.py", ["tests/test_pin_origin_rules.py", "tests/test_pin_rule_files.py",
                                                  "tests/test_origin_rules.py"], None),
    "pipeline": ("provaudit/pipeline.py", ["tests/test_pin_scan.py", "tests/test_scan_pipeline.py"],
                 [f"*.x_{f}__*" for f in ("_duplicate_tables", "_duplicate_summary", "_store_datasets",
                                          "_commit", "_dataset_parts")]),
}

STATUS = {1: "killed", 3: "killed", -24: "killed", 36: "killed", 0: "survived", None: "not run",
          33: "no tests", 34: "skipped", 5: "no tests", 2: "interrupted"}


def equivalent_rows(name: str) -> dict[str, str]:
    """Mutant name -> reason, from the rows ``| `name` | reason |`` of docs/testing.md's equivalent-mutant table
    whose name matches the regular expression ``name``."""
    doc = ROOT / "docs" / "testing.md"
    out: dict[str, str] = {}
    if doc.exists():
        for m in re.finditer(rf"^\| `({name})` \| (.+?) \|$", doc.read_text(), re.MULTILINE):
            out[m.group(1)] = m.group(2)
    return out


def equivalent_mutants() -> dict[str, str]:
    """mutmut's mutant name (or ``decorated:<module>:<n>``) -> reason (docs/testing.md)."""
    return {**equivalent_rows(r"[\w.]+__mutmut_\d+"), **equivalent_rows(r"decorated:\w+:\d+")}


def _pyproject(path: str, tests: list[str]) -> str:
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"\n\[tool\.mutmut\]\n(?:[^\[].*\n|\n)*", "\n", text)
    sel = ", ".join(json.dumps(t) for t in tests + ["-x", "-q", "-p", "no:cacheprovider",
                                                    "--hypothesis-profile=mutation"])
    return text + ("\n[tool.mutmut]\nsource_paths = [\"provaudit\"]\n"
                   f"only_mutate = [{json.dumps(path)}]\n"
                   "also_copy = [\"fixtures\", \"rules\"]\n"
                   f"pytest_add_cli_args_test_selection = [{sel}]\n"
                   "use_setproctitle = false\nuse_git_change_detection = false\nprocess_isolation = \"forkserver\"\n")


def _meta_statuses(name: str) -> dict[str, str]:
    """Statuses of the mutants run in ``build/mutation/<module>`` (exit codes from mutmut's store)."""
    meta = ROOT / "build" / "mutation" / name / "mutants" / (MODULES[name][0] + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
    return {k: STATUS.get(v, f"exit {v}") for k, v in codes.items() if v is not None}  # run ones only


def load_results(name: str) -> dict | None:
    """The module's last results: the saved JSON, or the work folder's store when that is newer (a run that
    was stopped before it could save)."""
    saved = ROOT / "build" / "mutation" / f"{name}.json"
    meta = ROOT / "build" / "mutation" / name / "mutants" / (MODULES[name][0] + ".meta")
    if saved.exists() and (not meta.exists() or saved.stat().st_mtime >= meta.stat().st_mtime):
        return json.loads(saved.read_text())
    st = _meta_statuses(name)
    return {"module": name, "file": MODULES[name][0], "statuses": st, "seconds": None} if st else None


def run_module(name: str, jobs: int, only: list[str] | None = None) -> dict:
    """Run mutmut on one module; with ``only`` (mutant names or globs) re-run just those mutants and merge
    their new statuses into the module's previous results (``build/mutation/<module>.json``)."""
    path, tests, functions = MODULES[name]
    prior = load_results(name)
    saved = ROOT / "build" / "mutation" / f"{name}.json"
    if prior is not None:  # keep the last results before the work folder is replaced
        saved.write_text(json.dumps(prior, indent=1, sort_keys=True) + "\n")
    if not only:
        prior = None
    if only and prior is None:  # e.g. a function edited since a run on another machine: its mutants alone
        print(f"{name}: no earlier results here; the results hold only the mutants matching --only",
              file=sys.stderr)
    if only:
        functions = only
    work = ROOT / "build" / "mutation" / name
    _fresh_copy(work)
    (work / "pyproject.toml").write_text(_pyproject(path, tests))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(work))
    t0 = time.time()
    log = work / "mutmut.log"
    with log.open("w") as fh:
        done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *(functions or [])],
                              cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        print(f"{name}: mutmut exited {done.returncode}; see {log}", file=sys.stderr)
    res = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, env=env,
                         capture_output=True, text=True, check=False)
    statuses: dict[str, str] = {}
    for line in res.stdout.splitlines():
        if ": " in line:
            k, v = line.strip().rsplit(": ", 1)
            statuses[k] = v
    statuses = _meta_statuses(name) or statuses
    if prior is not None:
        statuses = {**prior["statuses"], **statuses}
    result = {"module": name, "file": path, "statuses": statuses, "seconds": round(time.time() - t0)}
    saved.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


#: a re-checked mutant's tests running longer than this loop forever (mutmut's own runs time out too)
RECHECK_TIMEOUT_S = 300


def _fresh_copy(work: Path) -> None:
    """``work`` emptied and filled with the project's package, tests, fixtures and rules (no bytecode)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for d in ("provaudit", "tests", "fixtures", "rules"):
        shutil.copytree(ROOT / d, work / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _run_tests(tests: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess | None:
    """The tests once (stopping at the first failure, hypothesis's mutation profile); None when they ran past
    :data:`RECHECK_TIMEOUT_S` (a mutant that loops forever)."""
    try:
        return subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               "--hypothesis-profile=mutation", *tests], cwd=cwd, env=env, capture_output=True,
                              text=True, check=False, timeout=RECHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None


def _require_passing(tests: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Stop unless the tests pass without a mutant: failing ones would read every mutant as killed."""
    base = _run_tests(tests, cwd, env)
    if base is None or base.returncode != 0:
        code = "a timeout" if base is None else f"exit {base.returncode}"
        raise SystemExit(f"{' '.join(tests)} fail without a mutant ({code}); fix them first:\n"
                         + ("" if base is None else base.stdout[-2000:]))


def recheck(name: str, tests: list[str], only: list[str] | None) -> dict:
    """Run the module's surviving non-equivalent mutants (or those matching ``only``) again, each against
    ``tests`` as they are now (copied into the last run's ``mutants/`` folder), through mutmut's trampoline
    (``MUTANT_UNDER_TEST``); a failing test kills the mutant. Confirms that tests written after a run kill
    its survivors without running the whole module again. Statuses are merged into the saved results."""
    import fnmatch

    prior = load_results(name)
    mutants = ROOT / "build" / "mutation" / name / "mutants"
    if prior is None or not mutants.is_dir():
        raise SystemExit(f"no earlier run of {name} (build/mutation/{name}/mutants) to re-check")
    equiv = equivalent_mutants()
    todo = sorted(k for k, v in prior["statuses"].items() if v == "survived" and k not in equiv
                  and (not only or any(fnmatch.fnmatchcase(k, g) or k == g for g in only)))
    shutil.rmtree(mutants / "tests")
    shutil.copytree(ROOT / "tests", mutants / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(mutants))
    _require_passing(tests, mutants, env)
    statuses = dict(prior["statuses"])
    for k in todo:
        done = _run_tests(tests, mutants, {**env, "MUTANT_UNDER_TEST": k})
        if done is None:  # a mutant that loops forever: killed, as mutmut counts its timeouts
            statuses[k] = "killed"
            print(f"{k}: killed (timed out after {RECHECK_TIMEOUT_S} s)", flush=True)
            continue
        statuses[k] = {0: "survived", 1: "killed"}.get(done.returncode, f"exit {done.returncode}")
        print(f"{k}: {statuses[k]}", flush=True)
    result = {**prior, "statuses": statuses, "rechecked": sorted(set(prior.get("rechecked", [])) | set(todo))}
    (ROOT / "build" / "mutation" / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


#: decorators mutmut 3 still mutates under (it skips every other decorated function)
_MUTMUT_DECORATORS = ("dataclass", "staticmethod", "classmethod", "property")


def _decorated(fn: ast.FunctionDef) -> bool:
    names = [ast.unparse(d).split("(")[0].split(".")[-1] for d in fn.decorator_list]
    return any(n not in _MUTMUT_DECORATORS for n in names)


class _Mutator(ast.NodeTransformer):
    """Applies the ``target``-th mutation (counting from 0) inside the module's decorated functions, the ones
    mutmut 3 leaves alone (``@contextmanager``...): a comparison, ``and``/``or`` or ``+=``/``-=`` swapped, a
    ``not`` dropped, a number or a bool changed, a statement replaced by ``pass``. ``count`` ends as the number
    of mutations the module offers."""

    SWAPS: ClassVar[dict[type, type]] = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
             ast.GtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}

    def __init__(self, target: int = -1) -> None:
        self.target, self.count, self.desc, self.inside = target, 0, "", ""

    def _hit(self, node: ast.AST, what: str) -> bool:
        k, self.count = self.count, self.count + 1
        if k == self.target:
            self.desc = f"{self.inside}, line {getattr(node, 'lineno', '?')}: {what}"
        return k == self.target

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if self.inside or not _decorated(node):
            return self.generic_visit(node) if self.inside else node
        self.inside = node.name
        node.body = [self._statement(st) for st in node.body]
        self.inside = ""
        return node

    def _statement(self, st: ast.stmt) -> ast.stmt:
        if isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str):
            return st  # a docstring
        nested = [f for f in ("body", "orelse", "finalbody") if isinstance(getattr(st, f, None), list)]
        if nested or isinstance(st, ast.Try):
            for f in nested:
                setattr(st, f, [self._statement(x) for x in getattr(st, f)])
            for h in getattr(st, "handlers", []):
                h.body = [self._statement(x) for x in h.body]
            for f in ("test", "iter", "items"):  # the statement's own expressions (its bodies are done)
                v = getattr(st, f, None)
                if isinstance(v, list):
                    setattr(st, f, [self.visit(x) for x in v])
                elif v is not None:
                    setattr(st, f, self.visit(v))
            return st
        if isinstance(st, (ast.Expr, ast.Assign, ast.AugAssign, ast.Raise)) and \
                self._hit(st, f"`{ast.unparse(st)[:60]}` removed"):
            return ast.copy_location(ast.Pass(), st)
        return self.visit(st)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if not self.inside:
            return node
        for i, op in enumerate(node.ops):
            new = self.SWAPS.get(type(op))
            if new and self._hit(node, f"{type(op).__name__} -> {new.__name__}"):
                node.ops[i] = new()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        if self.inside and self._hit(node, "and <-> or"):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if self.inside and isinstance(node.op, ast.Not) and self._hit(node, "`not` dropped"):
            return node.operand
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if self.inside and isinstance(node.op, (ast.Add, ast.Sub)) and self._hit(node, "+= <-> -="):
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if not self.inside:
            return node
        v = node.value
        if isinstance(v, bool) and self._hit(node, f"{v} -> {not v}"):
            return ast.copy_location(ast.Constant(not v), node)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and self._hit(node, f"{v} -> {v + 1}"):
            return ast.copy_location(ast.Constant(v + 1), node)
        return node


def decorated_mutants(path: Path) -> list[tuple[str, str]]:
    """(description, mutated module source) for every mutation of the decorated functions of ``path``."""
    src = path.read_text()
    n = _Mutator()
    n.visit(ast.parse(src))
    out = []
    for k in range(n.count):
        m = _Mutator(k)
        tree = m.visit(ast.parse(src))
        out.append((m.desc, ast.unparse(ast.fix_missing_locations(tree))))
    return out


def run_decorated(name: str) -> dict:
    """Mutate the decorated functions of a module (see :class:`_Mutator`), one mutant at a time, and run the
    module's tests against each (a copy of ``provaudit/`` in ``build/mutation/<module>.decorated/``). Saved as
    ``build/mutation/<module>.decorated.json``; names ``decorated:<module>:<n>`` for docs/testing.md's table."""
    path, tests, _ = MODULES[name]
    work = ROOT / "build" / "mutation" / f"{name}.decorated"
    _fresh_copy(work)
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
    target = work / path
    original = target.read_text()
    statuses, descs = {}, {}
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(work), PYTHONDONTWRITEBYTECODE="1")
    _require_passing(tests, work, env)
    t0 = time.time()
    try:
        for k, (desc, text) in enumerate(decorated_mutants(ROOT / path)):
            key = f"decorated:{name}:{k}"
            target.write_text(text)
            done = _run_tests(tests, work, env)
            statuses[key] = "survived" if done is not None and done.returncode == 0 else "killed"
            descs[key] = desc
            print(f"{key}: {statuses[key]} ({desc})", flush=True)
    finally:
        target.write_text(original)
    result = {"module": f"{name} (decorated)", "file": path, "statuses": statuses, "descriptions": descs,
              "seconds": round(time.time() - t0)}
    (ROOT / "build" / "mutation" / f"{name}.decorated.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


def tabulate(results: list[dict]) -> str:
    equiv = equivalent_mutants()
    lines = ["| module | file | mutants | killed | survived | equivalent | other | score |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        st = r["statuses"]
        killed = sum(v == "killed" for v in st.values())
        surv = [k for k, v in st.items() if v == "survived"]
        eq = [k for k in surv if k in equiv]
        other = len(st) - killed - len(surv)
        denom = killed + len(surv) - len(eq)
        score = f"{100 * killed / denom:.1f}%" if denom else "n/a"
        lines.append(f"| {r['module']} | {r['file']} | {len(st)} | {killed} | {len(surv) - len(eq)} | {len(eq)} "
                     f"| {other} | {score} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the per-mutant statuses here")
    ap.add_argument("--only", nargs="+", help="run only these mutants (names or globs; one module), merged "
                                              "into that module's last results where there are any")
    ap.add_argument("--table", action="store_true", help="print the table of the last results, run nothing")
    ap.add_argument("--decorated", action="store_true",
                    help="mutate the module's decorated functions instead (@contextmanager..., which mutmut 3 skips) "
                         "with a small built-in set of mutations")
    ap.add_argument("--recheck", nargs="+", metavar="TEST",
                    help="re-run the last run's surviving non-equivalent mutants (one module; --only narrows them) "
                         "against these test files as they are now, and merge the statuses")
    args = ap.parse_args()
    if args.list:
        for k, (p, t, f) in MODULES.items():
            print(f"{k:12} {p:36} functions: {' '.join(f) if f else 'all'}\n{'':12} tests: {' '.join(t)}")
        return
    names = args.modules or list(MODULES)
    bad = [n for n in names if n not in MODULES]
    if bad:
        sys.exit(f"unknown module(s) {bad}; choose from {list(MODULES)}")
    equiv = equivalent_mutants()
    if args.table:
        print(tabulate([r for r in map(load_results, names) if r]))
        return
    if args.decorated:
        print(tabulate([run_decorated(n) for n in names]))
        return
    if (args.only or args.recheck) and len(names) != 1:
        sys.exit("--only and --recheck need exactly one module")
    if args.recheck:
        print(tabulate([recheck(names[0], args.recheck, args.only)]))
        return
    results = []
    for n in names:
        r = run_module(n, args.jobs, args.only)
        results.append(r)
        surv = sorted(k for k, v in r["statuses"].items() if v == "survived" and k not in equiv)
        print(f"{n}: {len(r['statuses'])} mutants in {r['seconds']} s; surviving non-equivalent: "
              f"{', '.join(surv) or 'none'}", flush=True)
    print(tabulate(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
