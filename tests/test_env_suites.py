"""The environment interface through every adapter: the contract gymnax meets in
tests/test_envs.py and tests/test_truncation.py (terminated vs truncated, the final
observation before the reset, two environments finishing in the same step, episode
statistics, value targets through time limits) for a user's `Env` registered with
`pgjax.register_env`, Brax and XLand-MiniGrid; ids, missing extras, registration errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from suite_probes import BRAX_CONSTANT, BRAX_SCRIPTED, register_brax_probes, register_scripted, require

import pgjax
from pgjax import envs

# Per step (rows) and environment (columns), as in tests/test_envs.py: envs 0 and 1
# terminate at step 2 (the same step), env 2 is truncated at the 5-step limit, env 3
# terminates at step 0 then again at step 3.
SCRIPTED_ACTIONS = np.array([[0, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], np.int32)


def _run(env, actions):
    """Step `env` with `actions [T, B, ...]`: per step the time step and `(done, return, length)`."""
    env_state, _ = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    stats = envs.init_episode_stats(env.num_envs)
    steps, finished = [], []
    for t in range(len(actions)):
        env_state, ts = step(jax.random.PRNGKey(t), env_state, jnp.asarray(actions[t]))
        stats, fin = envs.update_episode_stats(stats, ts)
        steps.append(jax.device_get(ts))
        finished.append(jax.device_get(fin))
    return steps, finished


def _episodes(finished):
    return [(t, int(b), round(float(ret[b]), 4), int(length[b]))
            for t, (done, ret, length) in enumerate(finished) for b in np.flatnonzero(done)]


def _check_scripted(steps, finished):
    """The numbers gymnax's scripted probe gives (tests/test_envs.py), step by step."""
    ts2 = steps[2]
    np.testing.assert_array_equal(ts2.terminated, [True, True, False, False])
    np.testing.assert_array_equal(ts2.truncated, [False, False, False, False])
    np.testing.assert_array_equal(ts2.next_obs[:, 0], [3, 3, 3, 2])  # the true final observation
    np.testing.assert_array_equal(ts2.obs[:, 0], [0, 0, 3, 2])  # reset where done
    ts4 = steps[4]
    np.testing.assert_array_equal(ts4.truncated, [False, False, True, False])
    np.testing.assert_array_equal(ts4.terminated, [False, False, False, False])
    assert ts4.next_obs[2, 0] == 5 and ts4.obs[2, 0] == 0
    np.testing.assert_array_equal(steps[0].reward, [1, 1, 1, 11])
    for ts in steps:
        assert ts.obs.dtype == np.float32 and ts.reward.dtype == np.float32 and ts.terminated.dtype == np.bool_
        assert not np.any(ts.terminated & ts.truncated)
    assert _episodes(finished) == [(0, 3, 11.0, 1), (2, 0, 13.0, 3), (2, 1, 13.0, 3), (3, 3, 13.0, 3), (4, 2, 5.0, 5)]


# --- the interface itself: a user's Env, registered from Python --------------------------------


def test_a_registered_env_meets_the_contract():
    env = envs.make_vec_env(register_scripted(), 4)
    assert isinstance(env, envs.AutoResetVecEnv) and env.max_episode_steps == 5 and env.obs_shape == (1,)
    _check_scripted(*_run(env, SCRIPTED_ACTIONS))


@pytest.mark.slow  # a PPO compile; the default run covers a registered Env by the contract test above
def test_the_readme_example_registers_and_trains():
    # The README's "Your own environment" example, as written there.
    import jax.numpy as jnp

    import pgjax
    from pgjax.algos import ppo
    from pgjax.envs import ActionSpec

    class Corridor:
        """Walk right (action 1) from 0 to 4 in a corridor; reward -0.1 per step, +1 at the end."""

        obs_shape = (1,)
        action_spec = ActionSpec.discrete_actions(2)
        max_episode_steps = 20

        def reset(self, key):
            return jnp.int32(0), jnp.zeros((1,))

        def step(self, key, pos, action):
            pos = jnp.clip(pos + 2 * action - 1, 0, 4)
            at_goal = pos == 4
            return pos, jnp.asarray([pos], jnp.float32), jnp.where(at_goal, 1.0, -0.1), at_goal

    pgjax.register_env("corridor", Corridor, overwrite=True)
    config = pgjax.load_config("ppo", ["env_id=corridor", "num_envs=4", "num_steps=16", "total_timesteps=4096",
                                       "hidden_sizes=[16]"])
    trainer = ppo.make_trainer(config)
    out = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    # 4 steps is the shortest episode (return 0.7); a random walk rarely reaches the end in 20.
    assert float(out.metrics["episode_return"][-1]) > 0.6


