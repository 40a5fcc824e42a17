"""Shared test set-up: no network, ever; paths to the bundled fixtures."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, settings

# bench/mutation.py runs the property tests with --hypothesis-profile=mutation: no shrinking (a failing
# example is enough to kill a mutant, and shrinking it can take longer than the mutant's time limit)
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate], derandomize=True,
                          database=None)

# the test run caches bytecode (Python's default) even where PYTHONDONTWRITEBYTECODE is set: each xdist worker
# otherwise compiles and assertion-rewrites every test module again (3.3 s of a 9 s collection here) and
# every module it imports that has no cached .pyc
sys.dont_write_bytecode = False

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the test Ray cluster reports nothing and Ray Data starts no usage-collection actor (a process of its own)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# under pytest-xdist (-n auto) every core already runs a test worker: one compute thread per worker (and per
# command it starts) instead of each torch/OpenMP pool spinning on every core, which oversubscribes them
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


_RAY: dict[str, Any] = {}


@pytest.fixture
def ray_cluster():
    """One local two-node Ray cluster (``ray.cluster_utils.Cluster``: one CPU per node, each node with its
    own raylet and object store), started at the first Ray test of a test process and shared by the Ray
    tests that follow it (a start costs seconds); stopped after the last test of the Ray modules, which run
    first (``pytest_runtest_teardown`` and ``pytest_collection_modifyitems`` below), since an idle cluster keeps
    about 6% of a core busy for the rest of the session."""
    ray = pytest.importorskip("ray")
    if "cluster" not in _RAY:
        from ray.cluster_utils import Cluster

        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 << 20,
                                                          "include_dashboard": False})
        try:
            c.add_node(num_cpus=1, object_store_memory=80 << 20)
            ray.init(address=c.address, log_to_driver=False)
        except BaseException:
            c.shutdown()
            raise
        _RAY["cluster"] = c
    return _RAY["cluster"]


def _stop_ray_cluster() -> None:
    c = _RAY.pop("cluster", None)
    if c is not None:
        import ray

        ray.shutdown()
        c.shutdown()


#: test modules with a test that uses ``ray_cluster`` (filled at collection; they run first, back to back)
_RAY_MODULES: set[str] = set()
#: test modules marked ``torch_models`` (filled at collection; they run next, back to back, on the same worker)
_TORCH_MODULES: set[str] = set()


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


#: the default catalog of a command run in the repository (``provaudit.catalog.store.DEFAULT_PATH``): a test
#: that leaves its catalog to the default writes here, into the developer's own catalog or a stray file in CI
DEFAULT_CATALOG = ROOT / ".provaudit" / "catalog.duckdb"


def _default_catalog_state() -> tuple[int, int] | None:
    try:
        st = DEFAULT_CATALOG.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


#: its state when this process last looked (:func:`pytest_runtest_teardown` fails a test that changed it)
_DEFAULT_CATALOG: list[tuple[int, int] | None] = [_default_catalog_state()]

#: torch was imported in this process (by the test that :func:`pytest_runtest_teardown` checked first)
_TORCH_SEEN: list[str] = []


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the Ray cluster when the next test of this process (if any) is not in a Ray module; a later Ray
    test starts another.

    Fail a test that wrote the repository's default catalog (``.provaudit/catalog.duckdb`` under the
    repository, where the tests run): every scan logs itself in its catalog, ``record=False`` too.

    Warn (in the run's summary) when a test of a module without the ``torch_models`` marker is the first of its
    process to import torch: mark its module, or a second worker pays the torch import and model loads."""
    if not _TORCH_SEEN and "torch" in sys.modules:
        _TORCH_SEEN.append(item.nodeid)
        if _module(item) not in _TORCH_MODULES:
            import warnings

            warnings.warn(f"{item.nodeid} imported torch, but its module has no torch_models marker", stacklevel=1)
    state = _default_catalog_state()
    if state != _DEFAULT_CATALOG[0]:
        _DEFAULT_CATALOG[0] = state
        pytest.fail(f"{item.nodeid} (or a test running beside it) wrote the repository's own catalog "
                    f"{DEFAULT_CATALOG.relative_to(ROOT)}: pass catalog= / --catalog, or run in tmp_path",
                    pytrace=False)
    if "cluster" in _RAY and (nextitem is None or _module(nextitem) not in _RAY_MODULES):
        _stop_ray_cluster()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _stop_ray_cluster()


