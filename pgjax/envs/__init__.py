"""Batched environments behind one interface, whatever suite they come from.

The interface (`pgjax.envs.core`): a `VecEnv` is `num_envs` copies of an environment with
`reset(key) -> (env_state, obs)` and `step(key, env_state, action) -> (env_state,
TimeStep)`, where `TimeStep` holds `obs` (to act on next, reset where an episode ended),
`reward`, `terminated` (a real end), `truncated` (the time limit; never both) and
`next_obs` (the true observation the step reached, before the reset); plus `obs_shape`,
`action_spec` and `max_episode_steps`. Algorithms see nothing else.

Suites (`pgjax.envs.registry`): gymnax (plain ids such as `CartPole-v1`), Brax
(`brax/ant`, extra `pgjax[brax]`), XLand-MiniGrid (`xminigrid/MiniGrid-Empty-6x6`, extra
`pgjax[xminigrid]`), and environments registered with `register_env`. Each suite's package
is imported by its adapter only, when an id of that suite is first used.
"""

from pgjax.envs.actions import clip_action, rescale_action
from pgjax.envs.core import ActionSpec, AutoResetVecEnv, ClockState, Env, VecEnv
from pgjax.envs.gymnax_suite import SUPPORTED_SPACES, GymnaxVecEnv, action_spec, check_no_download
from pgjax.envs.registry import SUITES, check_env_id, check_spaces, list_env_ids, make_vec_env, register_env
from pgjax.envs.stats import (
    init_episode_stats,
    init_running_stats,
    normalize_obs,
    update_episode_stats,
    update_running_stats,
)

__all__ = [
    "SUITES",
    "SUPPORTED_SPACES",
    "ActionSpec",
    "AutoResetVecEnv",
    "ClockState",
    "Env",
    "GymnaxVecEnv",
    "VecEnv",
    "action_spec",
    "check_env_id",
    "check_no_download",
    "check_spaces",
    "clip_action",
    "init_episode_stats",
    "init_running_stats",
    "list_env_ids",
    "make_vec_env",
    "normalize_obs",
    "register_env",
    "rescale_action",
    "update_episode_stats",
    "update_running_stats",
]
