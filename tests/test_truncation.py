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
