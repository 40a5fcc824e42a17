"""Pins of ``provaudit.coverage.core.coverage`` (how the statistics of ``coverage.stats``, each pinned in
test_pin_coverage_stats.py, are put together into the coverage verdict) and of its trend over windows.

The embeddings are replaced by fixed unit vectors (an eval cluster, production drawn from it plus a far cluster
of new traffic), so every expected value is computed here with numpy from the module doc's definitions: the
threshold, who is covered, the windows, the stale eval units, the drift decisions at alpha and alpha / k, the
clusters of confidently new traffic, and the summary's fields."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import kendalltau

from provaudit.coverage import core, stats
from provaudit.coverage.inputs import Units
from provaudit.errors import InputError, UsageError

DIM = 12
N_BOOT, N_PERM = 60, 60


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _cluster(rng: np.random.Generator, centre: int, n: int, spread: float = 0.15) -> np.ndarray:
    c = np.zeros(DIM)
    c[centre] = 1.0
    return _unit(c + spread * rng.standard_normal((n, DIM)))


def _units(name: str, n: int, windows: list[str] | None = None) -> Units:
    frame = pl.DataFrame({"record_id": [f"{name}:{i}:prompt:0" for i in range(n)],
                          "text": [f"{name} text {i}" for i in range(n)],
                          "source_file": [f"{name}.jsonl"] * n, "source_row": list(range(n)),
                          "window": windows or ["all"] * n},
                         schema={"record_id": pl.Utf8, "text": pl.Utf8, "source_file": pl.Utf8,
                                 "source_row": pl.Int64, "window": pl.Utf8})
    return Units(frame, [{"path": f"{name}.jsonl", "dataset": name, "schema": "messages", "fingerprint": "f" * 32,
                          "n_units": n}])


class World:
    """40 eval units around axis 0; production: day 1 = 30 eval-like units, day 2 = 30 eval-like + 30 new ones
    around axis 5, day 3 = 6 eval-like units (a window under ``min_window``)."""

    def __init__(self, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        self.e = _cluster(rng, 0, 40)
        self.p = np.concatenate([_cluster(rng, 0, 30), _cluster(rng, 0, 30), _cluster(rng, 5, 30),
                                 _cluster(rng, 0, 6)])
        self.windows = ["d1"] * 30 + ["d2"] * 60 + ["d3"] * 6
        self.new = np.array([False] * 60 + [True] * 30 + [False] * 6)
        self.ev, self.prod = _units("ev", len(self.e)), _units("prod", len(self.p), self.windows)
        self.vectors = {**dict(zip(self.ev.frame["text"], self.e)), **dict(zip(self.prod.frame["text"], self.p))}

    def run(self, monkeypatch, **kw):
        monkeypatch.setattr(core, "_embed", lambda texts, backend: np.stack([self.vectors[t] for t in texts]))
        kw = {"n_boot": N_BOOT, "n_perm": N_PERM, **kw}
        return core.coverage(self.ev, self.prod, **kw)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def _dist(a: np.ndarray, b: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine distance of each row of a to its nearest row of b (its index), of each row of b to a."""
    sims = (a @ b.T).astype(np.float32)
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    return (np.clip(1 - sims.max(1).astype(np.float64), 0, 2), sims.argmax(1),
            np.clip(1 - sims.max(0).astype(np.float64), 0, 2))


def r(x, nd=4):
    return None if x is None else round(float(x), nd)


# ---------------------------------------------------------------- the neighbour method: all by hand

def test_neighbour_method_threshold_coverage_and_who_is_covered(world: World, monkeypatch) -> None:
    res = world.run(monkeypatch, method="neighbour", by="day")
    s = res.summary
    loo, _, _ = _dist(world.e, world.e, exclude_self=True)
    tau = float(np.quantile(loo, 0.95))
    p_dist, p_arg, e_dist = _dist(world.p, world.e)
    covered = p_dist <= tau
    assert s["coverage"] == r(covered.mean()) and s["uncovered_share"] == r(1 - covered.mean())
    assert s["threshold"] == {"value": r(tau, 5), "method": "neighbour", "quantile": 0.95, "how": core._HOW["neighbour"],
                              "reference_scores": None, "n_calibration": 40, "neighbour_distance": r(tau, 5)}
    pf = res.production_units
    assert pf["covered"].to_list() == covered.tolist()
    assert np.allclose(pf["distance"].to_numpy(), p_dist) and np.allclose(pf["score"].to_numpy(), p_dist)
    assert pf["nearest_eval"].to_list() == [f"ev:{i}:prompt:0" for i in p_arg]
    # the new traffic is the uncovered part (the ground truth of the world)
    assert covered[world.new].mean() < 0.1 and covered[~world.new].mean() > 0.8
    # windows in time order with their own coverage and interval (seed + 1 + position)
    for j, (w, n) in enumerate([("d1", 30), ("d2", 60), ("d3", 6)]):
        idx = np.flatnonzero(np.array(world.windows) == w)
        lo, hi = stats.coverage_ci(p_dist[idx], loo, 0.95, n_boot=N_BOOT, seed=1 + j, fixed_threshold=None)
        assert s["windows"][j] == {"window": w, "n": n, "coverage": r(covered[idx].mean()),
                                   "coverage_ci": [r(lo), r(hi)]}
    lo, hi = stats.coverage_ci(p_dist, loo, 0.95, n_boot=N_BOOT, seed=0, fixed_threshold=None)
    assert s["coverage_ci"] == [r(lo), r(hi)]
    # stale eval units: no production unit within the threshold, the farthest first
    stale = e_dist > tau
    order = np.flatnonzero(stale)[np.argsort(-e_dist[stale], kind="stable")]
    assert s["stale"]["n"] == int(stale.sum()) and s["stale"]["share"] == r(stale.mean())
    assert s["stale"]["n_eval"] == 40 and s["stale"]["threshold"] == r(tau, 5)
    assert [x["record_id"] for x in s["stale"]["examples"]] == [f"ev:{i}:prompt:0" for i in order[:10]]
    assert res.eval_units["stale"].to_list() == stale.tolist()


