"""Aggregate statistics across seeds: mean, median, IQM, bootstrap intervals, permutation tests.

Plain NumPy on the host (these summarise a handful of numbers per run, after training).
Conventions follow Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS): report the interquartile mean (IQM) over runs with a
percentile bootstrap confidence interval; with several tasks, resample runs within each
task (a stratified bootstrap).

Every statistic takes `axis` and reduces over it, so the bootstrap can apply it to a whole
stack of resamples at once. Values that are nan (a seed with no finished episode yet) are
dropped by `finite_values` before a statistic is taken, never silently averaged in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

Statistic = Callable[..., np.ndarray]  # (x, axis=...) -> x reduced over axis


def mean(x, axis=-1) -> np.ndarray:
    """Arithmetic mean over `axis`."""
    return np.mean(np.asarray(x, float), axis=axis)


def median(x, axis=-1) -> np.ndarray:
    """Median over `axis` (the average of the two middle values when n is even)."""
    return np.median(np.asarray(x, float), axis=axis)


def iqm(x, axis=-1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the values along `axis`.

    `IQM = (2/n) sum_i w_i x_(i)`, with `x_(1) <= ... <= x_(n)` sorted and `w_i` the length
    of the overlap of `[i-1, i]` with `[n/4, 3n/4]`: values straddling a quartile count in
    part, so every n (not only multiples of 4) uses exactly half the mass. Equivalently,
    `2 * integral_{1/4}^{3/4} Q(p) dp` for the empirical quantile function `Q`
    (Agarwal et al., 2021). For n divisible by 4 it equals `scipy.stats.trim_mean(x, 0.25)`
    (what rliable computes); for other n, trim_mean drops whole values instead.
    """
    x = np.sort(np.asarray(x, float), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty array")
    lower = np.arange(n, dtype=float)  # value i (0-based) covers [i, i+1]
    weights = np.clip(np.minimum(lower + 1, 0.75 * n) - np.maximum(lower, 0.25 * n), 0.0, None)
    shape = [1] * x.ndim
    shape[axis] = n
    return np.sum(x * weights.reshape(shape), axis=axis) / (0.5 * n)


STATISTICS: dict[str, Statistic] = {"iqm": iqm, "mean": mean, "median": median}


def finite_values(x) -> np.ndarray:
    """The finite entries of a 1-D array (nan marks a seed with nothing to report)."""
    x = np.asarray(x, float).ravel()
    return x[np.isfinite(x)]


# A percentile interval's ends are its (1 -/+ confidence)/2 quantiles over the resamples; with
# fewer than this many, each end of a 95% interval rests on two resamples or fewer and moves
# with the bootstrap seed as much as with the data (Efron & Tibshirani, 1993, ch. 13, ask
# for about 1000).
MIN_RESAMPLES = 100


def resamples_problem(num_resamples) -> str | None:
    """What is wrong with a resample count (to follow its name and value), or None."""
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, (int, np.integer)):
        return f"must be a whole number of at least {MIN_RESAMPLES}"
    if num_resamples < MIN_RESAMPLES:
        return (f"is too few for a bootstrap interval: give at least {MIN_RESAMPLES} (the default is 2000), so "
                "each end of a 95% interval rests on more than two resamples")
    return None


def check_resamples(num_resamples) -> None:
    """Raise ValueError unless `num_resamples` is a whole number >= `MIN_RESAMPLES`."""
    problem = resamples_problem(num_resamples)
    if problem is not None:
        raise ValueError(f"num_resamples={num_resamples!r} {problem}")


class Interval(NamedTuple):
    """A point estimate and its confidence interval `[low, high]`."""

    estimate: float
    low: float
    high: float


def bootstrap_distribution(
    x, statistic: Statistic = iqm, num_resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """The statistic on `num_resamples` bootstrap resamples of `x`, `[num_resamples]`.

    `x` is `[n]` (one score per run) or `[n, tasks]`. With tasks, each resample draws n runs
    with replacement independently within every task column (stratified bootstrap, as in
    rliable's StratifiedBootstrap) and applies `statistic` to all `n * tasks` scores.
    A fixed `seed` makes the interval reproducible.
    """
    check_resamples(num_resamples)
    x = np.asarray(x, float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"bootstrap needs scores shaped [runs] or [runs, tasks], got {x.shape}")
    n, tasks = x.shape
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(num_resamples, n, tasks))
    resamples = np.take_along_axis(np.broadcast_to(x, (num_resamples, n, tasks)), index, axis=1)
    return statistic(resamples.reshape(num_resamples, n * tasks), axis=-1)


