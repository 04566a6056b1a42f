"""The skeleton every on-policy algorithm shares (REINFORCE, VPG, A2C, NPG, TRPO, PPO, PPO-KL,
SPO, PPG, V-MPO).

One update of an on-policy algorithm is: roll out the current policy (`collect_rollout`),
estimate advantages, change the parameters (the algorithm's own part), fold the rollout into
the observation statistics (`actor_critic.update_obs_stats`), and report the algorithm's
metrics with the ones every rollout gives (`rollout_metrics`). Its state subclasses
`RolloutState` (or `OnPolicyState`, without environments carried between updates) and starts
as `XState.from_core(initial_core(...), own_field=...)`. Each algorithm file calls these by
name, so its `_update` still reads as the paper's pseudocode; `actor_critic_trainer` turns
its `init`/`update` into the `Trainer`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.algos._trainer import assemble_trainer
from pgjax.algos.actor_critic import act, init_actor_critic, initial_carry, make_actor_critic, sample_step
from pgjax.algos.contract import Trainer
from pgjax.algos.rollout import EnvCarry, finished_episode_metrics, reset_env_carry, rollout
from pgjax.config import make_env
from pgjax.envs import init_running_stats
from pgjax.kernels.losses import explained_variance
from pgjax.kernels.reward_scaling import RewardScaling, init_reward_scaling
from pgjax.types import Array, PRNGKey, RunningStats, Transition


@struct.dataclass(kw_only=True)
class OnPolicyState:
    """The fields every on-policy algorithm's state carries, declared once. An algorithm's
    state subclasses it, or `RolloutState` if its environments run on from one update to the
    next (every one but REINFORCE), with `@struct.dataclass(kw_only=True)`, and adds only its
    own fields (optimiser states, multipliers, buffers). Save the whole state and a run
    resumes bit for bit.

    A pytree whose children are named by field, so checkpoints address leaves by path
    (`.params['actor']...`), not by position; change fields with `state.replace(...)`.
    """

    params: dict  # {"actor": ..., "critic": ...}
    obs_stats: RunningStats
    key: PRNGKey
    update: Array  # int32 scalar: updates done so far
    reward_scaling: RewardScaling | None  # if config.scale_rewards, else None (no leaves)

    @classmethod
    def from_core(cls, core: OnPolicyState, **fields: Any):
        """This algorithm's state: every field of `core` (from `initial_core`) and its own `fields`."""
        shared = {f.name: getattr(core, f.name) for f in dataclasses.fields(core)}
        return cls(**shared, **fields)


@struct.dataclass(kw_only=True)
class RolloutState(OnPolicyState):
    """`OnPolicyState` with the environments, which each rollout continues (`collect_rollout`).

    REINFORCE resets its environments every update and has no `env` field, rather than an
    `env=None`: orbax keeps a `None` field in a checkpoint's tree, so its checkpoints from
    before this class would no longer restore."""

    env: EnvCarry  # the environments' states, observations, episode statistics and the policy's carry


def initial_core(config, env, networks, key: PRNGKey, reset_env: bool = True) -> OnPolicyState:
    """The shared fields at the start of a run: `params` (actor and critic), `obs_stats`
    (empty), `key`, the update counter `update` (0), `reward_scaling` (zero returns and empty
    moments if `config.scale_rewards`, else None) and, with `reset_env` (a `RolloutState`),
    `env`: reset environments with the networks' initial carry.

    `key` is split into `(key, params_key, env_key)`, or `(key, params_key)` without the env.
    """
    if reset_env:
        key, params_key, env_key = jax.random.split(key, 3)
    else:
        key, params_key = jax.random.split(key)
    core = OnPolicyState(
        params=init_actor_critic(networks, env, params_key, config.init, config.bias_init_max),
        obs_stats=init_running_stats(env.obs_shape),
        key=key,
        update=jnp.zeros((), jnp.int32),
        reward_scaling=init_reward_scaling(env.num_envs) if config.scale_rewards else None,
    )
    if not reset_env:
        return core
    return RolloutState.from_core(core, env=reset_env_carry(env, env_key, initial_carry(networks, env.num_envs)))


@struct.dataclass(kw_only=True)
class OneOptimizerState(RolloutState):
    """`RolloutState` and the state of one optimiser over all the parameters (A2C's, PPO's,
    SPO's)."""

    opt_state: optax.OptState


def optimizer_init(make_optimizer: Any):
    """The `init` of an algorithm whose state is a `OneOptimizerState`, the optimiser
    `make_optimizer(config, hparams)`."""

    def init(config, env, networks, key: PRNGKey, hparams) -> OneOptimizerState:
        core = initial_core(config, env, networks, key)
        return OneOptimizerState.from_core(core, opt_state=make_optimizer(config, hparams).init(core.params))

    return init


def collect_rollout(config, env, networks, state: RolloutState, key: PRNGKey) -> tuple[EnvCarry, Transition]:
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
