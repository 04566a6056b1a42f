"""Truncation is not termination: an A/B test on a task that is only ever truncated.

ConstantRewardEnv pays 1 per step, never terminates and is cut every 20 steps by its time
limit; its observation is constant, so the true value is 1 / (1 - gamma) everywhere.
"""

import jax
import jax.numpy as jnp
import numpy as np

from pgjax import envs
from pgjax.algos.rollout import PolicyStep, reset_env_carry, rollout
from pgjax.kernels import returns

GAMMA = 0.9


def _constant_reward_rollout():
    env = envs.make_vec_env("ConstantReward-probe", 8)
    carry = reset_env_carry(env, jax.random.PRNGKey(0))

    def policy(key, obs):
        action = jnp.zeros(obs.shape[0], jnp.int32)
        return PolicyStep(action, action, jnp.zeros(obs.shape[0]))

    _, traj = rollout(env, policy, carry, jax.random.PRNGKey(1), 64)
    assert bool(traj.truncated.any()) and not bool(traj.terminated.any())
    return traj


@jax.jit
def _fitted_value(traj, terminated, truncated):
    """Fixed point of v <- mean(lambda-return targets bootstrapped with v)."""

    def iterate(_, v):
        values = jnp.full_like(traj.reward, v)
        advantages = returns.gae(traj.reward, values, values, terminated, truncated, GAMMA, 0.95)
        return jnp.mean(advantages + values)

    return jax.lax.fori_loop(0, 300, iterate, jnp.float32(0.0))


def test_value_targets_bootstrap_through_time_limits():
    traj = _constant_reward_rollout()
    correct = float(_fitted_value(traj, traj.terminated, traj.truncated))
    # The same data with the time limit treated as termination, as many peers do.
    wrong = float(_fitted_value(traj, traj.terminated | traj.truncated, jnp.zeros_like(traj.truncated)))
    true_value = 1.0 / (1.0 - GAMMA)
    assert abs(correct - true_value) < 0.01 * true_value
    assert wrong < 0.8 * true_value  # biased low: it thinks the world ends every 20 steps


def test_ppo_critic_learns_the_untruncated_value():
    """End to end: PPO's critic on the constant-reward task approaches 1 / (1 - gamma)."""
    from pgjax.algos import ppo

    config = ppo.PPOConfig(
        env_id="ConstantReward-probe", num_envs=4, num_steps=32, total_timesteps=4 * 32 * 150,
        update_epochs=4, num_minibatches=2, hidden_sizes=(16,), anneal_lr=False,
        hparams=ppo.PPOHParams(gamma=GAMMA, learning_rate=3e-3),
    )
    trainer = ppo.make_trainer(config)
    out = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    value = float(trainer.networks.critic.apply(out.state.params["critic"], jnp.zeros((1, 1)))[0])
    np.testing.assert_allclose(value, 1.0 / (1.0 - GAMMA), rtol=0.05)


def test_time_limit_as_termination_wrapper_changes_only_the_flags():
    from pgjax.envs.time_limit import TimeLimitAsTermination

    env = envs.make_vec_env("ConstantReward-probe", 8)
    wrapped = TimeLimitAsTermination(env)
    assert (wrapped.obs_shape, wrapped.action_spec, wrapped.max_episode_steps) == (
        env.obs_shape, env.action_spec, env.max_episode_steps)

    def policy(key, obs):
        action = jnp.zeros(obs.shape[0], jnp.int32)
        return PolicyStep(action, action, jnp.zeros(obs.shape[0]))

    for run in (lambda f: f(), lambda f: jax.jit(f)()):
        plain = run(lambda: rollout(env, policy, reset_env_carry(env, jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 64)[1])
        as_end = run(lambda: rollout(wrapped, policy, reset_env_carry(wrapped, jax.random.PRNGKey(0)),
                                     jax.random.PRNGKey(1), 64)[1])
        np.testing.assert_array_equal(np.asarray(as_end.terminated), np.asarray(plain.terminated | plain.truncated))
        assert not bool(as_end.truncated.any()) and bool(as_end.terminated.any())
        for name in ("obs", "reward", "next_obs"):
            np.testing.assert_array_equal(np.asarray(getattr(as_end, name)), np.asarray(getattr(plain, name)))


def test_config_time_limit_terminate_learns_the_timed_out_value():
    """`time_limit = "terminate"` trains on the targets of a world that ends at the time
    limit: PPO's critic approaches that biased fixed point, not 1 / (1 - gamma)."""
    from pgjax.algos import ppo
    from pgjax.config import make_env
    from pgjax.envs.time_limit import TimeLimitAsTermination

    config = ppo.PPOConfig(
        env_id="ConstantReward-probe", num_envs=4, num_steps=32, total_timesteps=4 * 32 * 150,
        update_epochs=4, num_minibatches=2, hidden_sizes=(16,), anneal_lr=False, time_limit="terminate",
        hparams=ppo.PPOHParams(gamma=GAMMA, learning_rate=3e-3),
    )
    assert isinstance(make_env(config, 2), TimeLimitAsTermination)
    trainer = ppo.make_trainer(config)
    out = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    value = float(trainer.networks.critic.apply(out.state.params["critic"], jnp.zeros((1, 1)))[0])
    traj = _constant_reward_rollout()
    timed_out = float(_fitted_value(traj, traj.terminated | traj.truncated, jnp.zeros_like(traj.truncated)))
    np.testing.assert_allclose(value, timed_out, rtol=0.05)
    assert value < 0.8 / (1.0 - GAMMA)


def test_an_evaluation_reports_the_time_limit_as_truncation_whatever_the_learner_sees():
    """Was: with `time_limit = "terminate"` every evaluation episode cut by the time limit was
    reported as terminated (`truncated` 0%), so the rows meant to measure the time limit's
    handling could not say how many of their episodes reached it."""
    from pgjax.algos import ppo
    from pgjax.runtime.evaluation import evaluate_states
    from pgjax.runtime.experiment import seed_keys

    episodes = {}
    for time_limit in ("truncate", "terminate"):
        config = ppo.PPOConfig(env_id="ConstantReward-probe", num_envs=4, num_steps=32, hidden_sizes=(16,),
                               time_limit=time_limit)
        trainer = ppo.make_trainer(config)
        state = jax.vmap(trainer.init, in_axes=(0, None))(seed_keys(0, range(2)), config.hparams)
        episodes[time_limit] = evaluate_states(trainer, state, num_episodes=3)
    truncate, terminate = episodes["truncate"], episodes["terminate"]
    assert np.asarray(truncate.truncated).all() and (np.asarray(truncate.lengths) == 20).all()  # cut every 20 steps
    for name in ("returns", "lengths", "truncated"):
        np.testing.assert_array_equal(np.asarray(getattr(terminate, name)), np.asarray(getattr(truncate, name)))


def test_time_limit_setting_is_checked():
    import pytest

    from pgjax.algos import ppo
    from pgjax.config import TIME_LIMITS, ConfigError
    from pgjax.envs.time_limit import TIME_LIMITS as ENV_TIME_LIMITS

    assert TIME_LIMITS == ENV_TIME_LIMITS
    with pytest.raises(ConfigError, match="time_limit"):
        ppo.PPOConfig(time_limit="cut")
