"""End-to-end ``provaudit scan`` benchmark: rows/s and peak memory, against a naive pandas script.

For each size in ``--rows`` it generates a realistic preference file (``bench/generate.py``:
real fixture sentences recombined, 2% exact and 3% near-duplicate outputs), then runs the real
CLI, ``provaudit scan FILE --catalog ... --out ...``, in a fresh subprocess per configuration,
so each figure includes start-up, reading, every per-batch stage, the DuckDB finalize step, the
summary and the catalog write of the scanned batch. Peak memory is sampled over the whole
process tree (psutil, every 50 ms: main process plus any workers) and also read from the kernel
(largest single process). Then it runs ``bench/baseline_pandas.py`` (pandas + datasketch +
TF-IDF/logistic regression doing the same work) on the first ``--baseline-rows`` rows of the
same file and prints the ratio of rows/s.

Configurations (``--configs``, comma separated):
  no-origin  fingerprint + exact/near duplicates + overlap + catalog (``--no-origin``)
  default    the default scan (adds rules, stylometric features, fast-path origin tagging;
             ``--workers 0``: one process per core from 50,000 rows)
  single     the default scan in one process (``--workers 1``); no-origin-single likewise
  workers2   the default scan with ``--workers 2``
  no-origin-workers2  ``--no-origin --workers 2``
  full       ``--origin-mode full`` (MiniLM sentence embeddings), reported separately
  ray        the default scan with ``--engine ray`` on a simulated cluster started here
             (``ray.cluster_utils.Cluster``: ``--ray-nodes`` nodes of ``--ray-cpus`` CPUs each); the
             scan process is the driver. Reports the driver's CPU seconds, the cluster's (every
             process of the cluster: raylets, GCS, workers, sampled every 50 ms) and the driver's share
  ray-no-origin  the same with ``--no-origin``; ray-no-record: with ``--no-record`` (no records are
             added to the catalog: the commit's bulk insert is the driver's one O(rows) step)
  ray-overlap-driver  ``--engine ray`` with the overlap and erasure checks run by DuckDB on the driver
             (``PROVAUDIT_RAY_OVERLAP=driver``, the way before they moved to the workers)
  ray-cached-keys  ``--engine ray`` with ``PROVAUDIT_RAY_KEYS_CACHE=1``, timed on a second scan against
             the same catalog (the first, untimed, ``--no-record``, exports the catalog's keys beside it)

``PROVAUDIT_RECORD_FILE_RECORDS=0 PROVAUDIT_BAND_FILE_RECORDS=0`` in the environment gives the scanned
dataset the catalog layout of a big one at any size (records, metadata fields and band keys in Parquet
files a Ray worker prepares; docs/lineage.md); ``--catalog-rows N`` first registers the input's first N
rows as an eval set, so the overlap and erasure checks join against a catalog that is not empty.

``--format csv`` scans the same rows as a CSV file (prompt, chosen, rejected; cut into byte ranges by
``--engine ray``, docs/scale-out.md) instead of JSON lines, ``--format jsonl.gz`` as gzip JSON lines
(inflated by one task, then cut, by ``--engine ray``); the baseline still reads the JSON lines.

Example::

    python bench/scan.py --rows 100000 --configs no-origin,default,workers2 --baseline-rows 20000
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CONFIGS = {
    "no-origin": ["--no-origin"],
    "default": [],                      # --workers 0: one process per core for 50k+ rows
    "single": ["--workers", "1"],
    "no-origin-single": ["--no-origin", "--workers", "1"],
    "workers2": ["--workers", "2"],
    "no-origin-workers2": ["--no-origin", "--workers", "2"],
    "full": ["--origin-mode", "full"],
    "ray": ["--engine", "ray"],                       # on the simulated cluster (--ray-nodes)
    "ray-no-origin": ["--engine", "ray", "--no-origin"],
    "ray-no-record": ["--engine", "ray", "--no-record"],  # without the catalog commit of the records
    "ray-overlap-driver": ["--engine", "ray"],  # the catalog checks by DuckDB on the driver (CONFIG_ENV)
    "ray-cached-keys": ["--engine", "ray"],  # the catalog's keys exported by an earlier scan (CONFIG_ENV)
}
#: environment of a configuration's scan
CONFIG_ENV = {"ray-overlap-driver": {"PROVAUDIT_RAY_OVERLAP": "driver"},
              "ray-cached-keys": {"PROVAUDIT_RAY_KEYS_CACHE": "1"}}


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; return wall and CPU seconds, exit status, peak tree RSS and largest-process RSS (MB).

    CPU seconds (user + system of the process and the workers it waited for) are reported next
    to wall time because they barely move when other jobs share the machine.
    """
    import threading

    try:
        import psutil
    except ImportError:  # the kernel's figures alone
        psutil = None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:
        chunks[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(n, st), daemon=True)
               for n, st in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        ps = psutil.Process(proc.pid)
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(ps))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True) if psutil else None
    if sampler:
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "status": proc.returncode,
            "peak_tree_rss_mb": round(peak[0] / 2**20), "max_process_rss_mb": round(usage.ru_maxrss / 1024),
            "stdout": chunks.get("out", b"").decode(errors="replace"),
            "stderr": chunks.get("err", b"").decode(errors="replace")}


