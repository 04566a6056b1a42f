"""The GRU core (`GRU`, registered as `"gru"` in `pgjax.networks.cores`): the GRU kernel,
hidden-state resets, networks that unroll over environment sequences, and the rollout-side pieces.

A recurrent network is `obs -> MLP torso -> GRU core -> head`. At step t it sees `obs_t`
with the hidden state `h_{t-1}`: `h_t = GRU(h_{t-1}, torso(obs_t))` and acts from `h_t`.
The hidden state lives in the training state (`EnvCarry.hidden`, one `[B, core_size]`
array per network, keyed like the parameters: `{"actor": ..., "critic": ...}`) and is
reset to zero after every step that ends an episode (`terminated | truncated`), so
checkpoints, seed/hparam vmaps and chunked runs carry it like the environment state.

For an update the networks are re-run over each environment's whole rollout from the
hidden state stored at the rollout's start, with the same resets (`Sequences`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from pgjax.networks.initializers import Network, orthogonal_deferred
from pgjax.networks.torsos import MLP, TorsoSpec, torso_features
from pgjax.types import Array


class Sequences(NamedTuple):
    """Environment sequences, batch-major, for a recurrent network to unroll.

    Every leaf has the environment axis first, so minibatches of whole sequences are a
    gather on axis 0 (`hidden` holds one `[B, H]` state per network, keyed by its name).
    """

    obs: Array  # [B, T, *obs_shape], what the networks see
    resets: Array  # [B, T] bool: set the hidden state to zero before step t
    hidden: Any  # {"actor": [B, H], "critic": [B, H]}: the state before step 0


def gru_step(h: Array, x_proj: Array, hidden_kernel: Array, hidden_bias: Array) -> Array:
    """One GRU step (Cho et al., 2014; the gate layout of `flax.linen.GRUCell`).

    With `x_proj = [W_ir x + b_ir, W_iz x + b_iz, W_in x + b_in]` (`[..., 3H]`) and
    `hidden_kernel = [W_hr, W_hz, W_hn]` (`[H, 3H]`):
    `r = sigmoid(x_r + W_hr h)`, `z = sigmoid(x_z + W_hz h)`,
    `n = tanh(x_n + r * (W_hn h + b_hn))`, `h' = (1 - z) n + z h`.
    """
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h @ hidden_kernel, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * (h_n + jnp.broadcast_to(hidden_bias, h_n.shape)))
    return (1.0 - z) * n + z * h


def gru_scan(h0: Array, x_proj: Array, resets: Array, hidden_kernel: Array, hidden_bias: Array) -> Array:
    """Unroll `gru_step` over time-major inputs `x_proj [T, B, 3H]` from `h0 [B, H]`,
    zeroing the state before step t where `resets[t]` (`[T, B]`). Returns `h_t` `[T, B, H]`."""

    def step(h, inputs):
        x, reset = inputs
        h = gru_step(jnp.where(reset[:, None], 0.0, h), x, hidden_kernel, hidden_bias)
        return h, h

    if x_proj.shape[0] == 1:  # one step (acting in a rollout): no loop to compile inside the rollout's
        return step(h0, (x_proj[0], resets[0]))[1][None]
    _, hiddens = jax.lax.scan(step, h0, (x_proj, resets))
    return hiddens


def reset_hidden(hidden: Any, done: Array) -> Any:
    """Zero every network's hidden state `[B, H]` where `done [B]` (an episode just ended)."""
    return jax.tree.map(lambda h: jnp.where(done[:, None], 0.0, h), hidden)


def initial_hidden(config: Any, num_envs: int) -> Any:
    """A GRU config's zero hidden states `{"actor", "critic"}: [num_envs, core_size]`
    (any core's: `pgjax.networks.cores.make_core(config).init_carry(num_envs)`)."""
    return GRU(config.core_size).init_carry(num_envs)


class RecurrentNetwork(Network):
    """`Sequences -> head(h) [B, T, ...]`: torso (MLP, or CNN + MLP), GRU core, then `head` on every `h_t`.

    The input projection runs on all steps at once; only `gru_step` is inside the scan. A
    subclass that overrides `unroll` is a network with another core (`mingru.MinGRUNetwork`).
    `return_hidden=True` also returns `h_t` `[B, T, H]` (before any reset after step t).
    `name_in_hidden` picks this network's state out of `Sequences.hidden`.
    """

    head: nn.Module  # h [..., H] -> a distribution or a value
    name_in_hidden: str
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    core_size: int = 64
    torso: TorsoSpec = TorsoSpec()  # flatten + MLP, or a CNN before the MLP (networks.torso_spec)

    @nn.compact
    def __call__(self, seq: Sequences, return_hidden: bool = False):
        x = MLP(self.hidden_sizes, self.activation)(torso_features(seq.obs, self.torso, self.activation))
        hiddens = self.unroll(x, seq.hidden[self.name_in_hidden], seq.resets)
        out = self.head(hiddens)
        return (out, hiddens) if return_hidden else out

    def unroll(self, x: Array, h0: Array, resets: Array) -> Array:
        """The core over torso features `x [B, T, F]` from `h0 [B, H]`, the state zeroed before
        step t where `resets [B, T]`: `h_t` `[B, T, H]`. Another core's network overrides this."""
        x_proj = nn.Dense(3 * self.core_size, name="input_projection")(x)
        hidden_kernel = self.param("hidden_kernel", orthogonal_deferred(1.0), (self.core_size, 3 * self.core_size))
        hidden_bias = self.param("hidden_bias", nn.initializers.zeros, (self.core_size,))
        hiddens = gru_scan(h0, jnp.swapaxes(x_proj, 0, 1), jnp.swapaxes(resets, 0, 1), hidden_kernel, hidden_bias)
        return jnp.swapaxes(hiddens, 0, 1)


