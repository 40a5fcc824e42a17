"""The statistics behind ``provaudit coverage``, pinned to their documented definitions (provaudit/coverage/stats.py
docstrings, docs/coverage.md): nearest neighbours by cosine distance in both directions, the bootstrap interval of
the covered share (eval resampled, which moves the calibrated threshold; production counted as
Binomial(N, F(t))), and the mixture estimate's interval (production counts in the cut bins multinomial). The
references below follow those definitions, drawing from a generator seeded like the code's; the intervals are
also checked for covering the truth over seeds, which no reimplementation can fake.
"""
from __future__ import annotations

import numpy as np
import pytest

from provaudit.coverage import stats


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_nearest_in_both_directions_by_cosine_distance() -> None:
    rng = np.random.default_rng(0)
    a, b = _unit(rng.normal(size=(7, 5))), _unit(rng.normal(size=(4, 5)))
    sims = a.astype(np.float64) @ b.T.astype(np.float64)
    da, ia, db = stats.nearest(a, b)
    assert ia.tolist() == sims.argmax(axis=1).tolist()
    assert da == pytest.approx(np.clip(1 - sims.max(axis=1), 0, 2), abs=1e-6)
    assert db == pytest.approx(np.clip(1 - sims.max(axis=0), 0, 2), abs=1e-6)
    assert (da > 0).all() and (db > 0).all()
    # a set against itself: each row is its own nearest (distance 0) unless excluded (leave-one-out)
    d0, i0, _ = stats.nearest(a, a)
    assert i0.tolist() == list(range(7)) and d0 == pytest.approx(np.zeros(7), abs=1e-6)
    loo, il, _ = stats.nearest(a, a, exclude_self=True)
    s = a.astype(np.float64) @ a.T.astype(np.float64)
    np.fill_diagonal(s, -np.inf)
    assert il.tolist() == s.argmax(axis=1).tolist() and loo == pytest.approx(1 - s.max(axis=1), abs=1e-6)


def test_nearest_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    a, b = _unit(rng.normal(size=(10, 4))), _unit(rng.normal(size=(6, 4)))
    whole = stats.nearest(a, a, exclude_self=True), stats.nearest(a, b)
    monkeypatch.setattr(stats, "BLOCK", 3)  # 4 blocks of rows, the last one short
    for got, want in zip((stats.nearest(a, a, exclude_self=True), stats.nearest(a, b)), whole):
        assert np.array_equal(got[1], want[1])  # the same neighbours
        for g, w in zip(got[::2], want[::2]):
            assert g == pytest.approx(w, abs=1e-6)  # float32 products summed per block


def _ref_coverage_ci(prod, loo, quantile, n_boot, seed, fixed=None, level=0.95):
    rng = np.random.default_rng(seed)
    n = len(prod)
    if fixed is None:
        draws = rng.integers(0, len(loo), size=(n_boot, len(loo)))
        taus = np.array([np.quantile(loo[d], quantile) for d in draws])
    else:
        taus = np.full(n_boot, fixed)
    share = np.array([np.mean(prod <= t) for t in taus])  # F(t): production at or under the threshold
    cov = rng.binomial(n, share) / n
    return tuple(float(v) for v in np.quantile(cov, [(1 - level) / 2, (1 + level) / 2]))


@pytest.mark.parametrize("fixed,level", [(None, 0.95), (None, 0.8), (0.35, 0.95)])
def test_coverage_interval_follows_its_definition(fixed, level) -> None:
    rng = np.random.default_rng(2)
    prod, loo = rng.uniform(0, 1, 60), rng.uniform(0, 0.6, 25)
    prod[:5] = np.quantile(loo, 0.9)  # ties at a threshold count as covered
    got = stats.coverage_ci(prod, loo, 0.9, n_boot=300, seed=4, fixed_threshold=fixed, level=level)
    assert got == pytest.approx(_ref_coverage_ci(prod, loo, 0.9, 300, 4, fixed, level))
    assert got == stats.coverage_ci(prod, loo, 0.9, n_boot=300, seed=4, fixed_threshold=fixed, level=level)


def test_coverage_interval_covers_the_true_share() -> None:
    """Production: 70% like eval, 30% far away; the calibrated threshold is eval's 0.95 leave-one-out quantile,
    so the true covered share is 0.7 x 0.95 = 0.665. Over 60 seeds the 95% interval holds it about 95% of the
    time (binomial: 50 or fewer of 60 has probability under 1%)."""
    hits = 0
    for seed in range(60):
        rng = np.random.default_rng(100 + seed)
        loo = rng.uniform(0, 1, 200)
        prod = np.concatenate([rng.uniform(0, 1, 700), rng.uniform(5, 6, 300)])
        lo, hi = stats.coverage_ci(prod, loo, 0.95, n_boot=400, seed=seed)
        hits += lo <= 0.665 <= hi
    assert hits > 50


