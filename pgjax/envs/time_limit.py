"""How a time limit reaches the learner: as truncation (pgjax's default) or as termination.

pgjax reports an episode cut by its time limit as `truncated`, and every algorithm then
bootstraps from V(next_obs): the time limit is not part of the task (Pardo et al., 2018,
"Time Limits in Reinforcement Learning", section 3). Code written against gymnax 0.0.x
(gymnax-blines, purejaxrl) instead sees one `done` and bootstraps a timed-out step with zero,
as if the episode had ended there. `TimeLimitAsTermination` reproduces that, for ablations
and for matching a published setting (a config's `time_limit = "terminate"`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from pgjax.envs.core import ActionSpec, VecEnv
from pgjax.types import Array, PRNGKey, TimeStep

TIME_LIMITS = ("truncate", "terminate")


class TimeLimitAsTermination(VecEnv):
    """`env` with every truncated step reported as terminated (`terminated | truncated`,
    `truncated` all False): the learner bootstraps a timed-out step with zero. Episodes,
    resets and returns are unchanged."""

    def __init__(self, env: VecEnv):
        self.env = env
        self.num_envs = env.num_envs
        self.env_id = env.env_id

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self.env.obs_shape

    @property
    def action_spec(self) -> ActionSpec:
        return self.env.action_spec

    @property
    def max_episode_steps(self) -> int:
        return self.env.max_episode_steps

    def reset(self, key: PRNGKey) -> tuple[Any, Array]:
        return self.env.reset(key)

    def step(self, key: PRNGKey, env_state: Any, action: Array) -> tuple[Any, TimeStep]:
        env_state, step = self.env.step(key, env_state, action)
        return env_state, step._replace(terminated=step.terminated | step.truncated,
                                        truncated=jnp.zeros_like(step.truncated))


def apply_time_limit(env: VecEnv, time_limit: str) -> VecEnv:
    """`env` as the config's `time_limit` asks: unchanged for "truncate", wrapped in
    `TimeLimitAsTermination` for "terminate"."""
    if time_limit not in TIME_LIMITS:
        raise ValueError(f"time_limit={time_limit!r} must be one of {', '.join(map(repr, TIME_LIMITS))}")
    return TimeLimitAsTermination(env) if time_limit == "terminate" else env
