"""Evaluation against probe environments whose returns are known in closed form.

Scripted-probe (tests/probe_envs.py): at step k (1-based) the observation is `[k - 1]`,
action 1 pays 11 and terminates, action 0 pays 1; the time limit truncates after 5 steps.
A policy choosing 1 with probability `p_t` at observation `[t]` therefore ends at step k by
termination with return `k + 10` with probability `prod_{t<k-1}(1 - p_t) p_{k-1}`, or is
truncated after 5 steps with return 5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algos import ppo
from pgjax.algos.actor_critic import observe
from pgjax.envs import make_vec_env
from pgjax.runtime.evaluation import StateEvaluator, evaluate, evaluate_states, record_episode, run_episodes
from pgjax.runtime.experiment import seed_keys

LIMIT = 5


def scripted_outcomes(p):
    """Closed form for Scripted-probe: `[(return, length, truncated, probability)]`."""
    outcomes, survive = [], 1.0
    for k in range(1, LIMIT + 1):
        outcomes.append((k + 10.0, k, False, survive * p[k - 1]))
        survive *= 1.0 - p[k - 1]
    outcomes.append((float(LIMIT), LIMIT, True, survive))
    return outcomes


def expected_return_and_sd(p):
    outcomes = scripted_outcomes(p)
    mean = sum(r * q for r, _, _, q in outcomes)
    second = sum(r * r * q for r, _, _, q in outcomes)
    return mean, np.sqrt(second - mean**2)


def bernoulli_policy(p):
    """Action 1 with probability `p[t]` at observation `[t]`; greedy takes the likelier action."""
    p = jnp.asarray(p, jnp.float32)

    def stochastic(key, obs):
        prob = p[obs[:, 0].astype(jnp.int32)]
        return jax.random.bernoulli(key, prob, prob.shape).astype(jnp.int32)

    def greedy(key, obs):
        return (p[obs[:, 0].astype(jnp.int32)] > 0.5).astype(jnp.int32)

    return stochastic, greedy


@pytest.mark.parametrize("use_jit", [True, False])
def test_stochastic_returns_match_the_closed_form(use_jit):
    p = [0.3, 0.1, 0.5, 0.2, 0.6]
    episodes = 4000 if use_jit else 200  # the un-jitted loop steps op by op
    env = make_vec_env("Scripted-probe", episodes)
    stochastic, _ = bernoulli_policy(p)
    fn = lambda key: run_episodes(env, stochastic, key)
    if use_jit:
        out = jax.jit(fn)(jax.random.PRNGKey(0))
    else:
        with jax.disable_jit():
            out = fn(jax.random.PRNGKey(0))
    returns, lengths, truncated = (np.asarray(a) for a in out)
    # Every episode is one of the closed-form outcomes, counted once.
    table = {(r, k, tr) for r, k, tr, _ in scripted_outcomes(p)}
    assert {(float(r), int(k), bool(t)) for r, k, t in zip(returns, lengths, truncated)} <= table
    mean, sd = expected_return_and_sd(p)
    assert abs(returns.mean() - mean) < 4 * sd / np.sqrt(episodes)
    survive = np.prod(1 - np.asarray(p))
    assert abs(truncated.mean() - survive) < 4 * np.sqrt(survive * (1 - survive) / episodes)


def test_greedy_returns_are_exact():
    env = make_vec_env("Scripted-probe", 8)
    _, greedy = bernoulli_policy([0.3, 0.1, 0.8, 0.2, 0.6])  # greedy acts 0, 0, then 1
    out = jax.jit(lambda k: run_episodes(env, greedy, k))(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(out.returns, 13.0)  # 1 + 1 + 11, not 13 plus a second episode
    np.testing.assert_array_equal(out.lengths, 3)
    assert not out.truncated.any()
    _, never = bernoulli_policy([0.0] * LIMIT)
    out = jax.jit(lambda k: run_episodes(env, never, k))(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(out.returns, 5.0)
    np.testing.assert_array_equal(out.lengths, 5)
    assert out.truncated.all()


def test_truncation_ends_each_episode_once():
    env = make_vec_env("ConstantReward-probe", 6)  # reward 1 per step, time limit 20
    zero = lambda key, obs: jnp.zeros((obs.shape[0],), jnp.int32)
    returns, lengths = jax.jit(lambda k: evaluate(env, zero, k))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(returns, 20.0)
    np.testing.assert_array_equal(lengths, 20)
    short = make_vec_env("ConstantReward-probe", 6, max_episode_steps=7)
    out = jax.jit(lambda k: run_episodes(short, zero, k))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(out.returns, 7.0)
    assert out.truncated.all()


def test_record_episode_replays_the_evaluated_episode():
    env = make_vec_env("Scripted-probe", 64)
    stochastic, _ = bernoulli_policy([0.3, 0.1, 0.5, 0.2, 0.6])
    key = jax.random.PRNGKey(4)
    out = jax.jit(lambda k: run_episodes(env, stochastic, k))(key)
    for index in (np.argmax(out.lengths < LIMIT), np.argmax(out.truncated)):  # one terminated, one truncated
        rec = jax.jit(lambda k, i=int(index): record_episode(env, stochastic, k, i))(key)
        length = int(rec.length)
        assert length == int(out.lengths[index]) and bool(rec.truncated) == bool(out.truncated[index])
        assert float(rec.rewards.sum()) == float(out.returns[index])
        np.testing.assert_array_equal(rec.rewards[length:], 0.0)  # padding after the end
        # Observations count the steps, [0] ... [length]: the last is the true final
        # observation, not the auto-reset [0] the environment continues from.
        np.testing.assert_array_equal(rec.observations[: length + 1, 0], np.arange(length + 1))


@pytest.fixture(scope="module")
def probe_trainer_and_state():
    """PPO on Scripted-probe, two seeds, with hand-set actor weights so that the two policies
    differ and are far from uniform: logit(1) - logit(0) = a * h(t) + b for hidden unit h."""
    config = ppo.PPOConfig(env_id="Scripted-probe", num_envs=2, num_steps=4, total_timesteps=8,
                           update_epochs=1, num_minibatches=1, hidden_sizes=(4,))
    trainer = ppo.make_trainer(config)
    state = jax.jit(jax.vmap(trainer.init, in_axes=(0, None)))(seed_keys(0, [0, 1]), config.hparams)
    weights = {"params": {
        "MLP_0": {"Dense_0": {"kernel": jnp.zeros((2, 1, 4)).at[:, 0, 0].set(1.0), "bias": jnp.zeros((2, 4))}},
        "Dense_0": {"kernel": jnp.zeros((2, 4, 2)).at[:, 0, 1].set(jnp.array([3.0, -0.5])),
                    "bias": jnp.zeros((2, 2)).at[:, 1].set(jnp.array([-1.0, 1.0]))},
    }}
    assert jax.tree.structure(weights) == jax.tree.structure(state.params["actor"])
    return trainer, state.replace(params={**state.params, "actor": weights})


def _action_one_probs(trainer, state, seed):
    params = jax.tree.map(lambda x: x[seed], state.params)
    obs_stats = jax.tree.map(lambda x: x[seed], state.obs_stats)
    obs = jnp.arange(LIMIT, dtype=jnp.float32)[:, None]
    logits = trainer.networks.actor.apply(params["actor"], observe(trainer.config, obs_stats, obs)).logits
    return np.asarray(jax.nn.softmax(logits, axis=-1)[:, 1], float)


def test_evaluate_states_greedy_and_stochastic_per_seed(probe_trainer_and_state):
    trainer, state = probe_trainer_and_state
    greedy = evaluate_states(trainer, state, num_episodes=4, deterministic=True)
    stochastic = evaluate_states(trainer, state, num_episodes=3000, deterministic=False)
    assert greedy.returns.shape == (2, 4) and stochastic.returns.shape == (2, 3000)
    assert greedy.returns[0, 0] != greedy.returns[1, 0]  # the two seeds' policies differ
    for seed in range(2):
        p = _action_one_probs(trainer, state, seed)
        assert np.abs(p - 0.5).min() > 0.1, p  # no near-ties for the greedy action
        (ret, length, trunc, _), = [o for o in scripted_outcomes((p > 0.5).astype(float)) if o[3] == 1.0]
        np.testing.assert_array_equal(greedy.returns[seed], ret)
        np.testing.assert_array_equal(greedy.lengths[seed], length)
        np.testing.assert_array_equal(greedy.truncated[seed], trunc)
        mean, sd = expected_return_and_sd(p)
        assert abs(float(stochastic.returns[seed].mean()) - mean) < 4 * sd / np.sqrt(3000)


def test_evaluation_seeds_are_shared_across_training_seeds(probe_trainer_and_state):
    trainer, state = probe_trainer_and_state
    same = jax.tree.map(lambda x: jnp.stack([x[0], x[0]]), state)  # two copies of seed 0's policy
    out = evaluate_states(trainer, same, num_episodes=3000, deterministic=False, eval_seed=3)
    np.testing.assert_array_equal(out.returns[0], out.returns[1])  # same episodes, same noise
    other = evaluate_states(trainer, same, num_episodes=3000, deterministic=False, eval_seed=4)
    assert not np.array_equal(out.returns[0], other.returns[0])


def test_a_state_evaluator_owns_one_compilation_and_matches_evaluate_states(probe_trainer_and_state):
    """The compiled program belongs to the evaluator: another evaluation seed or state is
    one more call of it (one trace), and its episodes are `evaluate_states`' bit for bit."""
    trainer, state = probe_trainer_and_state
    traces = []

    def counted_act(*args):
        traces.append(1)  # runs only while tracing
        return trainer.act(*args)

    evaluator = StateEvaluator(trainer._replace(act=counted_act), num_episodes=6, deterministic=False)
    swapped = jax.tree.map(lambda x: x[::-1], state)
    for eval_seed, rows in ((3, state), (4, state), (3, swapped)):
        got = evaluator(rows, eval_seed)
        expected = evaluate_states(trainer, rows, num_episodes=6, eval_seed=eval_seed, deterministic=False)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    assert len(traces) == 1


