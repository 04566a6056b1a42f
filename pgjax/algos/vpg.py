"""Vanilla policy gradient with a learned baseline and GAE (Spinning Up's VPG).

Each update collects one rollout, estimates advantages with GAE (Schulman et al., 2016),

    A_t = sum_k (gamma lambda)^k delta_{t+k},  delta_t = r_t + gamma (1 - term_t) V(s_{t+1}) - V(s_t),

takes ONE Adam step on the policy surrogate `-mean(log pi(a_t|s_t) A_t) - ent_coef H`
(Williams, 1992; Sutton et al., 2000), then regresses `V` on the lambda-returns `A_t + V(s_t)`
with `value_iters` full-batch steps of its own Adam optimiser (Achiam, 2018, "Spinning Up",
VPG). The whole run is one `jit`; `make_trainer(config).run` cuts it into chunks that
compose bit for bit.
"""

from __future__ import annotations

import functools

import jax
import optax
from flax import struct

from pgjax.algos._on_policy import RolloutState, actor_critic_trainer, collect_rollout, initial_core, rollout_metrics
from pgjax.algos._trainer import train_function
from pgjax.algos.actor_critic import GAEBatch, fit_value_function, gae_batch, scale_rollout_rewards, update_obs_stats
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
    positive,
    reward_scale_field,
)
from pgjax.kernels.losses import approx_kl, entropy_bonus, normalize_advantages, policy_gradient_loss


@hparams_dataclass
class VPGHParams:
    """Traced hyper-parameters: vmap over them to sweep without recompiling."""

    learning_rate: float = field(3e-4, "Adam step size of the single policy step per update", positive())
    value_learning_rate: float = field(1e-3, "Adam step size of the value-function regression", positive())
    gamma: float = discount_field()
    gae_lambda: float = gae_lambda_field(0.97)
    ent_coef: float = entropy_coef_field(0.0)
    max_grad_norm: float = grad_clip_field("policy-gradient global-norm clip (used when clip_grad_norm)")
    reward_scale: float = reward_scale_field("GAE")


@config_dataclass
class VPGConfig(OnPolicyConfig):
    """Static VPG settings (shared on-policy ones in `OnPolicyConfig`): changing one recompiles."""

    value_iters: int = field(80, "full-batch value-regression steps per update", positive())
    normalize_advantages: bool = field(True, "standardise advantages over the rollout")
    clip_grad_norm: bool = field(False, "clip the policy gradient's global norm to hparams.max_grad_norm")
    hparams: VPGHParams = field(VPGHParams(), "traced hyper-parameters")


@struct.dataclass(kw_only=True)
class VPGState(RolloutState):
    """`RolloutState` and the actor's and critic's optimiser states."""

    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState


def make_actor_optimizer(config: VPGConfig, hparams: VPGHParams) -> optax.GradientTransformation:
    adam = optax.adam(hparams.learning_rate)
    if not config.clip_grad_norm:
        return adam
    return optax.chain(optax.clip_by_global_norm(hparams.max_grad_norm), adam)


def make_critic_optimizer(hparams: VPGHParams) -> optax.GradientTransformation:
    return optax.adam(hparams.value_learning_rate)


def _actor_loss(config, networks, hparams, actor_params, batch: GAEBatch):
    dist = networks.actor.apply(actor_params, batch.obs)
    advantages = normalize_advantages(batch.advantage) if config.normalize_advantages else batch.advantage
    pg_loss, pg_metrics = policy_gradient_loss(dist.log_prob(batch.action), advantages)
    entropy, e_metrics = entropy_bonus(dist.entropy())
    loss = pg_loss - hparams.ent_coef * entropy
    return loss, {**pg_metrics, **e_metrics, "loss": loss}


def _policy_step(config, networks, hparams, actor_params, opt_state, batch: GAEBatch):
    """One optimiser step on the policy surrogate; reports the KL it moved the policy by."""
    loss_fn = functools.partial(_actor_loss, config, networks, hparams)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(actor_params, batch)
    updates, opt_state = make_actor_optimizer(config, hparams).update(grads, opt_state, actor_params)
    actor_params = optax.apply_updates(actor_params, updates)
    new_log_probs = networks.actor.apply(actor_params, batch.obs).log_prob(batch.action)
    metrics = {**metrics, "grad_norm": optax.tree.norm(grads), "approx_kl": approx_kl(new_log_probs - batch.log_prob)}
    return actor_params, opt_state, metrics


def _update(config, env, networks, hparams, state: VPGState, _):
    """One VPG iteration: rollout, GAE, one policy step, `value_iters` value steps."""
    key, rollout_key = jax.random.split(state.key)
    env_carry, traj = collect_rollout(config, env, networks, state, rollout_key)
    traj, reward_scaling = scale_rollout_rewards(config, hparams, state.reward_scaling, traj)
    batch = gae_batch(config, networks, hparams, state.params, state.obs_stats, traj, state.env.hidden)

    actor_params, actor_opt_state, policy_metrics = _policy_step(
        config, networks, hparams, state.params["actor"], state.actor_opt_state, batch
    )
    critic_params, critic_opt_state, value_metrics = fit_value_function(
        networks.critic, make_critic_optimizer(hparams), state.params["critic"], state.critic_opt_state,
        batch.obs, batch.target, config.value_iters,
    )
    obs_stats = update_obs_stats(config, state.obs_stats, traj)

    update = state.update + 1
    metrics = {**policy_metrics, **value_metrics, **rollout_metrics(config, update, traj, batch)}
    params = {"actor": actor_params, "critic": critic_params}
    new_state = VPGState(params=params, actor_opt_state=actor_opt_state, critic_opt_state=critic_opt_state,
                         env=env_carry, obs_stats=obs_stats, key=key, update=update, reward_scaling=reward_scaling)
    return new_state, metrics


def _init(config, env, networks, key, hparams) -> VPGState:
    core = initial_core(config, env, networks, key)
    return VPGState.from_core(
        core,
        actor_opt_state=make_actor_optimizer(config, hparams).init(core.params["actor"]),
        critic_opt_state=make_critic_optimizer(hparams).init(core.params["critic"]),
    )


def make_trainer(config: VPGConfig) -> Trainer:
    """Build VPG's functions for `config` (validated here, before anything compiles)."""
    return actor_critic_trainer(config, _init, _update)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
