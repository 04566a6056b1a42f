"""Helpers shared by the algorithm contract tests (bit-identity, hyper-parameter grids)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def leaves_equal(a, b) -> bool:
    """Bit-identical pytrees of the same structure (nan equals nan: a chunk without a
    finished episode logs nan returns)."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(x, y, equal_nan=True) for x, y in zip(leaves_a, leaves_b)
    )


def hparam_grid(hparams, **columns):
    """`hparams` with a leading grid axis: every field repeated, the named columns replaced.

    `hparam_grid(hp, gamma=[0.9, 0.99])` gives two cells that differ only in gamma.
    """
    size = len(next(iter(columns.values())))
    grid = jax.tree.map(lambda x: jnp.full((size,), x, jnp.float32), hparams)
    return dataclasses.replace(grid, **{k: jnp.asarray(v, jnp.float32) for k, v in columns.items()})
