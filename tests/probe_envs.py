"""Tiny gymnax environments whose every number is known, for contract and learning tests.

They subclass gymnax's Environment, so they go through the same auto-reset `step` as
every real environment, and can be registered by id for the algorithms' `env_id`.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces
from gymnax.registration import register, registered_envs


@struct.dataclass
class ClockState(environment.EnvState):
    time: int


@struct.dataclass
class ClockParams(environment.EnvParams):
    max_steps_in_episode: int = 5


class ScriptedEnv(environment.Environment):
    """Observation `[time]`; reward `1 + 10 * action`; action 1 terminates the episode.

    With action 0 forever, the time limit (`max_steps_in_episode`) truncates it instead.
    """

    @property
    def default_params(self) -> ClockParams:
        return ClockParams()

    def step_env(self, key, state, action, params):
        state = ClockState(time=state.time + 1)
        reward = 1.0 + 10.0 * action
        terminated = action == 1
        return self.get_obs(state), state, jnp.asarray(reward, jnp.float32), terminated, {}

    def reset_env(self, key, params):
        state = ClockState(time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.asarray([state.time], jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1e6, (1,), jnp.float32)


class ConstantRewardEnv(ScriptedEnv):
    """Reward 1 every step, never terminates: only ever truncated by the time limit.

    The observation is constant, so a correct value estimate is `1 / (1 - gamma)`
    everywhere; one that treats the time limit as termination cannot reach it.
    """

    def step_env(self, key, state, action, params):
        state = ClockState(time=state.time + 1)
        return self.get_obs(state), state, jnp.asarray(1.0, jnp.float32), jnp.asarray(False), {}

    def get_obs(self, state, params=None, key=None):
        return jnp.zeros((1,), jnp.float32)

    @property
    def default_params(self) -> ClockParams:
        return ClockParams(max_steps_in_episode=20)


@struct.dataclass
class BanditParams(environment.EnvParams):
    max_steps_in_episode: int = 1


class TwoArmedBandit(ScriptedEnv):
    """One-step episodes: action 1 pays 1, action 0 pays 0. Any learner must pick 1."""

    @property
    def default_params(self):
        return BanditParams()

    def step_env(self, key, state, action, params):
        state = ClockState(time=state.time + 1)
        return self.get_obs(state), state, jnp.asarray(action, jnp.float32), jnp.asarray(True), {}

    def get_obs(self, state, params=None, key=None):
        return jnp.ones((1,), jnp.float32)


PROBES = {
    "Scripted-probe": ScriptedEnv,
    "ConstantReward-probe": ConstantRewardEnv,
    "TwoArmedBandit-probe": TwoArmedBandit,
}


def register_probes() -> None:
    for env_id, factory in PROBES.items():
        if env_id not in registered_envs:
            register(env_id, factory)