def test_a_given_threshold_replaces_the_calibration_and_clusters_every_uncovered_unit(world: World,
                                                                                       monkeypatch) -> None:
    res = world.run(monkeypatch, method="neighbour", threshold=0.3)
    s = res.summary
    p_dist, _, _ = _dist(world.p, world.e)
    covered = p_dist <= 0.3
    assert s["coverage"] == r(covered.mean())
    assert (s["threshold"]["value"], s["threshold"]["how"], s["threshold"]["quantile"]) == (0.3, "given", None)
    assert s["uncovered_clustered"]["fdr"] is None and s["uncovered_clustered"]["how"] == (
        "every uncovered unit (a given threshold)")
    assert s["uncovered_clustered"]["n"] == int((~covered).sum())
    assert s["uncovered_clustered"]["share"] == r((~covered).mean())
    assert (res.production_units["cluster"].to_numpy() >= 0).tolist() == (~covered).tolist()
    assert res.production_units["fdr"].to_list() == [0.0] * len(covered)


def test_a_given_threshold_needs_no_calibration_set(monkeypatch) -> None:
    """Nine distinct eval units cannot calibrate (MIN_EVAL is 10) but can be compared with a given threshold."""
    w = World()
    w.e = np.concatenate([w.e[:9]] * 2)  # 18 units, 9 distinct
    w.ev = _units("ev", 18)
    w.vectors.update(dict(zip(w.ev.frame["text"], w.e)))
    res = w.run(monkeypatch, method="neighbour", threshold=0.3)
    assert res.summary["n_eval"] == 18
    with pytest.raises(InputError) as e:
        w.run(monkeypatch, method="neighbour")
    assert e.value.reason == ("eval set has 9 distinct units; at least 10 are needed to calibrate the closeness "
                              "threshold (or give --threshold)") and e.value.file == "ev.jsonl"


# ---------------------------------------------------------------- classifier and mixture

@pytest.mark.parametrize("method", ["classifier", "mixture"])
def test_classifier_scores_set_the_threshold_by_the_methods_rule(world: World, monkeypatch, method: str) -> None:
    res = world.run(monkeypatch, method=method, seed=4)
    s = res.summary
    calib, p = res.eval_units["score"].to_numpy(), res.production_units["score"].to_numpy()
    want_calib, want_p = stats.domain_scores(world.e, world.p, seed=4)  # out-of-fold logits, seeded
    assert np.array_equal(calib, want_calib) and np.array_equal(p, want_p)
    if method == "classifier":
        tau = float(np.quantile(calib, 0.95))
        cov = float((p <= tau).mean())
        assert s["threshold"]["quantile"] == 0.95 and s["threshold"]["reference_scores"] is None
    else:
        qs = stats.MIXTURE_QUANTILES
        cov_def = min(1.0, min(float(np.mean(p <= np.quantile(calib, q))) / q for q in qs))
        k = round(cov_def * len(p))
        tau = float(np.sort(p)[k - 1])  # the k most eval-like production units are covered
        cov = float((p <= tau).mean())
        assert abs(cov - cov_def) <= 1 / len(p) and cov == pytest.approx(k / len(p))
        assert s["threshold"]["quantile"] == list(qs)
        assert s["threshold"]["reference_scores"] == [r(t, 5) for t in np.quantile(calib, qs)]
        # each window's coverage is the mixture estimate on its own scores
        for j, w in enumerate(("d1", "d2", "d3")):
            idx = np.flatnonzero(np.array(world.windows) == w)
            assert s["windows"][j]["coverage"] == r(stats.mixture_coverage(p[idx], calib))
            lo, hi = stats.mixture_ci(p[idx], calib, n_boot=N_BOOT, seed=4 + 1 + j)
            assert s["windows"][j]["coverage_ci"] == [r(lo), r(hi)]
    assert s["coverage"] == r(cov) and s["threshold"]["value"] == r(tau, 5)
    assert s["threshold"]["how"] == core._HOW[method] and s["threshold"]["n_calibration"] == 40
    assert res.production_units["covered"].to_list() == (p <= tau).tolist()
    # stale: eval units scored more eval-like than 95% of production, the most eval-like first
    stale_tau = float(np.quantile(p, 0.05))
    stale = calib < stale_tau
    order = np.flatnonzero(stale)[np.argsort(calib[stale], kind="stable")]
    assert s["stale"]["threshold"] == r(stale_tau, 5) and s["stale"]["n"] == int(stale.sum())
    assert [x["record_id"] for x in s["stale"]["examples"]] == [f"ev:{i}:prompt:0" for i in order[:10]]
    # the new traffic is what is not covered
    assert (p <= tau)[world.new].mean() < 0.2 and (p <= tau)[~world.new].mean() > 0.8