def test_registration_errors_and_missing_extras(monkeypatch):
    with pytest.raises(ValueError, match="already registered"):
        envs.register_env("CartPole-v1", lambda: None)
    with pytest.raises(ValueError, match="starts with a suite's name"):
        envs.register_env("brax/mine", lambda: None)
    with pytest.raises(ValueError, match="must be callable"):
        envs.register_env("my-env", 3)
    envs.register_env("not-an-env", lambda: object(), overwrite=True)
    with pytest.raises(ValueError, match="neither a pgjax.envs.Env"):
        envs.make_vec_env("not-an-env", 2)
    # A suite whose package is missing names the extra to install, from the config loader too.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "brax" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'pgjax\[brax\]'"):
        envs.make_vec_env("brax/ant", 2)
    with pytest.raises(pgjax.config.ConfigError, match=r"pip install 'pgjax\[brax\]'"):
        pgjax.load_config("ppo", ["env_id=brax/ant"])


def test_suite_ids_and_run_folder_names(tmp_path):
    require("brax")
    with pytest.raises(ValueError, match="Did you mean 'brax/ant'"):
        envs.check_env_id("brax/antt")
    with pytest.raises(ValueError, match="backends: generalized, positional, spring"):
        envs.check_env_id("brax/ant/euler")
    with pytest.raises(ValueError, match="Other suites: 'brax/...'"):
        envs.check_env_id("Ant-v9")
    assert "brax/hopper" in envs.list_env_ids("brax")
    assert pgjax.records.runs.new_run_dir(tmp_path, "ppo-brax/ant").parent == tmp_path  # one folder, not brax/


# --- Brax ----------------------------------------------------------------------------------


def test_brax_adapter_meets_the_contract():
    register_brax_probes()
    env = envs.make_vec_env(f"brax/{BRAX_SCRIPTED}", 4, max_episode_steps=5)
    assert env.action_spec.shape == (1,) and not env.action_spec.discrete
    np.testing.assert_array_equal(env.action_spec.low, [-1.0])
    _check_scripted(*_run(env, np.where(SCRIPTED_ACTIONS[..., None] == 1, 1.0, -1.0).astype(np.float32)))


def _constant_reward_rollout(env_id):
    from pgjax.algos.rollout import PolicyStep, reset_env_carry, rollout

    env = envs.make_vec_env(env_id, 8)
    carry = reset_env_carry(env, jax.random.PRNGKey(0))

    def policy(key, obs):
        action = jnp.zeros((obs.shape[0], *env.action_spec.shape), jnp.float32)
        return PolicyStep(action, action, jnp.zeros(obs.shape[0]))

    _, traj = rollout(env, policy, carry, jax.random.PRNGKey(1), 64)
    return traj


def test_brax_time_limits_are_truncations_and_ppo_bootstraps_through_them():
    """The truncation probe (tests/test_truncation.py) on a brax environment: reward 1 per
    step, never terminating, cut every 20 steps; PPO's critic must reach 1 / (1 - gamma)."""
    from pgjax.algos import ppo

    register_brax_probes()
    traj = _constant_reward_rollout(BRAX_CONSTANT)
    assert int(traj.truncated.sum()) == 8 * 3 and not bool(traj.terminated.any())  # steps 20, 40, 60
    gamma = 0.9
    config = ppo.PPOConfig(
        env_id=BRAX_CONSTANT, num_envs=4, num_steps=32, total_timesteps=4 * 32 * 150, update_epochs=4,
        num_minibatches=2, hidden_sizes=(16,), anneal_lr=False, hparams=ppo.PPOHParams(gamma=gamma, learning_rate=3e-3),
    )
    trainer = ppo.make_trainer(config)
    out = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    value = float(trainer.networks.critic.apply(out.state.params["critic"], jnp.zeros((1, 1)))[0])
    np.testing.assert_allclose(value, 1.0 / (1.0 - gamma), rtol=0.05)


@pytest.mark.slow
def test_brax_truncation_probe_through_an_off_policy_algorithm():
    """TD3's critic on the same task. The observation is constant, so the critic cannot see the
    clock: bootstrapping through time limits gives Q = 1 / (1 - gamma) = 10; treating them as
    terminations gives the fixed point of Q = 1 + gamma (1 - 1/20) Q, 6.9. Measured after
    6,000 steps: 9.49 to 9.73 (still rising), so the bar sits between the two."""
    from pgjax.algos import td3

    register_brax_probes()
    gamma = 0.9
    config = td3.TD3Config(
        env_id=BRAX_CONSTANT, num_envs=4, total_timesteps=6_000, learning_starts=256, batch_size=64,
        hidden_sizes=(16, 16), hparams=td3.TD3HParams(gamma=gamma, tau=0.05),
    )
    trainer = td3.make_trainer(config)
    out = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    q = np.asarray(trainer.networks.critic.apply(out.state.params["critic"], jnp.zeros((5, 1)),
                                                 jnp.linspace(-1, 1, 5)[:, None]))
    wrong = 1.0 / (1.0 - gamma * (1.0 - 1.0 / 20))
    assert np.all(q > 9.0) and np.all(q < 10.5), q
    assert wrong < 7.0


