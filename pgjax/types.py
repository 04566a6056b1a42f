"""Named containers shared across pgjax. Arrays in per-step containers are time-major."""

from __future__ import annotations

from typing import NamedTuple

import jax

Array = jax.Array
PRNGKey = jax.Array


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
