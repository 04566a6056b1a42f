"""The Brax adapter: the only module in pgjax that imports brax.

Ids are `brax/NAME` or `brax/NAME/BACKEND` (`brax/ant`, `brax/hopper/positional`); without
a backend, brax's own default (`generalized`) is used. The raw brax environment is wrapped
here, not with brax's training wrappers: those replace the final observation with the reset
one on auto-reset and fold the time limit into `done` (marking it in
`state.info["truncation"]`). pgjax's `AutoResetVecEnv` instead keeps brax's `done` as
`terminated` (a fall, a pole past its angle: real ends), truncates at `max_episode_steps`
(1000 by default, the `episode_length` of brax's training) and keeps the true final
observation in `TimeStep.next_obs`. Every episode starts from a fresh random reset (brax's
`AutoResetWrapper` reuses each environment's first initial state).

Actions are a Box in [-1, 1] (brax rescales to the actuators' control range).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from pgjax.envs.core import ActionSpec, AutoResetVecEnv, unknown_id_error
from pgjax.envs.kwargs import check_env_kwargs, parameter_defaults, takes_any_keyword
from pgjax.types import Array, PRNGKey

BACKENDS = ("generalized", "positional", "spring", "mjx")
EPISODE_LENGTH = 1000  # brax.training's default episode_length


def _envs():
    import contextlib
    import io
    import warnings

    # brax imports mujoco's MJX, which prints "Failed to import warp" (an optional GPU
    # backend) on stdout, and jaxopt, which warns that it is no longer maintained (brax's
    # dependency, not something a pgjax user can act on); keep both out of pgjax's output.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="JAXopt is no longer maintained", category=DeprecationWarning)
        from brax import envs
    return envs


def env_ids() -> list[str]:
    """Names of the brax environments (`brax.envs.get_environment` accepts each)."""
    return sorted(_envs()._envs)


def _parse(env_id: str, name: str) -> tuple[str, str | None]:
    env_name, _, backend = name.partition("/")
    valid = env_ids()
    if env_name not in valid:
        raise unknown_id_error(env_id, "a brax environment", env_name, valid, prefix="brax/",
                               tail=f" (optionally /BACKEND, one of {', '.join(BACKENDS)}).")
    if backend and backend not in BACKENDS:
        raise ValueError(
            f"env_id={env_id!r} names the brax backend {backend!r}; backends: {', '.join(BACKENDS)} "
            f"(e.g. 'brax/{env_name}/positional')."
        )
    return env_name, backend or None


def check_name(env_id: str, name: str) -> None:
    _parse(env_id, name)


class BraxEnv:
    """A raw brax environment as a pgjax `Env`: brax's `done` is termination, nothing else."""

    def __init__(self, env: Any, max_episode_steps: int = EPISODE_LENGTH):
        self.brax_env = env
        self.obs_shape = (int(env.observation_size),)
        size = int(env.action_size)
        self.action_spec = ActionSpec.box(-1.0, 1.0, (size,))
        self.max_episode_steps = max_episode_steps

    # Brax's own code broadcasts implicitly (e.g. `[3] + [2, 3]` in its spring pipeline): it
    # runs with rank promotion allowed, whatever the caller set (pgjax's tests set "raise").
    def reset(self, key: PRNGKey) -> tuple[Any, Array]:
        with jax.numpy_rank_promotion("allow"):
            state = _strong(self.brax_env.reset(key))
        return state, state.obs

    def step(self, key: PRNGKey, state: Any, action: Array) -> tuple[Any, Array, Array, Array]:
        del key  # brax's dynamics are deterministic
        with jax.numpy_rank_promotion("allow"):
            state = _strong(self.brax_env.step(state, action))
        return state, state.obs, state.reward, state.done > 0.5


def _strong(state: Any) -> Any:
    # Brax steps return Python-float rewards (weakly typed under jit): a state that changes
    # type between reset and step would make every compiled chunk trace twice.
    return state.replace(reward=jnp.asarray(state.reward, jnp.float32), done=jnp.asarray(state.done, jnp.float32))


def _allowed_kwargs(env_id: str, env_name: str, env_kwargs: dict) -> dict:
    """`env_kwargs` checked against the brax environment's constructor (its reward weights,
    noise scales, ...) and, where it passes the rest on, brax's `PipelineEnv` (`n_frames`,
    `debug`); the backend is part of the id."""
    envs = _envs()
    if "backend" in env_kwargs:
        raise ValueError(f"env_kwargs.backend: the brax backend is part of the id, e.g. 'brax/{env_name}/positional' "
                         f"(backends: {', '.join(BACKENDS)}).")
    cls = envs._envs[env_name]
    allowed = parameter_defaults(cls, skip=("backend",))
    if takes_any_keyword(cls):
        allowed = {**parameter_defaults(envs.PipelineEnv, skip=("sys", "backend")), **allowed}
    return check_env_kwargs(env_id, env_kwargs, allowed)


def _make_brax(env_id: str, name: str, **env_kwargs) -> Any:
    env_name, backend = _parse(env_id, name)
    env_kwargs = _allowed_kwargs(env_id, env_name, env_kwargs) if env_kwargs else {}
    if backend is not None:
        env_kwargs = {"backend": backend, **env_kwargs}
    import warnings

    # Loading a brax system warns that brax is not maintained, on every run: like the import's
    # notices above, not something a pgjax user can act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Brax System, piplines and environments", category=UserWarning)
        return _envs().get_environment(env_name, **env_kwargs)


def check_spaces(env_id: str, name: str, **env_kwargs) -> tuple[int, ...]:
    env = _make_brax(env_id, name, **env_kwargs)
    if not isinstance(env.observation_size, int):
        raise ValueError(
            f"env_id={env_id!r} has dictionary observations ({env.observation_size}), which pgjax cannot train "
            "on; supported observations: a flat vector."
        )
    return (int(env.observation_size),)


def make(env_id: str, name: str, num_envs: int, max_episode_steps: int | None = None, **env_kwargs) -> AutoResetVecEnv:
    """`num_envs` copies of the brax environment `name` with pgjax's time limit and reset."""
    env = BraxEnv(_make_brax(env_id, name, **env_kwargs), max_episode_steps or EPISODE_LENGTH)
    return AutoResetVecEnv(env, num_envs, env_id)
