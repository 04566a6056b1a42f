"""Flax linen networks: an MLP torso, policy heads that return a distribution, a value critic.

Initialisation follows the PPO implementation study (Andrychowicz et al., 2021; Huang et
al., 2022): orthogonal weights with gain sqrt(2) in the torso, 0.01 on the policy output
(near-uniform initial policy) and 1.0 on the value output.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pgjax.distributions import Categorical, DiagGaussian
from pgjax.types import Array

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "elu": nn.elu, "silu": nn.silu}


def orthogonal(gain: float = 1.0, iterations: int = 60):
    """Orthogonal initialiser without LAPACK: `gain * polar(A)`, `A` Gaussian.

    The polar factor `U V^T` of a Gaussian matrix is Haar-distributed, like the sign-fixed
    QR factor that `flax.linen.initializers.orthogonal` uses (Saxe et al., 2014), and is
    computed here by the Newton-Schulz iteration `X <- 1.5 X - 0.5 X X^T X` from
    `X_0 = A / ||A||_F`. Why not QR: under `vmap` inside `jit` on a 2-core CPU, jaxlib's
    batched LAPACK QR waits on the same thread pool it runs on and can deadlock (seen in
    16-seed runs; gdb shows both pool threads blocked in `QrFactorizationKernel`).
    """

    def init(key, shape, dtype=jnp.float32):
        if len(shape) != 2:
            raise ValueError(f"orthogonal init needs a 2-D kernel, got shape {shape}")
        rows, cols = shape
        tall = (max(rows, cols), min(rows, cols))
        x = jax.random.normal(key, tall, jnp.float32)
        x = x / jnp.linalg.norm(x)

        def newton_schulz(_, x):
            return 1.5 * x - 0.5 * x @ (x.T @ x)

        q = jax.lax.fori_loop(0, iterations, newton_schulz, x)
        q = q if rows >= cols else q.T
        return (gain * q).astype(dtype)

    return init


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(gain), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Fully connected torso: `Dense -> activation` for each hidden size."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = act(_dense(size, np.sqrt(2.0))(x))
        return x


class CategoricalActor(nn.Module):
    """`obs [..., D] -> Categorical(logits [..., num_actions])`."""

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: Array) -> Categorical:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        return Categorical(logits=_dense(self.num_actions, 0.01)(x))


class GaussianActor(nn.Module):
    """`obs -> DiagGaussian(mean, log_std)`.

    With `state_dependent_std=False` the log-std is one free parameter per action dimension
    (PPO/TRPO style); otherwise a second head predicts it, clamped to
    `[log_std_min, log_std_max]` (SAC style).
    """

    action_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    state_dependent_std: bool = False
    init_log_std: float = 0.0
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs: Array) -> DiagGaussian:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        mean = _dense(self.action_dim, 0.01)(x)
        if self.state_dependent_std:
            log_std = _dense(self.action_dim, 0.01)(x) + self.init_log_std
            log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        else:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
            )
            log_std = jnp.broadcast_to(log_std, mean.shape)
        return DiagGaussian(mean=mean, log_std=log_std)


class ValueCritic(nn.Module):
    """`obs [..., D] -> V(obs) [...]`."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        return _dense(1, 1.0)(x)[..., 0]


# --- off-policy heads: Q critics and a deterministic actor -----------------------------------


class QCritic(nn.Module):
    """`(obs [..., D], action [..., A]) -> Q(obs, action) [...]` on the concatenated inputs."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        action = action.reshape(*obs.shape[:-1], -1).astype(obs.dtype)
        x = MLP(self.hidden_sizes, self.activation)(jnp.concatenate([obs, action], axis=-1))
        return _dense(1, 1.0)(x)[..., 0]


class DiscreteQCritic(nn.Module):
    """`obs [..., D] -> Q(obs, .) [..., num_actions]`, one output per action."""

    num_actions: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: Array, action: Array | None = None) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        return _dense(self.num_actions, 1.0)(x)


class QEnsemble(nn.Module):
    """`num_critics` independent Q critics evaluated in one pass (`nn.vmap` over parameters).

    Returns `[num_critics, ...]` (`[num_critics, ..., num_actions]` with `num_actions`).
    Continuous critics take `(obs, action)`; discrete ones (`num_actions` set) take `obs`.
    Each member has its own initialisation (split parameter keys).
    """

    num_critics: int = 2
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    num_actions: int | None = None

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
            return ensemble(self.hidden_sizes, self.activation)(obs, action)
        return ensemble(self.num_actions, self.hidden_sizes, self.activation)(obs)


class DeterministicActor(nn.Module):
    """`obs -> low + (tanh(f(obs)) + 1) (high - low) / 2`, a deterministic action in the Box.

    `low` and `high` are tuples (hashable module attributes) of the flat action size.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        squashed = nn.tanh(_dense(len(self.low), 0.01)(x))
        low = jnp.broadcast_to(jnp.asarray(self.low, jnp.float32), squashed.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, jnp.float32), squashed.shape)
        return low + 0.5 * (squashed + 1.0) * (high - low)
