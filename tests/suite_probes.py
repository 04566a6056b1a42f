"""Probe environments written to each adapter's native API, whose every number is known.

The same scripted task as `probe_envs.ScriptedEnv` (observation `[time]`, reward
`1 + 10 * action`, action 1 terminates), once as a pgjax `Env` (registered with
`pgjax.register_env`) and once as a brax environment (registered with brax's own
`register_environment`, made through `brax/...` ids), plus a brax constant-reward task for
the truncation probe. Importing this module needs no suite package; the brax ones are built
on first use.
"""

from __future__ import annotations

import importlib
import os

import jax.numpy as jnp
import pytest

from pgjax import envs


def require(package: str):
    """Import a suite's package; skip without it, except in CI, whose setup installs every extra."""
    if os.environ.get("CI"):
        return importlib.import_module(package)
    return pytest.importorskip(package, reason=f"needs the {package} extra (scripts/setup.sh installs it)")


class ScriptedEnv:
    """pgjax `Env`: observation `[time]`, reward `1 + 10 * action`, action 1 terminates."""

    obs_shape = (1,)
    action_spec = envs.ActionSpec.discrete_actions(2)
    max_episode_steps = 5

    def reset(self, key):
        return jnp.int32(0), jnp.zeros((1,), jnp.float32)

    def step(self, key, time, action):
        time = time + 1
        return time, jnp.asarray([time], jnp.float32), 1.0 + 10.0 * action, action == 1


def register_scripted() -> str:
    env_id = "Scripted-interface-probe"
    if env_id not in envs.registry._USER_ENVS:
        envs.register_env(env_id, ScriptedEnv)
    return env_id


BRAX_SCRIPTED = "pgjax_scripted"  # brax/pgjax_scripted: a positive action terminates
BRAX_CONSTANT = "brax-constant-probe"  # a brax env with reward 1, constant observation, never terminating


def register_brax_probes() -> None:
    """Register the brax probe environments with brax (once per process)."""
    brax_envs = require("brax.envs")
    from brax.envs.base import Env, State

    class Scripted(Env):
        def reset(self, rng):
            zero = jnp.zeros((), jnp.float32)
            return State(pipeline_state=None, obs=jnp.zeros((1,), jnp.float32), reward=zero, done=zero)

        def step(self, state, action):
            end = (action[0] > 0).astype(jnp.float32)
            return state.replace(obs=state.obs + 1.0, reward=1.0 + 10.0 * end, done=end)

        observation_size = property(lambda self: 1)
        action_size = property(lambda self: 1)
        backend = property(lambda self: "none")

    class Constant(Scripted):
        def step(self, state, action):
            return state.replace(reward=jnp.ones((), jnp.float32), done=jnp.zeros((), jnp.float32))

    if BRAX_SCRIPTED not in brax_envs._envs:
        brax_envs.register_environment(BRAX_SCRIPTED, Scripted)
    if "brax-constant-probe" not in envs.registry._USER_ENVS:
        # Through the adapter's own wrapper, with a 20-step time limit instead of brax's 1000.
        from pgjax.envs.brax_suite import BraxEnv

        envs.register_env("brax-constant-probe", lambda: BraxEnv(Constant(), max_episode_steps=20))
