"""Eval coverage of production traffic on real prompts (fixtures/coverage: AlpacaEval + HH-RLHF red-team)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from provaudit.cli import main
from provaudit.coverage import coverage, prompt_coverage, split_rules, stats
from provaudit.coverage.inputs import Units
from provaudit.embed import encode
from provaudit.errors import InputError

FX = Path(__file__).resolve().parent.parent / "fixtures" / "coverage"
RULES = Path(__file__).resolve().parent.parent / "rules"
EVAL = FX / "eval.json"


def _kinds(name: str) -> list[str]:
    return [json.loads(line)["kind"] for line in (FX / name).read_text(encoding="utf-8").splitlines()]


def _prompts(name: str) -> list[str]:
    return [
        json.loads(line)["messages"][0]["content"]
        for line in (FX / name).read_text(encoding="utf-8").splitlines()
    ]


@pytest.fixture(scope="module")
def same() -> object:
    return coverage(EVAL, [FX / "production_same.jsonl"], by="day", n_perm=300)


@pytest.fixture(scope="module")
def shifted() -> object:
    return coverage(EVAL, [FX / "production_shifted.jsonl"], by="day", n_perm=300)


def test_same_kind_production_is_covered_without_drift(same: object) -> None:
    s = same.summary
    assert s["n_eval"] == 300 and s["n_production"] == 250
    assert s["coverage"] >= 0.9 and s["coverage_ci"][0] <= s["coverage"] <= s["coverage_ci"][1]
    # coverage is the share of production scores at or under the reported threshold
    pf = same.production_units
    assert s["coverage"] == round(float((pf["score"] <= s["threshold"]["value"] + 5e-6).mean()), 4)
    assert s["drift"]["detected"] is False and s["drift"]["p_value"] > 0.05
    assert [w["window"] for w in s["windows"]] == ["2026-03-01", "2026-03-02"]
    assert sum(w["n"] for w in s["windows"]) == 250


def test_half_new_traffic_lowers_coverage_and_is_detected(same: object, shifted: object) -> None:
    s, base = shifted.summary, same.summary
    kinds = np.array(_kinds("production_shifted.jsonl"))
    covered = shifted.production_units.sort("source_row")["covered"].to_numpy()
    # the old kind of traffic stays mostly covered, the new kind mostly not (ground truth: the fixture's kind)
    assert covered[kinds == "alpaca"].mean() >= 0.8
    assert covered[kinds == "hh"].mean() <= 0.35
    # half the traffic is new, so coverage drops by about half (the 0.95-quantile threshold gave 0.76)
    assert abs(s["coverage"] - 0.5) <= 0.1 and s["coverage_ci"][0] <= 0.5 <= s["coverage_ci"][1]
    assert s["coverage"] < base["coverage"] - 0.35 and s["coverage_ci"][1] < base["coverage_ci"][0]
    assert s["drift"]["detected"] and s["drift"]["p_value"] < 0.01
    assert all(w["detected"] for w in s["drift"]["windows"])


def test_top_uncovered_clusters_are_the_new_traffic(shifted: object) -> None:
    s = shifted.summary
    kinds = _kinds("production_shifted.jsonl")
    pf = shifted.production_units
    assert s["uncovered"], "no uncovered clusters"
    shares = [u["share"] for u in s["uncovered"]]
    assert shares == sorted(shares, reverse=True)
    top = s["uncovered"][:3]
    members = pf.filter(pl.col("cluster").is_in([u["cluster"] for u in top]))["source_row"].to_list()
    assert sum(kinds[i] == "hh" for i in members) / len(members) >= 0.8
    # the clustered units are the uncovered ones confidently new: estimated false-discovery rate <= 0.1,
    # recomputed here from its definition (cov x n x P_eval(score >= s) / #production >= s, step-up)
    e = shifted.eval_units["score"].to_numpy()
    p, cov = pf["score"].to_numpy(), pf["covered"].to_numpy()
    raw = np.array([s["coverage"] * len(p) * np.mean(e >= x) / np.sum(p >= x) for x in p])
    fdr = np.array([min(1.0, raw[p <= x].min()) for x in p])
    assert np.allclose(pf["fdr"].to_numpy(), fdr, atol=1e-3)
    confident = ~cov & (fdr <= 0.1)
    assert np.array_equal(pf["cluster"].to_numpy() >= 0, confident)
    assert np.all(pf["cluster"].to_numpy()[~cov & ~confident] == -2)
    assert np.all(pf["cluster"].to_numpy()[cov] == -1)
    assert sum(u["size"] for u in s["uncovered"]) == int(confident.sum()) == s["uncovered_clustered"]["n"]
    # pinned purity: the clusters together and the three largest are at least 85% red-team prompts
    # (before the confidence filter the top three were 87% and the clusters 80%)
    assert np.mean([kinds[i] == "hh" for i in pf.filter(pl.col("cluster") >= 0)["source_row"]]) >= 0.85
    assert sum(kinds[i] == "hh" for i in members) / len(members) >= 0.85
    for u in s["uncovered"]:
        assert u["share"] == round(u["size"] / s["n_production"], 4) and u["label"] and u["examples"]
        for ex in u["examples"]:
            row = pf.filter(pl.col("record_id") == ex["record_id"])
            assert row["cluster"][0] == u["cluster"] and not row["covered"][0]


def test_mixture_coverage_follows_its_definition(shifted: object) -> None:
    # coverage = min(1, min over q in (0.5, 0.95) of (share of production scores <= the eval scores'
    # q quantile) / q), the eval scores being the eval units' own out-of-fold ones
    s = shifted.summary
    e = shifted.eval_units["score"].to_numpy()
    p = shifted.production_units["score"].to_numpy()
    ts = [float(np.quantile(e, q)) for q in (0.5, 0.95)]
    assert s["threshold"]["method"] == "mixture"
    assert s["threshold"]["reference_scores"] == [round(t, 5) for t in ts]

    def est(scores: np.ndarray) -> float:
        return min(1.0, float(np.mean(scores <= ts[0])) / 0.5, float(np.mean(scores <= ts[1])) / 0.95)

    assert s["coverage"] == round(est(p), 4)
    # the covered units are the round(estimate * n) lowest-scoring ones
    cov = shifted.production_units["covered"].to_numpy()
    assert int(cov.sum()) == round(est(p) * len(p)) and p[cov].max() < p[~cov].min()
    # each window: the same estimate on its units
    pf = shifted.production_units
    for w in s["windows"]:
        assert w["coverage"] == round(est(pf.filter(pl.col("window") == w["window"])["score"].to_numpy()), 4)


def test_mixture_estimate_interval_and_cut_by_hand() -> None:
    e = np.arange(10.0)  # numpy's linear quantiles: median 4.5, 0.95 quantile 8.55
    p = np.array([0, 1, 2, 3, 5, 6, 7, 8, 20, 21], dtype=float)
    # bounds: 4 of 10 under 4.5 -> 0.4 / 0.5 = 0.8; 8 of 10 under 8.55 -> 0.8 / 0.95 = 0.842; min 0.8
    assert stats.mixture_coverage(p, e) == 0.8
    assert stats.mixture_coverage(e, e) == 0.9 / 0.95  # the same sample: 5/10 / 0.5 = 1, 9/10 / 0.95
    assert stats.mixture_coverage(p + 100, e) == 0.0
    assert stats.rank_threshold(p, 0.8) == 8.0 and stats.rank_threshold(p, 0.0) < p.min()
    lo, hi = stats.mixture_ci(p, e, n_boot=400, seed=3)
    assert 0.0 <= lo <= 0.8 <= hi <= 1.0 and (lo, hi) == stats.mixture_ci(p, e, n_boot=400, seed=3)
    assert stats.mixture_ci(p + 100, e, n_boot=50, seed=0) == (0.0, 0.0)
    # a large production sample from the eval distribution: the interval reaches full coverage
    rng = np.random.default_rng(0)
    ev, prod = rng.normal(size=300), rng.normal(size=5000)
    lo, hi = stats.mixture_ci(prod, ev, n_boot=400, seed=0)
    assert hi == 1.0 and lo > 0.8


def test_new_traffic_fdr_by_hand() -> None:
    e = np.arange(10.0)
    p = np.array([0, 1, 2, 3, 5, 6, 7, 8, 20, 21], dtype=float)
    # coverage 0.8 of 10 units: 8 x P_eval(score >= s) / #production >= s; e.g. at 8: 8 x 2/10 / 3
    want = [8 * 1.0 / 10, 8 * 0.9 / 9, 8 * 0.8 / 8, 8 * 0.7 / 7, 8 * 0.5 / 6, 8 * 0.4 / 5, 8 * 0.3 / 4,
            8 * 0.2 / 3, 0.0, 0.0]
    assert np.allclose(stats.new_traffic_fdr(p, e, 0.8), want)
    # step-up: a unit's value is the least over the cuts that include it (raw 0.25, 1/6, 1/8 become 0.1)
    p2 = np.array([8.5, 20, 8.6, 8.7, 8.8])
    assert np.allclose(stats.new_traffic_fdr(p2, e, 1.0), [0.1, 0.0, 0.1, 0.1, 0.1])
    # tied scores enter together: both 2 x 7/10 / 2
    assert np.allclose(stats.new_traffic_fdr(np.array([3.0, 3.0]), e, 1.0), [0.7, 0.7])


def test_another_new_kind_at_another_share() -> None:
    # held-out kind and share: 25% PubMedQA research questions among AlpacaEval instructions
    res = coverage(EVAL, [FX / "production_pubmed.jsonl"], by="day", n_perm=200, n_boot=300)
    s, pf = res.summary, res.production_units.sort("source_row")
    kinds = np.array(_kinds("production_pubmed.jsonl"))
    # 200 units against 300: the estimate is noisy (+-0.15 over splits), its interval holds the truth
    assert abs(s["coverage"] - 0.75) <= 0.15 and s["coverage_ci"][0] <= 0.75 <= s["coverage_ci"][1]
    assert pf["covered"].to_numpy()[kinds == "pubmed"].mean() <= 0.35
    assert s["drift"]["detected"]
    top = s["uncovered"][0]
    members = pf.filter(pl.col("cluster") == top["cluster"])["source_row"].to_list()
    assert np.mean(kinds[members] == "pubmed") >= 0.8


def test_distinctive_terms_follow_the_definition() -> None:
    groups = [["knife attack plan", "knife fight tips", "the weather"], ["bake a cake", "cake recipe"]]
    rest = ["the weather today", "plan a trip", "tips for travel"]
    terms = stats.distinctive_terms(groups, rest, top=2)
    assert terms[0][0] == "knife" and terms[1][0] == "cake"


def test_stale_eval_units_are_those_missing_from_production() -> None:
    # the shifted traffic as eval, AlpacaEval-only traffic as production: the red-team prompts are stale
    res = coverage(FX / "production_shifted.jsonl", [FX / "production_same.jsonl"], n_perm=100, n_boot=200)
    st = res.summary["stale"]
    kinds = _kinds("production_shifted.jsonl")
    ef, pf = res.eval_units, res.production_units
    # from the definition: eval scores under the 5% quantile of production's own scores
    cut = float(np.quantile(pf["score"].to_numpy(), 0.05))
    assert st["n"] == int((ef["score"] < cut).sum()) == int(ef["stale"].sum()) and st["n"] > 0
    stale = ef.filter(pl.col("stale"))["source_row"].to_list()
    assert sum(kinds[i] == "hh" for i in stale) / len(stale) >= 0.8
    assert [x["record_id"] for x in st["examples"]] == ef.filter(pl.col("stale")).sort("score")["record_id"][
        :10
    ].to_list()


@pytest.mark.slow
def test_mmd_same_pool_no_false_alarm_over_seeds() -> None:
    pool = encode(
        [r["instruction"] for r in json.loads(EVAL.read_text(encoding="utf-8"))]
        + _prompts("production_same.jsonl")
    )
    trials, alarms = 40, 0
    for seed in range(trials):
        idx = np.random.default_rng(1000 + seed).permutation(len(pool))
        t = stats.mmd_test(pool[idx[:300]], pool[idx[300:]], n_perm=150, seed=seed)
        alarms += t["p_value"] < 0.01
    assert alarms / trials <= 0.05, alarms
    # and the same test has power on the mixed traffic
    mixed = encode(_prompts("production_shifted.jsonl"))
    assert stats.mmd_test(pool[:300], mixed, n_perm=200, seed=0)["p_value"] < 0.01


@pytest.mark.slow
def test_same_pool_coverage_runs_do_not_cry_wolf() -> None:
    ev = json.loads(EVAL.read_text(encoding="utf-8"))
    prod = _prompts("production_same.jsonl")
    pool = [r["instruction"] for r in ev] + prod
    alarms = 0
    for seed in range(5):
        idx = np.random.default_rng(seed).permutation(len(pool))

        def units(ix: np.ndarray, name: str) -> Units:
            f = pl.DataFrame(
                {
                    "record_id": [f"{name}:{i}" for i in ix],
                    "text": [pool[i] for i in ix],
                    "source_file": name,
                    "source_row": [int(i) for i in ix],
                    "window": "w",
                }
            )
            return Units(f, [{"path": name, "fingerprint": "-", "n_units": len(ix)}])

        r = coverage(units(idx[:300], "eval"), units(idx[300:], "prod"), n_perm=150, n_boot=200, seed=seed)
        alarms += r.summary["drift"]["detected"]
        assert r.summary["coverage"] >= 0.85 and r.summary["coverage_ci"][1] >= 0.95
    assert alarms == 0


def test_windows_trend_on_drifting_traffic() -> None:
    s = coverage(EVAL, [FX / "production_drifting.jsonl"], by="day", n_perm=300).summary
    assert [w["window"] for w in s["windows"]] == ["2026-04-01", "2026-04-02", "2026-04-03"]
    covs = [w["coverage"] for w in s["windows"]]
    assert covs[0] > covs[2] and s["drift"]["trend"]["coverage_slope"] < 0
    x = np.arange(3.0)
    assert s["drift"]["trend"]["coverage_slope"] == round(float(np.polyfit(x, covs, 1)[0]), 5)
    assert s["drift"]["window_alpha"] == round(0.01 / 3, 6)
    assert s["drift"]["windows"][0]["detected"] is False


def test_json_is_byte_identical_and_has_the_contract_keys(tmp_path: Path) -> None:
    args = ["coverage", "--eval", str(EVAL), str(FX / "production_shifted.jsonl"), "--json", "--no-record"]
    a = CliRunner().invoke(main, args)
    b = CliRunner().invoke(main, args)
    assert a.exit_code == 0, a.output
    assert a.output == b.output
    s = json.loads(a.output)
    for key in ("coverage", "coverage_ci", "uncovered", "stale", "drift"):
        assert key in s
    assert {"share", "size", "examples", "label"} <= set(s["uncovered"][0])
    assert {"p_value", "effect", "detected", "windows"} <= set(s["drift"])
    assert s["threshold"]["method"] == "mixture" and s["threshold"]["how"]


def test_catalog_records_runs_and_trend_shows_them(tmp_path: Path) -> None:
    cat = tmp_path / "cat.duckdb"
    r1 = CliRunner().invoke(
        main, ["coverage", "--eval", str(EVAL), str(FX / "production_same.jsonl"), "--catalog", str(cat)]
    )
    r2 = CliRunner().invoke(
        main,
        [
            "coverage",
            "--eval",
            str(EVAL),
            str(FX / "production_shifted.jsonl"),
            "--catalog",
            str(cat),
            "--json",
        ],
    )
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    s2 = json.loads(r2.output)
    rows = (
        duckdb.connect(str(cat), read_only=True)
        .execute(
            "SELECT run_id, eval_fingerprint, production_fingerprints, coverage, drift_detected "
            "FROM coverage_runs "
            "ORDER BY run_id"
        )
        .fetchall()
    )
    assert [r[0] for r in rows] == [1, 2]
    assert rows[1][1] == s2["inputs"]["eval"][0]["fingerprint"] == rows[0][1]
    assert json.loads(rows[1][2]) == [s2["inputs"]["production"][0]["fingerprint"]]
    assert rows[1][3] == s2["coverage"] and rows[1][4] is True and rows[0][3] > rows[1][3]
    tr = CliRunner().invoke(main, ["trend", "--catalog", str(cat), "--json"])
    assert tr.exit_code == 0, tr.output
    cov = json.loads(tr.output)["coverage"]
    assert [c["coverage"] for c in cov] == [r[3] for r in rows]
    # the API's full stored summary of one run (a notebook's way back to a run the trend lists)
    from provaudit.coverage.history import coverage_summary

    assert coverage_summary(2, catalog=cat) == s2
    first = coverage_summary(1, catalog=cat)
    assert first["coverage"] == rows[0][3] and first["inputs"]["production"][0]["fingerprint"] != (
        s2["inputs"]["production"][0]["fingerprint"])
    with pytest.raises(InputError, match="no coverage run 3") as e:
        coverage_summary(3, catalog=cat)
    assert e.value.field == "run_id"


def test_eval_fingerprint_matches_register(tmp_path: Path) -> None:
    import provaudit

    cat = tmp_path / "c.duckdb"
    provaudit.register(EVAL, catalog=cat)
    fp = duckdb.connect(str(cat), read_only=True).execute("SELECT fingerprint FROM datasets").fetchone()[0]
    s = coverage(EVAL, [FX / "production_same.jsonl"], n_perm=50, n_boot=50).summary
    assert s["inputs"]["eval"][0]["fingerprint"] == fp


def test_gate_exit_codes(tmp_path: Path) -> None:
    gate = RULES / "gate-coverage.yaml"
    ok = CliRunner().invoke(
        main,
        [
            "coverage",
            "--eval",
            str(EVAL),
            str(FX / "production_same.jsonl"),
            "--gate",
            str(gate),
            "--no-record",
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["gate"]["passed"] is True
    bad = CliRunner().invoke(
        main,
        [
            "coverage",
            "--eval",
            str(EVAL),
            str(FX / "production_shifted.jsonl"),
            "--gate",
            str(gate),
            "--no-record",
            "--json",
        ],
    )
    assert bad.exit_code == 1
    failed = set(json.loads(bad.output)["gate"]["failed"])
    assert {"min_coverage", "no_drift"} <= failed
    # a typo in a coverage gate fails closed (exit 2, nearest valid coverage path), never a silent pass
    typo = tmp_path / "typo.yaml"
    typo.write_text("checks:\n  - id: min_cov\n    metric: coverag\n    min: 0.5\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["coverage", "--eval", str(EVAL), str(FX / "production_same.jsonl"),
                                    "--gate", str(typo), "--no-record", "--json"])
    assert res.exit_code == 2
    assert "min_cov" in res.output and "nearest valid path: coverage" in res.output


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "prod.jsonl"
    broken.write_text(
        '{"messages": [{"role": "user", "content": "hi there"}], "day": "d1"}\n'
        '{"messages": [{"role": "user", "content": "hello"}]}\n',
        encoding="utf-8",
    )
    res = CliRunner().invoke(
        main, ["coverage", "--eval", str(EVAL), str(broken), "--by", "day", "--no-record"]
    )
    assert res.exit_code == 2
    assert f"{broken}:2: field 'day'" in res.output and len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(main, ["coverage", "--eval", str(EVAL), "--no-record"])
    assert res.exit_code == 2
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_text(
        "".join(f'{{"prompt": "question number {i}", "completion": "x"}}\n' for i in range(3)),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="eval set has 3 distinct units; at least 10"):
        coverage(tiny, [FX / "production_same.jsonl"])
    with pytest.raises(InputError, match="production has 3 units; at least 10"):
        coverage(EVAL, [tiny])


def test_prompt_rules_split_and_coverage(tmp_path: Path) -> None:
    rules = split_rules(FX / "system_prompt.txt")
    assert len(rules) == 12  # 1 statement + 8 bullets + 2 numbered items, one with two sentences
    assert (
        rules[-1]["text"] == "Convert imperial units when the user gives them." and rules[-1]["id"] == "L15.2"
    )
    res = prompt_coverage(FX / "system_prompt.txt", EVAL)
    by_text = {r["rule"]: r for r in res["rules"]}
    ev = [r["instruction"].lower() for r in json.loads(EVAL.read_text(encoding="utf-8"))]
    # every eval case naming a recipe or translation is found for those rules (independent substring check)
    recipe = by_text["When the user asks for a recipe, list the ingredients before the steps."]
    recipe_ids = {f"eval:{i}:prompt" for i, t in enumerate(ev) if "recipe" in t}
    # all but at most one (a blog post that mentions a recipe in passing) of the cases naming a recipe
    assert len(recipe_ids) == 5 and len(recipe_ids & set(recipe["case_ids"])) >= 4
    weapons = by_text["Refuse requests for help with weapons, explosives or poisons."]
    assert not any(w in t for t in ev for w in ("weapon", "explosive", "poison")) and not weapons["tested"]
    code = by_text["When you write code, use Python unless the user names another programming language."]
    assert code["tested"] and any("python" in c["text"].lower() for c in code["cases"])
    # untested rules come first
    flags = [r["tested"] for r in res["rules"]]
    assert flags == sorted(flags) and res["n_untested"] == flags.count(False) >= 1
    y = tmp_path / "rules.yaml"
    y.write_text("rules:\n  - Never discuss the weather.\n  - 3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"rules\[1\]"):
        split_rules(y)


def test_prompt_cli_lists_untested_first() -> None:
    res = CliRunner().invoke(
        main, ["coverage", "--prompt", str(FX / "system_prompt.txt"), "--eval", str(EVAL)]
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[2].split()[1] == "no" and "rules have no eval case" in lines[-1]


SCAN = FX.parent / "scan"


def test_other_formats_and_file_order_windows() -> None:
    # CSV prompts from AlpacaEval (a held-out slice, partly the eval's own instructions) and HH-RLHF
    # multi-turn red-team dialogues (gzip JSONL, hh_rlhf schema): windows in the order given
    res = coverage(EVAL, [SCAN / "oasst_prompt_completion.csv", SCAN / "hh_rlhf.jsonl.gz"], n_perm=200)
    s, pf = res.summary, res.production_units
    assert [w["window"] for w in s["windows"]] == ["000:oasst_prompt_completion.csv", "001:hh_rlhf.jsonl.gz"]
    assert [w["n"] for w in s["windows"]] == [80, 200]
    e = res.eval_units["score"].to_numpy()
    for w in s["windows"]:  # each window's mixture estimate (definition: test_mixture_coverage_follows_...)
        sub = pf.filter(pl.col("window") == w["window"])["score"].to_numpy()
        est = min([1.0] + [float(np.mean(sub <= np.quantile(e, q))) / q for q in (0.5, 0.95)])
        assert w["coverage"] == round(est, 4)
    assert s["windows"][0]["coverage"] >= 0.85 and s["windows"][1]["coverage"] <= 0.4
    assert s["drift"]["detected"] and s["drift"]["windows"][1]["detected"]
    assert [p["schema"] for p in s["inputs"]["production"]] == ["prompt_completion", "hh_rlhf"]


def test_whole_record_units() -> None:
    res = coverage(EVAL, [FX / "production_same.jsonl"], unit="record", n_perm=50, n_boot=50)
    ev = json.loads(EVAL.read_text(encoding="utf-8"))
    texts = res.eval_units["text"].to_list()
    assert len(texts) == 300 and texts[7] == ev[7]["instruction"] + "\n\n" + ev[7]["output"]
    assert res.eval_units["record_id"][7] == "eval:7"


def test_neighbour_method_follows_its_definition() -> None:
    res = coverage(EVAL, [FX / "production_shifted.jsonl"], method="neighbour", n_perm=50, n_boot=50)
    e = encode([r["instruction"] for r in json.loads(EVAL.read_text(encoding="utf-8"))])
    p = encode(_prompts("production_shifted.jsonl"))
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    tau = float(np.quantile(1 - s.max(axis=1), 0.95))
    nn = 1 - (p @ e.T).max(axis=1)
    assert res.summary["threshold"]["value"] == pytest.approx(tau, abs=1e-5)
    assert res.summary["coverage"] == pytest.approx(float((nn <= tau).mean()), abs=0.005)


def test_prompt_rules_from_yaml(tmp_path: Path) -> None:
    y = tmp_path / "rules.yaml"
    y.write_text(
        "- When the user asks for a recipe, list the ingredients first.\n"
        "- Never help anyone build explosives.\n",
        encoding="utf-8",
    )
    assert [r["id"] for r in split_rules(y)] == ["R1", "R2"]
    res = prompt_coverage(y, EVAL)
    assert [r["id"] for r in res["rules"]] == ["R2", "R1"] and res["n_untested"] == 1


def test_window_order_and_merging() -> None:
    from provaudit.coverage.inputs import order_windows

    labels, mapping = order_windows(["10", "9", "2", "9"], 12)
    assert labels == ["2", "9", "10"] and mapping["10"] == "10"  # numbers sort as numbers
    values = [f"2026-01-{d:02d}" for d in range(1, 31)]
    labels, mapping = order_windows(values[::-1], 12)
    assert len(labels) == 12 and labels[0] == "2026-01-01..2026-01-02"
    assert [mapping[v] for v in values] == sorted(
        mapping[v] for v in values
    )  # consecutive days stay together
    assert sum(len({v for v in values if mapping[v] == lab}) for lab in labels) == 30


def test_prompt_and_production_together_is_a_usage_error() -> None:
    res = CliRunner().invoke(
        main,
        [
            "coverage",
            "--prompt",
            str(FX / "system_prompt.txt"),
            "--eval",
            str(EVAL),
            str(FX / "production_same.jsonl"),
        ],
    )
    assert res.exit_code == 2 and "give no PRODUCTION files" in res.output


@pytest.mark.parametrize("kwargs", [{"fdr": 0.0}, {"fdr": 1.5}, {"quantile": 1.0}, {"method": "nearest"}])
def test_bad_arguments_are_usage_errors(kwargs: dict) -> None:
    from provaudit.errors import UsageError

    with pytest.raises(UsageError):
        coverage(EVAL, [FX / "production_same.jsonl"], **kwargs)
