"""Synchronous advantage actor-critic, A2C (Mnih et al., 2016, the synchronous variant).

Each update rolls out `num_steps` steps in `num_envs` environments and estimates advantages
either with n-step returns that bootstrap at the rollout end (`advantage = "nstep"`, the
paper's estimator, `n = num_steps`),

    A_t = sum_{k=t}^{T-1} gamma^{k-t} r_k + gamma^{T-t} V(s_T) - V(s_t)   (cut at episode ends),

or with GAE (`advantage = "gae"`; lambda = 1 gives the same numbers). One joint gradient
step then follows on

    L = -mean(log pi(a_t|s_t) A_t) + vf_coef 1/2 mean((V(s_t) - (A_t + V_old(s_t)))^2) - ent_coef H,

clipped by global norm, with RMSprop (decay 0.99, eps 1e-5, PyTorch-style as in
stable-baselines3) or Adam. The whole run is one `jit`; `make_trainer(config).run` cuts it
into chunks that compose bit for bit.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import optax

from pgjax.algos._on_policy import (
    OneOptimizerState,
    actor_critic_trainer,
    collect_rollout,
    optimizer_init,
    rollout_metrics,
)
from pgjax.algos._trainer import train_function
from pgjax.algos.actor_critic import flatten_rollout, rollout_values, scale_rollout_rewards, update_obs_stats
from pgjax.algos.contract import Trainer
from pgjax.config import (
    OnPolicyConfig,
    config_dataclass,
    discount_field,
    entropy_coef_field,
    field,
    gae_lambda_field,
    grad_clip_field,
    hparams_dataclass,
    one_of,
    positive,
    reward_scale_field,
    value_coef_field,
)
from pgjax.kernels import returns
from pgjax.kernels.losses import entropy_bonus, normalize_advantages, policy_gradient_loss, value_loss
from pgjax.types import Array, PRNGKey, Transition

RMSPROP_DECAY = 0.99  # stable-baselines3's A2C defaults (alpha, eps of torch RMSprop)
RMSPROP_EPS = 1e-5


@hparams_dataclass
class A2CHParams:
    """Traced hyper-parameters: vmap over them to sweep without recompiling."""

    learning_rate: float = field(7e-4, "optimiser step size (linearly annealed to 0 if anneal_lr)", positive())
    gamma: float = discount_field()
    gae_lambda: float = gae_lambda_field(1.0, "GAE lambda (used when advantage = 'gae')")
    ent_coef: float = entropy_coef_field(0.0)
    vf_coef: float = value_coef_field()
    max_grad_norm: float = grad_clip_field()
    reward_scale: float = reward_scale_field("the returns")


@config_dataclass
class A2CConfig(OnPolicyConfig):
    """Static A2C settings (shared on-policy ones in `OnPolicyConfig`): changing one recompiles."""

    num_envs: int = field(16, "environments stepped in parallel", positive())
    num_steps: int = field(5, "steps per environment per rollout (the n of the n-step return)", positive())
    advantage: str = field("nstep", "advantages from n-step returns to the rollout end, or GAE", one_of("nstep", "gae"))
    optimizer: str = field("rmsprop", "optimiser of the joint loss", one_of("rmsprop", "adam"))
    anneal_lr: bool = field(False, "anneal the learning rate linearly to 0 over the run")
    normalize_advantages: bool = field(False, "standardise advantages over the rollout")
    hparams: A2CHParams = field(A2CHParams(), "traced hyper-parameters")


A2CState = OneOptimizerState  # the shared fields and the optimiser's state


def make_optimizer(config: A2CConfig, hparams: A2CHParams) -> optax.GradientTransformation:
    learning_rate = hparams.learning_rate
    if config.anneal_lr:
        learning_rate = optax.linear_schedule(hparams.learning_rate, 0.0, config.num_updates)
    if config.optimizer == "rmsprop":
        # eps outside the square root and a zero initial average, as torch.optim.RMSprop.
        step = optax.rmsprop(learning_rate, decay=RMSPROP_DECAY, eps=RMSPROP_EPS, eps_in_sqrt=False)
    else:
        step = optax.adam(learning_rate, eps=1e-5)
    return optax.chain(optax.clip_by_global_norm(hparams.max_grad_norm), step)


def estimate_advantages(config, hparams, traj: Transition, values: Array, next_values: Array) -> Array:
    """A2C's advantages `[T, B]`: n-step returns minus `V(s_t)`, or GAE (by `config.advantage`).

    `values[t] = V(s_t)`, `next_values[t] = V(s_{t+1})` of the true next (final) observation.
    """
    rewards = traj.reward * hparams.reward_scale
    if config.advantage == "gae":
        return returns.gae(
            rewards, values, next_values, traj.terminated, traj.truncated, hparams.gamma, hparams.gae_lambda
        )
    targets = returns.n_step_returns(
        rewards, next_values, traj.terminated, traj.truncated, hparams.gamma, config.num_steps
    )
    return targets - values


class Batch(NamedTuple):
    """One rollout ready for the loss, time-major `[T, B, ...]` (flattened for the update)."""

    obs: Array  # what the networks see (normalised if normalize_obs)
    action: Array
    value: Array  # V(s_t) under the parameters that collected the rollout
    advantage: Array
    target: Array  # A + V: n-step returns (or lambda-returns)


def collect(config, env, networks, hparams, state: A2CState, key: PRNGKey):
    """Roll out the current policy for `num_steps`: the new env carry, the rollout (rewards scaled
    if `config.scale_rewards`), its `Batch` and the new reward-scaling state."""
    env_carry, traj = collect_rollout(config, env, networks, state, key)
    traj, reward_scaling = scale_rollout_rewards(config, hparams, state.reward_scaling, traj)
    obs, values, next_values = rollout_values(config, networks, state.params, state.obs_stats, traj, state.env.hidden)
    advantages = estimate_advantages(config, hparams, traj, values, next_values)
    return env_carry, traj, Batch(obs, traj.action, values, advantages, advantages + values), reward_scaling


def _loss(config, networks, hparams, params, batch: Batch):
    dist = networks.actor.apply(params["actor"], batch.obs)
    advantages = normalize_advantages(batch.advantage) if config.normalize_advantages else batch.advantage
    pg_loss, pg_metrics = policy_gradient_loss(dist.log_prob(batch.action), advantages)
    v_loss, v_metrics = value_loss(networks.critic.apply(params["critic"], batch.obs), batch.target)
    entropy, e_metrics = entropy_bonus(dist.entropy())
    loss = pg_loss + hparams.vf_coef * v_loss - hparams.ent_coef * entropy
    return loss, {**pg_metrics, **v_metrics, **e_metrics, "loss": loss}


def _update(config, env, networks, hparams, state: A2CState, _):
    """One A2C iteration: rollout, advantages, one joint gradient step."""
    key, rollout_key = jax.random.split(state.key)
    env_carry, traj, batch, reward_scaling = collect(config, env, networks, hparams, state, rollout_key)
    batch = flatten_rollout(networks, batch)

    loss_fn = functools.partial(_loss, config, networks, hparams)
    grads, losses = jax.grad(loss_fn, has_aux=True)(state.params, batch)
    updates, opt_state = make_optimizer(config, hparams).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    obs_stats = update_obs_stats(config, state.obs_stats, traj)

    update = state.update + 1
    metrics = {
        **losses,
        "grad_norm": optax.tree.norm(grads),
        "actor_grad_norm": optax.tree.norm(grads["actor"]),
        "critic_grad_norm": optax.tree.norm(grads["critic"]),
        **rollout_metrics(config, update, traj, batch),
    }
    return state.replace(params=params, opt_state=opt_state, env=env_carry, obs_stats=obs_stats, key=key,
                         update=update, reward_scaling=reward_scaling), metrics


def make_trainer(config: A2CConfig) -> Trainer:
    """Build A2C's functions for `config` (validated here, before anything compiles)."""
    return actor_critic_trainer(config, optimizer_init(make_optimizer), _update)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
