"""`shuffle.permutation`: a permutation, uniformly distributed, with and without jit."""

import itertools
import math

import jax
import numpy as np
import pytest
from scipy import stats

from pgjax.kernels.shuffle import permutation, permutation_rounds


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 100, 512, 4096])
def test_is_a_permutation(n, jit):
    draw = jax.jit(permutation, static_argnums=1) if jit else permutation
    for seed in range(3):
        perm = np.asarray(draw(jax.random.PRNGKey(seed), n))
        assert perm.dtype == np.int32
        np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    if n >= 64:  # a shuffle, not the identity or a fixed order
        assert not np.array_equal(perm, np.arange(n))
        assert not np.array_equal(perm, np.asarray(draw(jax.random.PRNGKey(99), n)))


def test_all_orders_of_four_equally_likely():
    # 24 orders of 4 items, 24,000 draws: chi-square against the uniform distribution.
    n, draws = 4, 24_000
    perms = np.asarray(jax.vmap(lambda k: permutation(k, n))(jax.random.split(jax.random.PRNGKey(0), draws)))
    index = {p: i for i, p in enumerate(itertools.permutations(range(n)))}
    counts = np.bincount([index[tuple(p)] for p in perms], minlength=math.factorial(n))
    assert stats.chisquare(counts).pvalue > 1e-3


def test_positions_uniform_for_a_minibatch_sized_shuffle():
    # n = 512 (PPO's CartPole batch): each item lands in each quarter (minibatch) equally often.
    n, draws = 512, 2_000
    perms = np.asarray(jax.vmap(lambda k: permutation(k, n))(jax.random.split(jax.random.PRNGKey(1), draws)))
    quarter_of_item = np.argsort(perms, axis=1) // (n // 4)  # which minibatch each item fell in
    for item in (0, 1, 255, 511):
        counts = np.bincount(quarter_of_item[:, item], minlength=4)
        assert stats.chisquare(counts).pvalue > 1e-4, (item, counts)
    # neighbours in the batch are not kept together more often than chance (1/4)
    same = (quarter_of_item[:, :-1] == quarter_of_item[:, 1:]).mean()
    assert abs(same - 0.25) < 0.01


def test_vmap_matches_separate_draws():
    keys = jax.random.split(jax.random.PRNGKey(2), 5)
    batched = jax.vmap(lambda k: permutation(k, 300))(keys)
    for key, row in zip(keys, batched, strict=True):
        np.testing.assert_array_equal(row, permutation(key, 300))


def test_rounds_make_a_tie_in_every_round_unlikely():
    for n in (2, 512, 4096, 2**16, 2**20):
        random_bits = 32 - max(1, math.ceil(math.log2(n)))
        assert (n * n / 2) * 2.0 ** (-permutation_rounds(n) * random_bits) <= 1 / n
