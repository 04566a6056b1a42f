"""Heads: policy heads that return a distribution, value and Q critics, a deterministic actor.
Each puts a torso (`pgjax.networks.torsos`) in front of its output layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from pgjax.kernels.distributions import Categorical, DiagGaussian
from pgjax.networks.initializers import Network, dense, orthogonal_deferred
from pgjax.networks.torsos import MLP, TorsoSpec, torso_features
from pgjax.types import Array


def _with_aux_value(module: nn.Module, features: Array, dist, with_aux_value: bool):
    """`dist`, or `(dist, V_aux(obs) [...])` with `with_aux_value`: the auxiliary value head a
    PPG policy network carries on its own features (Cobbe et al., 2021, sec. 2, Figure 1). The head runs
    whenever `module.aux_value`, so `init` creates its parameters on the plain call (an unused
    value costs nothing under `jit`)."""
    if not module.aux_value:
        if with_aux_value:
            raise ValueError(f"{type(module).__name__} has no auxiliary value head: build it with aux_value=True")
        return dist
    head = nn.Dense(1, kernel_init=orthogonal_deferred(1.0), bias_init=nn.initializers.zeros, name="aux_value")
    value = head(features)[..., 0]
    return (dist, value) if with_aux_value else dist


class CategoricalActor(Network):
    """`obs [..., *obs_shape] -> Categorical(logits [..., num_actions])`; with `aux_value`, also
    `V_aux(obs) [...]` when called `with_aux_value=True`."""

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    torso: TorsoSpec = TorsoSpec()
    aux_value: bool = False

    @nn.compact
    def __call__(self, obs: Array, with_aux_value: bool = False):
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        return _with_aux_value(self, x, Categorical(logits=dense(self.num_actions, 0.01)(x)), with_aux_value)


class GaussianActor(Network):
    """`obs -> DiagGaussian(mean, log_std)`.

    With `state_dependent_std=False` the log-std is one free parameter per action dimension
    (PPO/TRPO style); otherwise a second head predicts it, clamped to
    `[log_std_min, log_std_max]` (SAC style). With `aux_value`, also `V_aux(obs) [...]` when
    called `with_aux_value=True` (as `CategoricalActor`).
    """

    action_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    state_dependent_std: bool = False
    init_log_std: float = 0.0
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    torso: TorsoSpec = TorsoSpec()
    aux_value: bool = False

    @nn.compact
    def __call__(self, obs: Array, with_aux_value: bool = False):
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        mean = dense(self.action_dim, 0.01)(x)
        if self.state_dependent_std:
            log_std = dense(self.action_dim, 0.01)(x) + self.init_log_std
            log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        else:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
            )
            log_std = jnp.broadcast_to(log_std, mean.shape)
        return _with_aux_value(self, x, DiagGaussian(mean=mean, log_std=log_std), with_aux_value)


class ValueCritic(Network):
    """`obs [..., *obs_shape] -> V(obs) [...]`."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        return dense(1, 1.0)(x)[..., 0]


# --- off-policy heads: Q critics and a deterministic actor -----------------------------------


class QCritic(Network):
    """`(obs [..., *obs_shape], action [..., A]) -> Q(obs, action) [...]`: the torso's features
    of `obs` concatenated with the action, then the MLP."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        features = torso_features(obs, self.torso, self.activation)
        action = action.reshape(*features.shape[:-1], -1).astype(features.dtype)
        x = MLP(self.hidden_sizes, self.activation)(jnp.concatenate([features, action], axis=-1))
        return dense(1, 1.0)(x)[..., 0]


class DiscreteQCritic(Network):
    """`obs [..., *obs_shape] -> Q(obs, .) [..., num_actions]`, one output per action."""

    num_actions: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array, action: Array | None = None) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        return dense(self.num_actions, 1.0)(x)


class QEnsemble(Network):
    """`num_critics` independent Q critics evaluated in one pass (`nn.vmap` over parameters).

    Returns `[num_critics, ...]` (`[num_critics, ..., num_actions]` with `num_actions`).
    Continuous critics take `(obs, action)`; discrete ones (`num_actions` set) take `obs`.
    Each member has its own initialisation (split parameter keys).
    """

    num_critics: int = 2
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    num_actions: int | None = None
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array, action: Array | None = None) -> Array:
        ensemble = nn.vmap(
            QCritic if self.num_actions is None else DiscreteQCritic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        if self.num_actions is None:
            return ensemble(self.hidden_sizes, self.activation, self.torso)(obs, action)
        return ensemble(self.num_actions, self.hidden_sizes, self.activation, self.torso)(obs)


class DeterministicActor(Network):
    """`obs -> low + (tanh(f(obs)) + 1) (high - low) / 2`, a deterministic action in the Box.

    `low` and `high` are tuples (hashable module attributes) of the flat action size.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        squashed = nn.tanh(dense(len(self.low), 0.01)(x))
        low = jnp.broadcast_to(jnp.asarray(self.low, jnp.float32), squashed.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, jnp.float32), squashed.shape)
        return low + 0.5 * (squashed + 1.0) * (high - low)
