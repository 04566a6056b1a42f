"""A random permutation that sorts one `uint32` array per round: the minibatch shuffle.

Why not `jax.random.permutation`: it sorts random keys together with the indices (a
two-operand sort), which XLA's CPU runtime runs through a generic comparator; a sort of
one `uint32` array takes a fast path. Measured for 16 vmapped permutations of 512 indices
on one core: 2.0 ms with `jax.random.permutation`, 0.42 ms per round here (two rounds at
n = 512). PPO shuffles its batch once per epoch: it trains 5% faster with 1 seed and 9%
with 16 (median of paired, alternating runs).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.types import Array, PRNGKey

_WORD_BITS = 32


def _index_bits(n: int) -> int:
    """Bits that hold a position in `range(n)`."""
    return max(1, math.ceil(math.log2(n)))


def permutation_rounds(n: int) -> int:
    """Rounds of `permutation(key, n)`: each sorts `n` words of `32 - ceil(log2 n)` random
    bits packed above the index bits. Equal random bits keep the previous round's order, so
    the order is biased only for pairs that tie in every round; the rounds are chosen, as
    `jax.random.permutation` chooses its own, so that such a pair is unlikely:
    `(n^2 / 2) 2^(-rounds * random_bits) <= 1 / n`."""
    random_bits = _WORD_BITS - _index_bits(n)
    return max(1, math.ceil(3 * math.log2(n) / random_bits))


def permutation(key: PRNGKey, n: int) -> Array:
    """A random permutation of `arange(n)` (int32, `n` static), uniform except for pairs
    whose random bits tie in every round (see `permutation_rounds`).

    Each round sorts words `(random bits << index_bits) | position` (one `uint32` operand)
    and reorders the previous round's permutation by the sorted positions. Falls back to
    `jax.random.permutation` when fewer than 8 random bits would remain (`n > 2^24`).
    """
    if n <= 1:
        return jnp.arange(n, dtype=jnp.int32)
    index_bits = _index_bits(n)
    if _WORD_BITS - index_bits < 8:
        return jax.random.permutation(key, n).astype(jnp.int32)
    index_mask = np.uint32(2**index_bits - 1)
    positions = jnp.arange(n, dtype=jnp.uint32)
    order = None
    for round_key in jax.random.split(key, permutation_rounds(n)):
        words = (jax.random.bits(round_key, (n,), jnp.uint32) & ~index_mask) | positions
        sorted_positions = (jnp.sort(words) & index_mask).astype(jnp.int32)
        order = sorted_positions if order is None else order[sorted_positions]
    return order
