"""The gymnax adapter: the only module in pgjax that imports gymnax.

gymnax >= 1.0 auto-resets inside `step` and reports `terminated`, `truncated` and
`info["final_observation"]` separately, so it implements `VecEnv` directly (a `vmap` over
gymnax's own step). Plain ids (`CartPole-v1`) and `gymnax/CartPole-v1` name the same
environment; ids registered with `gymnax.registration.register` work too.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import sys
import types
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.envs.core import ActionSpec, VecEnv
from pgjax.envs.kwargs import check_env_kwargs, parameter_defaults, params_fields
from pgjax.types import Array, PRNGKey, TimeStep

SUPPORTED_SPACES = {
    "observation": "a Box of any shape (flattened for the MLP, [H, W] or [H, W, C] for the CNN) or a Discrete index",
    "action": "Discrete (categorical policy) or Box (Gaussian or deterministic policy)",
}


def _gymnax():
    # Imported lazily so that `import pgjax` stays light for notebooks that only use kernels.
    # gymnax imports seaborn (and with it scipy.stats and pandas) at import, only to colour
    # Pong's render: deferred, every `pgjax` command starts about 2 s sooner.
    _defer_import("seaborn")
    import gymnax

    return gymnax


class _DeferredModule(types.ModuleType):
    """Stands in `sys.modules` for a module not imported yet: the first attribute it does not
    have imports the real module, which then replaces it there (`import x` reads only
    attributes a new module already has, so importing it again does not load it)."""

    def __getattr__(self, attribute: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def _defer_import(name: str) -> None:
    """Put a `_DeferredModule` for `name` in `sys.modules`, unless it is imported already or
    not installed."""
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = _DeferredModule(name)


def env_ids() -> list[str]:
    """All environment ids gymnax knows (built-ins and anything registered at run time)."""
    return list(_gymnax().registered_envs)


@dataclasses.dataclass(frozen=True, eq=False)
class GymnaxVecEnv(VecEnv):
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
        keys = jax.random.split(key, self.num_envs)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        return env_state, obs.astype(jnp.float32)

    def step(self, key: PRNGKey, env_state: Any, action: Array) -> tuple[Any, TimeStep]:
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
    spaces = _gymnax().environments.spaces
    if isinstance(space, spaces.Discrete):
        return ActionSpec.discrete_actions(space.n)
    if isinstance(space, spaces.Box):
        return ActionSpec.box(space.low, space.high, tuple(space.shape))
    raise ValueError(f"action space {space!r} is not supported: {SUPPORTED_SPACES['action']}")


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


def check_spaces(env_id: str, name: str, **env_kwargs) -> tuple[int, ...]:
    """Raise a ValueError naming `env_id`, the space and what is supported unless pgjax can
    train on the gymnax environment `name` (made with `env_kwargs`); return its observation shape."""
    check_no_download(name)
    env, params = _make_with(env_id, name, env_kwargs)
    return check_gymnax_spaces(env_id, env, params)


def _make_with(env_id: str, name: str, env_kwargs: dict) -> tuple[Any, Any]:
    """gymnax's environment `name` and its params with `env_kwargs`: a name of the
    constructor's (MemoryChain's `num_bits`) is passed to it, a field of the params
    dataclass (`memory_length`, `max_steps_in_episode`) replaces the default's value."""
    env, params = _gymnax().make(name)
    if not env_kwargs:
        return env, params
    constructor = parameter_defaults(type(env))
    kwargs = check_env_kwargs(env_id, env_kwargs, {**params_fields(params), **constructor})
    limit = kwargs.get("max_steps_in_episode")
    if limit is not None and not 1 <= limit <= 2**31 - 1:  # 0 left evaluation indexing an empty array
        raise ValueError(f"env_kwargs.max_steps_in_episode={limit!r} for env_id={env_id!r}: the time limit must be "
                         "in [1, 2147483647] steps")
    built = {k: v for k, v in kwargs.items() if k in constructor}
    if built:
        env, params = _gymnax().make(name, **built)
    return env, params.replace(**{k: v for k, v in kwargs.items() if k not in constructor})


def check_gymnax_spaces(env_id: str, env: Any, params: Any) -> tuple[int, ...]:
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


def with_time_limit(params: Any, max_episode_steps: int | None) -> Any:
    """gymnax params whose episodes are truncated after `max_episode_steps` (None: unchanged)."""
    return params if max_episode_steps is None else params.replace(max_steps_in_episode=max_episode_steps)


def make(env_id: str, name: str, num_envs: int, max_episode_steps: int | None = None, **env_kwargs) -> GymnaxVecEnv:
    """`num_envs` copies of the gymnax environment `name` (registered as `env_id`)."""
    check_no_download(name)
    env, params = _make_with(env_id, name, env_kwargs)
    return GymnaxVecEnv(env=env, params=with_time_limit(params, max_episode_steps), num_envs=num_envs, env_id=env_id)


def is_gymnax_env(obj: Any) -> bool:
    """Whether `obj` is a gymnax `Environment` (a user's own, registered through pgjax)."""
    try:
        from gymnax.environments.environment import Environment
    except ImportError:
        return False
    return isinstance(obj, Environment)
