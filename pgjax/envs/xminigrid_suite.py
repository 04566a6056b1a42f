"""The XLand-MiniGrid adapter: the only module in pgjax that imports xminigrid.

Ids are `xminigrid/NAME` (`xminigrid/MiniGrid-Empty-6x6`, `xminigrid/MiniGrid-DoorKey-5x5`,
`xminigrid/XLand-MiniGrid-R1-9x9`; `xminigrid.registered_environments()` lists them).
xminigrid does not reset by itself; its time step marks a goal reached with `discount = 0`
and the time limit with `discount = 1` at the last step. The adapter reports the first as
`terminated`; `AutoResetVecEnv` adds the time limit (the environment's `max_steps`, also
given to xminigrid so that its reward `1 - 0.9 * t / max_steps` uses the same horizon) and
the reset. Observations are the agent's `[view, view, 2]` integer grid (tile and colour
ids), which `torso = "auto"` gives to the CNN. Actions: 6 discrete moves.

XLand tasks (`XLand-MiniGrid-R*`) run with the single ruleset of their default parameters;
the meta-RL benchmarks of many rulesets (`xminigrid.load_benchmark`) are downloaded from the
internet by xminigrid and are not wired in.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from pgjax.envs.core import ActionSpec, AutoResetVecEnv, unknown_id_error
from pgjax.envs.kwargs import check_env_kwargs, params_fields
from pgjax.types import Array, PRNGKey


def _xminigrid():
    import xminigrid

    return xminigrid


def env_ids() -> list[str]:
    return list(_xminigrid().registered_environments())


def check_name(env_id: str, name: str) -> None:
    valid = env_ids()
    if name not in valid:
        raise unknown_id_error(env_id, "an XLand-MiniGrid environment", name, valid, prefix="xminigrid/")


class XMiniGridEnv:
    """An xminigrid environment as a pgjax `Env`: `terminated` where the goal was reached."""

    def __init__(self, env: Any, params: Any):
        self.xmg_env, self.params = env, params
        self.obs_shape = tuple(int(s) for s in env.observation_shape(params))
        self.action_spec = ActionSpec.discrete_actions(env.num_actions(params))
        self.max_episode_steps = int(params.max_steps)

    def reset(self, key: PRNGKey) -> tuple[Any, Array]:
        timestep = self.xmg_env.reset(self.params, key)
        return timestep, timestep.observation

    def step(self, key: PRNGKey, state: Any, action: Array) -> tuple[Any, Array, Array, Array]:
        del key  # xminigrid's dynamics are deterministic given the reset
        timestep = self.xmg_env.step(self.params, state, action)
        terminated = timestep.last() & (timestep.discount == 0.0)
        return timestep, timestep.observation, jnp.asarray(timestep.reward, jnp.float32), terminated


def _make_env(env_id: str, name: str, max_episode_steps: int | None, **env_kwargs) -> XMiniGridEnv:
    """The xminigrid environment `name`; `env_kwargs` replace fields of its params (`height`,
    `width`, `view_size`, `max_steps`, ...), as `xminigrid.make` does."""
    env, params = _xminigrid().make(name)
    params = params.replace(**check_env_kwargs(env_id, env_kwargs, params_fields(params)))
    if max_episode_steps is not None:
        params = params.replace(max_steps=max_episode_steps)
    return XMiniGridEnv(env, params)


def check_spaces(env_id: str, name: str, **env_kwargs) -> tuple[int, ...]:
    check_name(env_id, name)
    env = _make_env(env_id, name, None, **env_kwargs)
    if len(env.obs_shape) != 3:
        raise ValueError(
            f"env_id={env_id!r} has observations of shape {env.obs_shape}, which pgjax cannot train on; "
            "supported: the [view, view, 2] grid."
        )
    return env.obs_shape


def make(env_id: str, name: str, num_envs: int, max_episode_steps: int | None = None, **env_kwargs) -> AutoResetVecEnv:
    """`num_envs` copies of the xminigrid environment `name`, with pgjax's time limit and reset."""
    check_name(env_id, name)
    return AutoResetVecEnv(_make_env(env_id, name, max_episode_steps, **env_kwargs), num_envs, env_id)
