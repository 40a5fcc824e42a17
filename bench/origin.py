"""Honest accuracy of the origin detector: leave-one-generator-out and leave-one-domain-out.

Usage: python bench/origin.py /work/shared/data [--json out.json] [--baseline] [--lm [--lm-limit N]]

Trains the same detector as scripts/build_detector.py (same features, weighting, calibration and
5%-FPR threshold) on all but one generator (or domain) and evaluates on the held-out one, on texts of
at least 50 words. Also: in-distribution held-out split, false-positive rate on plain-vocabulary
human writing (CS224N abstracts, US 8th-grade essays) held out of training, recovery of known mixing
proportions by the corpus estimators, and tagging speed. ``--baseline`` adds the char 3-5-gram
TF-IDF + logistic regression baseline for comparison (on the same layout-normalised text).

``--lm`` adds fast (stylometric) vs full (stylometric + SmolLM2 token-likelihood) detectors on the
language-model sample of scripts/build_detector.py (its cached LM features; ``--lm-limit`` as there):
the same held-out splits, both detectors trained on the same texts, and LM scoring speed (texts/s of
128 tokens). ``--lm-only`` skips the full-corpus fast-path section.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from build_detector import lm_cache_path, lm_training_set, training_frame

from provaudit.origin.detector import _sigmoid, fit_detector, score_metrics
from provaudit.origin.features import feature_matrix

BIAS_DOMAINS = ("abstracts", "student_essays")
EVAL_MIN_WORDS = 50


def _fit_eval(x, y, dom, nw, train, test, seed=0):
    det, _ = fit_detector(x[train], y[train], groups=list(dom[train]), n_words=nw[train], folds=3, seed=seed)
    p = _sigmoid(det.calibrated_logit(x[test]))
    return det, p


def _baseline_scores(texts, y, dom, train, test):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from provaudit.origin.detector import group_weights
    from provaudit.origin.features import normalize_layout

    texts = normalize_layout(texts).to_list()   # same layout-free text the detector sees: a fair comparison

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, max_features=200_000, sublinear_tf=True)
    a = vec.fit_transform([texts[i] for i in np.flatnonzero(train)])
    lr = LogisticRegression(C=3.0, max_iter=3000).fit(a, y[train], sample_weight=group_weights(
        list(zip(dom[train], y[train]))))
    return lr.predict_proba(vec.transform([texts[i] for i in np.flatnonzero(test)]))[:, 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shared", type=Path)
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    ap.add_argument("--baseline", action="store_true", help="also run the char n-gram TF-IDF baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lm", action="store_true", help="fast vs full (language model) on the LM sample")
    ap.add_argument("--lm-limit", type=int, default=None, help="texts of the LM sample (as build_detector.py)")
    ap.add_argument("--lm-only", action="store_true", help="only the fast vs full section")
    ap.add_argument("--corpus-only", action="store_true", help="only the corpus-estimate table (held-out domains)")
    ap.add_argument("--trials", type=int, default=20, help="bootstrap-seeded trials per domain and mix")
    ap.add_argument("--gate-only", action="store_true",
                    help="only the rules/gate-human-data.yaml verdicts on held-out human and GPT-4 corpora")
    ap.add_argument("--gate-n", type=int, default=100, help="texts per corpus in the gate table")
    ap.add_argument("--gate-lm-sample", type=int, default=40, help="--lm-sample of the gate's own (sampled) mode")
    args = ap.parse_args()
    t0 = time.time()
    if args.gate_only:
        rows = gate_table(args.shared, args.seed, args.gate_n, args.gate_lm_sample)
        if args.json_out:
            args.json_out.write_text(json.dumps({"gate": rows}, indent=2, sort_keys=True))
        print(render_gate(rows))
        return
    df = training_frame(args.shared, args.seed)
    if args.lm or args.lm_only:
        res = lm_bench(df, args.seed, args.lm_limit)
        print(render_lm(res))
        if args.lm_only:
            if args.json_out:
                args.json_out.write_text(json.dumps({"lm": res}, indent=2, sort_keys=True))
            return
    texts = df["text"].to_list()
    x, nw = feature_matrix(df["text"])
    y = df["label"].to_numpy().astype(int)
    dom = df["domain"].to_numpy()
    gen = df["generator"].to_numpy()
    if args.corpus_only:
        res = {"corpus_estimates": corpus_table(texts, x, nw, y, dom, args.trials, args.seed)}
        if args.json_out:
            args.json_out.write_text(json.dumps(res, indent=2, sort_keys=True))
        print(render_corpus(res["corpus_estimates"]))
        return
    rng = np.random.default_rng(args.seed)
    half = rng.random(len(y)) < 0.5          # human texts of a held-out generator's domains: test half
    long = nw >= EVAL_MIN_WORDS
    bias = np.isin(dom, BIAS_DOMAINS)
    results: dict = {"n_texts": len(y), "eval_min_words": EVAL_MIN_WORDS}

    # in distribution: random 25% held out (bias corpora kept out of both sides)
    te = (rng.random(len(y)) < 0.25) & ~bias
    tr = ~te & ~bias
    det, p = _fit_eval(x, y, dom, nw, tr, te & long)
    m = score_metrics(y[te & long], p, det.threshold_model)
    results["in_distribution"] = m
    # plain-vocabulary human writing, held out of training: FPR at the 5%-FPR threshold
    hb = bias & (y == 0) & long
    pb = _sigmoid(det.calibrated_logit(x[hb]))
    results["plain_vocab_fpr"] = {d: round(float((pb[dom[hb] == d] >= det.threshold_model).mean()), 4)
                                  for d in BIAS_DOMAINS}
    results["plain_vocab_auroc"] = {}
    for d in BIAS_DOMAINS:
        sel = (dom == d) & long
        results["plain_vocab_auroc"][d] = score_metrics(y[sel], _sigmoid(det.calibrated_logit(x[sel])))["auroc"]
    if args.baseline:
        pbase = _baseline_scores(texts, y, dom, tr, te & long)
        results["baseline_in_distribution"] = score_metrics(y[te & long], pbase)

    # mixtures of known proportion on the in-distribution held-out split
    from provaudit.mixture import estimate_mixture, fit_reference
    from provaudit.origin.tagging import detector_mixture_estimate

    ref = fit_reference([texts[i] for i in np.flatnonzero(tr & long & (y == 0))][:3000],
                        [texts[i] for i in np.flatnonzero(tr & long & (y == 1))][:3000], seed=args.seed)
    hh, mm = np.flatnonzero(te & long & (y == 0)), np.flatnonzero(te & long & (y == 1))
    mix = []
    for prop in (0.0, 0.10, 0.25, 0.50, 1.0):
        row = {"true": prop, "corpus_estimate": [], "detector_estimate": [], "tagged_fraction": []}
        for s in range(5):
            r2 = np.random.default_rng(s)
            k = round(prop * 200)
            idx = np.r_[r2.choice(mm, k, replace=False), r2.choice(hh, 200 - k, replace=False)].astype(int)
            pm = _sigmoid(det.calibrated_logit(x[idx]))
            row["corpus_estimate"].append(estimate_mixture([texts[i] for i in idx], ref, n_boot=0).alpha)
            row["detector_estimate"].append(detector_mixture_estimate(pm, n_boot=0)["alpha"])
            row["tagged_fraction"].append(float((pm >= det.threshold_model).mean()))
        mix.append({k: (round(float(np.mean(v)), 4) if isinstance(v, list) else v) for k, v in row.items()})
    results["mixtures"] = mix

    # leave one generator out
    logo = []
    for g in sorted(set(gen[y == 1])):
        gdoms = set(dom[gen == g])
        # plain-vocabulary corpora stay out unless the generator lives there (gpt3: abstracts)
        excl = bias & ~np.isin(dom, list(gdoms))
        test_h = (y == 0) & np.isin(dom, list(gdoms)) & half
        test = ((gen == g) | test_h) & long & ~excl
        train = (gen != g) & ~test_h & ~excl
        if (y[test] == 0).sum() < 10:
            test = ((gen == g) | ((y == 0) & half)) & long & ~excl   # model-only domain: any held-out human
            train = (gen != g) & ~((y == 0) & half) & ~excl
        det_g, p = _fit_eval(x, y, dom, nw, train, test)
        row = {"generator": g, "domains": ",".join(sorted(gdoms)),
               **score_metrics(y[test], p, det_g.threshold_model)}
        if args.baseline:
            row["baseline_auroc"] = score_metrics(y[test], _baseline_scores(texts, y, dom, train, test))["auroc"]
        logo.append(row)
        print(f"LOGO {g}: {row['auroc']}", file=sys.stderr, flush=True)
    results["leave_one_generator_out"] = logo

    # leave one domain out
    lodo = []
    for d in sorted(set(dom) - set(BIAS_DOMAINS)) + list(BIAS_DOMAINS):
        test = (dom == d) & long
        train = dom != d
        if d not in BIAS_DOMAINS:
            train &= ~bias
        det_d, p = _fit_eval(x, y, dom, nw, train, test)
        row = {"domain": d, **score_metrics(y[test], p, det_d.threshold_model)}
        if args.baseline and len(set(y[test])) == 2:
            row["baseline_auroc"] = score_metrics(y[test], _baseline_scores(texts, y, dom, train, test))["auroc"]
        lodo.append(row)
        print(f"LODO {d}: {row['auroc']}", file=sys.stderr, flush=True)
    results["leave_one_domain_out"] = lodo
    results["corpus_estimates"] = corpus_table(texts, x, nw, y, dom, args.trials, args.seed)

    # speed of the fast path (features + rules + detector + evidence) on real texts
    from provaudit.origin import tag_origin

    n = min(20000, len(texts))
    recs = pl.DataFrame({"record_id": [str(i) for i in range(n)], "role": ["response"] * n, "text": texts[:n],
                         "model": [None] * n, "meta": ["{}"] * n}, schema_overrides={"model": pl.Utf8})
    tag_origin(recs.head(100))
    t = time.time()
    tag_origin(recs)
    results["speed_texts_per_s"] = round(n / (time.time() - t))
    results["seconds"] = round(time.time() - t0, 1)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2, sort_keys=True))
    print(render(results))


def lm_bench(df: pl.DataFrame, seed: int = 0, limit: int | None = None) -> dict:
    """Fast vs full detectors on held-out splits of the LM sample, trained as the shipped ones are.

    Test texts come from the LM sample only. "fast" is trained on the whole corpus minus the LM sample
    minus the held-out generator/domain (as the shipped fast detector, with its threshold rule); "full"
    stacks that fast detector (its scores are out of sample on the LM sample) with the LM features of the
    sample's training split (``fit_full_detector``, as scripts/build_detector.py does).
    """
    from build_detector import lm_sample

    from provaudit.origin.detector import fit_full_detector
    from provaudit.origin.lm import MAX_TOKENS, FeatureCache, detector_columns, lm_features, load_lm

    s = lm_training_set(df, seed, limit)
    texts = s["text"].to_list()
    xs, nw = feature_matrix(s["text"])
    xl = detector_columns(FeatureCache(lm_cache_path()).features(texts))
    y = s["label"].to_numpy().astype(int)
    dom, gen = s["domain"].to_numpy(), s["generator"].to_numpy()
    long = nw >= EVAL_MIN_WORDS
    bias = np.isin(dom, BIAS_DOMAINS)
    rng = np.random.default_rng(seed)
    half = rng.random(len(y)) < 0.5
    rest = df.filter(~pl.col("text").is_in(lm_sample(df, seed)["text"].to_list()))
    xb, nwb = feature_matrix(rest["text"])
    yb = rest["label"].to_numpy().astype(int)
    domb, genb = rest["domain"].to_numpy(), rest["generator"].to_numpy()
    biasb = np.isin(domb, BIAS_DOMAINS)

    def both(train, test, base_rows):
        fast, _ = fit_detector(xb[base_rows], yb[base_rows], groups=list(domb[base_rows]), n_words=nwb[base_rows],
                               folds=3, seed=seed)
        full, _ = fit_full_detector(xs[train], xl[train], y[train], groups=list(dom[train]), n_words=nw[train],
                                    base=fast, folds=3, seed=seed)
        row = {}
        for name, det, x in (("fast", fast, xs), ("full", full, np.hstack([xs, xl]))):
            p = _sigmoid(det.calibrated_logit(x[test]))
            m = score_metrics(y[test], p, det.threshold_model)
            row[name] = {k: m[k] for k in ("auroc", "tpr_at_5pct_fpr", "fpr_at_threshold", "tpr_at_threshold")}
            row["n_human"], row["n_model"] = m["n_human"], m["n_model"]
            if test is plain:
                row[name]["fpr_by_domain"] = {d: round(float((p[dom[test] == d] >= det.threshold_model).mean()), 4)
                                              for d in BIAS_DOMAINS}
        return row

    out: dict = {"n_texts": len(y), "n_base": rest.height, "limit": limit, "max_tokens": MAX_TOKENS}
    te = (rng.random(len(y)) < 0.25) & ~bias
    plain = bias & (y == 0) & long
    out["in_distribution"] = both(~te & ~bias, te & long, ~biasb)
    # plain-vocabulary human writing (student essays, CS224N abstracts) held out of training
    pv = both(~te & ~bias, plain, ~biasb)
    out["plain_vocab_fpr"] = {k: pv[k]["fpr_by_domain"] for k in ("fast", "full")}
    out["plain_vocab_n"] = {d: int(((dom == d) & (y == 0) & long).sum()) for d in BIAS_DOMAINS}
    logo = []
    for g in sorted(set(gen[y == 1])):
        gdoms = list(set(dom[gen == g]))
        excl = bias & ~np.isin(dom, gdoms)
        test_h = (y == 0) & np.isin(dom, gdoms) & half
        test, train = ((gen == g) | test_h) & long & ~excl, (gen != g) & ~test_h & ~excl
        if (y[test] == 0).sum() < 10:
            test = ((gen == g) | ((y == 0) & half)) & long & ~excl
            train = (gen != g) & ~((y == 0) & half) & ~excl
        logo.append({"generator": g, **both(train, test, (genb != g) & ~(biasb & ~np.isin(domb, gdoms)))})
        print(f"LM LOGO {g}: {logo[-1]['fast']['auroc']} -> {logo[-1]['full']['auroc']}", file=sys.stderr, flush=True)
    out["leave_one_generator_out"] = logo
    lodo = []
    for d in sorted(set(dom) - set(BIAS_DOMAINS)):
        test = (dom == d) & long
        if len(set(y[test])) < 2:
            continue
        lodo.append({"domain": d, **both((dom != d) & ~bias, test, (domb != d) & ~biasb)})
        print(f"LM LODO {d}: {lodo[-1]['fast']['auroc']} -> {lodo[-1]['full']['auroc']}", file=sys.stderr, flush=True)
    out["leave_one_domain_out"] = lodo
    # speed: LM features of 16 long texts, 128 tokens each, on this machine (model already loaded)
    load_lm()
    sample = [t for t, n in zip(texts, nw) if n >= 150][:16]
    t = time.time()
    lm_features(sample)
    out["lm_texts_per_s"] = round(len(sample) / (time.time() - t), 2)
    recs = pl.DataFrame({"record_id": [str(i) for i in range(len(texts))], "role": ["response"] * len(texts),
                         "text": texts})
    from provaudit.origin import tag_origin

    tag_origin(recs.head(50))
    t = time.time()
    tag_origin(recs)
    out["fast_texts_per_s"] = round(len(texts) / (time.time() - t))
    return out


def render_lm(r: dict) -> str:
    """Markdown tables of the fast vs full comparison (docs/origin.md quotes them)."""
    lines = [(f"LM sample: {r['n_texts']} texts, LM features on the first {r['max_tokens']} tokens; "
              f"LM scoring {r['lm_texts_per_s']} texts/s, fast path {r['fast_texts_per_s']} texts/s on this machine"), ""]
    head = "| held out | n human | n model | fast AUROC | full AUROC | fast FPR@thr | full FPR@thr | fast TPR@thr | full TPR@thr |"
    lines += [head, "|" + "---|" * 9]

    def row(label, m):
        return (f"| {label} | {m['n_human']} | {m['n_model']} | {_f(m['fast']['auroc'])} | {_f(m['full']['auroc'])} | "
                f"{_f(m['fast']['fpr_at_threshold'])} | {_f(m['full']['fpr_at_threshold'])} | "
                f"{_f(m['fast']['tpr_at_threshold'])} | {_f(m['full']['tpr_at_threshold'])} |")
    lines.append(row("in distribution (random 25%)", r["in_distribution"]))
    for key, col, tag in (("leave_one_generator_out", "generator", "generator"), ("leave_one_domain_out", "domain", "domain")):
        aucs = {"fast": [], "full": []}
        for m in r[key]:
            lines.append(row(f"{tag} {m[col]}", m))
            for k, vals in aucs.items():
                if m[k]["auroc"] is not None:
                    vals.append(m[k]["auroc"])
        lines.append(f"| **mean, unseen {tag}s** | | | {_f(float(np.mean(aucs['fast'])))} | "
                     f"{_f(float(np.mean(aucs['full'])))} | | | | |")
    pv = r["plain_vocab_fpr"]
    lines += ["", "Plain-vocabulary human writing held out of training, share tagged model at the nominal 5% threshold: "
              + ", ".join(f"{d} (n={r['plain_vocab_n'][d]}) fast {_f(pv['fast'][d])} / full {_f(pv['full'][d])}"
                          for d in BIAS_DOMAINS)]
    return "\n".join(lines)


CORPUS_DOMAINS = ("news", "stories", "biomed", "abstracts", "hc3", "dialogue", "student_essays")
MIXES = (0.0, 0.3, 0.6, 1.0)


def corpus_table(texts, x, nw, y, dom, trials: int, seed: int = 0) -> list[dict]:
    """Corpus-level estimators on held-out domains: for each domain, a detector (and a word reference)
    trained without it; batches of up to 200 of its texts at known model shares, ``trials``
    bootstrap-seeded draws each. Estimate (mean), mean absolute error, interval coverage, share of
    batches reported unreliable, for the shipped estimator (EM + classify-and-count interval) and
    its parts next to the Liang et al. word MLE."""
    from provaudit.mixture import estimate_mixture, fit_reference
    from provaudit.origin.corpus import corpus_estimate, rates_from_scores, score_reference

    rows = []
    long = nw >= EVAL_MIN_WORDS
    bias = np.isin(dom, BIAS_DOMAINS)
    for d in CORPUS_DOMAINS:
        train = dom != d
        if d not in BIAS_DOMAINS:
            train &= ~bias
        det, p_oof = fit_detector(x[train], y[train], groups=list(dom[train]), n_words=nw[train], folds=3,
                                  seed=seed)
        lt = long[train]
        rates = rates_from_scores(y[train][lt], p_oof[lt], det.threshold_model, dom[train][lt])
        sref = score_reference(y[train][lt], p_oof[lt], dom[train][lt])   # as train_detector stores it
        r_rng = np.random.default_rng(seed)
        th, tm = np.flatnonzero(train & long & (y == 0)), np.flatnonzero(train & long & (y == 1))
        ref = fit_reference([texts[i] for i in np.sort(r_rng.choice(th, min(1500, th.size), replace=False))],
                            [texts[i] for i in np.sort(r_rng.choice(tm, min(1500, tm.size), replace=False))],
                            seed=seed)
        hh, mm = np.flatnonzero((dom == d) & long & (y == 0)), np.flatnonzero((dom == d) & long & (y == 1))
        p_all = _sigmoid(det.calibrated_logit(x))
        for mix in MIXES:
            if (mix > 0 and mm.size < 30) or (mix < 1 and hh.size < 30):
                continue
            n = min(200, hh.size if mix < 1 else 10**9, mm.size if mix > 0 else 10**9)
            k = round(mix * n)
            cell = {"domain": d, "true": mix, "n": n, "est": [], "cover": [], "unreliable": [], "width": [],
                    "acc": [], "em": [], "liang": [], "liang_cover": [], "honest": [], "wrong": [], "no_fit": [],
                    "fit_cover": [], "best_fit": []}
            for t in range(trials):
                g = np.random.default_rng([seed, t])
                idx = np.r_[g.choice(mm, k, replace=k > mm.size), g.choice(hh, n - k, replace=n - k > hh.size)]
                idx = idx.astype(int)
                ce = corpus_estimate(p_all[idx], det.threshold_model, rates, n_boot=200, seed=t, reference=sref)
                fit = ce["fit"]
                cell["no_fit"].append(fit["pairs_fitting"] == 0)
                cell["best_fit"].append(fit["best"]["alpha"])   # the best-fitting pair's mixture MLE
                ar = fit["alpha_range"]
                cell["fit_cover"].append(ar is not None and ar[0] - 1e-9 <= mix <= ar[1] + 1e-9)
                cell["est"].append(ce["alpha"])
                cell["acc"].append(ce["acc"])
                cell["em"].append(ce["em"])
                cell["cover"].append(ce["ci_low"] - 1e-9 <= mix <= ce["ci_high"] + 1e-9)
                cell["unreliable"].append(ce["status"] != "ok")
                good = abs(ce["alpha"] - mix) <= 0.1 and cell["cover"][-1]
                # the target: a usable answer (ok, within 10 points, interval holds the truth) or "cannot tell"
                cell["honest"].append(ce["status"] != "ok" or good)
                cell["wrong"].append(ce["status"] == "ok" and not good)
                cell["width"].append(ce["ci_high"] - ce["ci_low"])
                lm = estimate_mixture([texts[i] for i in idx], ref, n_boot=100, seed=t)
                cell["liang"].append(lm.alpha)
                cell["liang_cover"].append(lm.ci_low - 1e-9 <= mix <= lm.ci_high + 1e-9)
            out = {"domain": d, "true": mix, "n": n, "trials": trials}
            for key in ("est", "acc", "em", "liang", "best_fit"):
                v = np.asarray(cell[key], float)
                out[key] = round(float(v.mean()), 4)
                out[f"{key}_mae"] = round(float(np.abs(v - mix).mean()), 4)
            out["coverage"] = round(float(np.mean(cell["cover"])), 3)
            out["liang_coverage"] = round(float(np.mean(cell["liang_cover"])), 3)
            out["unreliable_share"] = round(float(np.mean(cell["unreliable"])), 3)
            out["mean_width"] = round(float(np.mean(cell["width"])), 3)
            out["usable_correct_share"] = round(float(np.mean([not u and not w for u, w in
                                                               zip(cell["unreliable"], cell["wrong"])])), 3)
            out["wrong_share"] = round(float(np.mean(cell["wrong"])), 3)
            out["no_fit_share"] = round(float(np.mean(cell["no_fit"])), 3)
            out["fit_range_coverage"] = round(float(np.mean(cell["fit_cover"])), 3)
            rows.append(out)
            print(f"corpus {d} {mix}: {out}", file=sys.stderr, flush=True)
    return rows


GATE_HUMAN_DOMAINS = ("news", "stories", "biomed", "abstracts", "student_essays", "hc3")
GATE_MODEL = ("gpt4", "gpt4_1106_preview", "gpt4-simplify")


def gate_table(shared: Path, seed: int, per: int, lm_sample: int) -> list[dict]:
    """``rules/gate-human-data.yaml`` on corpora the shipped detector did not train on: the texts of
    the shared corpora that scripts/build_detector.py left out of training (50+ words, up to ``per``
    per corpus), human per domain and GPT-4 (AlpacaEval answers of GPT-4 and GPT-4 Turbo, and the GPT-4
    rewrites of 8th-grade essays, which no detector was trained on). Each is scanned with the gate in
    ``fast`` mode and in the gate's own mode (``origin_mode: sampled``, the LM on ``lm_sample`` records)."""
    import tempfile

    from provaudit.origin.corpora import load_shared_corpora
    from provaudit.pipeline import scan

    gate = ROOT / "rules" / "gate-human-data.yaml"
    allc = load_shared_corpora(shared)
    train = training_frame(shared, seed)
    ho = (allc.filter(~pl.col("text").is_in(train["text"].to_list()))
          .unique("text", keep="first", maintain_order=True)
          .filter(pl.col("text").str.count_matches(r"\S+") >= EVAL_MIN_WORDS))
    corpora = [(f"human {d}", "human", ho.filter((pl.col("domain") == d) & (pl.col("label") == 0)))
               for d in GATE_HUMAN_DOMAINS]
    corpora += [(f"model {g}", "model", ho.filter(pl.col("generator") == g)) for g in GATE_MODEL]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, truth, frame in corpora:
            if frame.height < 20:
                continue
            frame = frame.sample(min(per, frame.height), seed=seed, shuffle=True).select("text")
            f = Path(tmp) / f"{name.replace(' ', '_')}.jsonl"
            frame.write_ndjson(f)
            row = {"corpus": name, "truth": truth, "n": frame.height}
            for mode in ("fast", None):
                r = scan(f, catalog=Path(tmp) / "c.duckdb", gate=gate, record=False, origin_mode=mode,
                         lm_sample=lm_sample, seed=seed)
                o = r.summary["origin"]
                ce, lm = o["corpus_estimate"], o.get("lm_sample") or {}
                key = "fast" if mode == "fast" else "gate_mode"
                row[key] = {"passed": r.passed, "failed": r.summary["gate"]["failed"],
                            "model_fraction": o["model_fraction"], "ce_status": ce["status"],
                            "ce_alpha": ce["alpha"], "ce_ci_low": ce["ci_low"], "lm_ci_low": lm.get("ci_low"),
                            "lm_model_fraction": lm.get("model_fraction")}
            row["right"] = {k: row[k]["passed"] == (truth == "human") for k in ("fast", "gate_mode")}
            rows.append(row)
            print(f"gate {name}: {row}", file=sys.stderr, flush=True)
    return rows


