"""The minGRU core (`MinGRU`, registered as `"mingru"` in `pgjax.networks.cores`): a GRU whose
gates see only the input, so a whole sequence is one linear recurrence solved by a parallel scan.

minGRU (Feng et al., 2024, "Were RNNs All We Needed?", arXiv 2410.01201, in its plain form,
not the log-space variant with `g(.)`): from torso features `x_t`,

    z_t = sigmoid(W_z x_t + b_z),   h~_t = W_h x_t + b_h,   h_t = (1 - z_t) h_{t-1} + z_t h~_t,

i.e. `h_t = a_t h_{t-1} + b_t` with `a_t = 1 - z_t` and `b_t = z_t h~_t`, computed for all
steps at once (`pgjax.kernels.recurrence.linear_recurrence`). Everything else is the GRU
core's: the hidden state `[B, size]` per network in the training state, reset to zero after
every step that ends an episode (folded into the scan as `a_t = 0`), whole-sequence update
rows, the truncation bootstrap from the state before the reset. Acting is a one-step
sequence (`h_t = a_t h_{t-1} + b_t` alone); an update unrolls the stored sequences by the
scan, in O(log T) depth instead of the GRU's T sequential steps.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from pgjax.kernels.recurrence import linear_recurrence
from pgjax.networks.recurrent import GRU, RecurrentNetwork
from pgjax.types import Array


def mingru_coefficients(x_proj: Array) -> tuple[Array, Array]:
    """minGRU's recurrence coefficients `(a, b)` `[..., H]` from the input projection
    `x_proj = [W_z x + b_z, W_h x + b_h]` `[..., 2H]`: `a = 1 - z = sigmoid(-(W_z x + b_z))`
    (exact near `z = 1`), `b = z h~`."""
    gate, candidate = jnp.split(x_proj, 2, axis=-1)
    return jax.nn.sigmoid(-gate), jax.nn.sigmoid(gate) * candidate


def mingru_scan(h0: Array, x_proj: Array, resets: Array) -> Array:
    """minGRU states `h_t` `[T, B, H]` for time-major projections `x_proj [T, B, 2H]` from
    `h0 [B, H]`, the state zeroed before step t where `resets [T, B]`."""
    a, b = mingru_coefficients(x_proj)
    return linear_recurrence(a, b, h0, resets)


class MinGRUNetwork(RecurrentNetwork):
    """`RecurrentNetwork` with a minGRU core: parameters `input_projection` (`[F, 2H]`, gate
    then candidate) and no hidden-to-hidden kernel."""

    def unroll(self, x: Array, h0: Array, resets: Array) -> Array:
        x_proj = nn.Dense(2 * self.core_size, name="input_projection")(x)
        hiddens = mingru_scan(h0, jnp.swapaxes(x_proj, 0, 1), jnp.swapaxes(resets, 0, 1))
        return jnp.swapaxes(hiddens, 0, 1)


@dataclasses.dataclass(frozen=True)
class MinGRU(GRU):
    """Core `"mingru"` (`pgjax.networks.cores`): the GRU core's carry, resets and update rows
    around `MinGRUNetwork`s."""

    module: ClassVar[type] = MinGRUNetwork
