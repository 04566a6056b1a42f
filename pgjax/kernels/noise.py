"""Exploration noise for deterministic policies, as pure functions; the state is a pytree.

- Gaussian: independent `sigma * N(0, 1)` each step (Fujimoto et al., 2018, TD3).
- Ornstein-Uhlenbeck (Uhlenbeck & Ornstein, 1930; used by DDPG, Lillicrap et al., 2016):
  the Euler-Maruyama step `x' = x + theta (mu - x) dt + sigma sqrt(dt) N(0, 1)`, a
  time-correlated AR(1) process. With `a = 1 - theta dt` its stationary variance is
  `sigma^2 dt / (1 - a^2)` (`sigma^2 / (2 theta)` as `dt -> 0`) and its lag-k
  autocorrelation is `a^k`. The state is reset to `mu` where an episode ended, so noise
  does not leak across episodes.

Shapes: noise state `[B, *action_shape]` (one process per environment), `done [B]`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pgjax.types import Array, PRNGKey


def gaussian_noise(key: PRNGKey, shape: tuple[int, ...], sigma: Array) -> Array:
    """`sigma * N(0, I)` of `shape`."""
    return sigma * jax.random.normal(key, shape)


def ou_init(shape: tuple[int, ...], mu: float = 0.0) -> Array:
    """The OU state at the start of every episode: `mu` everywhere."""
    return jnp.full(shape, mu, jnp.float32)


def ou_step(key: PRNGKey, x: Array, theta: Array, sigma: Array, dt: Array = 1.0, mu: Array = 0.0) -> Array:
    """One OU step: `x + theta (mu - x) dt + sigma sqrt(dt) N(0, I)`; the new state is the noise."""
    return x + theta * (mu - x) * dt + sigma * jnp.sqrt(dt) * jax.random.normal(key, x.shape)


def ou_reset(x: Array, done: Array, mu: float = 0.0) -> Array:
    """Set the process of every environment whose episode ended (`done [B]`) back to `mu`."""
    done = jnp.reshape(done, done.shape + (1,) * (x.ndim - done.ndim))
    return jnp.where(jnp.broadcast_to(done, x.shape), jnp.asarray(mu, x.dtype), x)