def assert_close(x: Any, y: Any, *, strict_types: bool = False, path: str = "") -> None:
    """Recursive equality of nested dicts and sequences: floats to 1e-9 relative (or 1e-12 absolute, NaN equal to
    NaN), everything else exactly (``strict_types``: of the same type too, e.g. ``bool`` and not ``numpy.bool_``)."""
    import numpy as np

    if isinstance(x, dict) or isinstance(y, dict):
        assert isinstance(x, dict) and isinstance(y, dict) and set(x) == set(y), (path, x, y)
        for k in x:
            assert_close(x[k], y[k], strict_types=strict_types, path=f"{path}.{k}")
    elif isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):
        assert isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)) and len(x) == len(y), (path, x, y)
        for n, (u, v) in enumerate(zip(x, y)):
            assert_close(u, v, strict_types=strict_types, path=f"{path}[{n}]")
    elif isinstance(x, (float, np.floating)) or isinstance(y, (float, np.floating)):
        assert x == pytest.approx(y, rel=1e-9, abs=1e-12, nan_ok=True), (path, x, y)
    else:
        assert x == y and (not strict_types or type(x) is type(y)), (path, x, y)


@contextmanager
def lock_held_by_another_thread(catalog: Path) -> Iterator[None]:
    """The catalog's write lock held by another thread of this process for the block (a writer here then
    queues for it, and gives up past its ``wait``)."""
    import threading

    from provaudit.catalog.lock import write_lock

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with write_lock(catalog, 0):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30), f"the write lock of {catalog} was not taken"
        yield
    finally:
        release.set()
        holder.join()