def provaudit_cmd() -> list[str]:
    exe = shutil.which("provaudit")
    return [exe] if exe else [sys.executable, "-c", "from provaudit.cli import main; main()"]


class ClusterMeter:
    """CPU seconds and peak memory of a simulated Ray cluster's processes (children of this process,
    apart from the scan being measured) between ``start`` and ``stop``, sampled every 50 ms."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.me = psutil.Process()
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.peak_tree = self.peak_proc = 0
        self.by_title: dict[str, int] = {}  # peak RSS seen while a process had this title (ray::<task>)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _procs(self):
        import psutil

        out = []
        for p in self.me.children(recursive=True):
            try:
                if "provaudit" in " ".join(p.cmdline()):  # the scan (driver) itself
                    continue
                out.append((p.pid, sum(p.cpu_times()[:4]), p.memory_info().rss, _title(p.cmdline())))
            except psutil.Error:
                continue
        return out

    def _run(self) -> None:
        while not self.done.is_set():
            procs = self._procs()
            for pid, cpu, rss, title in procs:
                self.last[pid] = cpu
                self.by_title[title] = max(self.by_title.get(title, 0), rss)
            self.peak_tree = max(self.peak_tree, sum(r for _, _, r, _ in procs))
            self.peak_proc = max([self.peak_proc] + [r for _, _, r, _ in procs])
            self.done.wait(0.05)

    def start(self) -> None:
        self.base = {pid: cpu for pid, cpu, *_ in self._procs()}
        self.thread.start()

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        cpu = sum(c - self.base.get(pid, 0.0) for pid, c in self.last.items())
        return {"cluster_cpu_seconds": round(cpu, 1), "cluster_peak_tree_rss_mb": round(self.peak_tree / 2**20),
                "cluster_max_process_rss_mb": round(self.peak_proc / 2**20),
                "cluster_peak_rss_mb_by_title": {t: round(r / 2**20) for t, r in
                                                 sorted(self.by_title.items(), key=lambda kv: -kv[1])[:12]}}


def _title(cmdline: list[str]) -> str:
    """A process's name for the memory breakdown: a Ray worker's title while it runs a task is
    ``ray::<task name>`` (``ray::IDLE`` between tasks, keeping what its last task left), else the program."""
    first = cmdline[0] if cmdline else "?"
    if first.startswith("ray::"):
        return first.split()[0]
    return Path(first).name


def start_cluster(nodes: int, cpus: int):
    """A local multi-node Ray cluster (each node its own raylet and object store)."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "object_store_memory": 200 << 20,
                                                      "include_dashboard": False})
    for _ in range(nodes - 1):
        c.add_node(num_cpus=cpus, object_store_memory=200 << 20)
    c.wait_for_nodes()
    return c


def _catalog_paths(cat: Path) -> list[Path]:
    """The catalog file and the folders of Parquet files it references (docs/lineage.md)."""
    return [cat, cat.with_name(cat.name + ".wal"), cat.with_name(cat.name + ".bands"),
            cat.with_name(cat.name + ".records"), cat.with_name(cat.name + ".keys")]