def _ref_mixture_ci(prod, ev, n_boot, seed, qs=(0.5, 0.95), level=0.95):
    rng = np.random.default_rng(seed)
    n = len(prod)
    draws = rng.integers(0, len(ev), size=(n_boot, len(ev)))  # all eval resamples first, as the code draws them
    out = []
    for d in draws:
        ts = sorted(np.quantile(ev[d], q) for q in qs)
        probs = np.diff([0.0, *(np.mean(prod <= t) for t in ts), 1.0])  # production's share in each bin
        c = rng.multinomial(n, probs / probs.sum())
        boot_cdf = np.cumsum(c)[:-1] / n
        out.append(min(1.0, min(boot_cdf[k] / q for k, q in enumerate(sorted(qs)))))
    return tuple(float(v) for v in np.quantile(out, [(1 - level) / 2, (1 + level) / 2]))


@pytest.mark.parametrize("qs,level", [((0.5, 0.95), 0.95), ((0.95, 0.5), 0.9), ((0.25, 0.5, 0.9), 0.95)])
def test_mixture_interval_follows_its_definition(qs, level) -> None:
    rng = np.random.default_rng(3)
    ev = rng.normal(size=80)
    prod = np.concatenate([rng.normal(size=150), rng.normal(4, 1, size=50)])
    got = stats.mixture_ci(prod, ev, n_boot=300, seed=7, qs=qs, level=level)
    assert got == pytest.approx(_ref_mixture_ci(prod, ev, 300, 7, qs, level))


def test_mixture_estimate_counts_ties_at_the_quantile() -> None:
    ev = np.arange(11.0)  # quantiles 5.0 and 9.5
    prod = np.array([5.0, 5.0, 9.5, 9.5, 20.0])
    # at or under 5: 2 of 5 -> 0.4 / 0.5 = 0.8; at or under 9.5: 4 of 5 -> 0.8 / 0.95
    assert stats.mixture_coverage(prod, ev) == pytest.approx(0.8)


def test_rank_threshold_at_one_unit_and_none() -> None:
    s = np.array([3.0, 1.0, 2.0])
    assert stats.rank_threshold(s, 1 / 3) == 1.0  # one unit: the lowest score
    assert stats.rank_threshold(s, 0.0) == 0.0    # none: one below the lowest
    assert stats.rank_threshold(s, 1.0) == 3.0


def test_nearest_indices_are_integers() -> None:
    """The indices pick rows of the eval set (``eval_units[arg]``): integers, not floats that compare equal."""
    rng = np.random.default_rng(5)
    a, b = _unit(rng.normal(size=(3, 4))), _unit(rng.normal(size=(2, 4)))
    _, ia, _ = stats.nearest(a, b)
    assert ia.dtype == np.int64


def test_new_traffic_fdr_of_one_unit_and_of_none() -> None:
    e = np.arange(10.0)
    # one unit scoring 7: 3 of 10 eval scores are at least 7; covered 0.5 of 1 unit -> 0.5 x 1 x 0.3 / 1
    assert stats.new_traffic_fdr(np.array([7.0]), e, 0.5) == pytest.approx([0.15])
    assert stats.new_traffic_fdr(np.array([-1.0]), e, 1.0) == pytest.approx([1.0])
    out = stats.new_traffic_fdr(np.zeros(0), e, 0.5)
    assert out.shape == (0,)


def test_distances_stay_within_0_and_2_despite_float32_rounding() -> None:
    """float32 unit vectors give self-similarities of 1.0000001 and opposite ones of -1.0000001: a distance is
    clipped to [0, 2], never -1e-7 or 2.0000001."""
    x = np.random.default_rng(0).normal(size=(300, 16))
    a = _unit(x)
    assert (np.diag(a @ a.T) > 1).any() and (np.diag(a @ (-a).T) < -1).any()  # the rounding is there
    d_same, _, d_back = stats.nearest(a, a)
    assert (d_same >= 0).all() and (d_back >= 0).all() and d_same.min() == 0.0
    i = int(np.argmin(np.diag(a @ (-a).T)))  # a vector whose opposite rounds to a similarity under -1
    d_far, _, d_far_b = stats.nearest(-a[i:i + 1], a[i:i + 1])
    assert d_far.tolist() == [2.0] and d_far_b.tolist() == [2.0]


# ------------------------------------------------------------------------------------- the drift (MMD) test