def dump_catalog(path: Path) -> dict[str, list]:
    """Every table of a catalog file, rows as sorted strings: compare two dumps to prove nothing changed."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        return {t: sorted(map(str, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        con.close()


@pytest.fixture()
def catalog_dump():
    """:func:`dump_catalog`, for tests that check a catalog was left exactly as it was."""
    return dump_catalog


def query_catalog(path: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` on a catalog file opened read-only by plain DuckDB: its stored tables as they are,
    without the views a :class:`provaudit.catalog.Catalog` adds over the files it references."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture()
def raw_catalog():
    """:func:`query_catalog`."""
    return query_catalog


def _hh_last_turn(transcript: str) -> str:
    return transcript.rsplit("\n\nAssistant:", 1)[-1].strip()


@pytest.fixture(scope="module")
def overlap_world(tmp_path_factory) -> dict[str, Any]:
    """A catalog and a batch with every kind of catalog match a scan reports (docs/overlap.md), for
    comparing the cluster's catalog checks with the catalog's DuckDB ones: HH-RLHF test rows as an eval
    set (exact and short trivial matches from later HH-RLHF rows), a 15-word refusal in 6 eval rows
    (boilerplate), an HH-RLHF answer reused under another question (reused, not a leak), a long eval
    answer with its last word changed (near), an erased training record brought back, an answer equal
    to a text of an eval set without questions, and answers equal to eval answers under a templated and a
    trivial eval question (each a leak under any batch question), and a 13-word stock line nearly matching
    only its short form in an eval row (no match)."""
    import gzip
    import json
    import re

    from provaudit.catalog.erase import erase
    from provaudit.pipeline import register

    d = tmp_path_factory.mktemp("overlap-world")
    cat = d / "c.duckdb"
    def jl(path: Path, rows: list[dict]) -> Path:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    with gzip.open(FIXTURES / "scan" / "hh_rlhf.jsonl.gz", "rt", encoding="utf-8") as fh:
        hh = [json.loads(line) for line in fh if line.strip()]
    words = lambda t: len(re.findall(r"\w+", t))
    register(FIXTURES / "scan" / "hh_rlhf.jsonl.gz", tags=["eval"], catalog=cat)
    refusal = "I'm sorry, but I cannot help you with that request, it is against my guidelines."
    answer = next(t for r in hh if 13 <= words(t := _hh_last_turn(r["chosen"])) < 20)
    register(jl(d / "refusals.jsonl", [{"prompt": f"question number {i} about chemistry homework please",
                                        "completion": refusal} for i in range(6)]
                + [{"prompt": "unrelated prompt with enough words to be substantive here", "completion": answer}]),
             tags=["eval", "refusals"], catalog=cat)
    first, second = (json.loads(line) for line in
                     (FIXTURES / "overlap" / "hh_rlhf_reused_answer.jsonl").read_text(encoding="utf-8").splitlines())
    register(jl(d / "reused_eval.jsonl", [first]), tags=["eval"], catalog=cat)
    pairs = [json.loads(line) for line in (FIXTURES / "scan" / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    erased_text = str(pairs[5]["chosen"])
    train = d / "train.jsonl"
    # u1's prompt is u2's too: erased but not watched (a kept record still holds it), so never "brought back"
    jl(train, [{"prompt": "Say hi.", "completion": erased_text, "user_id": "u1"},
               {"prompt": "Say hi.", "completion": str(pairs[6]["chosen"]), "user_id": "u2"}])
    register(train, tags=["train"], catalog=cat)
    erase(field="user_id=u1", out=d / "redacted", catalog=cat)
    longest = max((_hh_last_turn(r["chosen"]) for r in hh), key=words)
    near = longest.rsplit(" ", 1)[0] + " indeed."
    # an eval set of bare texts (no questions): an answer equal to one leaks under any batch question
    bare = str(pairs[7]["chosen"])
    register(jl(d / "bare_eval.jsonl", [{"text": bare}, {"text": str(pairs[8]["chosen"])}]), tags=["eval"], catalog=cat)
    # eval answers under a templated instruction (in 5 rows: boilerplate) and under a trivial question: the
    # answers are the cases, so they leak under any batch question
    long = [str(p["chosen"]) for p in pairs[16:] if words(str(p["chosen"])) >= 25][:7]
    template = "Please read the request below carefully and then write a helpful and complete reply to it."
    register(jl(d / "templated_eval.jsonl", [{"prompt": template, "completion": t} for t in long[:5]]
                + [{"prompt": "Continue.", "completion": long[5]},
                   {"prompt": "Hm?", "completion": "I’m sorry, I’m not sure what you’re asking."},
                   # one row with a question of its own: the others' answers are still the cases
                   {"prompt": "Explain how the gears of a bicycle work, and why a lower gear makes a steep hill "
                              "easier to climb.", "completion": long[6]}]), tags=["eval"],
             catalog=cat)
    question = "Please answer the question below in your own words, as fully as you can and with an example."
    batch = jl(d / "batch.jsonl", [{"prompt": "Hi.", "completion": refusal}, {"prompt": "Say hi.", "completion": answer},
                                   {"prompt": "Write something.", "completion": erased_text},
                                   {"prompt": "Continue.", "completion": near},
                                   {"prompt": question, "completion": bare},
                                   {"prompt": "What would you say to a colleague who asked you this at lunch today?",
                                    "completion": long[2]},
                                   {"prompt": question.replace("an example", "two examples"), "completion": long[5]},
                                   # 13 words (substantive), nearly matching only the 11-word stock line: no match
                                   {"prompt": question.replace("an example", "an analogy"),
                                    "completion": "I’m sorry, I’m not sure what you’re asking me here."}])
    reused = jl(d / "reused.jsonl", [second])
    inputs = [FIXTURES / "overlap" / "hh_rlhf_1001_1600.jsonl.gz", batch, reused]
    return {"catalog": cat, "inputs": inputs, "dir": d}


def pytest_collection_modifyitems(config, items) -> None:
    """Run the modules that use the Ray cluster first, then those marked ``torch_models``, then those with the
    most ``slow`` tests (each module's tests stay together and in order, so module-scoped fixtures start once).

    Under ``-n auto --dist worksteal`` the first worker takes the head of the queue and a worker steals from
    the tail of another's, so the Ray tests run back to back on one worker under one cluster (a cluster start
    with its Ray Data actors costs about 20 CPU-seconds on this machine; interleaved with other modules they
    started three); the modules that load the language model or MiniLM run on that worker too, so only one
    process imports torch, transformers and sentence-transformers (4 to 10 CPU-seconds per process here); and
    a long test starts early instead of leaving one worker busy at the end."""
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(_module(item), []).append(item)
    ray = {m: any("ray_cluster" in getattr(it, "fixturenames", ()) for it in its) for m, its in modules.items()}
    _RAY_MODULES.clear()
    _RAY_MODULES.update(m for m, uses in ray.items() if uses)
    torch = {m: any(it.get_closest_marker("torch_models") for it in its) for m, its in modules.items()}
    _TORCH_MODULES.clear()
    _TORCH_MODULES.update(m for m, uses in torch.items() if uses)
    weight = {m: sum(1 for it in its if it.get_closest_marker("slow")) for m, its in modules.items()}
    # stable: collection order among equals
    order = sorted(modules, key=lambda m: (not ray[m], not torch[m], -weight[m]))
    items[:] = [it for m in order for it in modules[m]]
