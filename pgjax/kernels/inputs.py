"""Input checks shared by the numerical kernels (`pgjax.kernels.returns`, `pgjax.kernels.losses`).

Kernels are called from notebooks with Python lists and integer rewards; inside `lax.scan`
those fail with a misleading rank error. Here what is safe is cast (lists, ints and bools
to float32 arrays; float arrays and tracers pass unchanged, so jitted callers see the same
numbers), and what is not is named: one `ValueError` line with the kernel, the argument
and the shapes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pgjax.types import Array


def as_float(kernel: str, name: str, x) -> Array:
    """`x` as an array; lists, ints and bools become float32 (floats keep their dtype)."""
    try:
        array = jnp.asarray(x)
    except (TypeError, ValueError):  # ValueError: None
        raise TypeError(f"{kernel}: {name} must be numbers (an array, list or scalar), got {_short(x)}") from None
    if not jnp.issubdtype(array.dtype, jnp.floating):
        if not (jnp.issubdtype(array.dtype, jnp.integer) or array.dtype == jnp.bool_):
            raise TypeError(f"{kernel}: {name} must hold numbers, got dtype {array.dtype}")
        array = array.astype(jnp.float32)
    return array


def as_coefficient(kernel: str, name: str, x, batch_shape: tuple[int, ...]) -> Array | float:
    """A coefficient such as `gamma` or `lambda_` for time-major arrays `[T, *batch_shape]`:
    a number or a one-element array-like (`[0.99]`) -> a scalar; one value per column
    (shape `batch_shape`) -> shape `[1, *batch_shape]`, broadcasting over time. Anything
    else is one `ValueError` line naming the kernel, the argument and the shapes allowed."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return x  # a Python number stays weakly typed (float64 arrays keep their precision)
    array = as_float(kernel, name, x)
    batch_shape = tuple(batch_shape)
    if array.size == 1:
        return array.reshape(())
    if array.shape == batch_shape:
        return array[None]
    if array.shape == (1, *batch_shape):
        return array
    raise ValueError(f"{kernel}: {name} has shape {list(array.shape)}; expected a number or one value per column "
                     f"(shape {list(batch_shape)})")


def as_flags(kernel: str, name: str, x) -> Array:
    """Episode-end flags as an array (bool, int or float 0/1 all work in the kernels)."""
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(f"{kernel}: {name} must be flags (bool, 0/1), got {_short(x)}") from None


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def same_shape(kernel: str, **arrays: Array) -> None:
    """One line naming every argument and its shape when they differ."""
    shapes = {name: tuple(np.shape(a)) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
        raise ValueError(f"{kernel}: arguments must share one shape; got {listed}")


def rank_in(kernel: str, name: str, x: Array, ranks: tuple[int, ...] | None, layout: str) -> None:
    """One line naming the argument, its shape and the ranks allowed (None: any rank >= 1;
    `layout`, e.g. `[T, ...]`, says what the axes are)."""
    ndim = np.ndim(x)
    if (ndim not in ranks) if ranks else ndim < 1:
        allowed = " or ".join(map(str, ranks)) if ranks else "at least 1"
        raise ValueError(f"{kernel}: {name} has shape {list(np.shape(x))} (rank {ndim}); expected rank {allowed}, "
                         f"laid out {layout}")
