"""The environment layer's contract: gymnax's six-value step, final observations, episode
statistics, observation normalisation, action handling, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import envs
from pgjax.envs import gymnax_suite


def test_gymnax_step_is_the_six_value_api():
    # gymnax 0.0.9 (still on PyPI) returns five values; pgjax needs >= 1.0.
    import gymnax

    env, params = gymnax.make("CartPole-v1")
    _obs, state = env.reset(jax.random.PRNGKey(0), params)
    out = env.step(jax.random.PRNGKey(1), state, 0, params)
    assert len(out) == 6
    info = out[5]
    assert {"terminated", "truncated", "final_observation"} <= set(info)


def test_unknown_env_id_lists_valid_ids():
    with pytest.raises(ValueError) as err:
        envs.make_vec_env("CartPole-v9", 2)
    message = str(err.value)
    assert "CartPole-v9" in message and "'CartPole-v1'" in message  # suggestion
    assert "Acrobot-v1" in message and "Pendulum-v1" in message  # the full list


def test_bad_num_envs():
    with pytest.raises(ValueError, match="num_envs=0"):
        envs.make_vec_env("CartPole-v1", 0)


def _scripted_run(actions):
    """Step the scripted probe with actions `[T, B]`; return the time steps and episode data."""
    env = envs.make_vec_env("Scripted-probe", actions.shape[1])
    env_state, _obs = env.reset(jax.random.PRNGKey(0))
    stats = envs.init_episode_stats(env.num_envs)
    steps, finished = [], []
    for t in range(actions.shape[0]):
        env_state, ts = env.step(jax.random.PRNGKey(t), env_state, jnp.asarray(actions[t]))
        stats, fin = envs.update_episode_stats(stats, ts)
        steps.append(jax.device_get(ts))
        finished.append(jax.device_get(fin))
    return env, steps, finished


# Per step (rows) and environment (columns): env 0 and env 1 terminate at step 3 (the same step),
# env 2 is truncated at the 5-step limit, env 3 terminates at step 1 then again at step 4.
SCRIPTED_ACTIONS = np.array([
    [0, 0, 0, 1],
    [0, 0, 0, 0],
    [1, 1, 0, 0],
    [0, 0, 0, 1],
    [0, 0, 0, 0],
], np.int32)


def test_final_observation_and_flags_on_a_scripted_episode():
    # env 0 terminates at step 3, env 1 too (same step), env 2 is truncated at the
    # 5-step limit, env 3 terminates at step 1 then again at step 4.
    actions = SCRIPTED_ACTIONS
    _env, steps, _finished = _scripted_run(actions)
    ts2 = steps[2]
    np.testing.assert_array_equal(ts2.terminated, [True, True, False, False])
    np.testing.assert_array_equal(ts2.truncated, [False, False, False, False])
    np.testing.assert_array_equal(ts2.next_obs[:, 0], [3, 3, 3, 2])  # true final observation
    np.testing.assert_array_equal(ts2.obs[:, 0], [0, 0, 3, 2])  # auto-reset where done
    ts4 = steps[4]
    np.testing.assert_array_equal(ts4.truncated, [False, False, True, False])
    np.testing.assert_array_equal(ts4.terminated, [False, False, False, False])
    assert ts4.next_obs[2, 0] == 5 and ts4.obs[2, 0] == 0
    # Rewards are 1 + 10 * action.
    np.testing.assert_array_equal(steps[0].reward, [1, 1, 1, 11])


def test_episode_statistics_when_several_envs_finish_together():
    actions = SCRIPTED_ACTIONS
    _, _, finished = _scripted_run(actions)
    episodes = []  # (step, env, return, length)
    for t, (done, ret, length) in enumerate(finished):
        for b in np.flatnonzero(done):
            episodes.append((t, int(b), float(ret[b]), int(length[b])))
    assert episodes == [
        (0, 3, 11.0, 1),
        (2, 0, 13.0, 3),  # two environments finish in the same step: both counted
        (2, 1, 13.0, 3),
        (3, 3, 13.0, 3),
        (4, 2, 5.0, 5),  # truncated by the time limit
    ]


def test_rollout_episode_metrics_average_every_finished_episode():
    from pgjax.algos.rollout import PolicyStep, finished_episode_metrics, reset_env_carry, rollout

    env = envs.make_vec_env("Scripted-probe", 4)
    stop_time = jnp.asarray([2, 2, 99, 1])  # env b terminates when its clock reads stop_time[b]

    def policy(key, obs):
        action = (obs[:, 0] == stop_time).astype(jnp.int32)
        return PolicyStep(action, action, jnp.zeros(4))

    carry = reset_env_carry(env, jax.random.PRNGKey(0))
    _, traj = jax.jit(rollout, static_argnums=(0, 1, 4))(env, policy, carry, jax.random.PRNGKey(1), 5)
    assert traj.obs.shape == (5, 4, 1) and traj.reward.shape == (5, 4)
    # Episodes: envs 0 and 1 end together at step 2 (13, length 3), env 3 ends at steps 1
    # and 3 (12, length 2 each), env 2 is truncated at step 4 (5, length 5).
    np.testing.assert_array_equal(np.flatnonzero(traj.episode_done[2]), [0, 1])
    m = finished_episode_metrics(traj)
    assert float(m["episodes"]) == 5
    assert float(m["episode_return"]) == pytest.approx((13 + 13 + 12 + 12 + 5) / 5)
    assert float(m["episode_length"]) == pytest.approx((3 + 3 + 2 + 2 + 5) / 5)
    # obs/next_obs agree except where an episode ended
    done = np.asarray(traj.terminated | traj.truncated)
    same = np.asarray(traj.next_obs[:-1] == traj.obs[1:])[..., 0]
    np.testing.assert_array_equal(same, ~done[:-1])


def test_running_stats_match_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(7, 50, 3)).astype(np.float32)
    stats = envs.init_running_stats((3,))
    update = jax.jit(envs.update_running_stats)
    for batch in data:
        stats = update(stats, jnp.asarray(batch))
    flat = data.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(stats.var, flat.var(0), rtol=1e-3)
    normed = envs.normalize_obs(stats, jnp.asarray(flat, jnp.float32))
    np.testing.assert_allclose(np.mean(normed, 0), 0.0, atol=1e-3)
    np.testing.assert_allclose(np.std(normed, 0), 1.0, atol=1e-3)


def test_action_clip_and_rescale_for_box_spaces():
    env = envs.make_vec_env("Pendulum-v1", 3)
    spec = env.action_spec
    assert not spec.discrete and spec.shape == (1,)
    a = jnp.asarray([[-5.0], [0.5], [9.0]])
    np.testing.assert_allclose(envs.clip_action(a, spec), [[-2.0], [0.5], [2.0]])
    np.testing.assert_allclose(envs.rescale_action(jnp.asarray([[-1.0], [0.0], [1.0]]), spec), [[-2.0], [0.0], [2.0]])
    discrete = envs.make_vec_env("CartPole-v1", 2).action_spec
    assert discrete.discrete and discrete.num_actions == 2


def test_batched_reset_and_step_shapes():
    env = envs.make_vec_env("Acrobot-v1", 5)
    state, obs = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == (5, *env.obs_shape) and obs.dtype == jnp.float32
    state, ts = jax.jit(env.step)(jax.random.PRNGKey(1), state, jnp.zeros(5, jnp.int32))
    assert ts.reward.shape == (5,) and ts.terminated.dtype == jnp.bool_
    assert ts.next_obs.shape == obs.shape


# --- spaces: every gymnax environment either runs or says why ---------------------------------


@pytest.mark.parametrize("env_id", ["Reacher-misc", "Swimmer-misc", "PointRobot-misc"])
def test_box_bounds_built_with_jnp_work_inside_jit(env_id):
    # These spaces build their bounds with jnp: converting them with NumPy while tracing failed.
    env = envs.make_vec_env(env_id, 3)

    @jax.jit
    def clipped(action):
        return envs.clip_action(action, env.action_spec)  # first asked for inside jit

    spec = env.action_spec
    action = jnp.full((3, *spec.shape), 5.0)
    np.testing.assert_array_equal(clipped(action), np.broadcast_to(spec.high, (3, *spec.shape)))
    assert isinstance(spec.low, np.ndarray) and spec.low.shape == spec.shape


@pytest.mark.parametrize(
    "env_id, shape", [("Breakout-MinAtar", (10, 10, 4)), ("Catch-bsuite", (10, 5)), ("FrozenLake-misc", ())]
)
def test_observations_of_any_rank_and_dtype_become_float32(env_id, shape):
    # MinAtar's grids are booleans, Catch's ints, FrozenLake's a scalar int index.
    env = envs.make_vec_env(env_id, 2)
    assert env.obs_shape == shape and envs.check_spaces(env_id) == shape
    env_state, obs = env.reset(jax.random.PRNGKey(0))
    _, ts = env.step(jax.random.PRNGKey(1), env_state, jnp.zeros((2,), jnp.int32))
    for x in (obs, ts.obs, ts.next_obs):
        assert x.shape == (2, *shape) and x.dtype == jnp.float32


def test_a_download_is_refused_before_gymnax_is_asked(monkeypatch, tmp_path):
    import gymnax

    def no_make(*args, **kwargs):
        raise AssertionError("gymnax.make called: it would download MNIST")

    monkeypatch.setattr(gymnax, "make", no_make)
    what, url, _, files = gymnax_suite._DOWNLOADS["MNISTBandit-bsuite"]
    monkeypatch.setitem(gymnax_suite._DOWNLOADS, "MNISTBandit-bsuite", (what, url, str(tmp_path), files))
    for check in (envs.check_spaces, lambda e: envs.make_vec_env(e, 2)):
        with pytest.raises(ValueError) as err:
            check("MNISTBandit-bsuite")
        message = str(err.value)
        assert "'MNISTBandit-bsuite'" in message and "download" in message and str(tmp_path) in message


def test_an_unsupported_space_names_the_env_the_space_and_what_is_supported():
    from gymnax.environments import spaces
    from gymnax.registration import register, registered_envs
    from probe_envs import ScriptedEnv

    class DictObsEnv(ScriptedEnv):
        def observation_space(self, params):
            return spaces.Dict({"time": spaces.Box(0.0, 1e6, (1,), jnp.float32)})

    if "DictObs-probe" not in registered_envs:
        register("DictObs-probe", DictObsEnv)
    with pytest.raises(ValueError) as err:
        envs.check_spaces("DictObs-probe")
    message = str(err.value)
    assert "'DictObs-probe'" in message and "observation space" in message and "Dict" in message
    assert "supported observations: a Box of any shape" in message


def test_a_run_that_cannot_start_creates_no_run_folder(tmp_path, capsys):
    from pgjax.commands.cli import main

    # A CNN needs grid or image observations; CartPole's are a vector.
    code = main(["train", "--env", "CartPole-v1", "torso=cnn", "--out", str(tmp_path / "runs"), "--no-progress"])
    assert code == 1 and not (tmp_path / "runs").exists()
    err = capsys.readouterr().err
    assert "torso='cnn' needs grid or image observations" in err and "'CartPole-v1'" in err


def test_gymnax_gets_seaborn_only_when_something_uses_it():
    """gymnax imports seaborn (scipy.stats, pandas: about 2 s) to colour one render; pgjax
    defers it, and the deferred module is the real one on first use (Pong's palette)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys
        from pgjax import envs
        envs.make_vec_env("CartPole-v1", 2)
        seaborn = sys.modules["seaborn"]
        assert type(seaborn).__name__ == "_DeferredModule", type(seaborn)
        assert "scipy.stats" not in sys.modules and "pandas" not in sys.modules
        import seaborn as again  # importing it again does not load it either
        assert again is seaborn and "pandas" not in sys.modules
        palette = seaborn.color_palette("cubehelix", 3)  # as gymnax's Pong render uses it
        assert len(palette) == 3 and "pandas" in sys.modules
        assert type(sys.modules["seaborn"]).__name__ == "module"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0 and done.stdout.split()[-1] == "ok", done.stderr[-2000:]