def bootstrap_ci(
    x,
    statistic: Statistic = iqm,
    confidence: float = 0.95,
    num_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval (Efron & Tibshirani, 1993, ch. 13) for `statistic(x)`.

    `low, high` are the `(1 - confidence)/2` and `(1 + confidence)/2` quantiles of the
    statistic over resamples (`bootstrap_distribution`). One run gives a zero-width
    interval: a bootstrap cannot invent spread that was never observed.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    check_resamples(num_resamples)
    x = np.asarray(x, float)
    estimate = float(statistic(x.ravel(), axis=-1))
    dist = bootstrap_distribution(x, statistic, num_resamples, seed)
    alpha = 1.0 - confidence
    low, high = np.percentile(dist, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(estimate, float(low), float(high))


def summarize(
    x, confidence: float = 0.95, num_resamples: int = 2000, seed: int = 0
) -> dict[str, float | int | list[float]]:
    """Mean, median and IQM of the finite scores in `x`, each with a bootstrap interval.

    Returns a JSON-ready dict: `n`, and for each statistic `name`, `name_low`, `name_high`.
    With no finite score every number is None.
    """
    check_resamples(num_resamples)
    values = finite_values(x)
    out: dict = {"n": int(values.size), "confidence": confidence, "num_resamples": num_resamples,
                 "bootstrap_seed": seed}
    for name, stat in STATISTICS.items():
        if values.size == 0:
            out[name] = out[f"{name}_low"] = out[f"{name}_high"] = None
            continue
        interval = bootstrap_ci(values, stat, confidence, num_resamples, seed)
        out[name], out[f"{name}_low"], out[f"{name}_high"] = interval
    return out


class PermutationTest(NamedTuple):
    difference: float  # statistic(a) - statistic(b)
    p_value: float  # two-sided
    splits: int  # splits counted (every one when exact)
    exact: bool


def permutation_test(
    a, b, statistic: Statistic = mean, max_exact: int = 1_000_000, num_resamples: int = 100_000, seed: int = 0
) -> PermutationTest:
    """Two-sided permutation test of `statistic(a) - statistic(b)` = 0 (Fisher-Pitman).

    Under the null the runs of both groups are exchangeable; the p-value is the share of
    splits of the pooled runs into groups of len(a) and len(b) whose difference d satisfies
    |d| >= |d_observed|, the observed split included (Good, 2005, "Permutation, Parametric
    and Bootstrap Tests of Hypotheses", ch. 3). Exact over all C(n_a + n_b, n_a) splits when
    there are at most `max_exact` of them (5 seeds against 5: 252 splits, so p >= 1/252);
    otherwise `num_resamples` random splits with p = (count + 1) / (num_resamples + 1)
    (Phipson & Smyth, 2010). Nan scores are refused: which seeds to drop is the caller's call.
    """
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"permutation test needs runs in both groups, got {a.size} and {b.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("permutation test needs finite scores; drop the runs without one first")
    pooled, n_a = np.concatenate([a, b]), a.size
    observed = float(statistic(a) - statistic(b))
    total = math.comb(pooled.size, n_a)
    if total <= max_exact:
        in_a = np.zeros((total, pooled.size), bool)
        for row, chosen in enumerate(itertools.combinations(range(pooled.size), n_a)):
            in_a[row, list(chosen)] = True
    else:
        check_resamples(num_resamples)
        order = np.argsort(np.random.default_rng(seed).random((num_resamples, pooled.size)), axis=1)
        in_a = np.zeros((num_resamples, pooled.size), bool)
        np.put_along_axis(in_a, order[:, :n_a], True, axis=1)
    groups = np.broadcast_to(pooled, in_a.shape)
    d = statistic(groups[in_a].reshape(-1, n_a), axis=1) - statistic(groups[~in_a].reshape(-1, b.size), axis=1)
    # a split as extreme as the observed one, up to rounding in the statistic's sum
    extreme = int(np.count_nonzero(np.abs(d) >= abs(observed) - 1e-9 * max(1.0, abs(observed))))
    if total <= max_exact:
        return PermutationTest(observed, extreme / total, total, True)
    return PermutationTest(observed, (extreme + 1) / (num_resamples + 1), num_resamples, False)


def curve_statistics(
    curves,
    statistic: Statistic = iqm,
    confidence: float = 0.95,
    num_resamples: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise statistic and bootstrap interval of learning curves `[seeds, points]`.

    At each point the seeds with a finite value are used (nan marks a seed with no
    finished episode yet); a point with none is nan. Returns `(estimate, low, high)`,
    each `[points]`.
    """
    check_resamples(num_resamples)
    curves = np.asarray(curves, float)
    if curves.ndim != 2:
        raise ValueError(f"curves must be [seeds, points], got shape {curves.shape}")
    out = np.full((3, curves.shape[1]), np.nan)
    finite = np.isfinite(curves)
    complete = finite.all(axis=0)
    if complete.any():  # the common case, every seed reported: one vectorised bootstrap
        out[:, complete] = _columns_interval(curves[:, complete], statistic, confidence, num_resamples, seed)
    for j in np.flatnonzero(~complete & finite.any(axis=0)):
        out[:, j] = bootstrap_ci(curves[finite[:, j], j], statistic, confidence, num_resamples, seed)
    return out[0], out[1], out[2]


def _columns_interval(block, statistic, confidence, num_resamples, seed) -> np.ndarray:
    """`bootstrap_ci` of each column of `[n, m]`, resampling runs jointly across columns."""
    n = block.shape[0]
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(num_resamples, n))
    dist = statistic(block[index], axis=1)  # [num_resamples, m]
    alpha = 1.0 - confidence
    low, high = np.percentile(dist, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return np.stack([statistic(block, axis=0), low, high])
