"""Labeler homogenization: have the annotators (human or LLM judge) converged on one taste?

Input: preference judgments, one row per (item, annotator): an item id, an annotator, a label (1 or 2
= which of ``output_1``/``output_2`` won, 0 = tie; any other categorical or ordinal label works for the
agreement statistics), the two responses, and a batch (``--by`` column: a batch name, or a time column
cut into ``n_batches`` equal-count batches; without it each file is a batch). Per batch:

* inter-annotator agreement on items labelled by several annotators: Krippendorff's alpha (nominal, and
  ordinal for numeric labels with 3+ values), Fleiss' kappa when every item has the same number of
  ratings, Cohen's kappa when exactly two annotators label the batch; a bootstrap interval over items;
* agreement with a reference judge (a ``reference_label`` column or ``reference=`` file): raw share and
  Cohen's kappa;
* diversity of the chosen responses (per item, the majority choice): ``provaudit.style.diversity`` on the
  chosen texts, and for the trend the embedding spread of the chosen texts relative to all candidate
  responses of the same items (1 - mean pairwise cosine, chosen / candidates; < 1 = choosing narrows);
* the eval score's variance across checkpoints (``scores=``: batch, checkpoint, score);
* the label-origin verdict (``provaudit.style.labels``).

``homogenizing`` flag: at the first batch t (>= 3 batches) where, over batches 0..t, the agreement slope
is significantly > 0 and the chosen-diversity slope significantly < 0 (weighted least squares with the
bootstrap standard errors, one-sided level ``level`` each, so both together are far stricter).
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats as sps

from provaudit.errors import InputError

_ITEM = ("item_id", "pair_id", "sample_id", "item", "id", "instruction", "prompt")
_ANNOTATOR = ("annotator", "annotator_id", "worker_id", "labeler", "rater", "judge")
_LABEL = ("label", "preference", "choice", "rating", "winner")
_REFERENCE = ("reference_label", "reference", "judge_label", "gold_label")
_TEXTS = (("output_1", "output_2"), ("response_1", "response_2"), ("response_a", "response_b"))


# ---------------------------------------------------------------- agreement statistics
def _coincidences(units: Sequence[Sequence[Any]]) -> tuple[list[Any], np.ndarray]:
    """Values and each pairable unit's coincidence contribution (units x C x C)."""
    vals = sorted({v for u in units for v in u})
    ix = {v: i for i, v in enumerate(vals)}
    per = []
    for u in units:
        m = len(u)
        if m < 2:
            continue
        cnt = np.bincount([ix[v] for v in u], minlength=len(vals)).astype(float)
        per.append((np.outer(cnt, cnt) - np.diag(cnt)) / (m - 1))
    return vals, np.array(per).reshape(len(per), len(vals), len(vals))