def run_scan(data: Path, work: Path, config: str, workers: int | None = None, cluster=None,
             catalog_rows: int = 0) -> dict:
    out = work / f"out-{config}"
    cat = work / f"catalog-{config}.duckdb"
    for p in (out, *_catalog_paths(cat)):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    if catalog_rows:  # a catalog to check the scan against: the input's first rows as an eval set (not timed)
        head = work / f"eval-{catalog_rows}.jsonl"
        with open(data, encoding="utf-8") as src, open(head, "w", encoding="utf-8") as dst:
            dst.writelines(itertools.islice(src, catalog_rows))
        subprocess.run(provaudit_cmd() + ["register", str(head), "--catalog", str(cat), "--tag", "eval"], check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    cmd = provaudit_cmd() + ["scan", str(data), "--catalog", str(cat), "--out", str(out), "--json",
                             "--no-progress"] + CONFIGS[config]
    env = {**({"RAY_ADDRESS": cluster.address} if config.startswith("ray") and cluster else {}),
           **CONFIG_ENV.get(config, {})}
    if config == "ray-cached-keys":  # an untimed scan first, which exports the catalog's keys into the cache
        subprocess.run(cmd + ["--no-record"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    meter = ClusterMeter() if config.startswith("ray") else None
    if meter:
        meter.start()
    m = measure(cmd, env=env)
    extra = meter.stop() if meter else {}
    if meter:  # the scan process is the driver: its CPU next to the cluster's
        extra["driver_cpu_seconds"] = round(m["cpu_seconds"], 1)
        m["cpu_seconds"] += extra["cluster_cpu_seconds"]
        extra["driver_cpu_share"] = round(extra["driver_cpu_seconds"] / max(m["cpu_seconds"], 1e-9), 3)
    res = {"config": config, "command": " ".join(["provaudit"] + cmd[len(provaudit_cmd()):]),
           "seconds": round(m["seconds"], 1), "cpu_seconds": round(m["cpu_seconds"], 1), "status": m["status"],
           "peak_tree_rss_mb": m["peak_tree_rss_mb"], "max_process_rss_mb": m["max_process_rss_mb"], **extra}
    try:  # exit 1 is a failed gate (a complete scan) or a crash: only a summary on stdout tells
        summary = json.loads(m["stdout"]) if m["status"] in (0, 1) else None
    except json.JSONDecodeError:
        summary = None
    if summary is None:
        res["error"] = (m["stderr"].strip().splitlines() or ["?"])[-1][:300]
        (work / f"stderr-{config}.log").write_text(m["stderr"])
        (work / f"stdout-{config}.log").write_text(m["stdout"])
        return res
    rows = summary["input"]["rows"]
    res.update(rows=rows, records=summary["input"]["records"], rows_per_s=round(rows / m["seconds"]),
               rows_per_cpu_s=round(rows / max(m["cpu_seconds"], 1e-9)),
               records_per_s=round(summary["input"]["records"] / m["seconds"]),
               exact_rate=summary["duplicates"]["exact_rate"], near_rate=summary["duplicates"]["near_rate"],
               # per catalog dataset: exact, near, trivial and reused records (equal between the engines)
               overlap=[[o["exact_records"], o["near_records"], o["trivial_records"], o["reused_records"]]
                        for o in summary.get("overlap", {}).get("datasets", [])])
    shutil.rmtree(out, ignore_errors=True)
    for p in _catalog_paths(cat):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return res


def to_csv(data: Path) -> Path:
    """The rows of a generated JSON-lines file as CSV (written once, next to it)."""
    import csv

    out = data.with_suffix(".csv")
    if not out.exists():
        with open(data, encoding="utf-8") as src, open(out, "w", encoding="utf-8", newline="") as dst:
            w = csv.writer(dst)
            w.writerow(["prompt", "chosen", "rejected"])
            for line in src:
                r = json.loads(line)
                w.writerow([r["prompt"], r["chosen"], r["rejected"]])
    return out


def to_gzip(data: Path) -> Path:
    """A gzip copy of a generated JSON-lines file (written once, next to it)."""
    import gzip

    out = data.with_name(data.name + ".gz")
    if not out.exists():
        with open(data, "rb") as src, gzip.open(out, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
    return out


def run_baseline(data: Path, work: Path, rows: int) -> dict:
    sub = work / f"baseline-{rows}.jsonl"
    with open(data, encoding="utf-8") as src, open(sub, "w", encoding="utf-8") as dst:
        dst.writelines(itertools.islice(src, rows))
    m = measure([sys.executable, str(HERE / "baseline_pandas.py"), str(sub), "--out", str(work / "baseline.parquet")])
    if m["status"] != 0:
        return {"error": (m["stderr"].strip().splitlines() or ["?"])[-1][:300]}
    r = json.loads(m["stdout"].strip().splitlines()[-1])
    sub.unlink()
    return {"rows": r["rows"], "seconds": round(m["seconds"], 1), "rows_per_s": round(r["rows"] / m["seconds"]),
            "cpu_seconds": round(m["cpu_seconds"], 1), "rows_per_cpu_s": round(r["rows"] / max(m["cpu_seconds"], 1e-9)),
            "peak_tree_rss_mb": m["peak_tree_rss_mb"], "exact_rate": round(r["exact_duplicates"] / (2 * r["rows"]), 6),
            "near_rate": round(r["near_duplicates"] / (2 * r["rows"]), 6)}


def table(results: list[dict]) -> str:
    lines = [("| rows | configuration | wall s | rows/s | CPU s | rows per CPU s | peak RSS MB (tree / largest) "
             "| rows/s vs naive | rows per CPU s vs naive |"),
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r.get('size', '')} | {r['config']} | failed: {r['error']} | | | | |")
            continue
        ratio = f"{r['ratio_vs_naive']}x" if "ratio_vs_naive" in r else ""
        cratio = f"{r['cpu_ratio_vs_naive']}x" if "cpu_ratio_vs_naive" in r else ""
        lines.append(f"| {r['rows']:,} | {r['config']} | {r['seconds']} | {r['rows_per_s']:,} | {r['cpu_seconds']} | "
                     f"{r['rows_per_cpu_s']:,} | {r['peak_tree_rss_mb']:,} / {r['max_process_rss_mb']:,} | {ratio} "
                     f"| {cratio} |")
    ray_rows = [r for r in results if "driver_cpu_share" in r]
    if ray_rows:
        lines += ["", ("| rows | configuration | driver CPU s | cluster CPU s | driver share | rows per CPU s (all) "
                  "| driver peak RSS MB | cluster peak RSS MB (all / largest process) |"),
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in ray_rows:
            lines.append(f"| {r.get('rows', 0):,} | {r['config']} | {r['driver_cpu_seconds']} | "
                         f"{r['cluster_cpu_seconds']} | {100 * r['driver_cpu_share']:.1f}% | "
                         f"{r.get('rows_per_cpu_s', 0):,} | {r['max_process_rss_mb']:,} | "
                         f"{r['cluster_peak_tree_rss_mb']:,} / {r['cluster_max_process_rss_mb']:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, action="append", help="preference rows (repeatable; default 100000)")
    ap.add_argument("--configs", default="no-origin,default", help=f"comma list of {', '.join(CONFIGS)}")
    ap.add_argument("--baseline-rows", type=int, default=20_000,
                    help="rows for the naive pandas baseline (0: skip); ratios compare rows/s")
    ap.add_argument("--work", type=Path, default=None, help="keep generated files here (default: a temp dir)")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the results here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ray-nodes", type=int, default=2, help="nodes of the simulated cluster (ray configs)")
    ap.add_argument("--ray-cpus", type=int, default=1, help="CPUs per simulated node (ray configs)")
    ap.add_argument("--catalog-rows", type=int, default=0,
                    help="register the input's first N rows as an eval set in each scan's catalog first (not "
                         "timed), so the scan's overlap and erasure checks join against a catalog of that size")
    ap.add_argument("--format", choices=("jsonl", "csv", "jsonl.gz"), default="jsonl",
                    help="the file format the scans read")
    a = ap.parse_args(argv)
    if a.catalog_rows and a.format != "jsonl":
        ap.error("--catalog-rows registers JSON lines of the input: use it with --format jsonl")
    from generate import generate

    sizes = a.rows or [100_000]
    configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            ap.error(f"unknown configuration {c!r}")
    tmp = None
    if a.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="pa-bench-scan-")
        work = Path(tmp.name)
    else:
        work = a.work
        work.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    baseline = None
    cluster = start_cluster(a.ray_nodes, a.ray_cpus) if any(c.startswith("ray") for c in configs) else None
    try:
        for n in sizes:
            data = work / f"prefs-{n}-s{a.seed}.jsonl"
            if not data.exists():
                print(f"generating {n:,} rows -> {data}", file=sys.stderr)
                generate(data, n, seed=a.seed)
            if a.baseline_rows and baseline is None:
                print(f"naive baseline on {min(n, a.baseline_rows):,} rows", file=sys.stderr)
                baseline = run_baseline(data, work, min(n, a.baseline_rows))
                print(f"  {baseline}", file=sys.stderr)
            scanned = to_csv(data) if a.format == "csv" else to_gzip(data) if a.format == "jsonl.gz" else data
            for c in configs:
                print(f"scan {n:,} rows [{c}, {a.format}]", file=sys.stderr)
                r = run_scan(scanned, work, c, cluster=cluster, catalog_rows=a.catalog_rows)
                r["format"] = a.format
                r["size"] = n
                if baseline and "rows_per_s" in r and "rows_per_s" in baseline:
                    r["ratio_vs_naive"] = round(r["rows_per_s"] / baseline["rows_per_s"], 1)
                    r["cpu_ratio_vs_naive"] = round(r["rows_per_cpu_s"] / baseline["rows_per_cpu_s"], 1)
                print(f"  {r}", file=sys.stderr)
                results.append(r)
    finally:
        if cluster is not None:
            cluster.shutdown()
        if tmp is not None:
            tmp.cleanup()
    report = {"results": results, "baseline_pandas": baseline, "cpus": os.cpu_count(),
              "command": "python bench/scan.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if a.json_out:
        a.json_out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(table(results))
    if baseline and "rows_per_s" in baseline:
        print(f"\nnaive pandas + datasketch + TF-IDF/LR baseline: {baseline['rows']:,} rows in "
              f"{baseline['seconds']} s = {baseline['rows_per_s']:,} rows/s, {baseline['rows_per_cpu_s']:,} rows per "
              f"CPU s, peak {baseline['peak_tree_rss_mb']:,} MB")
    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          "(other jobs running make wall-clock figures slower; CPU-second figures move less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