def test_new_traffic_clusters_hold_the_confident_units_ranked_by_size(world: World, monkeypatch) -> None:
    res = world.run(monkeypatch, by="day", fdr=0.1, max_clusters=3)
    s, pf = res.summary, res.production_units
    p, calib = pf["score"].to_numpy(), res.eval_units["score"].to_numpy()
    cov = float(pf["covered"].to_numpy().mean())
    fdr = stats.new_traffic_fdr(p, calib, cov)
    assert np.allclose(pf["fdr"].to_numpy(), fdr)
    covered = pf["covered"].to_numpy()
    confident = ~covered & (fdr <= 0.1)
    cl = pf["cluster"].to_numpy()
    assert ((cl == -1) == covered).all() and ((cl >= 0) == confident).all() and ((cl == -2) == (~covered & ~confident)).all()
    sizes = [c["size"] for c in s["uncovered"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == int(confident.sum()) > 0
    assert [c["cluster"] for c in s["uncovered"]] == list(range(len(sizes)))
    for c in s["uncovered"]:
        members = np.flatnonzero(cl == c["cluster"])
        assert c["size"] == len(members) and c["share"] == r(len(members) / len(p))
        assert c["mean_score"] == r(p[members].mean())
        assert c["windows"] == {w: int(sum(world.windows[i] == w for i in members)) for w in ("d1", "d2", "d3")}
        centre = world.p[members].mean(axis=0)
        near = members[np.argsort(-(world.p[members] @ centre), kind="stable")[:3]]
        assert [x["record_id"] for x in c["examples"]] == [f"prod:{i}:prompt:0" for i in near]
    assert s["uncovered_top_share"] == s["uncovered"][0]["share"]
    assert s["uncovered_clustered"] == {"share": r(confident.mean()), "n": int(confident.sum()), "fdr": 0.1,
                                        "how": s["uncovered_clustered"]["how"]}
    assert s["uncovered_clustered"]["how"].startswith("uncovered units whose estimated false-discovery rate")
    # the clustered units are the new traffic
    assert world.new[confident].all()


def test_a_fully_covered_production_has_no_clusters(monkeypatch) -> None:
    w = World()
    w.p, w.windows = w.p[:60], w.windows[:60]
    w.prod = _units("prod", 60, w.windows)
    res = w.run(monkeypatch, method="neighbour", threshold=2.0)
    s = res.summary
    assert s["coverage"] == 1.0 and s["uncovered"] == [] and s["uncovered_top_share"] == 0.0
    assert (res.production_units["cluster"].to_numpy() == -1).all()


# ---------------------------------------------------------------- drift

def test_drift_tests_pooled_at_alpha_and_each_window_at_alpha_over_k(world: World, monkeypatch) -> None:
    res = world.run(monkeypatch, method="neighbour", by="day", seed=2, alpha=0.05)
    d = res.summary["drift"]
    pooled = stats.mmd_test(world.e, world.p, n_perm=N_PERM, seed=2, max_n=1000)
    assert (d["p_value"], d["effect"]) == (r(pooled["p_value"]), r(pooled["effect"], 5))
    assert (d["alpha"], d["window_alpha"], d["n_permutations"]) == (0.05, r(0.05 / 3, 6), N_PERM)
    wins = d["windows"]
    for j, w in enumerate(("d1", "d2")):
        idx = np.flatnonzero(np.array(world.windows) == w)
        t = stats.mmd_test(world.e, world.p[idx], n_perm=N_PERM, seed=2 + 1 + j, max_n=500)
        assert wins[j] == {"window": w, "n": len(idx), "p_value": r(t["p_value"]), "effect": r(t["effect"], 5),
                           "detected": bool(t["p_value"] < 0.05 / 3)}
    assert wins[2] == {"window": "d3", "n": 6, "p_value": None, "effect": None, "detected": False,
                       "note": "fewer than 10 units"}
    assert wins[1]["detected"] and not wins[0]["detected"]  # the day with new traffic, not the other
    assert d["detected"] is True and d["test"] == "mmd (gaussian kernel, median bandwidth), permutation p-value"
    assert d["trend"] == core._trend(res.summary["windows"], wins)


def test_one_window_reuses_the_pooled_test_and_same_traffic_is_not_drift(monkeypatch) -> None:
    w = World(seed=8)
    w.p, w.windows = w.p[:60], ["all"] * 60
    w.prod = _units("prod", 60, w.windows)
    res = w.run(monkeypatch, method="neighbour", seed=1)
    d = res.summary["drift"]
    pooled = stats.mmd_test(w.e, w.p, n_perm=N_PERM, seed=1, max_n=1000)
    assert d["windows"][0]["p_value"] == d["p_value"] == r(pooled["p_value"]) and d["window_alpha"] == 0.01
    assert pooled["p_value"] >= 0.01 and d["detected"] is False and d["windows"][0]["detected"] is False
    assert d["trend"]["direction"] == "one window"


def test_drift_exactly_at_alpha_is_not_detected(world: World, monkeypatch) -> None:
    """p < alpha detects; a p-value equal to alpha does not (pooled and per window)."""
    monkeypatch.setattr(stats, "mmd_test", lambda x, y, **kw: {"p_value": 0.02, "effect": 0.1})
    res = world.run(monkeypatch, method="neighbour", by="day", alpha=0.02)
    d = res.summary["drift"]
    assert d["detected"] is False and not any(x["detected"] for x in d["windows"])
    res = world.run(monkeypatch, method="neighbour", by="day", alpha=0.06)  # alpha / 3 = 0.02: not below either
    assert res.summary["drift"]["detected"] is True and not any(x["detected"] for x in res.summary["drift"]["windows"])


def test_a_window_of_exactly_min_window_units_is_tested(monkeypatch) -> None:
    w = World()
    keep = np.r_[0:30, 30:40]  # d1: 30 units, d2: exactly 10
    w.p, w.windows = w.p[keep], [w.windows[i] for i in keep]
    w.prod = _units("prod", len(keep), w.windows)
    res = w.run(monkeypatch, method="neighbour", by="day")
    assert [x["p_value"] is not None for x in res.summary["drift"]["windows"]] == [True, True]


# ---------------------------------------------------------------- the summary

def test_the_summary_names_its_inputs_settings_and_passes_a_gate(world: World, monkeypatch, tmp_path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text("checks:\n  - id: min_coverage\n    metric: coverage\n    min: 0.99\n", encoding="utf-8")
    recorded = []
    from provaudit.coverage import history

    monkeypatch.setattr(history, "record_run", lambda summary, catalog: recorded.append((summary, catalog)))
    res = world.run(monkeypatch, method="neighbour", by="day", seed=5, gate=gate, record=True, catalog="cat.duckdb")
    s = res.summary
    assert (s["n_eval"], s["n_production"], s["unit"], s["backend"], s["by"], s["seed"]) == (
        40, 96, "prompt", "static", "day", 5)
    assert s["inputs"] == {"eval": world.ev.inputs, "production": world.prod.inputs}
    assert s["gate"]["passed"] is False and s["gate"]["failed"] == ["min_coverage"]
    assert not res.passed
    assert recorded == [(s, "cat.duckdb")]
    res2 = world.run(monkeypatch, method="neighbour", by="day", seed=5)
    assert "gate" not in res2.summary and res2.passed


def test_fewer_than_min_eval_production_units_is_refused(world: World, monkeypatch) -> None:
    small = _units("prod", 9)
    with pytest.raises(InputError) as e:
        core.coverage(world.ev, small, method="neighbour")
    assert e.value.reason == ("production has 9 units; at least 10 are needed for the classifier folds and the drift "
                              "test") and e.value.file == "prod.jsonl"
    w = World()
    w.p, w.windows = w.p[:10], w.windows[:10]
    w.prod = _units("prod", 10, w.windows)
    assert w.run(monkeypatch, method="neighbour").summary["n_production"] == 10


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"quantile": 0.0}, "quantile must be in (0, 1), got 0.0"),
    ({"quantile": 1.0}, "quantile must be in (0, 1), got 1.0"),
    ({"method": "knn"}, "unknown method 'knn'; choose one of ('mixture', 'classifier', 'neighbour')"),
    ({"alpha": 0.0}, "alpha must be in (0, 1), got 0.0"),
    ({"alpha": 1.0}, "alpha must be in (0, 1), got 1.0"),
    ({"fdr": 0.0}, "fdr must be in (0, 1], got 0.0"),
    ({"fdr": 1.5}, "fdr must be in (0, 1], got 1.5"),
])
def test_out_of_range_settings_are_usage_errors(world: World, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError) as e:
        core.coverage(world.ev, world.prod, **kwargs)
    assert str(e.value) == message


