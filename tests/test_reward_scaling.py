"""Reward scaling (`pgjax.kernels.reward_scaling`, config `scale_rewards`): the kernel against SB3's
VecNormalize reward path as a NumPy loop (tests/reference.py), with and without jit, on
batches that mix terminations and truncations; the on-policy algorithms train with that
kernel, keep its statistics in the state and resume bit for bit."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from contract import TINY, leaves_equal

from pgjax.algos import ppo
from pgjax.algos._on_policy import collect_rollout
from pgjax.kernels.reward_scaling import RewardScaling, init_reward_scaling, scale_rewards
from pgjax.types import RunningStats


def _batch(T=40, B=3, seed=0):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(1.0, 3.0, (T, B)).astype(np.float32)
    ends = rng.random((T, B)) < 0.15
    terminated = ends & (rng.random((T, B)) < 0.5)
    truncated = ends & ~terminated
    assert terminated.any() and truncated.any()
    return rewards, terminated, truncated


def _check(scaled, state, expected):
    out, G, mean, var, count = expected
    np.testing.assert_allclose(scaled, out, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(state.returns, G, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose([state.stats.mean, state.stats.var, state.stats.count], [mean, var, count], rtol=2e-5)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_scale_rewards_matches_numpy_loop(jit, masked):
    rewards, terminated, truncated = _batch()
    mask = (np.random.default_rng(1).random(rewards.shape) < 0.7) if masked else None
    fn = jax.jit(scale_rewards, static_argnames=("clip", "eps")) if jit else scale_rewards
    # Continue from a non-trivial state, as the second rollout of a run does.
    start = RewardScaling(jnp.asarray([0.5, -2.0, 7.0]), RunningStats(*(jnp.float32(v) for v in (0.3, 4.0, 17.0))))
    scaled, state = fn(start, rewards, terminated, truncated, 0.97, mask)
    expected = reference.reward_scaling(rewards, terminated, truncated, 0.97, [0.5, -2.0, 7.0], 0.3, 4.0, 17.0, mask)
    _check(scaled, state, expected)


def test_scaled_rewards_are_clipped():
    rewards = np.full((3, 1), 1e4, np.float32)
    no_end = np.zeros((3, 1), bool)
    scaled, state = scale_rewards(init_reward_scaling(1), rewards, no_end, no_end, 0.99)
    expected = reference.reward_scaling(rewards, no_end, no_end, 0.99, [0.0], 0.0, 1.0, 1e-4)
    _check(scaled, state, expected)
    assert np.all(np.asarray(scaled) <= 10.0) and np.asarray(scaled).max() == 10.0


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_either_episode_end_restarts_the_return(end):
    """A time limit ends the episode as a termination does: the next reward starts a new return."""
    rewards = np.array([[1.0], [2.0], [4.0]], np.float32)
    flags = {"terminated": np.zeros((3, 1), bool), "truncated": np.zeros((3, 1), bool)}
    flags[end][1, 0] = True
    _, state = scale_rewards(init_reward_scaling(1), rewards, flags["terminated"], flags["truncated"], 0.5)
    assert float(state.returns[0]) == 4.0  # not 0.5 * (0.5 * 1 + 2) + 4
    _, kept = scale_rewards(init_reward_scaling(1), rewards, np.zeros((3, 1), bool), np.zeros((3, 1), bool), 0.5)
    assert float(kept.returns[0]) == 5.25


def test_chained_rollouts_equal_one_long_rollout():
    rewards, terminated, truncated = _batch(T=30)
    whole, end = scale_rewards(init_reward_scaling(3), rewards, terminated, truncated, 0.9)
    first, middle = scale_rewards(init_reward_scaling(3), rewards[:12], terminated[:12], truncated[:12], 0.9)
    second, end2 = scale_rewards(middle, rewards[12:], terminated[12:], truncated[12:], 0.9)
    assert leaves_equal(whole, np.concatenate([first, second])) and leaves_equal(end, end2)


PPO_SCALED = dataclasses.replace(TINY["ppo"], scale_rewards=True)


def test_ppo_trains_on_the_kernels_scaled_rewards():
    """One PPO update's reward statistics are the kernel applied to the rollout it collected
    (gamma from hparams); off, the state has no leaves for it (older checkpoints still fit).
    That the statistics change what PPO learns: tests/test_checkpoint.py drops them."""
    trainer = ppo.make_trainer(PPO_SCALED)
    hp = dataclasses.replace(PPO_SCALED.hparams, gamma=0.9)
    state = trainer.init(jax.random.PRNGKey(0), hp)
    after, _ = jax.jit(trainer.run, static_argnums=2)(state, hp, 1)
    _, rollout_key, _ = jax.random.split(state.key, 3)  # as ppo.surrogate_update splits it
    _, traj = jax.jit(collect_rollout, static_argnums=(0, 1, 2))(PPO_SCALED, trainer.env, trainer.networks, state,
                                                                 rollout_key)
    _, expected = scale_rewards(init_reward_scaling(PPO_SCALED.num_envs), traj.reward, traj.terminated,
                                traj.truncated, 0.9)
    np.testing.assert_allclose(after.reward_scaling.returns, expected.returns, rtol=1e-6)
    np.testing.assert_allclose(jax.tree.leaves(after.reward_scaling.stats), jax.tree.leaves(expected.stats), rtol=1e-6)
    assert float(after.reward_scaling.stats.count) == pytest.approx(1e-4 + PPO_SCALED.batch_size)
    plain = jax.eval_shape(ppo.make_trainer(TINY["ppo"]).init, jax.random.PRNGKey(0), hp)
    assert plain.reward_scaling is None and len(jax.tree.leaves(plain)) == len(jax.tree.leaves(after)) - 4


ON_POLICY = ["reinforce", "vpg", "a2c", "npg", "trpo", "ppo", "ppo_kl", "ppg", "spo", "vmpo"]


@pytest.mark.parametrize("name", ON_POLICY)
def test_episode_returns_are_logged_in_raw_rewards_with_scaling_on(name):
    """CartPole pays 1 per step, so a logged return equals the logged length exactly; the
    scaled rewards (a few tenths here) would give a smaller return."""
    from pgjax.algos import ALGORITHMS

    config = dataclasses.replace(TINY[name], scale_rewards=True)
    trainer = ALGORITHMS[name].make_trainer(config)
    hp = config.hparams
    _, metrics = jax.jit(trainer.run, static_argnums=2)(trainer.init(jax.random.PRNGKey(0), hp), hp, config.num_updates)
    returns, lengths = np.asarray(metrics["episode_return"]), np.asarray(metrics["episode_length"])
    finished = np.isfinite(returns)
    assert finished.sum() >= 2
    np.testing.assert_allclose(returns[finished], lengths[finished], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ON_POLICY)
def test_every_on_policy_algorithm_scales_and_resumes_bit_for_bit(name, tmp_path):
    """N/2 updates, checkpoint, restore, N/2 updates == N updates, with the statistics moving."""
    from pgjax import config as cfg
    from pgjax.algos import ALGORITHMS
    from pgjax.records.checkpoint import Checkpointer

    config = dataclasses.replace(TINY[name], scale_rewards=True)
    trainer = ALGORITHMS[name].make_trainer(config)
    run = jax.jit(trainer.run, static_argnums=2)
    hp, half = config.hparams, config.num_updates // 2
    start = trainer.init(jax.random.PRNGKey(0), hp)
    middle, _ = run(start, hp, half)
    end, metrics = run(middle, hp, half)
    assert float(middle.reward_scaling.stats.count) > 1.0
    assert not leaves_equal(middle.reward_scaling, end.reward_scaling)
    expected = {"algo": name, "config": cfg.to_dict(config), "num_seeds": 1}
    saver = Checkpointer(tmp_path)
    saver.save(half, middle, {**expected, "seeds": [0]})
    saver.close()
    loader = Checkpointer(tmp_path)
    restored, _ = loader.restore(jax.eval_shape(trainer.init, jax.random.PRNGKey(0), hp), expected)
    loader.close()
    end2, metrics2 = run(restored, hp, half)
    assert leaves_equal(end, end2) and leaves_equal(metrics, metrics2)
