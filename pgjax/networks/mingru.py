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

The gate bias `b_z` starts by chrono initialisation (`gate_init = "chrono"`, the default;
Tallec & Ollivier, 2018; `initializers.chrono_bias`): `b_z,i = -log(u_i)`, `u_i` evenly spaced
over `[1, T - 1]`, so the initial retention `a = sigmoid(-b_z)` runs from 0.5 to `1 - 1/T`
across units. `T` is the config's `core_timescale`, or its rollout length `num_steps` when
that is 0: the longest span an update backpropagates through. With flax's zero bias
(`gate_init = "zeros"`) every unit starts at `a ~ 0.5` and a signal fades as `~0.5^L` over
`L` steps before training can learn to keep it (benchmarks/recurrent_cores.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from pgjax.kernels.recurrence import linear_recurrence
from pgjax.networks.initializers import chrono_bias, preset
from pgjax.networks.recurrent import GRU, RecurrentNetwork
from pgjax.types import Array

GATE_INITS = ("chrono", "zeros")  # pgjax.config.GATE_INITS (config imports no flax)


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


def projection_bias_init(gate_init: str, timescale: int):
    """The initialiser of the input projection's bias `[2H]` (gate, then candidate): zeros, or
    the gate half by `chrono_bias(timescale)` in a `Preset` box that `redraw` keeps (the
    candidate half stays zero, or uniform with `bias_init_max`)."""
    if gate_init == "zeros":
        return nn.initializers.zeros
    if gate_init != "chrono":
        raise ValueError(f"gate_init={gate_init!r} is unknown; use one of {', '.join(map(repr, GATE_INITS))}")

    def init(key, shape, dtype=jnp.float32):
        size = shape[-1] // 2
        gate = chrono_bias(timescale)(key, (*shape[:-1], size), dtype)
        return jnp.concatenate([gate, jnp.zeros_like(gate)], axis=-1)

    def boxed(key, shape, dtype=jnp.float32):
        keep = (True,) * (shape[-1] // 2) + (False,) * (shape[-1] // 2)
        return preset(init, keep)(key, shape, dtype)

    return boxed


class MinGRUNetwork(RecurrentNetwork):
    """`RecurrentNetwork` with a minGRU core: parameters `input_projection` (`[F, 2H]`, gate
    then candidate; its bias as `projection_bias_init(gate_init, timescale)`) and no
    hidden-to-hidden kernel."""

    gate_init: str = "chrono"
    timescale: int = 128

    def unroll(self, x: Array, h0: Array, resets: Array) -> Array:
        bias_init = projection_bias_init(self.gate_init, self.timescale)
        x_proj = nn.Dense(2 * self.core_size, bias_init=bias_init, name="input_projection")(x)
        hiddens = mingru_scan(h0, jnp.swapaxes(x_proj, 0, 1), jnp.swapaxes(resets, 0, 1))
        return jnp.swapaxes(hiddens, 0, 1)


@dataclasses.dataclass(frozen=True)
class MinGRU(GRU):
    """Core `"mingru"` (`pgjax.networks.cores`): the GRU core's carry, resets and update rows
    around `MinGRUNetwork`s, whose gate bias starts as `gate_init` says with time scale
    `timescale` (`from_config`: the config's `core_gate_init`, and `core_timescale` or else
    `num_steps`)."""

    gate_init: str = "chrono"
    timescale: int = 128
    module: ClassVar[type] = MinGRUNetwork

    @classmethod
    def from_config(cls, config: Any) -> MinGRU:
        timescale = getattr(config, "core_timescale", 0) or getattr(config, "num_steps", cls.timescale)
        return cls(size=getattr(config, "core_size", 64), gate_init=getattr(config, "core_gate_init", "chrono"),
                   timescale=timescale)

    def network(self, head, name: str, hidden_sizes, activation, torso) -> nn.Module:
        return super().network(head, name, hidden_sizes, activation, torso).clone(
            gate_init=self.gate_init, timescale=self.timescale)