def test_the_range_edges_inside_are_accepted(world: World, monkeypatch) -> None:
    res = world.run(monkeypatch, method="neighbour", fdr=1.0, quantile=0.5, alpha=0.5)
    loo, _, _ = _dist(world.e, world.e, exclude_self=True)
    assert res.summary["threshold"]["value"] == r(np.quantile(loo, 0.5), 5)
    assert res.summary["drift"]["alpha"] == 0.5


# ---------------------------------------------------------------- the trend over windows

def _win(covs, effects=None):
    effects = effects if effects is not None else [None] * len(covs)
    return ([{"coverage": c} for c in covs], [{"effect": e} for e in effects])


def test_trend_of_one_window() -> None:
    assert core._trend(*_win([0.9], [0.1])) == {"n_windows": 1, "coverage_slope": None, "effect_slope": None,
                                                "kendall_tau": None, "kendall_p": None, "direction": "one window"}


@pytest.mark.parametrize("covs", [[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.4, 0.5, 0.6, 0.7, 0.8, 0.9], [0.5, 0.6, 0.5, 0.7],
                                  [0.9137, 0.8711, 0.7703, 0.6129, 0.5003, 0.4411],
                                  [0.9, 0.8, 0.9, 0.7], [0.5, 0.5, 0.5]])
