"""Statistics of the stream of time steps: running episode returns and lengths, and the
running observation moments used for normalisation."""

from __future__ import annotations

import jax.numpy as jnp

from pgjax.types import Array, EpisodeStats, RunningStats, TimeStep

# --- episode statistics -----------------------------------------------------------------


def init_episode_stats(num_envs: int) -> EpisodeStats:
    return EpisodeStats(
        episode_return=jnp.zeros((num_envs,), jnp.float32),
        episode_length=jnp.zeros((num_envs,), jnp.int32),
    )


def update_episode_stats(
    stats: EpisodeStats, timestep: TimeStep
) -> tuple[EpisodeStats, tuple[Array, Array, Array]]:
    """Add one step to each environment's running episode.

    Returns the new running stats and `(done, finished_return, finished_length)` per
    environment; the last two are valid where `done`. Every environment that finishes is
    reported, however many finish in the same step.
    """
    done = jnp.logical_or(timestep.terminated, timestep.truncated)
    episode_return = stats.episode_return + timestep.reward
    episode_length = stats.episode_length + 1
    running = EpisodeStats(
        episode_return=jnp.where(done, 0.0, episode_return),
        episode_length=jnp.where(done, 0, episode_length),
    )
    return running, (done, episode_return, episode_length)


# --- observation normalisation ---------------------------------------------------------


def init_running_stats(shape: tuple[int, ...]) -> RunningStats:
    return RunningStats(
        mean=jnp.zeros(shape, jnp.float32),
        var=jnp.ones(shape, jnp.float32),
        count=jnp.asarray(1e-4, jnp.float32),
    )


def update_running_stats(stats: RunningStats, batch: Array) -> RunningStats:
    """Merge a batch `[N, *shape]` into the running moments (Chan et al., 1979)."""
    batch_mean = jnp.mean(batch, axis=0)
    batch_var = jnp.var(batch, axis=0)
    batch_count = jnp.asarray(batch.shape[0], jnp.float32)
    total = stats.count + batch_count
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * batch_count / total
    m2 = stats.var * stats.count + batch_var * batch_count + delta**2 * stats.count * batch_count / total
    return RunningStats(mean=mean, var=m2 / total, count=total)


def normalize_obs(stats: RunningStats, obs: Array, clip: float = 10.0) -> Array:
    """`clip((obs - mean) / sqrt(var + 1e-8), -clip, clip)`."""
    mean = jnp.broadcast_to(stats.mean, obs.shape)  # explicit: stats are [*obs_shape], obs [..., *obs_shape]
    std = jnp.broadcast_to(jnp.sqrt(stats.var + 1e-8), obs.shape)
    return jnp.clip((obs - mean) / std, -clip, clip)