def render_gate(rows: list[dict]) -> str:
    head = ("| corpus (held out of training) | n | fast: verdict | failed checks | model_fraction | corpus estimate "
            "| gate's mode (sampled): verdict | failed checks | LM-sample ci_low |")
    out = ["rules/gate-human-data.yaml on held-out corpora (human must pass, GPT-4 must fail)", "", head,
           "|" + "---|" * 9]
    for r in rows:
        f, g = r["fast"], r["gate_mode"]
        ce = f"{_f(f['ce_alpha'])} [{_f(f['ce_ci_low'])}, ...] {f['ce_status']}"
        out.append(f"| {r['corpus']} | {r['n']} | {'pass' if f['passed'] else 'FAIL'} "
                   f"({'right' if r['right']['fast'] else 'wrong'}) | {', '.join(f['failed']) or '-'} | "
                   f"{_f(f['model_fraction'])} | {ce} | {'pass' if g['passed'] else 'FAIL'} "
                   f"({'right' if r['right']['gate_mode'] else 'wrong'}) | {', '.join(g['failed']) or '-'} | "
                   f"{_f(g['lm_ci_low'])} |")
    return "\n".join(out)


def render_corpus(rows: list[dict]) -> str:
    cols = ["held-out domain", "true share", "n", "estimate (EM)", "MAE", "interval coverage", "mean width",
            "unreliable", "ok and right", "ok but wrong", "no pair fits", "fitting-pair range coverage",
            "classify-and-count (ACC)", "ACC MAE", "Liang word MLE", "Liang MAE", "Liang coverage",
            "best-fitting pair MLE", "its MAE"]
    head = "| " + " | ".join(cols) + " |"
    title = ("Corpus-level model share on held-out domains (detector and word reference trained without the "
             "domain; trials bootstrap-seeded draws per cell)")
    out = [title, "", head, "|" + "---|" * len(cols)]
    for r in rows:
        out.append(f"| {r['domain']} | {r['true']:.1f} | {r['n']} | {_f(r['est'])} | {_f(r['est_mae'])} | "
                   f"{r['coverage']:.2f} | {r['mean_width']:.2f} | {r['unreliable_share']:.2f} | "
                   f"{r['usable_correct_share']:.2f} | {r['wrong_share']:.2f} | {r['no_fit_share']:.2f} | "
                   f"{r['fit_range_coverage']:.2f} | {_f(r['acc'])} | "
                   f"{_f(r['acc_mae'])} | {_f(r['liang'])} | {_f(r['liang_mae'])} | {r['liang_coverage']:.2f} | "
                   f"{_f(r['best_fit'])} | {_f(r['best_fit_mae'])} |")
    return "\n".join(out)


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def render(r: dict) -> str:
    """Markdown tables (the ones docs/origin.md quotes)."""
    out = []
    ind = r["in_distribution"]
    out.append(f"In distribution (random 25% held out, >= {r['eval_min_words']} words): AUROC {_f(ind['auroc'])}, "
               f"TPR@1%FPR {_f(ind['tpr_at_1pct_fpr'])}, TPR@5%FPR {_f(ind['tpr_at_5pct_fpr'])}, "
               f"ECE {_f(ind['ece'])}, FPR at threshold {_f(ind['fpr_at_threshold'])}")
    if "baseline_in_distribution" in r:
        out.append(f"Baseline (char 3-5 TF-IDF + LR) in distribution: AUROC {_f(r['baseline_in_distribution']['auroc'])}")
    out.append("Plain-vocabulary human writing held out of training, FPR at the 5% threshold: " + ", ".join(
        f"{k} {_f(v)}" for k, v in r["plain_vocab_fpr"].items()))
    has_b = any("baseline_auroc" in row for row in r["leave_one_generator_out"])
    for key, col in (("leave_one_generator_out", "generator"), ("leave_one_domain_out", "domain")):
        out.append("")
        head = f"| held-out {col} | n human | n model | AUROC | TPR@1%FPR | TPR@5%FPR | FPR@thr | TPR@thr | ECE |"
        head += " baseline AUROC |" if has_b else ""
        out.append(head)
        out.append("|" + "---|" * (head.count("|") - 1))
        aucs = []
        for row in r[key]:
            line = (f"| {row[col]} | {row['n_human']} | {row['n_model']} | {_f(row['auroc'])} | "
                    f"{_f(row['tpr_at_1pct_fpr'])} | {_f(row['tpr_at_5pct_fpr'])} | {_f(row.get('fpr_at_threshold'))} | "
                    f"{_f(row.get('tpr_at_threshold'))} | {_f(row['ece'])} |")
            if has_b:
                line += f" {_f(row.get('baseline_auroc'))} |"
            out.append(line)
            if row["auroc"] is not None:
                aucs.append(row["auroc"])
        out.append(f"| **mean** | | | {_f(float(np.mean(aucs)))} | | | | | |" + (" |" if has_b else ""))
    out.append("")
    out.append("| true model share | corpus_estimate (word MLE) | detector_estimate (LR MLE) | tagged model fraction |")
    out.append("|---|---|---|---|")
    for m in r["mixtures"]:
        out.append(f"| {m['true']:.2f} | {m['corpus_estimate']:.3f} | {m['detector_estimate']:.3f} | "
                   f"{m['tagged_fraction']:.3f} |")
    out.append("")
    out.append(render_corpus(r["corpus_estimates"]))
    out.append("")
    out.append(f"tag_origin fast path: {r['speed_texts_per_s']} texts/s; bench took {r['seconds']} s")
    return "\n".join(out)


if __name__ == "__main__":
    main()