def test_trend_slopes_kendall_and_direction_by_hand(covs: list[float]) -> None:
    effects = [0.01 * i * i for i in range(len(covs))]
    effects[1] = None  # a window too small to test: left out of the effect slope
    t = core._trend(*_win(covs, effects))
    x = np.arange(len(covs), dtype=float)
    slope = np.polyfit(x, covs, 1)[0]
    ex = np.array([i for i, e in enumerate(effects) if e is not None], dtype=float)
    e_slope = np.polyfit(ex, [e for e in effects if e is not None], 1)[0]
    tau, p = kendalltau(x, covs)
    assert t["n_windows"] == len(covs)
    assert t["coverage_slope"] == pytest.approx(round(slope, 5), abs=1e-12)  # 5 decimals, not 4 or 6
    if len(covs) == 6 and covs[0] == 0.9137:
        assert round(slope, 4) != round(slope, 5) != round(slope, 6)
    assert t["effect_slope"] == pytest.approx(round(e_slope, 6), abs=1e-12)
    if np.isnan(tau):
        assert t["kendall_tau"] is None and t["kendall_p"] is None and t["direction"] == "no trend"
    else:
        assert (t["kendall_tau"], t["kendall_p"]) == (round(tau, 4), round(p, 4))
        want = "no trend" if p >= 0.05 else ("coverage falling" if slope < 0 else "coverage rising")
        assert t["direction"] == want
    assert [core._trend(*_win([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]))["direction"],
            core._trend(*_win([0.4, 0.5, 0.6, 0.7, 0.8, 0.9]))["direction"]] == ["coverage falling", "coverage rising"]


def test_trend_with_one_effect_has_no_effect_slope() -> None:
    t = core._trend(*_win([0.9, 0.8], [None, 0.2]))
    assert t["effect_slope"] is None and t["coverage_slope"] == pytest.approx(-0.1)
    assert t["direction"] == "no trend"  # two windows: Kendall's p is 1


# ---------------------------------------------------------------- what the earlier tests leave free

