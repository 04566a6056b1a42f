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
