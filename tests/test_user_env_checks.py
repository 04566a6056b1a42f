"""A user's `Env` (register_env) checked against what it declares, once, when made (issue
34): a wrong `obs_shape`, a `step` returning the wrong number of values, a reward of the
wrong shape, a state that changes shape, `max_episode_steps = 0`... are one line naming
the environment, the attribute and the mismatch, before anything compiles (they ended in
raw flax or lax.scan errors, or trained and then crashed in evaluation)."""

import jax.numpy as jnp
import pytest

import pgjax
from pgjax import envs
from pgjax.envs import ActionSpec


class Good:
    obs_shape = (2,)
    action_spec = ActionSpec.discrete_actions(2)
    max_episode_steps = 8

    def reset(self, key):
        return jnp.int32(0), jnp.zeros((2,), jnp.float32)

    def step(self, key, t, action):
        t = t + 1
        return t, jnp.stack([t, action]).astype(jnp.float32), jnp.float32(1.0), t >= 3


def _variant(**attributes):
    return type("Bad", (Good,), attributes)


BAD = [
    (_variant(obs_shape=(3,)), r"reset\(key\) returns obs of shape \[2\] float32, but obs_shape=\(3,\)"),
    (_variant(obs_shape="2"), r"obs_shape='2' must be a tuple of non-negative integers"),
    (_variant(obs_shape=(2.5,)), r"obs_shape=\(2.5,\) must be a tuple of non-negative integers"),
    (_variant(max_episode_steps=0), r"max_episode_steps=0 must be a positive integer"),
    (_variant(max_episode_steps=2.0), r"max_episode_steps=2.0 must be a positive integer"),
    (_variant(action_spec="discrete"), r"action_spec='discrete' must be a pgjax.envs.ActionSpec"),
    (_variant(action_spec=ActionSpec.discrete_actions(0)), r"action_spec has 0 actions"),
    (_variant(reset=lambda self, key: jnp.zeros((2,))), r"reset\(key\) must return \(state, obs\); it returned "),
    (_variant(step=lambda self, key, t, a: (t, jnp.zeros((2,)), 1.0)),
     r"step\(key, state, action\) must return 4 values \(state, obs, reward, terminated\); it returned 3 values"),
    (_variant(step=lambda self, key, t, a: (t, jnp.zeros((2,)), 1.0, False, False, {})),
     r"must return 4 values .* it returned 6 values"),
    (_variant(step=lambda self, key, t, a: (t, jnp.zeros((2,)), jnp.ones((1,)), False)),
     r"step returns reward of shape \[1\] float32; it must be a scalar \(shape \[\]\)"),
    (_variant(step=lambda self, key, t, a: (t, jnp.zeros((2,)), 1.0, jnp.zeros((2,), bool))),
     r"step returns terminated of shape \[2\] bool; it must be a scalar"),
    (_variant(step=lambda self, key, t, a: (t, jnp.zeros((3,)), 1.0, False)),
     r"step returns obs of shape \[3\] float32, but obs_shape=\(2,\)"),
    (_variant(step=lambda self, key, t, a: (jnp.zeros((2,)), jnp.zeros((2,)), 1.0, False)),
     r"step changes a state leaf's shape from \[\] to \[2\]"),
    (_variant(step=lambda self, key, t, a: ((t, t), jnp.zeros((2,)), 1.0, False)),
     r"step returns a state of another structure than reset's"),
    (_variant(step=lambda self, key, t, a: (t, jnp.zeros((2,)) + jnp.zeros((5,)), 1.0, False)),
     r"step\(key, state, action\) failed when traced with an abstract key and action: (TypeError|ValueError): "),
]


@pytest.mark.parametrize("cls, message", BAD, ids=[m[:40] for _, m in BAD])
def test_a_user_env_that_breaks_its_declaration_is_one_line(cls, message):
    env_id = "declared-probe"
    envs.register_env(env_id, cls, overwrite=True)
    try:
        with pytest.raises(ValueError, match=message) as info:
            envs.make_vec_env(env_id, 2)
        line = str(info.value)
        assert line.startswith("env_id='declared-probe' (Bad): ") and "\n" not in line, line
        with pytest.raises(ValueError, match=message):  # the library path a notebook takes
            pgjax.make_trainer(pgjax.load_config("ppo", [f"env_id={env_id}", "num_envs=2", "num_steps=4",
                                                         "total_timesteps=8", "num_minibatches=1"]))
    finally:
        envs.registry._USER_ENVS.pop(env_id, None)


def test_a_good_user_env_still_steps():
    envs.register_env("declared-good", Good, overwrite=True)
    try:
        env = envs.make_vec_env("declared-good", 3)
        import jax

        state, obs = env.reset(jax.random.key(0))
        _, step = env.step(jax.random.key(1), state, jnp.zeros((3,), jnp.int32))
        assert obs.shape == (3, 2) and step.reward.shape == (3,)
    finally:
        envs.registry._USER_ENVS.pop("declared-good", None)


@pytest.mark.parametrize("env_id, message", [
    ("CartPole-v1/", r"env_id='CartPole-v1/' has an empty part .* e.g. 'CartPole-v1'"),
    ("gymnax/CartPole-v1/", r"e.g. 'gymnax/CartPole-v1'"),
    ("brax//ant", r"has an empty part"),
    (" CartPole-v1", r"stray spaces"),
    ("Brax/fast", r"'Brax' is not a suite. Did you mean 'brax/fast'\?"),
    ("minigrid/MiniGrid-Empty-6x6", r"'minigrid' is not a suite. Did you mean 'xminigrid/MiniGrid-Empty-6x6'\?"),
    ("XMiniGrid/MiniGrid-Empty-6x6", r"Did you mean 'xminigrid/MiniGrid-Empty-6x6'\?"),
    ("Gymnax/CartPole-v1", r"Did you mean 'CartPole-v1'\?"),
    ("braxx/ant", r"Did you mean 'brax/ant'\?"),
    ("foo/bar", r"'foo' is not a suite. Suites \(lower case\): gymnax, brax, xminigrid"),
])
def test_env_ids_with_empty_parts_or_unknown_suites_are_refused_with_the_id_meant(env_id, message):
    with pytest.raises(ValueError, match=message) as info:
        envs.check_env_id(env_id)
    assert "\n" not in str(info.value)


def test_brax_import_leaves_out_jaxopts_maintenance_warning():
    """brax imports jaxopt, which warns that it is unmaintained: not the user's to act on, so
    pgjax's brax adapter filters exactly that warning (others still show)."""
    pytest.importorskip("brax")
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('always'); from pgjax.envs import brax_suite; brax_suite._envs(); "
            "warnings.warn('another', DeprecationWarning)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert "JAXopt is no longer maintained" not in result.stderr and "another" in result.stderr, result.stderr