# --- `pgjax eval` on a run folder with a checkpoint -------------------------------------------


@pytest.fixture(scope="module")
def checkpointed_run(tmp_path_factory, probe_trainer_and_state):
    """A run folder as `pgjax train` leaves it: config.json and a checkpoint of 2 seeds (0 and 3),
    here of the hand-set Scripted-probe policies (cheap to compile, returns known)."""
    from pgjax import config as cfg
    from pgjax.records import checkpoint, runs

    trainer, state = probe_trainer_and_state
    seeds = [0, 3]
    run_dir = tmp_path_factory.mktemp("evalrun") / "ppo-Scripted-probe-test"
    run_dir.mkdir()
    values = cfg.to_dict(trainer.config)
    runs.write_json(run_dir / "config.json", {"algo": "ppo", "config": values, "seeds": seeds, "root_seed": 0})
    saver = checkpoint.Checkpointer(run_dir / "checkpoints")
    saver.save(2, state, {"algo": "ppo", "config": values, "num_seeds": 2, "seeds": seeds, "root_seed": 0})
    saver.close()
    return run_dir, trainer, state


def test_pgjax_eval_writes_per_seed_results_and_a_gif(checkpointed_run, tmp_path, capsys):
    import json

    from PIL import Image

    from pgjax.commands.cli import main

    run_dir, trainer, state = checkpointed_run
    gif = tmp_path / "episode.gif"
    assert main(["eval", str(run_dir), "--episodes", "6", "--stochastic", "--gif", str(gif), "--gif-seed", "3",
                 "--gif-episode", "2"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((run_dir / "eval_stochastic.json").read_text())
    expected = evaluate_states(trainer, state, num_episodes=6, eval_seed=10_000, deterministic=False)
    assert saved["mode"] == "stochastic" and saved["seeds"] == [0, 3] and saved["checkpoint_updates"] == 2
    assert saved["max_episode_steps"] == LIMIT
    for i, seed in enumerate(["0", "3"]):
        np.testing.assert_array_equal(saved["per_seed"][seed]["returns"], np.asarray(expected.returns[i]))
        np.testing.assert_array_equal(saved["per_seed"][seed]["lengths"], np.asarray(expected.lengths[i]))
    means = np.asarray(expected.returns).mean(axis=1)
    assert saved["across_seeds"]["mean"] == pytest.approx(means.mean())
    assert saved["across_seeds"]["n"] == 2
    # The GIF shows seed 3's episode 2: its frames are the start and each step.
    assert Image.open(gif).n_frames == int(expected.lengths[1, 2]) + 1
    assert f"return {float(expected.returns[1, 2]):.2f}" in printed


def test_pgjax_eval_errors_name_the_problem(checkpointed_run, tmp_path, capsys):
    from pgjax.commands.cli import main

    run_dir, _, _ = checkpointed_run
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--help"])
    assert exit_.value.code == 0 and "--stochastic" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "nope")]) == 1
    assert f"run folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 1
    assert "no checkpoint in" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--step", "7"]) == 1
    err = capsys.readouterr().err
    assert "--step 7: no such checkpoint" in err and "(available: 2)" in err
    assert main(["eval", str(run_dir), "--gif", str(tmp_path / "x.gif"), "--gif-seed", "1"]) == 1
    assert "--gif-seed 1 is not a seed of this run (seeds: [0, 3])" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a command-line value: argparse, exit code 2
        main(["eval", str(run_dir), "--episodes", "0"])
    assert exit_.value.code == 2 and "--episodes '0': must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_classic_control_gif_from_observations(tmp_path):
    from PIL import Image

    from pgjax.reports.animation import frame_indices, save_episode_gif

    steps = 30
    obs = np.zeros((steps + 1, 4))
    obs[:, 0] = np.linspace(0.0, 2.5, steps + 1)  # the cart drives off the track
    obs[:, 2] = np.linspace(0.0, 0.3, steps + 1)  # while the pole falls
    path = save_episode_gif("CartPole-v1", obs, np.ones(steps), tmp_path / "cartpole.gif", max_frames=12)
    image = Image.open(path)
    assert image.n_frames == 12 and image.size[0] > 200
    first, last = np.asarray(image.convert("RGB")), None
    image.seek(11)
    last = np.asarray(image.convert("RGB"))
    assert not np.array_equal(first, last)  # the cart and pole moved
    np.testing.assert_array_equal(frame_indices(31, 12)[[0, -1]], [0, 30])
    with pytest.raises(ValueError, match="T \\+ 1 observations for T rewards"):
        save_episode_gif("CartPole-v1", obs, np.ones(steps + 1), tmp_path / "bad.gif")