@pytest.mark.slow  # a physics compile: about 30 CPU-seconds here
def test_brax_physics_falls_are_terminations_and_resets_keep_the_final_observation():
    """Real Brax physics (inverted_pendulum, the spring backend, the cheapest to compile):
    full force topples the pole, a termination (every 7 steps here), well inside the 50-step
    limit; where an episode ended the agent acts on a reset observation and `next_obs` keeps
    the fallen one, elsewhere both are the state reached."""
    require("brax")
    name = "brax/inverted_pendulum/spring"
    env = envs.make_vec_env(name, 4, max_episode_steps=50)
    assert env.obs_shape == envs.check_spaces(name)
    env_state, _ = env.reset(jax.random.PRNGKey(0))
    push = jnp.ones((4, *env.action_spec.shape))
    run = jax.jit(lambda s, k: jax.lax.scan(lambda s, k: env.step(k, s, push), s, jax.random.split(k, 60)))
    _, ts = run(env_state, jax.random.PRNGKey(1))
    terminated, truncated = np.asarray(ts.terminated), np.asarray(ts.truncated)
    assert np.all(np.isfinite(np.asarray(ts.next_obs)))
    assert terminated.any() and not truncated.any()
    same = np.all(np.asarray(ts.next_obs) == np.asarray(ts.obs), axis=-1)
    np.testing.assert_array_equal(same, ~terminated)


# --- XLand-MiniGrid -----------------------------------------------------------------------


def test_xminigrid_adapter_meets_the_contract():
    """MiniGrid-Empty-5x5 (agent at a fixed start, goal 5 moves away: forward, forward, turn
    right, forward, forward) with a 5-step limit; checked against xminigrid stepped by hand."""
    xminigrid = require("xminigrid")
    goal_path = [0, 0, 1, 0, 0, 1]  # reaches the goal on step 4 (then one step after the reset)
    spin = [1, 1, 1, 1, 1, 1]  # turns in place: the 5-step limit truncates it on step 4
    actions = np.array([goal_path, goal_path, spin, [2] * 6], np.int32).T
    env = envs.make_vec_env("xminigrid/MiniGrid-Empty-5x5", 4, max_episode_steps=5)
    assert env.obs_shape == (7, 7, 2) and env.action_spec.num_actions == 6
    steps, finished = _run(env, actions)
    ts4 = steps[4]
    np.testing.assert_array_equal(ts4.terminated, [True, True, False, False])  # two finish together
    np.testing.assert_array_equal(ts4.truncated, [False, False, True, True])
    reward = 1.0 - 0.9 * 5 / 5  # xminigrid's success reward at step 5 of a 5-step limit
    np.testing.assert_allclose(ts4.reward, [reward, reward, 0.0, 0.0], rtol=1e-6)
    assert not any(np.any(ts.terminated | ts.truncated) for t, ts in enumerate(steps) if t != 4)
    assert _episodes(finished) == [(4, b, round(r, 4), 5) for b, r in enumerate([reward, reward, 0.0, 0.0])]
    # Independent reference: xminigrid itself, stepped without any reset.
    raw, params = xminigrid.make("MiniGrid-Empty-5x5")
    params = params.replace(max_steps=5)
    first = raw.reset(params, jax.random.PRNGKey(0))
    for b in (0, 2):
        timestep = first
        for t in range(5):
            timestep = raw.step(params, timestep, actions[t, b])
        np.testing.assert_array_equal(ts4.next_obs[b], np.asarray(timestep.observation, np.float32))
        np.testing.assert_array_equal(ts4.obs[b], np.asarray(first.observation, np.float32))  # the reset view
        assert not np.array_equal(ts4.next_obs[b], ts4.obs[b])


# --- every continuous-action algorithm on Brax, from the command line; learning ------------

CONTINUOUS = ["ppo", "trpo", "npg", "ppo_kl", "vmpo", "a2c", "vpg", "reinforce", "ddpg", "td3", "sac"]


def _tiny_overrides(algo):
    """The contract's tiny config for `algo` (tests/contract.py) as KEY=VALUE overrides."""
    import dataclasses
    import json

    from contract import TINY

    config = TINY[algo]
    defaults = type(config)()
    return [f"{f.name}={json.dumps(list(v) if isinstance(v, tuple) else v)}"
            for f in dataclasses.fields(config) if f.name not in ("env_id", "hparams")
            and (v := getattr(config, f.name)) != getattr(defaults, f.name)]


