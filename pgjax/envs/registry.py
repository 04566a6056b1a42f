"""Environment ids and the suites they name.

An id is `SUITE/NAME` (`brax/ant`, `xminigrid/MiniGrid-Empty-6x6`), or a plain gymnax id
(`CartPole-v1`, same as `gymnax/CartPole-v1`). Each suite's package is imported by its
adapter only, lazily; a missing one is a ValueError that names the extra to install.
A user's own environment is added with `register_env`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from pgjax.envs import gymnax_suite
from pgjax.envs.core import AutoResetVecEnv, Env, VecEnv, check_env, unknown_id_error
from pgjax.envs.kwargs import check_env_kwargs, parameter_defaults, takes_any_keyword


class Suite:
    """How ids of one suite are listed, checked and made (an adapter module's entry points)."""

    def __init__(self, name: str, package: str, extra: str | None, adapter: str, doc: str):
        self.name, self.package, self.extra, self.adapter, self.doc = name, package, extra, adapter, doc

    def module(self):
        if importlib.util.find_spec(self.package) is None:
            install = f"pip install 'pgjax[{self.extra}]'" if self.extra else f"pip install {self.package}"
            raise ValueError(
                f"environments of the {self.name!r} suite need the {self.package!r} package, which is not "
                f"installed: {install}"
            )
        return importlib.import_module(self.adapter)


SUITES = {
    "gymnax": Suite("gymnax", "gymnax", None, "pgjax.envs.gymnax_suite", "gymnax (plain ids too)"),
    "brax": Suite("brax", "brax", "brax", "pgjax.envs.brax_suite", "Brax continuous control, brax/NAME[/BACKEND]"),
    "xminigrid": Suite(
        "xminigrid", "xminigrid", "xminigrid", "pgjax.envs.xminigrid_suite", "XLand-MiniGrid, xminigrid/NAME"
    ),
}

# id -> factory returning an `Env` or a gymnax environment (see `register_env`)
_USER_ENVS: dict[str, Callable[..., Any]] = {}


def register_env(env_id: str, make: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Make `env_id` trainable by every algorithm: `make(**env_kwargs)` returns an `Env`
    (`pgjax.envs.Env`: functional reset/step reporting termination, with `obs_shape`,
    `action_spec` and `max_episode_steps`; pgjax adds the time limit and the reset), a
    gymnax `Environment`, or a gymnax `(environment, params)` pair.

    Any id works (`"my/bandit"`), except one that a suite or an earlier registration owns.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise ValueError(f"env_id={env_id!r} must be a non-empty string")
    if not callable(make):
        raise ValueError(f"register_env({env_id!r}, make={make!r}): make must be callable (a class or a function)")
    if env_id.partition("/")[0] in SUITES:
        raise ValueError(f"env_id={env_id!r} starts with a suite's name; pick an id outside {', '.join(SUITES)}")
    if not overwrite and (env_id in _USER_ENVS or env_id in gymnax_suite.env_ids()):
        raise ValueError(f"env_id={env_id!r} is already registered; pick another id or pass overwrite=True")
    _USER_ENVS[env_id] = make


def _suite_of(env_id: str) -> tuple[str, str]:
    """`(suite, name within the suite)`; ids without a known suite prefix are gymnax's."""
    prefix, sep, rest = env_id.partition("/")
    if sep and prefix in SUITES:
        return prefix, rest
    return "gymnax", env_id


def list_env_ids(suite: str = "gymnax") -> list[str]:
    """Ids of `suite` that can be made now (gymnax: built-ins and ones registered at run time),
    plus every id given to `register_env`."""
    if suite not in SUITES:
        raise ValueError(f"suite={suite!r} is unknown; suites: {', '.join(SUITES)}")
    ids = SUITES[suite].module().env_ids()
    if suite != "gymnax":
        ids = [f"{suite}/{name}" for name in ids]
    return ids + [e for e in _USER_ENVS if e not in ids]


# Suite names users reach for that are not pgjax's: the suite they mean.
SUITE_ALIASES = {"minigrid": "xminigrid", "xland": "xminigrid", "xland-minigrid": "xminigrid", "gym": "gymnax"}


def _check_id_form(env_id: str) -> None:
    """An id's parts are non-empty and its prefix names a suite: `brax/ant/` (an empty part),
    `Brax/fast` or `minigrid/...` (no such suite) are one line with the id meant."""
    parts = env_id.split("/")
    if env_id != env_id.strip() or any(not part.strip() for part in parts):
        meant = "/".join(part.strip() for part in parts if part.strip())
        if not meant:  # nothing to suggest from: the id is empty or blank
            raise ValueError(f"env_id={env_id!r} is empty; ids are SUITE/NAME or a gymnax name, e.g. 'CartPole-v1'")
        raise ValueError(f"env_id={env_id!r} has an empty part or stray spaces (a trailing or doubled '/'?); "
                         f"ids are SUITE/NAME or a gymnax name, e.g. {meant!r}")
    prefix, sep, rest = env_id.partition("/")
    if sep and prefix not in SUITES:
        import difflib

        lowered = prefix.lower()
        suite = SUITE_ALIASES.get(lowered) or (lowered if lowered in SUITES else None)
        suite = suite or next(iter(difflib.get_close_matches(lowered, list(SUITES), n=1, cutoff=0.6)), None)
        hint = f" Did you mean {f'{suite}/{rest}' if suite != 'gymnax' else rest!r}?" if suite else ""
        raise ValueError(f"env_id={env_id!r}: {prefix!r} is not a suite.{hint} Suites (lower case): "
                         f"{', '.join(SUITES)}; a gymnax id needs no prefix (CartPole-v1).")


def check_env_id(env_id: str) -> None:
    """Raise a ValueError naming the closest valid ids when `env_id` is unknown, or the extra
    to install when its suite's package is missing."""
    if not isinstance(env_id, str):
        raise ValueError(f"env_id={env_id!r} must be a string such as 'CartPole-v1' or 'brax/ant'")
    if env_id in _USER_ENVS:
        return
    _check_id_form(env_id)
    suite, name = _suite_of(env_id)
    module = SUITES[suite].module()
    if suite == "gymnax":
        valid = list_env_ids()
        if env_id in valid or name in valid:
            return
        others = ", ".join(f"'{s}/...'" for s in SUITES if s != "gymnax")
        raise unknown_id_error(env_id, "a gymnax environment", env_id, valid, tail=f". Other suites: {others}.")
    module.check_name(env_id, name)


def _user_env(env_id: str, num_envs: int, max_episode_steps: int | None, env_kwargs: dict) -> VecEnv:
    make = _USER_ENVS[env_id]
    if env_kwargs and not takes_any_keyword(make):
        env_kwargs = check_env_kwargs(env_id, env_kwargs, parameter_defaults(make))
    made = make(**env_kwargs)
    if isinstance(made, tuple) and len(made) == 2 and gymnax_suite.is_gymnax_env(made[0]):
        env, params = made
    elif gymnax_suite.is_gymnax_env(made):
        env, params = made, made.default_params
    elif isinstance(made, Env):
        check_env(env_id, made)  # traced once per make (jax.eval_shape): cheap, and before any compile
        return AutoResetVecEnv(made, num_envs, env_id, max_episode_steps)
    else:
        raise ValueError(
            f"the factory registered for env_id={env_id!r} returned {type(made).__name__}, which is neither a "
            "pgjax.envs.Env (obs_shape, action_spec, max_episode_steps, reset, step) nor a gymnax Environment"
        )
    params = gymnax_suite.with_time_limit(params, max_episode_steps)
    return gymnax_suite.GymnaxVecEnv(env=env, params=params, num_envs=num_envs, env_id=env_id)


def _check_count(name: str, value: Any, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")


def make_vec_env(env_id: str, num_envs: int, max_episode_steps: int | None = None, **env_kwargs) -> VecEnv:
    """`num_envs` copies of the environment `env_id`, stepped together with automatic reset.

    `max_episode_steps` replaces the environment's time limit (its episodes are then
    truncated at that many steps); `env_kwargs` set the environment's parameters (a config's
    `env_kwargs`): its constructor's keyword arguments or fields of its parameter dataclass,
    checked by the suite's adapter (`pgjax.envs.kwargs`).
    """
    check_env_id(env_id)
    _check_count("num_envs", num_envs)
    _check_count("max_episode_steps", max_episode_steps, allow_none=True)
    if env_id in _USER_ENVS:
        return _user_env(env_id, num_envs, max_episode_steps, env_kwargs)
    suite, name = _suite_of(env_id)
    return SUITES[suite].module().make(env_id, name, num_envs, max_episode_steps, **env_kwargs)


def check_spaces(env_id: str, **env_kwargs) -> tuple[int, ...]:
    """Raise a ValueError naming `env_id`, the space and what is supported unless pgjax can
    train on the environment's observation and action spaces (nothing is downloaded);
    return the observation shape. `env_kwargs` are checked as `make_vec_env` takes them."""
    if env_id in _USER_ENVS:
        env = make_vec_env(env_id, 1, **env_kwargs)
        if isinstance(env, gymnax_suite.GymnaxVecEnv):
            return gymnax_suite.check_gymnax_spaces(env_id, env.env, env.params)
        return env.obs_shape
    suite, name = _suite_of(env_id)
    return SUITES[suite].module().check_spaces(env_id, name, **env_kwargs)