def test_examples_fields_vectors_steps_and_the_backend(world: World, monkeypatch) -> None:
    """Each stale and cluster example with its text, score and distances; the eval units' distances; the
    vectors behind the map; the progress steps in order; the backend the texts are embedded with."""
    from provaudit import progress

    steps: list[str] = []
    monkeypatch.setattr(progress, "step", steps.append)
    backends: list[str] = []
    monkeypatch.setattr(core, "_embed", lambda texts, backend: (backends.append(backend),
                                                                np.stack([world.vectors[t] for t in texts]))[1])
    res = core.coverage(world.ev, world.prod, method="neighbour", threshold=0.3, n_boot=N_BOOT, n_perm=N_PERM,
                        backend="minilm")
    assert backends == ["minilm", "minilm"] and res.summary["backend"] == "minilm"
    assert steps == ["embedding 40 eval and 96 production units (minilm)",
                     "nearest eval neighbours and the production-vs-eval classifier",
                     f"coverage interval ({N_BOOT} bootstrap resamples)",
                     "clustering the confidently new production units",
                     f"drift: MMD permutation test ({N_PERM} permutations) per window"]
    p_dist, _, e_dist = _dist(world.p, world.e)
    assert np.allclose(res.eval_units["distance"].to_numpy(), e_dist)
    assert res.eval_vectors is not None and np.array_equal(res.eval_vectors, world.e)
    assert np.array_equal(res.production_vectors, world.p)
    texts = res.production_units["text"].to_list()
    cl = res.production_units["cluster"].to_numpy()
    covered = res.production_units["covered"].to_numpy()
    members = [np.flatnonzero(cl == c["cluster"]) for c in res.summary["uncovered"]]
    terms = stats.distinctive_terms([[texts[i] for i in m] for m in members],
                                    [texts[i] for i in np.flatnonzero(covered)])
    for c, m, t in zip(res.summary["uncovered"], members, terms):
        assert c["terms"] == t and c["label"] == (", ".join(t) if t else "(no distinctive terms)")
        for x in c["examples"]:
            i = int(x["record_id"].split(":")[1])
            assert x == {"record_id": f"prod:{i}:prompt:0", "text": texts[i], "score": r(p_dist[i]),
                         "nearest_eval_distance": r(p_dist[i])}


def test_stale_eval_units_are_listed_farthest_first_up_to_ten(monkeypatch) -> None:
    """45 eval units of kinds production never sends (30 of them one vector: ties keep eval order): all
    stale, the ten farthest listed with their fields."""
    w = World()
    rng = np.random.default_rng(11)
    w.e = np.concatenate([w.e, _cluster(rng, 9, 15), _cluster(rng, 10, 1).repeat(30, axis=0)])  # 30 tied
    w.ev = _units("ev", len(w.e))
    w.vectors.update(dict(zip(w.ev.frame["text"], w.e)))
    res = w.run(monkeypatch, method="neighbour")
    s = res.summary["stale"]
    _, first = np.unique(w.e.round(5), axis=0, return_index=True)  # calibrated on the distinct units
    uniq = w.e[np.sort(first)]
    assert res.summary["threshold"]["n_calibration"] == len(uniq) == 56
    loo, _, _ = _dist(uniq, uniq, exclude_self=True)
    tau = float(np.quantile(loo, 0.95))
    _, _, e_dist = _dist(w.p, w.e)
    stale = e_dist > tau
    assert stale[40:].all() and s["n"] == int(stale.sum()) >= 45
    order = np.flatnonzero(stale)[np.argsort(-e_dist[stale], kind="stable")]
    texts = w.ev.frame["text"].to_list()
    assert s["examples"] == [{"record_id": f"ev:{i}:prompt:0", "text": texts[i], "score": r(e_dist[i]),
                              "distance": r(e_dist[i])} for i in order[:10]]


def test_stale_examples_of_the_classifier_carry_its_scores(world: World, monkeypatch) -> None:
    res = world.run(monkeypatch, method="classifier")
    calib = res.eval_units["score"].to_numpy()
    _, _, e_dist = _dist(world.p, world.e)
    for x in res.summary["stale"]["examples"]:
        i = int(x["record_id"].split(":")[1])
        assert x == {"record_id": x["record_id"], "text": f"ev text {i}", "score": r(calib[i]),
                     "distance": r(e_dist[i])}


def test_the_given_thresholds_interval_holds_it_fixed(world: World, monkeypatch) -> None:
    res = world.run(monkeypatch, method="neighbour", threshold=0.3, seed=6)
    p_dist, _, _ = _dist(world.p, world.e)
    loo, _, _ = _dist(world.e, world.e, exclude_self=True)
    lo, hi = stats.coverage_ci(p_dist, loo, 0.95, n_boot=N_BOOT, seed=6, fixed_threshold=0.3)
    assert res.summary["coverage_ci"] == [r(lo), r(hi)]


def test_windows_past_max_windows_are_merged_in_the_units_too(world: World, monkeypatch) -> None:
    res = world.run(monkeypatch, method="neighbour", max_windows=2)
    assert [(x["window"], x["n"]) for x in res.summary["windows"]] == [("d1", 30), ("d2..d3", 66)]
    assert res.production_units["window"].to_list() == ["d1"] * 30 + ["d2..d3"] * 66


