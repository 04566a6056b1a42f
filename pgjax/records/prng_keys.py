"""Typed PRNG keys (`jax.random.key`) in stored state: as raw data and back.

Array stores (orbax, `.npz` files, collectives) hold numbers, not key arrays, so a state's
typed keys are written as their `uint32` data and wrapped again with their implementation
on the way back. `key_impl_of` also reads the implementation off a `jax.ShapeDtypeStruct`
(an abstract state built from shapes, as a restore target), which `jax.random.key_impl`
refuses. Raw `uint32` keys (`jax.random.PRNGKey`) are plain arrays and pass through.
"""

from __future__ import annotations

from typing import Any

import jax


def is_typed_key(x: Any) -> bool:
    """Whether `x` (an array, tracer or `ShapeDtypeStruct`) holds typed PRNG keys."""
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def key_impl_of(like: Any) -> Any:
    """The PRNG implementation of a typed key array, tracer or `ShapeDtypeStruct`."""
    found = []
    jax.eval_shape(lambda key: found.append(jax.random.key_impl(key)), like)
    return found[0]


def key_data_leaf(x: Any) -> Any:
    """A leaf as numbers: a typed key's raw data, anything else unchanged."""
    return jax.random.key_data(x) if is_typed_key(x) else x


def key_data_tree(tree: Any) -> Any:
    """`key_data_leaf` on every leaf."""
    return jax.tree.map(key_data_leaf, tree)


def rewrap_leaf(like: Any, data: Any) -> Any:
    """`data` read back for the leaf `like`: wrapped as `like`'s typed keys if it held keys."""
    return jax.random.wrap_key_data(data, impl=key_impl_of(like)) if is_typed_key(like) else data
