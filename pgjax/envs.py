"""Batched environments. The only module in pgjax that imports gymnax.

A `VecEnv` holds `num_envs` copies of one gymnax environment and steps them together
with `vmap`. gymnax >= 1.0 auto-resets inside `step` and reports `terminated`,
`truncated` and `info["final_observation"]` separately; we keep all three.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.types import Array, EpisodeStats, PRNGKey, RunningStats, TimeStep


def _gymnax():
    # Imported lazily so that `import pgjax` stays light for notebooks that only use kernels.
    import gymnax

    return gymnax


def list_env_ids() -> list[str]:
    """All environment ids gymnax knows (built-ins and anything registered at run time)."""
    return list(_gymnax().registered_envs)


def check_env_id(env_id: str) -> None:
    """Raise a ValueError naming the closest valid ids when `env_id` is unknown."""
    valid = list_env_ids()
    if env_id in valid:
        return
    close = difflib.get_close_matches(env_id, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"env_id={env_id!r} is not a gymnax environment.{hint} Valid ids: {', '.join(valid)}."
    )


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """What the policy must produce: `num_actions` categories, or a Box of `shape`."""

    discrete: bool
    num_actions: int  # categories for Discrete, flat size for Box
    shape: tuple[int, ...]
    low: Any = None  # Box bounds as numpy arrays (None for Discrete)
    high: Any = None


@dataclasses.dataclass(frozen=True, eq=False)
class VecEnv:
    """`num_envs` copies of a gymnax environment stepped together (static, hashable)."""

    env: Any
    params: Any
    num_envs: int
    env_id: str

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.env.observation_space(self.params).shape)

    @functools.cached_property
    def action_spec(self) -> ActionSpec:
        # Eager even when first asked inside `jit`: some gymnax spaces (Reacher, Swimmer,
        # PointRobot) build their bounds with jnp, which would be tracers there.
        with jax.ensure_compile_time_eval():
            return action_spec(self.env.action_space(self.params))

    @property
    def max_episode_steps(self) -> int:
        return int(self.params.max_steps_in_episode)

    def reset(self, key: PRNGKey) -> tuple[Any, Array]:
        """Reset every copy: returns `(env_state, obs [B, *obs_shape])`."""
        keys = jax.random.split(key, self.num_envs)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        return env_state, obs.astype(jnp.float32)

    def step(self, key: PRNGKey, env_state: Any, action: Array) -> tuple[Any, TimeStep]:
        """Step every copy with auto-reset; returns `(env_state, TimeStep)`."""
        keys = jax.random.split(key, self.num_envs)
        obs, env_state, reward, terminated, truncated, info = jax.vmap(
            self.env.step, in_axes=(0, 0, 0, None)
        )(keys, env_state, action, self.params)
        timestep = TimeStep(
            obs=obs.astype(jnp.float32),
            reward=reward.astype(jnp.float32),
            terminated=terminated.astype(bool),
            # A step that terminates is a real end even if the clock also ran out.
            truncated=jnp.logical_and(truncated, jnp.logical_not(terminated)),
            next_obs=info["final_observation"].astype(jnp.float32),
        )
        return env_state, timestep


def action_spec(space: Any) -> ActionSpec:
    """What a policy must produce for a gymnax Discrete or Box action space (eager arrays only)."""
    import numpy as np

    spaces = _gymnax().environments.spaces
    if isinstance(space, spaces.Discrete):
        return ActionSpec(discrete=True, num_actions=int(space.n), shape=())
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return ActionSpec(False, int(np.prod(shape)), shape, low, high)
    raise ValueError(f"action space {space!r} is not supported: {SUPPORTED_SPACES['action']}")


# --- what pgjax can train on -----------------------------------------------------------------

SUPPORTED_SPACES = {
    "observation": "a Box of any shape (flattened for the MLP, [H, W] or [H, W, C] for the CNN) or a Discrete index",
    "action": "Discrete (categorical policy) or Box (Gaussian or deterministic policy)",
}

# Environments whose constructor downloads data: gymnax fetches MNIST into /tmp/mnist when
# MNISTBandit-bsuite is made. pgjax never starts a download; it runs once the files are there.
_DOWNLOADS = {
    "MNISTBandit-bsuite": (
        "the MNIST data set",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "/tmp/mnist",
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ),
}


def check_no_download(env_id: str) -> None:
    """Raise a ValueError if making `env_id` would download data that is not on disk yet."""
    if env_id not in _DOWNLOADS:
        return
    what, url, folder, files = _DOWNLOADS[env_id]
    missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise ValueError(
            f"env_id={env_id!r} needs {what}, which gymnax downloads from the internet when the "
            f"environment is made; pgjax does not download it. Put {', '.join(missing)} "
            f"(from {url}) into {folder}/ first, or choose another environment."
        )


def check_spaces(env_id: str) -> tuple[int, ...]:
    """Raise a ValueError naming `env_id`, the space and what is supported unless pgjax can
    train on the environment's observation and action spaces; return the observation shape."""
    check_no_download(env_id)
    env, params = _gymnax().make(env_id)
    spaces = _gymnax().environments.spaces
    with jax.ensure_compile_time_eval():
        found = {"observation": env.observation_space(params), "action": env.action_space(params)}
    for kind, space in found.items():
        if not isinstance(space, (spaces.Box, spaces.Discrete)):
            raise ValueError(
                f"env_id={env_id!r} has the {kind} space {space!r}, which pgjax cannot train on; "
                f"supported {kind}s: {SUPPORTED_SPACES[kind]}."
            )
    return tuple(found["observation"].shape)


def make_vec_env(env_id: str, num_envs: int, max_episode_steps: int | None = None, **env_kwargs) -> VecEnv:
    """Make `num_envs` copies of the gymnax environment `env_id`.

    `max_episode_steps` replaces the environment's time limit (its episodes are then
    truncated at that many steps).
    """
    check_env_id(env_id)
    check_no_download(env_id)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} must be a positive integer")
    env, params = _gymnax().make(env_id, **env_kwargs)
    if max_episode_steps is not None:
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps={max_episode_steps!r} must be a positive integer")
        params = params.replace(max_steps_in_episode=max_episode_steps)
    return VecEnv(env=env, params=params, num_envs=num_envs, env_id=env_id)


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


# --- actions -----------------------------------------------------------------------------


def _bounds(spec: ActionSpec, shape: tuple[int, ...]) -> tuple[Array, Array]:
    return (jnp.broadcast_to(jnp.asarray(spec.low), shape), jnp.broadcast_to(jnp.asarray(spec.high), shape))


def clip_action(action: Array, spec: ActionSpec) -> Array:
    """Clip a Box action into `[low, high]` (the policy's own sample is kept for log-probs)."""
    low, high = _bounds(spec, action.shape)
    return jnp.clip(action, low, high)


def rescale_action(action: Array, spec: ActionSpec) -> Array:
    """Map an action in `[-1, 1]` affinely onto `[low, high]`."""
    low, high = _bounds(spec, action.shape)
    return low + 0.5 * (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low)