def _alpha_from_o(o: np.ndarray, vals: list[Any], level: str) -> np.ndarray:
    """Alpha for a stack of coincidence matrices (... x C x C)."""
    c = len(vals)
    nc = o.sum(axis=-1)
    n = nc.sum(axis=-1)
    if level == "nominal":
        d = np.broadcast_to(1.0 - np.eye(c), o.shape)
    elif level == "ordinal":
        cum = np.cumsum(nc, axis=-1)
        lo = np.minimum.outer(np.arange(c), np.arange(c))
        hi = np.maximum.outer(np.arange(c), np.arange(c))
        below = np.where(lo > 0, np.take(cum, np.maximum(lo - 1, 0), axis=-1), 0.0)
        d = (np.take(cum, hi, axis=-1) - below - (nc[..., :, None] + nc[..., None, :]) / 2) ** 2
    elif level == "interval":
        x = np.asarray(vals, dtype=float)
        d = np.broadcast_to((x[:, None] - x[None, :]) ** 2, o.shape)
    else:
        raise ValueError(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        de = (nc[..., :, None] * nc[..., None, :] * d).sum(axis=(-2, -1)) / (n * (n - 1))
        return 1.0 - (o * d).sum(axis=(-2, -1)) / n / de


def krippendorff_alpha(units: Sequence[Sequence[Any]], level: str = "nominal") -> float | None:
    """Krippendorff's alpha from the values each unit received (missing values left out).

    Coincidence-matrix form (Krippendorff 2011): D_o = sum o_ck d_ck / n, D_e = sum n_c n_k d_ck / (n (n-1)),
    alpha = 1 - D_o / D_e; ``nominal`` d = [c != k], ``ordinal`` d = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2,
    ``interval`` d = (c - k)^2. None when fewer than two pairable values or no variation.
    """
    vals, per = _coincidences(units)
    if len(vals) < 2 or per.shape[0] == 0:
        return None
    a = float(_alpha_from_o(per.sum(axis=0), vals, level))
    return a if math.isfinite(a) else None


def _boot_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    w = np.zeros((n_boot, n))
    np.add.at(w, (np.repeat(np.arange(n_boot), n), rng.integers(0, n, size=n_boot * n)), 1.0)
    return w


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa from an items x categories table of rating counts (same number of ratings per item)."""
    counts = np.asarray(counts, dtype=float)
    m = counts.sum(axis=1)
    if len(m) == 0 or m[0] < 2 or np.any(m != m[0]):
        return None
    m0, n = m[0], counts.shape[0]
    p_i = ((counts * counts).sum(axis=1) - m0) / (m0 * (m0 - 1))
    p_j = counts.sum(axis=0) / (n * m0)
    pe = float((p_j ** 2).sum())
    if pe >= 1:
        return None
    return (float(p_i.mean()) - pe) / (1 - pe)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Cohen's kappa of two raters over the same items (unweighted)."""
    if len(a) != len(b) or len(a) == 0:
        return None
    cats = sorted(set(a) | set(b))
    ix = {v: i for i, v in enumerate(cats)}
    t = np.zeros((len(cats), len(cats)))
    for x, y in zip(a, b):
        t[ix[x], ix[y]] += 1
    n = t.sum()
    po = np.trace(t) / n
    pe = float((t.sum(axis=0) * t.sum(axis=1)).sum()) / (n * n)
    return None if pe >= 1 else (po - pe) / (1 - pe)


# ---------------------------------------------------------------- reading
def _pick(cols: list[str], names: Sequence[str]) -> str | None:
    low = {c.lower(): c for c in cols}
    return next((low[n] for n in names if n in low), None)


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name)))


