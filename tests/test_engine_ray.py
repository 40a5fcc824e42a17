"""``scan(engine="ray")`` on a local Ray cluster (``conftest.ray_cluster``: two nodes) gives the single-process
result exactly."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from provaudit.pipeline import scan

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
INPUTS = [ROOT / "fixtures" / "scan" / "hh_rlhf.jsonl.gz", ROOT / "fixtures" / "scan" / "trl_pairs.jsonl",
          ROOT / "fixtures" / "scan" / "ultrafeedback_style.jsonl"]


def _origin_available() -> bool:
    """Origin tagging is part of the default scan once ``provaudit.origin.tag_origin`` exists."""
    if importlib.util.find_spec("provaudit.origin") is None:
        return False
    from provaudit import origin

    return hasattr(origin, "tag_origin")


def _compare(tmp_path: Path, origin: bool) -> None:
    local = scan(INPUTS, catalog=tmp_path / "l.duckdb", out=tmp_path / "local", origin=origin, batch_size=64)
    dist = scan(INPUTS, catalog=tmp_path / "r.duckdb", out=tmp_path / "ray", origin=origin, batch_size=64,
                engine="ray")
    a, b = local.records(), dist.records()
    assert a.height > 500 and a["source_file"].n_unique() == 3
    assert_frame_equal(a, b)
    assert (tmp_path / "local" / "summary.json").read_bytes() == (tmp_path / "ray" / "summary.json").read_bytes()
    # the catalog was written once, by the driver, with the same datasets
    assert dist.summary["catalog"] == local.summary["catalog"]
    assert a["exact_dup_of"].is_not_null().sum() == b["exact_dup_of"].is_not_null().sum()


@pytest.mark.slow
def test_ray_scan_with_origin_identical_to_local(tmp_path: Path, ray_cluster) -> None:
    if not _origin_available():
        pytest.skip("provaudit.origin.tag_origin has not landed yet")
    _compare(tmp_path, origin=True)


@pytest.mark.slow
def test_run_ray_yields_batches_in_input_order(ray_cluster) -> None:
    from provaudit.engine.ray_engine import run_ray
    from provaudit.io import read_records
    from provaudit.pipeline import StageOptions, process_batch

    opts = StageOptions(origin=False)
    batches = list(read_records(INPUTS[0], batch_size=17))
    out = list(run_ray(iter(batches), opts, window=3))  # several windows, one short
    assert len(out) == len(batches)
    for b, o in zip(batches, out):
        assert_frame_equal(process_batch(b, opts), o)


def test_a_released_task_returns_its_result_under_its_own_name_and_raises_its_error(ray_cluster) -> None:
    """provaudit.engine.tasks: the function's result and exception come back unchanged, and the worker
    names itself after the function (bench/scan.py's memory breakdown reads these names). Standard-library
    functions stand in for provaudit's: a worker imports a task's function by its module, as it does
    provaudit's."""
    import operator

    from provaudit.engine.tasks import Task

    assert ray.get(Task(ray, operator.add, num_cpus=1).remote(2, 3)) == 5
    cmdline = Path("/proc/self/cmdline")
    if cmdline.exists():
        title = ray.get(Task(ray, cmdline.read_bytes, num_cpus=1).remote()).split(b"\0")[0].decode()
        assert title == "ray::read_bytes"
    with pytest.raises(FileNotFoundError, match="no/such/file"):
        try:
            ray.get(Task(ray, os.stat, num_cpus=1, max_retries=0).remote("no/such/file"))
        except ray.exceptions.RayTaskError as e:  # the worker's exception, as Ray re-raises it
            raise e.as_instanceof_cause() from None


def test_release_memory_empties_the_arrow_pool_and_survives_a_libc_without_malloc_trim(monkeypatch) -> None:
    import pyarrow as pa

    from provaudit.engine import tasks

    big = pa.array(range(2_000_000))
    assert pa.default_memory_pool().bytes_allocated() >= 16_000_000
    del big
    tasks.release_memory()
    assert pa.default_memory_pool().bytes_allocated() == 0
    monkeypatch.setattr(tasks, "_malloc_trim", lambda: None)  # musl: no malloc_trim
    tasks.release_memory()


@pytest.mark.parametrize("address", [None, "ray://head:10001"])
def test_a_local_cluster_provaudit_starts_reports_no_usage_statistics(monkeypatch, address) -> None:
    """Started locally (no RAY_ADDRESS): usage statistics off unless the user chose; joining a cluster leaves
    the choice to it."""
    import ray

    from provaudit.engine import ray_engine

    seen: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append(kw))
    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    if address:
        monkeypatch.setenv("RAY_ADDRESS", address)
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_engine._ensure_ray(None)
    assert len(seen) == 1 and seen[0]["include_dashboard"] is False
    assert os.environ.get("RAY_USAGE_STATS_ENABLED") == (None if address else "0")
    assert ("num_cpus" in seen[0]) is (address is None)
    if not address:  # a user's own choice stands
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
        ray_engine._ensure_ray(None)
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"
