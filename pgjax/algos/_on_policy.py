"""The skeleton every on-policy algorithm shares (REINFORCE, VPG, A2C, NPG, TRPO, PPO, PPO-KL, SPO).

One update of an on-policy algorithm is: roll out the current policy (`collect_rollout`),
estimate advantages, change the parameters (the algorithm's own part), fold the rollout into
the observation statistics (`actor_critic.update_obs_stats`), and report the algorithm's
metrics with the ones every rollout gives (`rollout_metrics`). Its state starts from
`initial_fields`. Each algorithm file calls these by name, so its `_update` still reads as
the paper's pseudocode; `actor_critic_trainer` turns its `init`/`update` into the `Trainer`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algos._trainer import assemble_trainer
from pgjax.algos.actor_critic import act, init_actor_critic, initial_carry, make_actor_critic, sample_step
from pgjax.algos.contract import Trainer
from pgjax.algos.rollout import EnvCarry, finished_episode_metrics, reset_env_carry, rollout
from pgjax.config import make_env
from pgjax.envs import init_running_stats
from pgjax.kernels.losses import explained_variance
from pgjax.kernels.reward_scaling import init_reward_scaling
from pgjax.types import Array, PRNGKey, Transition


def initial_fields(config, env, networks, key: PRNGKey, reset_env: bool = True) -> dict[str, Any]:
    """The state fields every on-policy algorithm starts with, by name: `params` (actor and
    critic), `env` (a reset `EnvCarry`, with the networks' initial carry; left
    out with `reset_env=False`, for algorithms that reset every update), `obs_stats` (empty),
    `key`, the update counter `update` (0) and `reward_scaling` (zero returns and empty
    moments if `config.scale_rewards`, else None: no leaves, so the state is unchanged).

    `key` is split into `(key, params_key, env_key)`, or `(key, params_key)` without the env.
    """
    if not reset_env:
        key, params_key = jax.random.split(key)
        fields = {}
    else:
        key, params_key, env_key = jax.random.split(key, 3)
        fields = {"env": reset_env_carry(env, env_key, initial_carry(networks, env.num_envs))}
    return {
        "params": init_actor_critic(networks, env, params_key, config.init, config.bias_init_max),
        **fields,
        "obs_stats": init_running_stats(env.obs_shape),
        "key": key,
        "update": jnp.zeros((), jnp.int32),
        "reward_scaling": init_reward_scaling(env.num_envs) if config.scale_rewards else None,
    }


def collect_rollout(config, env, networks, state, key: PRNGKey) -> tuple[EnvCarry, Transition]:
    """`config.num_steps` steps of the current policy (`state.params`, sampled actions) in every
    environment, continuing from `state.env`: the next env carry and the rollout `[T, B]`."""
    policy = functools.partial(sample_step, config, env, networks, state.params, state.obs_stats)
    return rollout(env, policy, state.env, key, config.num_steps)


def rollout_metrics(config, update: Array, traj: Transition, batch) -> dict[str, Array]:
    """What every rollout-and-critic update reports besides its losses: the finished episodes'
    return, length and count, the explained variance of the critic's values `batch.value` for
    the regression targets `batch.target`, and `env_steps` after `update` updates."""
    return {
        **finished_episode_metrics(traj),
        "explained_variance": explained_variance(batch.value, batch.target),
        "env_steps": update * config.batch_size,
    }


def actor_critic_trainer(config, init, update, **env_options) -> Trainer:
    """The on-policy algorithms' `make_trainer`: validate `config` (before anything
    compiles), build its batched environment (`make_env(config, ..., **env_options)`) and
    actor-critic networks, and assemble the `Trainer`."""
    config.validate()
    env = make_env(config, config.num_envs, **env_options)
    networks = make_actor_critic(config, env)
    return assemble_trainer(config, env, networks, init, update, functools.partial(act, config, env, networks))