def test_the_drift_tests_run_with_their_seeds_and_sample_caps_past_a_small_middle_window(monkeypatch) -> None:
    """Windows d1 (30), d2 (6: under min_window, in the middle) and d3 (30): the pooled test (seed, cap 1000),
    then d1 and d3 (seed + 1 + their position, cap 500); d2 is skipped and d3 still tested."""
    w = World()
    w.windows = ["d1"] * 30 + ["d3"] * 60 + ["d2"] * 6
    w.prod = _units("prod", len(w.p), w.windows)
    calls: list[tuple[int, int, int]] = []
    real = stats.mmd_test

    def recorder(x, y, *, n_perm, seed, max_n=1000):
        calls.append((len(y), seed, max_n))
        return real(x, y, n_perm=n_perm, seed=seed, max_n=max_n)

    monkeypatch.setattr(stats, "mmd_test", recorder)
    res = w.run(monkeypatch, method="neighbour", by="day", seed=7)
    assert calls == [(96, 7, 1000), (30, 8, 500), (60, 10, 500)]
    assert [x["window"] for x in res.summary["drift"]["windows"]] == ["d1", "d2", "d3"]
    assert res.summary["drift"]["windows"][1]["p_value"] is None


def test_a_unit_at_exactly_the_fdr_is_clustered_and_under_a_tiny_fdr_none_is(monkeypatch) -> None:
    """New traffic near the eval set (its centre 0.3 of the way towards axis 5): some uncovered units have an
    estimated false-discovery rate strictly between 0 and 1; one exactly at ``fdr`` is clustered."""
    world = World()
    c = np.zeros(DIM)
    c[0], c[5] = 1.0, 0.3
    world.p[60:90] = _unit(c + 0.15 * np.random.default_rng(9).standard_normal((30, DIM)))
    world.vectors.update(dict(zip(world.prod.frame["text"], world.p)))
    res = world.run(monkeypatch, fdr=0.1)
    pf = res.production_units
    fdr = pf["fdr"].to_numpy()
    unc = ~pf["covered"].to_numpy()
    edge = float(max(f for f in fdr[unc] if 0 < f < 1))
    res2 = world.run(monkeypatch, fdr=edge)
    cl = res2.production_units["cluster"].to_numpy()
    assert ((cl >= 0) == (unc & (fdr <= edge))).all() and (cl[unc & (fdr == edge)] >= 0).all()
    res3 = world.run(monkeypatch, fdr=1e-12)  # only units of an estimated rate of 0 are clustered
    pf3 = res3.production_units
    cl3, f3, cov3 = pf3["cluster"], pf3["fdr"].to_numpy(), pf3["covered"].to_numpy()
    want = np.where(cov3, -1, np.where(f3 <= 1e-12, cl3.to_numpy(), -2))
    assert cl3.dtype == pl.Int64 and cl3.to_list() == want.tolist() and (want == -2).sum() >= 2
    assert ((cl3.to_numpy() >= 0) == (~cov3 & (f3 <= 1e-12))).all()


def test_two_new_kinds_of_equal_size_are_numbered_by_their_first_unit(monkeypatch) -> None:
    """k-means of the confident units (seeded, at most ``max_clusters``) ranked by size, ties by the first
    member: the kind whose first unit comes first in production is cluster 0."""
    rng = np.random.default_rng(5)
    w = World()
    a, b = _cluster(rng, 5, 15), _cluster(rng, 7, 15)
    w.p = np.concatenate([_cluster(rng, 0, 30), b, a])
    w.windows = ["d1"] * 60
    w.new = np.array([False] * 30 + [True] * 30)
    w.prod = _units("prod", 60, w.windows)
    w.vectors.update(dict(zip(w.prod.frame["text"], w.p)))
    res = w.run(monkeypatch, method="neighbour", threshold=0.3, max_clusters=2, seed=3)
    cl = res.production_units["cluster"].to_numpy()
    raw = stats.cluster(w.p[cl >= 0], seed=3, max_clusters=2)
    assert len(set(raw.tolist())) == 2
    assert (cl[30:45] == 0).all() and (cl[45:] == 1).all()  # b (units 30-44) first
    assert [c["size"] for c in res.summary["uncovered"]] == [15, 15]


def test_exactly_min_eval_distinct_units_calibrate(monkeypatch) -> None:
    """10 distinct eval units calibrate; an eleventh that differs from the tenth only past the 5th decimal is
    the same unit to the calibration's deduplication."""
    w = World()
    e = w.e[:10].copy()
    j = next(k for k in range(DIM) if abs(e[9, k] * 1e5 - round(float(e[9, k]) * 1e5)) < 0.25)
    twin = e[9].copy()
    twin[j] += np.float32(2e-6)
    w.e = np.concatenate([e, twin[None, :]])
    w.ev = _units("ev", 11)
    w.vectors.update(dict(zip(w.ev.frame["text"], w.e)))
    res = w.run(monkeypatch, method="neighbour")
    assert res.summary["threshold"]["n_calibration"] == 10


