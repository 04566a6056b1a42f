"""The linear recurrence `h_t = a_t h_{t-1} + b_t` over time-major arrays, by a parallel scan.

A recurrent core whose gates depend only on the input (minGRU; Feng et al., 2024, "Were
RNNs All We Needed?", arXiv 2410.01201) is this recurrence with coefficients computed for
all steps at once, so a whole sequence needs no sequential loop: the steps `(a_t, b_t)`
compose associatively, and `jax.lax.associative_scan` gives every `h_t` in O(log T) depth
(Blelloch, 1990; Martin & Cundy, 2018, "Parallelizing Linear Recurrent Neural Nets Over
Sequence Length").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.kernels import inputs
from pgjax.types import Array

_KERNEL = "linear_recurrence"


def _compose(earlier: tuple[Array, Array], later: tuple[Array, Array]) -> tuple[Array, Array]:
    """Step `(a1, b1)` then `(a2, b2)` as one step: `h -> a2 (a1 h + b1) + b2 = (a2 a1) h + (a2 b1 + b2)`."""
    a1, b1 = earlier
    a2, b2 = later
    return a2 * a1, a2 * b1 + b2


def linear_recurrence(a: Array, b: Array, h0: Array, resets: Array | None = None) -> Array:
    """Every state of `h_t = a_t h_{t-1} + b_t` from `h_{-1} = h0`, by an associative scan.

    A reset before step t (`resets[t]`, an episode ended at step t - 1) zeroes the state
    carried in: `h_t = (1 - reset_t) a_t h_{t-1} + b_t`, folded into the coefficients
    (`a_t <- 0`), so the scan never crosses an episode boundary. `h0` enters as the first
    step's offset, `b_0 <- a_0 h0 + b_0`; with `T = 1` the result is that one step. The steps
    compose as `(a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2)` (Blelloch, 1990; Martin &
    Cundy, 2018).

    Shapes: `a`, `b` `[T, ...]` (any trailing batch dims); `h0` `[...]`; `resets` `[T, ...]`
    with the leading dims of `a` (e.g. `[T, B]` for `a [T, B, H]`), broadcast over the rest.
    Returns `h` `[T, ...]`.
    """
    a, b, h0 = (inputs.as_float(_KERNEL, name, x) for name, x in (("a", a), ("b", b), ("h0", h0)))
    inputs.rank_in(_KERNEL, "a", a, None, "[T, ...]")
    inputs.same_shape(_KERNEL, a=a, b=b)
    if np.shape(h0) != np.shape(a)[1:]:
        raise ValueError(f"{_KERNEL}: h0 has shape {list(np.shape(h0))}; expected one step of a, "
                         f"shape {list(np.shape(a)[1:])}")
    if resets is not None:
        resets = inputs.as_flags(_KERNEL, "resets", resets)
        if not 1 <= resets.ndim <= a.ndim or resets.shape != a.shape[:resets.ndim]:
            raise ValueError(f"{_KERNEL}: resets has shape {list(resets.shape)}; expected the leading dims of a "
                             f"{list(a.shape)}, from [T] to all of it")
        resets = resets.reshape(resets.shape + (1,) * (a.ndim - resets.ndim)).astype(bool)
        a = jnp.where(resets, jnp.zeros((), a.dtype), a)
    b = b.at[0].add(a[0] * h0)
    _, h = jax.lax.associative_scan(_compose, (a, b))
    return h
