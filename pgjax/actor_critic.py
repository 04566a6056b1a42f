"""The pieces every on-policy algorithm shares: actor and critic networks built for an
environment, their parameters, sampling actions for a rollout, acting for evaluation,
fitting the value function.

Functions take the algorithm's config (an `OnPolicyConfig`) first so algorithms can bind
them with `functools.partial` and stay free of nested closures.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pgjax import returns
from pgjax.envs import VecEnv, clip_action, normalize_obs, update_running_stats
from pgjax.networks import CategoricalActor, GaussianActor, ValueCritic, torso_spec
from pgjax.rollout import PolicyStep
from pgjax.types import Array, PRNGKey, RunningStats, Transition
from pgjax.unrolled_rng import unrolled_key


class ActorCritic(NamedTuple):
    actor: Any  # flax module: obs -> Categorical | DiagGaussian
    critic: Any  # flax module: obs -> V(obs)


def make_actor_critic(config: Any, env: VecEnv) -> ActorCritic:
    """A categorical or Gaussian actor (by the action space) and a value critic, both on the
    torso `torso_spec` picks for the observations."""
    spec, torso = env.action_spec, torso_spec(config, env.obs_shape)
    if spec.discrete:
        actor = CategoricalActor(spec.num_actions, config.hidden_sizes, config.activation, torso=torso)
    else:
        actor = GaussianActor(
            spec.num_actions, config.hidden_sizes, config.activation, init_log_std=config.init_log_std, torso=torso
        )
    return ActorCritic(actor, ValueCritic(config.hidden_sizes, config.activation, torso=torso))


def init_actor_critic(networks: ActorCritic, env: VecEnv, key: PRNGKey) -> dict:
    actor_key, critic_key = jax.random.split(unrolled_key(key))  # same draws, faster compile
    dummy = jnp.zeros((1, *env.obs_shape), jnp.float32)
    return {"actor": networks.actor.init(actor_key, dummy), "critic": networks.critic.init(critic_key, dummy)}


def observe(config: Any, obs_stats: RunningStats, obs: Array) -> Array:
    """What the networks see: raw observations, or normalised ones if `config.normalize_obs`."""
    return normalize_obs(obs_stats, obs) if config.normalize_obs else obs


def to_env_action(env: VecEnv, action: Array) -> Array:
    spec = env.action_spec
    return action if spec.discrete else clip_action(action, spec)


def sample_step(config, env, networks, params, obs_stats, key, obs) -> PolicyStep:
    """Sample `a ~ pi(.|s)` for a rollout, with its log-prob.

    The critic is not called here: algorithms that need `V(s)` for a rollout get it
    afterwards with one batched call over `[T, B]` observations, cheaper than one per step.
    """
    dist = networks.actor.apply(params["actor"], observe(config, obs_stats, obs))
    action = dist.sample(key)
    return PolicyStep(action, to_env_action(env, action), dist.log_prob(action))


def rollout_values(config, networks, params, obs_stats, traj) -> tuple[Array, Array, Array]:
    """`(obs, V(s_t), V(s_{t+1}))` for a rollout `[T, B, ...]` in one batched critic call.

    `obs` is what the networks saw (normalised if `config.normalize_obs`); `V(s_{t+1})` is
    taken at `traj.next_obs`, the true final observation where an episode ended.
    """
    both = observe(config, obs_stats, jnp.stack([traj.obs, traj.next_obs]))
    values, next_values = networks.critic.apply(params["critic"], both)
    return both[0], values, next_values


class GAEBatch(NamedTuple):
    """A rollout flattened to `[T*B, ...]` with GAE advantages, ready for minibatching."""

    obs: Array  # what the networks saw (normalised if normalize_obs)
    action: Array
    log_prob: Array  # log pi_old(action | obs) at collection
    value: Array  # V_old(obs)
    advantage: Array  # GAE(gamma, lambda)
    target: Array  # lambda-returns A + V_old, the value regression target


def gae_batch(config, networks, hparams, params, obs_stats, traj: Transition) -> GAEBatch:
    """GAE (`hparams.gamma`, `hparams.gae_lambda`, rewards times `hparams.reward_scale`) on a
    rollout `[T, B]`, bootstrapping truncations from `V(next_obs)`, flattened to `[T*B]`."""
    obs, values, next_values = rollout_values(config, networks, params, obs_stats, traj)
    advantages = returns.gae(
        traj.reward * hparams.reward_scale, values, next_values,
        traj.terminated, traj.truncated, hparams.gamma, hparams.gae_lambda,
    )
    batch = GAEBatch(obs, traj.action, traj.log_prob, values, advantages, advantages + values)
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), batch)


def update_obs_stats(config, obs_stats: RunningStats, traj: Transition) -> RunningStats:
    """Fold a rollout's raw observations into the running statistics if `config.normalize_obs`.

    Called after the update, so every network call of one iteration saw the same statistics.
    """
    if not config.normalize_obs:
        return obs_stats
    return update_running_stats(obs_stats, traj.obs.reshape(-1, *traj.obs.shape[2:]))


def act(config, env, networks, params, obs_stats, key, obs, deterministic=False) -> Array:
    """Environment actions for evaluation: the mode if deterministic, else a sample."""
    dist = networks.actor.apply(params["actor"], observe(config, obs_stats, obs))
    action = dist.mode() if deterministic else dist.sample(key)
    return to_env_action(env, action)


def fit_value_function(
    critic: Any,
    optimizer: optax.GradientTransformation,
    critic_params: Any,
    opt_state: Any,
    obs: Array,
    targets: Array,
    num_iters: int,
    weights: Array | None = None,
) -> tuple[Any, Any, dict]:
    """Regress `V(obs)` on `targets` with `num_iters` full-batch steps of `optimizer`.

    Minimises `1/2 sum_i w_i (V(s_i) - y_i)^2 / sum_i w_i` (weights mask padded steps;
    default all ones), as the value step of VPG/REINFORCE (Schulman et al., 2016, sec. 5).
    `obs [N, ...]`, `targets [N]`. Returns new params, optimiser state and the loss before
    and after fitting.
    """
    weights = jnp.ones_like(targets) if weights is None else weights
    targets = jax.lax.stop_gradient(targets)

    def loss_fn(p):
        error = critic.apply(p, obs) - targets
        return 0.5 * jnp.sum(weights * error**2) / jnp.maximum(jnp.sum(weights), 1.0)

    def step(carry, _):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    (critic_params, opt_state), losses = jax.lax.scan(step, (critic_params, opt_state), None, length=num_iters)
    return critic_params, opt_state, {"value_loss": losses[0], "value_loss_after": loss_fn(critic_params)}
