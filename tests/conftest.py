"""Shared test set-up: no network, ever; paths to the bundled fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import Phase, settings

# bench/mutation.py runs the property tests with --hypothesis-profile=mutation: no shrinking (a failing
# example is enough to kill a mutant, and shrinking it can take longer than the mutant's time limit)
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate], derandomize=True,
                          database=None)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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


def pytest_collection_modifyitems(config, items) -> None:
    """Run the modules with the most ``slow`` tests first (each module's tests stay together and in order,
    so module-scoped fixtures such as a Ray cluster start once): under ``-n auto --dist worksteal`` a long
    test then starts early instead of leaving one worker busy at the end while the others are done."""
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    weight = {m: sum(1 for it in its if it.get_closest_marker("slow")) for m, its in modules.items()}
    order = sorted(modules, key=lambda m: -weight[m])  # stable: collection order among equals
    items[:] = [it for m in order for it in modules[m]]