def single_steps(obs: Array, hidden: Any) -> Sequences:
    """Each row of `obs [N, ...]` as a one-step sequence from `hidden` (`[N, H]` per network)."""
    return Sequences(obs[:, None], jnp.zeros((obs.shape[0], 1), bool), hidden)


def step_network(network: Any, params: Any, obs: Array, hidden: Any) -> tuple[Any, Array]:
    """One step of a recurrent network for a batch `obs [B, ...]`: `(output [B, ...], h_t [B, H])`."""
    out, hiddens = network.apply(params, single_steps(obs, hidden), return_hidden=True)
    return jax.tree.map(lambda x: x[:, 0], out), hiddens[:, 0]


def sequences_from_rollout(obs: Array, done: Array, hidden: Any) -> Sequences:
    """A time-major rollout (`obs [T, B, ...]`, episode ends `done [T, B]`) as `Sequences`
    from the hidden state at its start: the state is reset before step t where step t-1
    ended an episode (the carry was already reset after the previous rollout's last step)."""
    resets = jnp.concatenate([jnp.zeros_like(done[:1]), done[:-1]], axis=0)
    return Sequences(jnp.swapaxes(obs, 0, 1), jnp.swapaxes(resets, 0, 1), hidden)


def apply_time_major(network: Any, params: Any, inputs: Any) -> Any:
    """`network.apply(params, inputs)` for time-major kernels: `Sequences` outputs come
    batch-major `[B, T, ...]` and are swapped to `[T, B, ...]`; other inputs pass through."""
    out = network.apply(params, inputs)
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), out) if isinstance(inputs, Sequences) else out


def values_and_next_values(critic: Any, params: Any, seq: Sequences, next_obs: Array) -> tuple[Array, Array]:
    """`V(s_t)` and `V(s_{t+1})` `[B, T]` for sequences, the latter at the true next
    observation `next_obs [B, T, ...]` from the hidden state BEFORE the reset that follows
    an episode end: `head(GRU(h_t, next_obs_t))`, which equals `V(s_{t+1})` mid-episode."""
    values, hiddens = critic.apply(params, seq, return_hidden=True)
    b, t = values.shape
    flat_hidden = {critic.name_in_hidden: hiddens.reshape(b * t, -1)}
    next_values = critic.apply(params, single_steps(next_obs.reshape(b * t, *next_obs.shape[2:]), flat_hidden))
    return values, next_values.reshape(b, t)


@dataclasses.dataclass(frozen=True)
class GRU:
    """Core `"gru"` (`pgjax.networks.cores`): `RecurrentNetwork`s around output-layer heads,
    a `[B, size]` hidden state per network (`{"actor": ..., "critic": ...}`), update rows
    that are whole environment sequences `[B, T]` (`Sequences`)."""

    size: int = 64
    sequential: ClassVar[bool] = True
    module: ClassVar[type] = RecurrentNetwork  # a subclass with its own `unroll` is another core

    def network(self, head, name: str, hidden_sizes, activation, torso) -> nn.Module:
        # The torso and hidden layers come before the recurrent core: the head is its output layer alone.
        return self.module(head((), TorsoSpec()), name, tuple(hidden_sizes), activation, self.size, torso)

    def init_carry(self, batch: int) -> Any:
        zeros = jnp.zeros((batch, self.size), jnp.float32)
        return {"actor": zeros, "critic": zeros}

    def init_input(self, obs: Array) -> Sequences:
        return single_steps(obs, self.init_carry(obs.shape[0]))

    def step(self, network, params, carry, obs):
        out, hidden = step_network(network, params, obs, carry)
        return {**carry, network.name_in_hidden: hidden}, out

    def reset(self, carry, done):
        return reset_hidden(carry, done)

    def sequence_inputs(self, obs, done, carry) -> Sequences:
        return sequences_from_rollout(obs, done, carry)

    def apply_time_major(self, network, params, inputs):
        return apply_time_major(network, params, inputs)

    def rollout_values(self, critic, params, carry, both, done):
        seq = sequences_from_rollout(both[0], done, carry)
        values, next_values = values_and_next_values(critic, params, seq, jnp.swapaxes(both[1], 0, 1))
        return seq, jnp.swapaxes(values, 0, 1), jnp.swapaxes(next_values, 0, 1)

    def rows(self, tree):
        # Sequences are batch-major already; every other leaf [T, B, ...] becomes [B, T, ...].
        return jax.tree.map(
            lambda x: x if isinstance(x, Sequences) else jnp.swapaxes(x, 0, 1), tree,
            is_leaf=lambda x: isinstance(x, Sequences),
        )