@pytest.mark.slow
@pytest.mark.parametrize("algo", CONTINUOUS)
def test_every_continuous_algorithm_trains_on_brax_from_the_cli(algo, tmp_path):
    import json

    from pgjax.commands.cli import main

    require("brax")
    code = main(["train", "--algo", algo, "--env", "brax/fast", *_tiny_overrides(algo), "--seeds", "1",
                 "--eval-episodes", "2", "--chunks", "2", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith(f"{algo}-brax-fast-")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert np.isfinite(summary["eval_return_mean"]["0"]) and summary["diverged_at_update"]["0"] is None


FAST_MAX_RETURN = sum(0.0002 * k * (k + 1) for k in range(1, 1001))  # push every step: 66,866.8


@pytest.mark.slow
def test_ppo_learns_brax_fast():
    """configs/ppo_fast_brax.toml, 2 vmapped seeds, 204,800 steps (about 13 episodes per
    environment): the median over seeds of the mean greedy evaluation return (8 episodes)
    reaches 90% of the best possible return (push every step); the untrained policy (sampled
    actions) pushes about half the time. Calibrated: both seeds 66,867 (the maximum), greedy
    and sampled; 25 CPU-seconds. With one episode per environment (65,536 steps) the greedy
    policy stayed still at the start state it had not seen since its first updates."""
    from pgjax.runtime.experiment import evaluate_seeds, seed_keys

    require("brax")
    config = pgjax.load_config("configs/ppo_fast_brax.toml")
    trainer = pgjax.runtime.loading.algorithm_of(config).make_trainer(config)
    untrained = jax.vmap(trainer.init, in_axes=(0, None))(seed_keys(0, range(2)), config.hparams)
    before, _ = evaluate_seeds(trainer, untrained, num_episodes=8)
    out = jax.jit(jax.vmap(trainer.train))(seed_keys(0, range(2)))
    after, _ = evaluate_seeds(trainer, out.state, num_episodes=8, deterministic=True)
    assert np.median(np.mean(np.asarray(before), axis=1)) < 0.7 * FAST_MAX_RETURN
    assert np.median(np.mean(np.asarray(after), axis=1)) >= 0.9 * FAST_MAX_RETURN


def test_a_rollout_resets_an_environment_that_keeps_a_key_in_its_state():
    """xminigrid keeps a PRNG key in its state; a rollout draws through `pgjax.kernels.unrolled_rng`
    keys. The adapter hands every `Env` raw key words, so reset and carried states have one
    key type and the automatic reset can pick between them (it crashed before, in any
    training run on xminigrid). 12 steps of a 5-step limit: resets at steps 5 and 10."""
    from pgjax.algos.rollout import PolicyStep, reset_env_carry, rollout

    require("xminigrid")
    env = envs.make_vec_env("xminigrid/MiniGrid-Empty-5x5", 2, max_episode_steps=5)
    carry = reset_env_carry(env, jax.random.PRNGKey(0))

    def turn_in_place(key, obs):
        action = jnp.ones((obs.shape[0],), jnp.int32)
        return PolicyStep(action, action, jnp.zeros(obs.shape[0]))

    _, traj = jax.jit(lambda c, k: rollout(env, turn_in_place, c, k, 12))(carry, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(traj.truncated[:, 0])), [4, 9])
    assert not bool(traj.terminated.any())


@pytest.mark.slow
def test_ppo_learns_xminigrid_empty_with_the_cnn_torso():
    """configs/ppo_empty5x5_xminigrid.toml, 2 vmapped seeds, 32,768 steps: the greedy policy
    of every seed reaches the goal by the shortest path (evaluation return >= 0.9 of 8
    episodes; the optimum from the start is 0.955), where the untrained one (sampled) gets
    about 0.24. Calibrated: 0.955 for both seeds, 84 CPU-seconds on a loaded 2-core machine."""
    from pgjax.runtime.experiment import evaluate_seeds, seed_keys

    require("xminigrid")
    config = pgjax.load_config("configs/ppo_empty5x5_xminigrid.toml")
    trainer = pgjax.runtime.loading.algorithm_of(config).make_trainer(config)
    assert trainer.networks.actor.torso.kind == "cnn"  # [7, 7, 2] grids: torso = "auto" picks the CNN
    untrained = jax.vmap(trainer.init, in_axes=(0, None))(seed_keys(0, range(2)), config.hparams)
    before, _ = evaluate_seeds(trainer, untrained, num_episodes=8)
    out = jax.jit(jax.vmap(trainer.train))(seed_keys(0, range(2)))
    after, _ = evaluate_seeds(trainer, out.state, num_episodes=8, deterministic=True)
    assert np.mean(np.asarray(before)) < 0.5
    assert np.all(np.mean(np.asarray(after), axis=1) >= 0.9)