def read_labels(labels: Any, *, by: str | None = None, n_batches: int = 6) -> pl.DataFrame:
    """Judgments as a frame: item, annotator, label (str), batch, batch_order, text_1, text_2, reference, seconds."""
    from provaudit.checkpoints.io import read_table

    frames = []
    srcs = [labels] if isinstance(labels, (str, Path, pl.DataFrame)) else list(labels)
    for k, src in enumerate(srcs):
        f = src if isinstance(src, pl.DataFrame) else read_table(src)
        name = f"batch{k}" if isinstance(src, pl.DataFrame) else Path(str(src)).name.split(".")[0]
        path = None if isinstance(src, pl.DataFrame) else str(src)
        cols = f.columns
        item, ann, lab = _pick(cols, _ITEM), _pick(cols, _ANNOTATOR), _pick(cols, _LABEL)
        for role, col in (("item", item), ("label", lab)):
            if col is None:
                raise InputError(f"labels need a {role} column ({', '.join(_ITEM if role == 'item' else _LABEL)})",
                                 file=path, field=role)
        texts = next(((a, b) for a, b in _TEXTS if a in cols and b in cols), None)
        ref = _pick(cols, _REFERENCE)
        out = {"item": f[item].cast(pl.Utf8), "annotator": f[ann].cast(pl.Utf8) if ann else pl.Series(
            [name] * f.height), "label": f[lab].cast(pl.Utf8),
            "text_1": f[texts[0]].cast(pl.Utf8) if texts else pl.Series([None] * f.height, dtype=pl.Utf8),
            "text_2": f[texts[1]].cast(pl.Utf8) if texts else pl.Series([None] * f.height, dtype=pl.Utf8),
            "reference": f[ref].cast(pl.Utf8) if ref else pl.Series([None] * f.height, dtype=pl.Utf8),
            "seconds": f["time_per_example"].cast(pl.Utf8) if "time_per_example" in cols
            else pl.Series([None] * f.height, dtype=pl.Utf8),
            "_line": f["_line"] if "_line" in cols else pl.Series(range(f.height)),
            "_file": pl.Series([path or name] * f.height)}
        if by is not None:
            if by not in cols:
                raise InputError(f"--by column {by!r} not found (columns: {', '.join(c for c in cols if c[0] != '_')})",
                                 file=path, field=by)
            out["_by"] = f[by].cast(pl.Utf8)
        else:
            out["_by"] = pl.Series([name] * f.height)
        frame = pl.DataFrame({k: v.alias(k) for k, v in out.items()})
        miss = frame["item"].is_null() | frame["label"].is_null()
        if miss.any():
            i = int(miss.arg_true()[0])
            raise InputError("missing value", file=path, line=int(frame["_line"][i]),
                             field=item if frame["item"][i] is None else lab)
        frames.append(frame)
    df = pl.concat(frames, how="diagonal_relaxed")
    keys = df["_by"].unique().to_list()
    num = pl.Series(keys).cast(pl.Float64, strict=False)
    if by is not None and len(keys) > max(n_batches, 20):  # a time column: equal-count batches
        t = df["_by"].cast(pl.Float64, strict=False)
        if t.null_count():
            t = df["_by"].str.to_datetime(strict=False).dt.epoch("s").cast(pl.Float64)
        if t.null_count():
            i = int(t.is_null().arg_true()[0])
            raise InputError(f"time value {df['_by'][i]!r} is neither a number nor an ISO date", file=df["_file"][i],
                             line=int(df["_line"][i]), field=by)
        rank = t.rank("ordinal").to_numpy() - 1
        b = np.minimum((rank * n_batches // len(rank)).astype(int), n_batches - 1)
        df = df.with_columns(pl.Series("batch_order", b), pl.Series("batch", [f"t{x}" for x in b]))
    else:
        order = sorted(keys, key=(lambda x: float(x)) if num.null_count() == 0 else _natural)
        pos = {k: i for i, k in enumerate(order)}
        df = df.with_columns(pl.col("_by").replace_strict(pos, return_dtype=pl.Int64).alias("batch_order"),
                             pl.col("_by").alias("batch"))
    return df.drop("_by")


# ---------------------------------------------------------------- per batch
def _chosen(label: str | None, t1: str | None, t2: str | None) -> str | None:
    try:
        v = float(label)
    except (TypeError, ValueError):
        return None
    return t1 if v == 1 else t2 if v == 2 else None


def _majority(labels: list[str]) -> str | None:
    vals, cnt = np.unique(labels, return_counts=True)
    top = cnt.max()
    return str(vals[cnt == top][0]) if (cnt == top).sum() == 1 else None


def _hom(emb: np.ndarray) -> float:
    n = emb.shape[0]
    if n < 2:
        return float("nan")
    s = emb.sum(axis=0)
    return (float(s @ s) - float((emb * emb).sum())) / (n * (n - 1))


def _batch_stats(b: pl.DataFrame, emb: dict[str, np.ndarray], rng: np.random.Generator, n_boot: int,
                 level: float) -> dict[str, Any]:
    units = b.group_by("item", maintain_order=True).agg(pl.col("label"), pl.col("text_1").first(),
                                                        pl.col("text_2").first(), pl.col("reference").first())
    units = units.sort("item")
    labs = units["label"].to_list()
    multi = [u for u in labs if len(u) >= 2]
    out: dict[str, Any] = {"n_judgments": b.height, "n_items": units.height, "n_multi_rated": len(multi),
                           "annotators": int(b["annotator"].n_unique())}
    numeric = all(re.fullmatch(r"-?\d+(\.\d+)?", v) for u in labs for v in u)
    conv = (lambda u: [float(v) for v in u]) if numeric else (lambda u: u)
    if multi:
        out["alpha_nominal"] = krippendorff_alpha([conv(u) for u in multi])
        if numeric and len({v for u in multi for v in u}) >= 3:
            out["alpha_ordinal"] = krippendorff_alpha([conv(u) for u in multi], "ordinal")
        sizes = {len(u) for u in multi}
        if len(sizes) == 1:
            cats = sorted({v for u in multi for v in u})
            counts = np.array([[u.count(c) for c in cats] for u in multi])
            out["fleiss_kappa"] = fleiss_kappa(counts)
        anns = b["annotator"].unique().to_list()
        if len(anns) == 2:
            w = b.pivot(on="annotator", index="item", values="label", aggregate_function="first").drop_nulls()
            if w.height:
                out["cohen_kappa"] = cohen_kappa(w[anns[0]].to_list(), w[anns[1]].to_list())
        if out["alpha_nominal"] is not None and n_boot:
            vals, per = _coincidences([conv(u) for u in multi])
            w = _boot_weights(rng, per.shape[0], n_boot)
            boots = _alpha_from_o(np.einsum("bu,uck->bck", w, per), vals, "nominal")
            boots = boots[np.isfinite(boots)]
            if len(boots) > 10:
                tail = (1 - level) / 2
                out["alpha_interval"] = [float(x) for x in np.quantile(boots, [tail, 1 - tail])]
                out["alpha_se"] = float(np.std(boots, ddof=1))
    refd = b.filter(pl.col("reference").is_not_null())
    if refd.height:
        a, r = refd["label"].to_list(), refd["reference"].to_list()
        agree = np.array([x == y for x, y in zip(a, r)], dtype=float)
        out["reference_agreement"] = float(agree.mean())
        out["reference_kappa"] = cohen_kappa(a, r)
        pa = (agree.sum() + 0.5) / (len(agree) + 1)  # never 0 at 0% or 100% agreement
        out["reference_agreement_se"] = float(math.sqrt(pa * (1 - pa) / len(agree)))
    chosen, cands, ch_idx = [], [], []
    for k, (u, t1, t2) in enumerate(zip(labs, units["text_1"].to_list(), units["text_2"].to_list())):
        if t1 is None or t2 is None:
            continue
        c = _chosen(_majority(u), t1, t2)
        if c is not None:
            chosen.append(c)
            cands.append((t1, t2))
            ch_idx.append(k)
    out["n_chosen"] = len(chosen)
    if len(chosen) >= 5 and emb:
        ec = np.stack([emb[t] for t in chosen]).astype(np.float64)
        ea = np.stack([emb[t[0]] for t in cands]).astype(np.float64)
        eb = np.stack([emb[t[1]] for t in cands]).astype(np.float64)
        ecand = np.concatenate([ea, eb])

        m = len(chosen)
        out["chosen_spread"] = 1 - _hom(ec)
        out["candidate_spread"] = 1 - _hom(ecand)
        out["chosen_diversity_rel"] = out["chosen_spread"] / max(1 - _hom(np.concatenate([ea, eb])), 1e-9)
        if n_boot:
            w = _boot_weights(rng, m, n_boot)

            def spread(ws: np.ndarray, e: np.ndarray) -> np.ndarray:  # 1 - mean pairwise cosine, weighted
                s_ = ws @ e
                k = ws.sum(axis=1)
                return 1 - ((s_ * s_).sum(axis=1) - ws @ (e * e).sum(axis=1)) / (k * (k - 1))

            boots = spread(w, ec) / np.maximum(spread(np.concatenate([w, w], axis=1), np.concatenate([ea, eb])), 1e-9)
            tail = (1 - level) / 2
            out["chosen_diversity_rel_interval"] = [float(x) for x in np.quantile(boots, [tail, 1 - tail])]
            out["chosen_diversity_rel_se"] = float(np.std(boots, ddof=1))
    out["_chosen_texts"] = chosen
    return out


def _wls(y: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    x = np.arange(len(y), dtype=float)
    w = 1.0 / np.maximum(se, 1e-6) ** 2
    xm = float((w * x).sum() / w.sum())
    sxx = float((w * (x - xm) ** 2).sum())
    if sxx <= 0:
        return 0.0, float("inf")
    slope = float((w * (x - xm) * y).sum() / sxx)
    return slope, math.sqrt(1.0 / sxx)


def _trend(rows: list[dict[str, Any]], level: float) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Agreement up and chosen diversity down over batches 0..t; the first t where both are significant."""
    agree_key = "alpha_nominal" if all(r.get("alpha_se") is not None for r in rows) else (
        "reference_agreement" if all(r.get("reference_agreement_se") is not None for r in rows) else None)
    se_key = {"alpha_nominal": "alpha_se", "reference_agreement": "reference_agreement_se"}.get(agree_key or "")
    if agree_key is None or not all(r.get("chosen_diversity_rel_se") is not None for r in rows) or len(rows) < 3:
        return {"agreement": agree_key, "testable": False}, None
    thr = float(sps.norm.ppf(1 - level))
    ya = np.array([r[agree_key] for r in rows], dtype=float)
    sa = np.array([r[se_key] for r in rows], dtype=float)
    yd = np.array([r["chosen_diversity_rel"] for r in rows], dtype=float)
    sd = np.array([r["chosen_diversity_rel_se"] for r in rows], dtype=float)
    looks = []
    first = None
    for t in range(2, len(rows)):
        ba, sea = _wls(ya[:t + 1], sa[:t + 1])
        bd, sed = _wls(yd[:t + 1], sd[:t + 1])
        hit = ba / sea > thr and bd / sed < -thr
        looks.append({"through": rows[t]["batch"], "agreement_slope": ba, "agreement_z": ba / sea,
                      "diversity_slope": bd, "diversity_z": bd / sed, "flagged": bool(hit)})
        if hit and first is None:
            first = t
    ba, sea = _wls(ya, sa)
    bd, sed = _wls(yd, sd)
    z95 = 1.959963984540054
    trend = {"agreement": agree_key, "testable": True, "level": level, "threshold_z": thr,
             "agreement_slope": ba, "agreement_slope_interval": [ba - z95 * sea, ba + z95 * sea],
             "diversity_slope": bd, "diversity_slope_interval": [bd - z95 * sed, bd + z95 * sed],
             "looks": looks, "first_flagged_batch": rows[first]["batch"] if first is not None else None}
    if first is None:
        return trend, None
    lk = looks[first - 2]
    flag = {"id": "homogenizing", "kind": "homogenizing", "checkpoint": rows[first]["batch"],
            "evidence": f"over batches {rows[0]['batch']}..{rows[first]['batch']} labeler agreement ({agree_key}) "
                        f"rose {lk['agreement_slope']:.3g} per batch (z={lk['agreement_z']:.3g}) while the diversity "
                        f"of the chosen responses relative to the candidates fell {-lk['diversity_slope']:.3g} per "
                        f"batch (z={lk['diversity_z']:.3g}; threshold {thr:.3g} each)",
            "interval": [lk["agreement_slope"] - z95 * lk["agreement_slope"] / lk["agreement_z"],
                         lk["agreement_slope"] + z95 * lk["agreement_slope"] / lk["agreement_z"]],
            "metric": agree_key, "value": lk["agreement_slope"],
            "p_value": float(max(sps.norm.sf(lk["agreement_z"]), sps.norm.cdf(lk["diversity_z"]))),
            "details": {"diversity_slope": lk["diversity_slope"], "diversity_z": lk["diversity_z"],
                        "batches": [r["batch"] for r in rows[:first + 1]]}}
    return trend, flag


def labeler_homogenization(labels: Any, *, by: str | None = None, n_batches: int = 6, reference: Any = None,
                           scores: Any = None, teacher: Any = None, seed: int = 0, backend: str = "static",
                           level: float = 0.05, n_boot: int = 300, interval_level: float = 0.95,
                           detail: bool = True, embeddings: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Per-batch agreement, reference agreement, chosen-response diversity, score variance and label origin,
    and the ``homogenizing`` flag (see the module docstring). ``labels``: files or frames of judgments.
    ``embeddings``: a text -> vector cache shared between calls (filled in place)."""
    df = read_labels(labels, by=by, n_batches=n_batches)
    if reference is not None:
        from provaudit.checkpoints.io import read_table

        ref = reference if isinstance(reference, pl.DataFrame) else read_table(reference)
        ic, lc = _pick(ref.columns, _ITEM), _pick(ref.columns, _LABEL + _REFERENCE)
        if ic is None or lc is None:
            raise InputError("reference labels need an item and a label column", file=str(reference), field="label")
        rmap = ref.select(pl.col(ic).cast(pl.Utf8).alias("item"), pl.col(lc).cast(pl.Utf8).alias("_ref"))
        df = df.join(rmap.unique("item", keep="first"), on="item", how="left").with_columns(
            pl.coalesce("reference", "_ref").alias("reference")).drop("_ref")
    texts = sorted({t for c in ("text_1", "text_2") for t in df[c].drop_nulls().to_list()})
    emb: dict[str, np.ndarray] = {} if embeddings is None else embeddings
    todo = [t for t in texts if t not in emb]
    if todo:
        from provaudit.embed import encode

        emb.update(zip(todo, encode(todo, backend=backend)))
    score_var = _score_variance(scores) if scores is not None else {}
    rows = []
    for k, (name,) in enumerate(df.select("batch", "batch_order").unique().sort("batch_order")
                                .select("batch").iter_rows()):
        b = df.filter(pl.col("batch") == name)
        st = _batch_stats(b, emb, np.random.default_rng([seed, k]), n_boot, interval_level)
        chosen = st.pop("_chosen_texts")
        row = {"batch": name, **st}
        if name in score_var:
            row.update(score_var[name])
        if detail:
            if chosen:
                from provaudit.style.diversity import diversity

                d = diversity(chosen, backend=backend, seed=seed)
                row["diversity"] = {k2: d.get(k2) for k2 in ("ngram_diversity", "compression_ratio",
                                                             "homogenization", "diversity_floor_ratio")}
            row["label_origin"] = _origin(b, teacher, backend, seed)
        rows.append(row)
    trend, flag = _trend(rows, level)
    return {"batches": rows, "trend": trend, "flags": [flag] if flag else [], "homogenizing": flag is not None,
            "n_judgments": df.height, "by": by}


def _origin(b: pl.DataFrame, teacher: Any, backend: str, seed: int) -> dict[str, Any] | None:
    from provaudit.style.labels import label_origin

    rows = []
    for r in b.iter_rows(named=True):
        c = _chosen(r["label"], r["text_1"], r["text_2"])
        if c is None:
            continue
        rows.append({"chosen": c, "rejected": r["text_2"] if c == r["text_1"] else r["text_1"],
                     "annotator": r["annotator"], "seconds": r["seconds"],
                     "chosen_position": 1 if c == r["text_1"] else 2})
    if not rows:
        return None
    frame = pl.DataFrame(rows, schema={"chosen": pl.Utf8, "rejected": pl.Utf8, "annotator": pl.Utf8,
                                       "seconds": pl.Utf8, "chosen_position": pl.Int64})
    res = label_origin(frame, teacher=teacher, backend=backend, seed=seed, name=str(b["batch"][0]))
    return {"verdict": res["verdict"], "ai_evidence": res["ai_evidence"], "human_evidence": res["human_evidence"],
            "evidence": [e["signal"] + " -> " + e["points_to"] for e in res["evidence"]]}


def _score_variance(scores: Any) -> dict[str, dict[str, Any]]:
    from provaudit.checkpoints.io import read_table, to_float

    f = scores if isinstance(scores, pl.DataFrame) else read_table(scores)
    bc, cc, sc = _pick(f.columns, ("batch",)), _pick(f.columns, ("checkpoint", "model", "ckpt")), _pick(
        f.columns, ("score", "win_rate", "outcome", "value"))
    if bc is None or cc is None or sc is None:
        raise InputError("scores need batch, checkpoint and score columns", file=str(scores), field="score")
    f = f.with_columns(to_float(f, sc, str(scores)).alias("_s"))
    m = f.group_by([bc, cc]).agg(pl.col("_s").mean()).group_by(bc).agg(
        pl.col("_s").var().alias("v"), pl.col("_s").mean().alias("m"), pl.len().alias("k"))
    return {str(r[bc]): {"score_variance_across_checkpoints": r["v"], "score_mean": r["m"], "checkpoints": r["k"]}
            for r in m.iter_rows(named=True)}


# ---------------------------------------------------------------- simulation
def simulate_pool(pairs: list[dict[str, Any]], *, n_batches: int = 8, drift_start: int | None = None,
                  items_per_batch: int = 80, raters: int = 3, annotators: int = 5, follow: float = 0.65,
                  drift_step: float = 0.45, drift_max: float = 0.9, judge: str = "longer",
                  seed: int = 0) -> pl.DataFrame:
    """Judgments of a simulated annotator pool on real preference pairs.

    ``pairs``: dicts with ``output_1``, ``output_2`` and the real ``preference`` (1/2, 0 = tie) used as the
    shared signal. A stable annotator follows it with probability ``follow``, else picks at random. From
    batch ``drift_start`` on, each judgment follows the judge's taste with probability
    min(drift_max, drift_step * (t - drift_start + 1)): ``judge="longer"`` (a verbosity-biased judge: the
    longer response) or ``"output_2"`` / ``"output_1"`` (one generator's style) or ``"reference"`` (the
    real label itself).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_batches):
        items = rng.choice(len(pairs), size=min(items_per_batch, len(pairs)), replace=False)
        pi = 0.0 if drift_start is None or t < drift_start else min(drift_max, drift_step * (t - drift_start + 1))
        for i in items:
            p = pairs[int(i)]
            ref = int(p["preference"]) if int(p["preference"]) in (1, 2) else int(rng.integers(1, 3))
            jl = {"longer": 1 if len(p["output_1"]) >= len(p["output_2"]) else 2, "output_1": 1, "output_2": 2,
                  "reference": ref}[judge]
            for a in rng.choice(annotators, size=raters, replace=False):
                u = rng.random()
                lab = jl if u < pi else ref if rng.random() < follow else int(rng.integers(1, 3))
                rows.append({"item_id": f"p{int(i)}", "annotator": f"ann{int(a)}", "label": lab, "batch": f"b{t:02d}",
                             "output_1": p["output_1"], "output_2": p["output_2"]})
    return pl.DataFrame(rows)
