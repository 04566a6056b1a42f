"""Compiled, vectorised evaluation of a policy: one episode per environment copy."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from pgjax.envs import VecEnv
from pgjax.types import Array, PRNGKey


def evaluate(
    env: VecEnv, act_fn: Callable[[PRNGKey, Array], Array], key: PRNGKey
) -> tuple[Array, Array]:
    """Run the first episode of each of `env.num_envs` copies to its end.

    `act_fn(key, obs [B, ...]) -> env actions`. Returns `(returns [B], lengths [B])`. The
    loop runs for the environment's time limit; rewards after an episode's first end are
    ignored. Pass the same `key` to compare policies on the same start states.
    """
    reset_key, run_key = jax.random.split(key)
    env_state, obs = env.reset(reset_key)

    def step(carry, step_key):
        env_state, obs, total, length, alive = carry
        act_key, env_key = jax.random.split(step_key)
        env_state, timestep = env.step(env_key, env_state, act_fn(act_key, obs))
        total = total + jnp.where(alive, timestep.reward, 0.0)
        length = length + alive.astype(jnp.int32)
        alive = alive & ~(timestep.terminated | timestep.truncated)
        return (env_state, timestep.obs, total, length, alive), None

    zeros = jnp.zeros((env.num_envs,), jnp.float32)
    carry = (env_state, obs, zeros, zeros.astype(jnp.int32), jnp.ones((env.num_envs,), bool))
    (_, _, total, length, _), _ = jax.lax.scan(
        step, carry, jax.random.split(run_key, env.max_episode_steps)
    )
    return total, length
