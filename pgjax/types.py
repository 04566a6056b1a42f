"""Named containers shared across pgjax. Arrays in per-step containers are time-major."""

from typing import Any, NamedTuple

import jax

Array = jax.Array
PRNGKey = jax.Array
Params = Any  # a flax parameter pytree


class TimeStep(NamedTuple):
    """What a batched environment step returns, one row per environment.

    `obs` is the observation the agent acts on next (already reset where an episode ended);
    `next_obs` is the true observation reached by this step, which differs from `obs`
    exactly where `terminated | truncated`. Bootstrapping after a time limit uses it.
    """

    obs: Array  # [B, *obs_shape]
    reward: Array  # [B]
    terminated: Array  # [B] bool, a true terminal state: bootstrap with zero
    truncated: Array  # [B] bool, cut by a time limit: bootstrap with V(next_obs)
    next_obs: Array  # [B, *obs_shape]


class EpisodeStats(NamedTuple):
    """Running return and length of the episode each environment is in."""

    episode_return: Array  # [B] float32
    episode_length: Array  # [B] int32


class Transition(NamedTuple):
    """One step of a rollout; a rollout stacks them to `[T, B, ...]`."""

    obs: Array
    action: Array
    reward: Array
    terminated: Array
    truncated: Array
    next_obs: Array
    log_prob: Array
    # Statistics of episodes that finished at this step (valid where `episode_done`).
    episode_done: Array
    episode_return: Array
    episode_length: Array


class RunningStats(NamedTuple):
    """Running mean and variance of observations (parallel Welford/Chan merge)."""

    mean: Array
    var: Array
    count: Array  # float32 scalar


class TrainOutput(NamedTuple):
    """What `train(key, hparams)` returns: the final state and per-update metrics."""

    state: Any
    metrics: dict  # name -> [num_updates] array (plus leading seed/grid axes under vmap)


class Trainer(NamedTuple):
    """An algorithm's pure functions for one static config (what `make_trainer` returns).

    Every algorithm's state has `params` and `obs_stats`, which `act` takes.
    """

    config: Any
    env: Any  # the VecEnv the run trains on
    networks: Any
    init: Any  # (key, hparams) -> state
    run: Any  # (state, hparams, num_updates: static int) -> (state, metrics [num_updates])
    train: Any  # (key, hparams=None) -> TrainOutput; init + run over the whole budget
    act: Any  # (params, obs_stats, key, obs, deterministic=False) -> environment actions