@pytest.mark.parametrize("distinct", [1, 2])
def test_one_or_two_distinct_eval_units_with_a_given_threshold(monkeypatch, distinct: int) -> None:
    """The neighbour distance of a single distinct eval unit is 0 (it has no other); of two, their distance."""
    w = World()
    w.e = np.concatenate([w.e[:distinct]] * 6)
    w.ev = _units("ev", len(w.e))
    w.vectors.update(dict(zip(w.ev.frame["text"], w.e)))
    res = w.run(monkeypatch, method="neighbour", threshold=0.3)
    want = 0.0 if distinct == 1 else float(np.clip(1 - float(w.e[0] @ w.e[1]), 0, 2))
    assert res.summary["threshold"]["neighbour_distance"] == pytest.approx(r(want, 5), abs=1e-5)


def test_the_clustered_share_explains_itself(world: World, monkeypatch) -> None:
    how = world.run(monkeypatch).summary["uncovered_clustered"]["how"]
    assert how == ("uncovered units whose estimated false-discovery rate as new traffic is at most fdr: "
                   "(coverage x n x share of eval scores >= the unit's score) / (production units scoring >= it), "
                   "step-up; the rest of the uncovered share may be eval-like traffic ranked high")


def test_a_gate_naming_a_metric_a_coverage_summary_cannot_hold_says_so(world: World, monkeypatch,
                                                                       tmp_path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text("checks:\n  - id: c\n    metric: coverag\n    min: 0.5\n", encoding="utf-8")
    with pytest.raises(InputError, match="metric 'coverag' cannot exist in a coverage summary"):
        world.run(monkeypatch, method="neighbour", gate=gate)


@pytest.mark.parametrize("empty", ["eval", "production"])
def test_files_are_read_as_eval_or_production_with_the_unit_and_windows_asked_for(tmp_path, empty: str) -> None:
    """From files: one without prompts is named as the eval or the production file; prompts and windows by
    ``by``."""
    import json

    fx = tmp_path / "blank.jsonl"  # texts of white space only: no prompt to compare
    fx.write_text("".join(json.dumps({"text": " " * (i + 1)}) + "\n" for i in range(12)), encoding="utf-8")
    real = tmp_path / "real.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Question number {i} about {t}?"},
                          {"role": "assistant", "content": "An answer."}], "day": f"2026-01-0{1 + i % 2}"}
            for i, t in enumerate(["tides", "bread", "taxes", "chess", "rust", "jazz", "moss", "kites", "tea",
                                   "glass", "wolves", "dams"])]
    real.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    ev, prod = (fx, real) if empty == "eval" else (real, fx)
    with pytest.raises(InputError, match=f"^.*{empty} file has no prompt records"):
        core.coverage(ev, [prod], method="neighbour", threshold=0.3, n_boot=N_BOOT, n_perm=N_PERM)
    res = core.coverage(real, [real], unit="prompt", by="day", method="neighbour", threshold=0.3, n_boot=N_BOOT,
                        n_perm=N_PERM)
    assert [(x["window"], x["n"]) for x in res.summary["windows"]] == [("2026-01-01", 6), ("2026-01-02", 6)]
    assert res.production_units["text"].to_list() == [x["messages"][0]["content"] for x in rows]


def test_cluster_labels_terms_against_covered_traffic_and_examples_in_production_order(monkeypatch) -> None:
    """Two new kinds: one of stop words only (no distinctive terms), one of refund requests whose terms rank
    against the covered traffic too ("invoice" is in every covered text, so "refund" leads)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    rng = np.random.default_rng(12)
    w = World()
    sw = sorted(ENGLISH_STOP_WORDS)[:30]
    names = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta", "iota", "lambda", "rho",
             "tau", "phi", "chi"]
    covered_texts = [f"invoice bread oven {c}" for c in ["red", "blue", "green"] * 20]
    a_texts = [f"{sw[i]} {sw[i + 15]}" for i in range(15)]
    b_texts = [f"refund invoice please {n}" for n in names]
    texts = covered_texts + a_texts + b_texts
    w.p = np.concatenate([_cluster(rng, 0, 60), _cluster(rng, 5, 1).repeat(15, axis=0), _cluster(rng, 7, 15)])
    w.windows = ["d1"] * 90
    frame = _units("prod", 90, w.windows).frame.with_columns(pl.Series("text", texts))
    w.prod = Units(frame, _units("prod", 90).inputs)
    w.vectors.update(dict(zip(texts, w.p)))
    res = w.run(monkeypatch, method="neighbour", threshold=0.3, max_clusters=2)
    by_size_then_first = res.summary["uncovered"]
    assert [c["size"] for c in by_size_then_first] == [15, 15]
    a, b = by_size_then_first  # a's first unit (60) comes before b's (75)
    assert (a["terms"], a["label"]) == ([], "(no distinctive terms)")
    assert b["terms"] == stats.distinctive_terms([a_texts, b_texts], covered_texts)[1] == ["refund", "invoice"]
    assert b["label"] == "refund, invoice"
    assert all(60 <= int(x["record_id"].split(":")[1]) < 75 for x in a["examples"])
