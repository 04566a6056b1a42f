"""Threefry keys whose draws compile to straight-line code: faster to compile and, for the
many tiny draws of a rollout, faster to run on CPU.

Why: on CPU, JAX lowers every Threefry-2x32 hash to a `while` loop over its 5 round groups
(smaller HLO). XLA compiles each loop as its own computation and runs it as one
iteration-by-iteration loop of small kernels.
- Initialisation no longer uses it: once the kernels share one batched Newton-Schulz loop
  (`pgjax.networks.initializers.orthogonalize`) it saved no measurable compile time, and XLA's CPU
  compiler stalled (over 30 minutes) on straight-line draws feeding that loop for some
  shapes (PPO with hidden_sizes=(16,) on a 1-d observation).
- Rollouts: every environment step draws a handful of tiny arrays (the step's keys, the
  action sample, gymnax's reset noise), each a loop of its own. Straight-line, each draw is
  one fused kernel: PPO on CartPole trains about 10% faster with 1 seed and 5% with 16
  (median of paired, alternating runs).
- Large draws (a 512-element minibatch permutation) measured no faster unrolled, so the
  learners' own keys stay on JAX's implementation.
- Each hash is cut into its five round groups (`lax.optimization_barrier`): one 20-round
  chain sent LLVM's vectoriser into exponential time (see `threefry2x32`).

`unrolled_key(key)` re-labels a Threefry key as a key of the PRNG implementation below: the
same Threefry-2x32 hash (Salmon et al., 2011, with JAX's key schedule and its
"partitionable" counter layout), written as straight-line `jnp` code. It draws exactly the
bits `jax.random` draws from the original key (tested), so results do not change.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import define_prng_impl

from pgjax.types import PRNGKey

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x, bits: int):
    return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 block cipher (20 rounds) of counters `(x1, x2)` under key `(k1, k2)`."""
    schedule = (k1, k2, k1 ^ k2 ^ _KEY_PARITY)
    x1, x2 = x1 + schedule[0], x2 + schedule[1]
    for group in range(5):
        for bits in _ROTATIONS[group % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, bits) ^ x1
        x1 = x1 + schedule[(group + 1) % 3]
        x2 = x2 + schedule[(group + 2) % 3] + np.uint32(group + 1)
        if group < 4:
            # One fused kernel per round group, not one for all 20 rounds: in a single long
            # chain of or/xor/add, LLVM's loop vectoriser (`vputils::onlyFirstLaneUsed`, which
            # walks every path to the chain's end) took exponential time. SAC's program did not
            # finish compiling on jax 0.11.2 without this; with it, compile time and
            # throughput are unchanged (PPO, TD3 measured).
            x1, x2 = jax.lax.optimization_barrier((x1, x2))
    return x1, x2


def _counters(shape):
    """The 64-bit row-major index of each element of `shape`, as (high, low) uint32 words."""
    size = int(np.prod(shape, dtype=np.int64))
    if size >= 2**32:
        raise ValueError(f"unrolled_rng draws fewer than 2**32 values at once, asked for shape {shape}")
    low = jax.lax.iota(jnp.uint32, size).reshape(shape)
    return jnp.zeros(shape, jnp.uint32), low


def _seed(seed):
    """A 32- or 64-bit integer as key words `[high 32 bits, low 32 bits]`, as JAX seeds Threefry."""
    seed = jnp.asarray(seed)
    if seed.dtype.itemsize == 8:
        high = jax.lax.shift_right_logical(seed, jnp.asarray(32, seed.dtype)).astype(jnp.uint32)
    else:
        high = jnp.zeros((), jnp.uint32)
    return jnp.stack([high, seed.astype(jnp.uint32)])


def _split(key, shape):
    high, low = _counters(shape)
    bits1, bits2 = threefry2x32(key[0], key[1], high, low)
    return jnp.stack([bits1, bits2], axis=-1)


def _fold_in(key, data):
    # JAX hashes the seed words of `data` as one block of two counters.
    words = _seed(jnp.asarray(data, jnp.uint32))
    bits1, bits2 = threefry2x32(key[0], key[1], words[:1], words[1:])
    return jnp.concatenate([bits1, bits2])


def _random_bits(key, bit_width, shape):
    high, low = _counters(shape)
    bits1, bits2 = threefry2x32(key[0], key[1], high, low)
    if bit_width == 64:
        return (bits1.astype(jnp.uint64) << np.uint64(32)) | bits2.astype(jnp.uint64)
    dtype = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32}[bit_width]
    return (bits1 ^ bits2).astype(dtype)


UNROLLED_THREEFRY = define_prng_impl(
    key_shape=(2,), seed=_seed, split=_split, random_bits=_random_bits, fold_in=_fold_in,
    name="threefry2x32_unrolled", tag="fryu",
)


def unrolled_key(key: PRNGKey) -> PRNGKey:
    """`key` as a key of the unrolled Threefry implementation (same bits, straight-line code).

    Takes a typed Threefry key or a raw `uint32[2]` one (`jax.random.PRNGKey` with JAX's
    default Threefry); keys of other implementations are returned unchanged.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return key
        key = jax.random.key_data(key)
    elif key.shape[-1:] != (2,) or jax.config.jax_default_prng_impl != "threefry2x32":
        return key  # a raw key of another implementation
    if not jax.config.jax_threefry_partitionable:  # the counter layout follows this setting
        return jax.random.wrap_key_data(key, impl="threefry2x32")
    return jax.random.wrap_key_data(key, impl=UNROLLED_THREEFRY)


def like(key: PRNGKey, original: PRNGKey) -> PRNGKey:
    """An unrolled `key` back as JAX's own Threefry key (the same bits), raw or typed as
    `original` is: for keys a state stores, so its type does not change."""
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key  # unrolled_key passed a key of another kind through
    data = jax.random.key_data(key)
    if jnp.issubdtype(original.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(original))
    return data