def _ref_mmd(x: np.ndarray, y: np.ndarray, n_perm: int, seed: int, max_n: int) -> dict:
    """``mmd_test`` from its docstring: seeded subsamples of at most ``max_n`` rows (in row order), a Gaussian
    kernel exp(-d^2 / median positive squared distance), the unbiased MMD^2 as the effect, the biased statistic
    permuted ``n_perm`` times, p = (1 + #perm >= observed) / (1 + n_perm)."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    if len(x) > max_n:
        x = x[sorted(rng.choice(len(x), max_n, replace=False))]
    if len(y) > max_n:
        y = y[sorted(rng.choice(len(y), max_n, replace=False))]
    z = np.vstack([x, y]).astype(np.float64)
    m, n = len(x), len(y)
    d2 = cdist(z, z, "sqeuclidean")
    pos = d2[np.triu_indices(m + n, 1)]
    pos = pos[pos > 0]
    k = np.exp(-d2 / (np.median(pos) if pos.size else 1.0))
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    unbiased = ((kxx.sum() - m) / (m * (m - 1)) + (kyy.sum() - n) / (n * (n - 1)) - 2 * kxy.mean())

    def biased(lab: np.ndarray) -> float:  # lab: True for the rows playing x
        a, b = k[np.ix_(lab, lab)], k[np.ix_(~lab, ~lab)]
        return a.mean() + b.mean() - 2 * k[np.ix_(lab, ~lab)].mean()

    first = np.r_[np.ones(m, bool), np.zeros(n, bool)]
    observed = biased(first)
    perm = [biased(first[rng.permutation(m + n)]) for _ in range(n_perm)]
    p = (1 + sum(s >= observed - 1e-12 for s in perm)) / (1 + n_perm)
    return {"p_value": p, "effect": unbiased, "n_eval": m, "n_window": n}


@pytest.mark.parametrize(("m", "n", "shift", "max_n"), [(30, 40, 0.0, 1000), (25, 25, 1.5, 1000), (60, 45, 0.4, 50),
                                                        (50, 50, 0.0, 50), (12, 70, 2.0, 30)])
def test_mmd_test_is_its_definition(m: int, n: int, shift: float, max_n: int) -> None:
    rng = np.random.default_rng(m + n)
    x = rng.normal(size=(m, 3))
    y = rng.normal(size=(n, 3)) + np.array([shift, 0.0, 0.0])
    got = stats.mmd_test(x, y, n_perm=60, seed=5, max_n=max_n)
    ref = _ref_mmd(x, y, 60, 5, max_n)
    assert got["n_eval"] == ref["n_eval"] == min(m, max_n) and got["n_window"] == ref["n_window"] == min(n, max_n)
    assert got["effect"] == pytest.approx(ref["effect"], abs=1e-10)
    assert got["p_value"] == ref["p_value"]
    assert set(got) == {"p_value", "effect", "n_eval", "n_window"}


def test_mmd_test_sees_a_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(2)
    pool = rng.normal(size=(400, 4))
    same = stats.mmd_test(pool[:200], pool[200:], n_perm=200, seed=1)
    moved = stats.mmd_test(pool[:200], pool[200:] + 0.6, n_perm=200, seed=1)
    assert same["p_value"] > 0.05 and abs(same["effect"]) < 0.01
    assert moved["p_value"] == 1 / 201 and moved["effect"] > 0.05   # no permutation reaches the observed value
    # identical points only: every distance is 0, the bandwidth falls back to 1 and nothing differs
    flat = stats.mmd_test(np.zeros((5, 2)), np.zeros((6, 2)), n_perm=20, seed=0)
    assert flat == {"p_value": 1.0, "effect": pytest.approx(0.0, abs=1e-12), "n_eval": 5, "n_window": 6}


def test_mmd_test_on_duplicates_small_distances_and_its_default_cap() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(20, 3))
    dup_x, dup_y = np.vstack([x, x[:6]]), np.vstack([x[10:], x[10:16]]) + 0.2   # repeated rows: distance 0
    small_x, small_y = x * 0.05, rng.normal(size=(25, 3)) * 0.05                 # every distance under 1
    for a, b in ((dup_x, dup_y), (small_x, small_y)):
        got = stats.mmd_test(a, b, n_perm=40, seed=2)
        ref = _ref_mmd(a, b, 40, 2, 1000)
        assert got["effect"] == pytest.approx(ref["effect"], abs=1e-12) and got["p_value"] == ref["p_value"]
    big = rng.normal(size=(1001, 2))
    capped = stats.mmd_test(big, big[:50] + 0.1, n_perm=5, seed=0)               # 1,000 rows by default
    assert capped["n_eval"] == 1000 and capped["n_window"] == 50
    assert capped["effect"] == pytest.approx(_ref_mmd(big, big[:50] + 0.1, 5, 0, 1000)["effect"], abs=1e-12)
