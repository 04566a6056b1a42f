"""Aggregate statistics against independent references: scipy and plain NumPy loops."""

import numpy as np
import pytest
import scipy.stats

from pgjax.reports import statistics as st


def _iqm_by_quantile_integral(x):
    """`2 * integral_{1/4}^{3/4} Q(p) dp`, Q the empirical quantile function, by a midpoint sum.

    Q is constant on `((k-1)/n, k/n]`; a grid of 8n cells per unit resolves every
    breakpoint (at k/n and at the quartiles), so the midpoint sum is exact.
    """
    x = sorted(x)
    n = len(x)
    cells = 8 * n
    total = 0.0
    for c in range(cells // 4, 3 * cells // 4):
        p = (c + 0.5) / cells
        total += x[int(np.ceil(p * n)) - 1] / cells
    return 2.0 * total


@pytest.mark.parametrize("n", range(1, 14))
def test_iqm_matches_references_for_every_small_n(n):
    x = np.random.default_rng(n).normal(size=n) * 3 + 1
    got = st.iqm(x)
    np.testing.assert_allclose(got, _iqm_by_quantile_integral(x), rtol=1e-12, atol=1e-12)
    # Repeating each value 4 times makes the count divisible by 4 without changing the
    # quantile function, so scipy's whole-value trimming is then exact.
    np.testing.assert_allclose(got, scipy.stats.trim_mean(np.repeat(x, 4), 0.25), rtol=1e-12, atol=1e-12)
    if n % 4 == 0:
        np.testing.assert_allclose(got, scipy.stats.trim_mean(x, 0.25), rtol=1e-12, atol=1e-12)


def test_iqm_hand_values():
    # n = 9: the middle 4.5 values are 3/4 of x(3), x(4..6), 3/4 of x(7).
    x = np.array([1.0, 3, 5, 7, 9, 11, 13, 15, 17])
    assert st.iqm(x) == pytest.approx((0.75 * 5 + 7 + 9 + 11 + 0.75 * 13) / 4.5)
    assert st.iqm([5.0, 1.0, 100.0, 2.0]) == pytest.approx(3.5)  # outliers dropped: mean of 2 and 5
    assert st.iqm([4.0]) == 4.0
    assert st.iqm([1.0, 3.0]) == 2.0
    # n = 3: weights 1/4, 1, 1/4 over half the mass (1.5).
    assert st.iqm([0.0, 10.0, 1.0]) == pytest.approx((0.25 * 0 + 1 + 0.25 * 10) / 1.5)
    with pytest.raises(ValueError, match="empty"):
        st.iqm([])


def test_statistics_reduce_along_an_axis():
    x = np.random.default_rng(0).normal(size=(7, 5))
    for name, stat in st.STATISTICS.items():
        per_column = stat(x, axis=0)
        assert per_column.shape == (5,)
        for j in range(5):
            assert per_column[j] == pytest.approx(stat(x[:, j])), name
    loop_mean = [sum(col) / len(col) for col in x.T]
    np.testing.assert_allclose(st.mean(x, axis=0), loop_mean, rtol=1e-12)
    loop_median = [sorted(col)[3] for col in x.T]  # n = 7: the 4th smallest
    np.testing.assert_allclose(st.median(x, axis=0), loop_median, rtol=1e-12)


def _bootstrap_loop(x, statistic, confidence, num_resamples, seed):
    """Percentile bootstrap one resample at a time (same generator, same draws)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), size=(num_resamples, len(x)))
    values = [statistic(np.asarray(x)[draws[b]]) for b in range(num_resamples)]
    alpha = 1 - confidence
    return np.percentile(values, 100 * alpha / 2), np.percentile(values, 100 * (1 - alpha / 2))


@pytest.mark.parametrize("name", ["iqm", "mean", "median"])
@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_bootstrap_ci_matches_scipy_and_a_loop(name, n):
    stat = st.STATISTICS[name]
    x = np.random.default_rng(100 + n).gamma(2.0, size=n)
    ci = st.bootstrap_ci(x, stat, confidence=0.9, num_resamples=3000, seed=7)
    assert ci.estimate == pytest.approx(stat(x))
    np.testing.assert_allclose([ci.low, ci.high], _bootstrap_loop(x, stat, 0.9, 3000, 7), rtol=1e-12)
    # scipy's percentile bootstrap draws its resamples as rng.integers(0, n, (B, n)) from the
    # generator it is given, so with the same seed the interval is the same.
    ref = scipy.stats.bootstrap(
        (x,), stat, n_resamples=3000, confidence_level=0.9, method="percentile", rng=np.random.default_rng(7)
    ).confidence_interval
    np.testing.assert_allclose([ci.low, ci.high], [ref.low, ref.high], rtol=1e-9)


def test_bootstrap_ci_against_scipy_with_independent_draws():
    """A statistical comparison that does not rely on sharing scipy's draws."""
    x = np.random.default_rng(1).normal(size=12)
    ours = st.bootstrap_ci(x, st.iqm, 0.95, 20_000, seed=1)
    ref = scipy.stats.bootstrap((x,), st.iqm, n_resamples=20_000, method="percentile",
                                rng=np.random.default_rng(12345)).confidence_interval
    # Monte-Carlo error of a 2.5% quantile from 20k resamples is ~0.01 here.
    assert abs(ours.low - ref.low) < 0.05 and abs(ours.high - ref.high) < 0.05
    assert ours.high - ours.low > 0.3  # a real interval, not a degenerate one


def test_bootstrap_is_reproducible_and_degenerate_for_one_run():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    assert st.bootstrap_ci(x, seed=3) == st.bootstrap_ci(x, seed=3)
    assert st.bootstrap_ci(x, seed=3) != st.bootstrap_ci(x, seed=4)
    assert st.bootstrap_ci([2.5]) == (2.5, 2.5, 2.5)
    with pytest.raises(ValueError, match="confidence=1.5"):
        st.bootstrap_ci(x, confidence=1.5)
    with pytest.raises(ValueError, match="num_resamples=0"):
        st.bootstrap_ci(x, num_resamples=0)


@pytest.mark.parametrize("call", [
    lambda n: st.bootstrap_ci([1.0, 2.0, 3.0], num_resamples=n),
    lambda n: st.bootstrap_distribution([1.0, 2.0, 3.0], num_resamples=n),
    lambda n: st.summarize([1.0, 2.0, 3.0], num_resamples=n),
    lambda n: st.summarize([np.nan], num_resamples=n),  # refused even with nothing to resample
    lambda n: st.curve_statistics(np.ones((3, 4)), num_resamples=n),
])
def test_every_bootstrap_refuses_fewer_resamples_than_an_interval_needs(call):
    """Was: 1 resample gave a zero-width "interval"; the least count is one rule, `MIN_RESAMPLES`."""
    for bad in (1, 0, -5, st.MIN_RESAMPLES - 1, 2.5e3, True):
        with pytest.raises(ValueError, match=rf"^num_resamples={bad!r} .*at least {st.MIN_RESAMPLES}"):
            call(bad)
    call(st.MIN_RESAMPLES)
    call(np.int64(st.MIN_RESAMPLES))


def test_stratified_bootstrap_resamples_within_each_task():
    x = np.random.default_rng(2).normal(size=(6, 3)) + np.array([0.0, 10.0, 20.0])
    dist = st.bootstrap_distribution(x, st.mean, num_resamples=500, seed=5)
    rng = np.random.default_rng(5)
    draws = rng.integers(0, 6, size=(500, 6, 3))
    loop = []
    for b in range(500):
        scores = [x[draws[b, i, t], t] for i in range(6) for t in range(3)]
        loop.append(sum(scores) / len(scores))
    np.testing.assert_allclose(dist, loop, rtol=1e-12)
    # Stratified: every resample keeps 6 scores per task, so the task means (0, 10, 20) stay
    # balanced and the mean never drifts towards one task, unlike pooling all 18 scores.
    assert np.all(np.abs(dist - 10.0) < 2.0)


def test_curve_statistics_pointwise_with_missing_seeds():
    rng = np.random.default_rng(4)
    curves = rng.normal(size=(5, 6))
    curves[1, 2] = np.nan  # seed 1 has no finished episode at point 2
    curves[:, 4] = np.nan  # nobody has one at point 4
    est, low, high = st.curve_statistics(curves, st.iqm, 0.9, 400, seed=9)
    for j in [0, 1, 3, 5]:
        ci = st.bootstrap_ci(curves[:, j], st.iqm, 0.9, 400, seed=9)
        np.testing.assert_allclose([est[j], low[j], high[j]], ci, rtol=1e-12)
    ci = st.bootstrap_ci(np.delete(curves[:, 2], 1), st.iqm, 0.9, 400, seed=9)
    np.testing.assert_allclose([est[2], low[2], high[2]], ci, rtol=1e-12)
    assert np.isnan([est[4], low[4], high[4]]).all()


def test_summarize_drops_nan_and_is_json_ready():
    out = st.summarize([1.0, np.nan, 3.0, 2.0, 10.0], num_resamples=200)
    assert out["n"] == 4
    assert out["mean"] == pytest.approx(4.0) and out["median"] == pytest.approx(2.5)
    assert out["iqm"] == pytest.approx(2.5)
    assert out["mean_low"] <= out["mean"] <= out["mean_high"]
    assert all(isinstance(v, (int, float)) for v in out.values())
    empty = st.summarize([np.nan])
    assert empty["n"] == 0 and empty["iqm"] is None


def _permutation_loop(a, b, statistic):
    """Every split of the pooled runs, one at a time: the share as extreme as the observed."""
    import itertools

    pooled = list(a) + list(b)
    observed = abs(statistic(np.array(a)) - statistic(np.array(b)))
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    extreme = 0
    for chosen in splits:
        left = np.array([pooled[i] for i in chosen])
        right = np.array([pooled[i] for i in range(len(pooled)) if i not in chosen])
        extreme += abs(statistic(left) - statistic(right)) >= observed - 1e-9
    return extreme / len(splits)


@pytest.mark.parametrize("n", [3, 5, 6])
def test_permutation_test_is_exact_and_matches_scipy(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n)
    ref = scipy.stats.permutation_test((a, b), lambda x, y, axis: np.mean(x, axis) - np.mean(y, axis),
                                       permutation_type="independent", n_resamples=np.inf, vectorized=True)
    out = st.permutation_test(a, b)
    assert out.exact and out.splits == scipy.special.comb(2 * n, n, exact=True)
    assert out.difference == pytest.approx(a.mean() - b.mean())
    assert out.p_value == pytest.approx(ref.pvalue)
    assert out.p_value == pytest.approx(_permutation_loop(a, b, np.mean))


def test_permutation_test_by_hand_with_unequal_groups_and_ties():
    # pooled 1, 2, 3, 4, one run against three; the four splits by hand:
    # {1}: |1 - 3| = 2, {2}: |2 - 8/3| = 2/3, {3}: |3 - 7/3| = 2/3, {4}: |4 - 2| = 2
    assert st.permutation_test([4.0], [1.0, 2.0, 3.0]).p_value == pytest.approx(2 / 4)
    assert st.permutation_test([2.0], [1.0, 3.0, 4.0]).p_value == pytest.approx(4 / 4)
    # identical groups: every split is as extreme as a zero difference
    assert st.permutation_test([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    a, b = [3.0, 9.0, 4.0, 7.0], [1.0, 2.0, 2.0, 5.0, 0.5, 6.0]
    assert st.permutation_test(a, b, st.iqm).p_value == pytest.approx(_permutation_loop(a, b, st.iqm))


def test_permutation_test_samples_splits_when_there_are_too_many():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.8, 1.0, 6), rng.normal(0.0, 1.0, 6)
    exact = st.permutation_test(a, b)
    sampled = st.permutation_test(a, b, max_exact=100, num_resamples=20_000, seed=1)
    assert not sampled.exact and sampled.splits == 20_000
    assert abs(sampled.p_value - exact.p_value) < 0.01  # exact p = 0.065; one standard error is 0.0017
    assert sampled == st.permutation_test(a, b, max_exact=100, num_resamples=20_000, seed=1)


@pytest.mark.parametrize("a, b, match", [([], [1.0], "runs in both groups"),
                                         ([1.0, np.nan], [2.0], "finite scores")])
def test_permutation_test_refuses_what_it_cannot_test(a, b, match):
    with pytest.raises(ValueError, match=match):
        st.permutation_test(a, b)
