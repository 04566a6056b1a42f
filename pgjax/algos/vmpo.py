"""V-MPO (Song et al., 2019): on-policy maximum a posteriori policy optimisation.

Policy iteration with a learned state-value function instead of a policy gradient. Each
update collects a rollout, estimates advantages `A` with GAE (`gae_lambda = 1` gives the
paper's n-step targets over the rollout) and runs `update_epochs` passes of shuffled
minibatch Adam steps, PPO's loop (`pgjax.algos.ppo.sgd_epoch`), on

    L = L_pi(theta) + L_eta(eta) + L_alpha(theta, alpha) + vf_coef L_V(phi) - ent_coef H

(`pgjax.kernels.vmpo_losses`, eq. 1-5). In each minibatch, the E-step keeps the half of the
samples with the largest advantages and weights them by `psi = softmax(A / eta)`; the
M-step fits the policy to those weights by weighted maximum likelihood (`L_pi`), within a
KL trust region around the rollout's policy `pi_old` held by the Lagrange multiplier
`alpha` (`L_alpha`); the temperature `eta` is its own dual variable (`L_eta`), so the
weights stay within `KL(psi || uniform) <= epsilon_eta`. A Gaussian policy's KL is split
into its mean's and its covariance's parts, each with its own bound and multiplier
(`decoupled_gaussian_kl`); a categorical policy has one.

`eta` and `alpha` are parametrised by their logarithms (as SAC's temperature) and trained
by the same minibatch steps as the networks: one `optax.partition` applies PPO's optimiser
(`ppo.make_optimizer`: global-norm clip, Adam, annealing) to the networks and Adam with
`dual_learning_rate` to the log-multipliers, so the networks' clip and annealing do not
reach them. No importance weights: the multiplier keeps the policy near `pi_old`, on
whose samples it trains.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.algos._on_policy import RolloutState, actor_critic_trainer, collect_rollout, initial_core, rollout_metrics
from pgjax.algos._trainer import train_function
from pgjax.algos.actor_critic import scale_rollout_rewards, update_obs_stats
from pgjax.algos.contract import Trainer
from pgjax.algos.ppo import MinibatchActorCriticHParams, PPOConfig, epoch_metrics, make_optimizer, sgd_epoch
from pgjax.algos.ppo_kl import Batch, trust_region_batch
from pgjax.config import config_dataclass, entropy_coef_field, field, hparams_dataclass, positive
from pgjax.kernels.distributions import DiagGaussian
from pgjax.kernels.losses import entropy_bonus, normalize_advantages, value_loss
from pgjax.kernels.vmpo_losses import (
    decoupled_gaussian_kl,
    kl_multiplier_loss,
    temperature_loss,
    temperature_weights,
    top_half,
    weighted_log_likelihood_loss,
)
from pgjax.types import Array


@hparams_dataclass
class VMPOHParams(MinibatchActorCriticHParams):
    """Traced hyper-parameters: vmap over them (epsilon_eta, epsilon_alpha, ...) without recompiling.

    PPO's, without the ratio clip and with no entropy bonus by default (the paper uses none).
    """

    ent_coef: float = entropy_coef_field(0.0)
    epsilon_eta: float = field(0.1, "temperature bound eps_eta on KL(psi || uniform on the top half)", positive())
    epsilon_alpha: float = field(
        0.01, "trust region eps_alpha on mean KL(pi_old || pi); a Gaussian's bound on the mean's part", positive())
    epsilon_alpha_sigma: float = field(
        1e-4, "Gaussian policies: the bound on the covariance's part of the KL (unused for discrete actions)", positive())
    init_eta: float = field(1.0, "initial temperature eta", positive())
    init_alpha: float = field(1.0, "initial KL multiplier alpha (each of a Gaussian's two)", positive())
    dual_learning_rate: float = field(1e-2, "Adam step size of log eta and log alpha (not annealed, not clipped)",
                                      positive())


@config_dataclass
class VMPOConfig(PPOConfig):
    """Static settings: PPO's (epochs, minibatches, annealing, value clipping) with V-MPO's hparams.

    Each minibatch is the batch whose top half the E-step keeps (`num_minibatches = 1`:
    the whole rollout); `normalize_advantages` standardises it first, which leaves the
    selection unchanged and puts `eta` on the scale of standardised advantages.
    """

    hparams: VMPOHParams = field(VMPOHParams(), "traced hyper-parameters")


class Duals(NamedTuple):
    """The Lagrange multipliers, by their logarithms."""

    log_eta: Array  # float32 scalar: the temperature
    log_alpha: Array  # float32 [K]: the KL multipliers (K = 1 categorical, 2 Gaussian: mean, covariance)


@struct.dataclass(kw_only=True)
class VMPOState(RolloutState):
    """`RolloutState`, the optimiser's state and the dual variables."""

    opt_state: optax.OptState  # the networks' and the duals' (one optax.partition)
    duals: Duals


def _optimizer(config: VMPOConfig, hparams: VMPOHParams) -> optax.GradientTransformation:
    """PPO's optimiser on the networks, plain Adam on the log-multipliers, in one step."""
    return optax.partition(
        {"networks": make_optimizer(config, hparams), "duals": optax.adam(hparams.dual_learning_rate)}, _part_labels
    )


def _part_labels(trainable: dict) -> dict:
    """Every leaf of `{"networks": params, "duals": Duals}` labelled with its part's name."""
    return {
        "networks": jax.tree.map(lambda _: "networks", trainable["networks"]),
        "duals": jax.tree.map(lambda _: "duals", trainable["duals"]),
    }


def _kl_bounds(env, hparams: VMPOHParams) -> Array:
    """`eps_alpha` per constraint: `[eps]` categorical, `[eps_mu, eps_sigma]` Gaussian."""
    if env.action_spec.discrete:
        return jnp.stack([hparams.epsilon_alpha])
    return jnp.stack([hparams.epsilon_alpha, hparams.epsilon_alpha_sigma])


def trust_region_kls(old_dist, dist) -> Array:
    """`KL(pi_old || pi)` per state, one column per constraint: `[..., 1]` for a categorical
    policy, `[..., 2]` (mean's, covariance's: `decoupled_gaussian_kl`) for a Gaussian."""
    if isinstance(old_dist, DiagGaussian):
        return jnp.stack(decoupled_gaussian_kl(old_dist.mean, old_dist.log_std, dist.mean, dist.log_std), axis=-1)
    return old_dist.kl(dist)[..., None]


def _multiplier_metrics(name: str, values: Array) -> dict[str, Array]:
    """`{name: v}` for one constraint, `{name_mu: v_0, name_sigma: v_1}` for a Gaussian's two."""
    if values.shape[-1] == 1:
        return {name: values[..., 0]}
    return {f"{name}_mu": values[..., 0], f"{name}_sigma": values[..., 1]}


def _loss(config, networks, hparams, kl_bounds, trainable, batch: Batch):
    """`L_pi + L_eta + L_alpha + vf_coef L_V - ent_coef H` on one minibatch, its top half selected here."""
    params, duals = trainable["networks"], trainable["duals"]
    eta, alpha = jnp.exp(duals.log_eta), jnp.exp(duals.log_alpha)
    dist = networks.actor.apply(params["actor"], batch.obs)
    advantages = normalize_advantages(batch.advantage) if config.normalize_advantages else batch.advantage
    selected, threshold = top_half(advantages)
    eta_loss, eta_metrics = temperature_loss(advantages, selected, eta, hparams.epsilon_eta)
    weights = temperature_weights(advantages, selected, eta)
    policy_loss, policy_metrics = weighted_log_likelihood_loss(dist.log_prob(batch.action), weights)
    alpha_loss, alpha_metrics = kl_multiplier_loss(trust_region_kls(batch.old_dist, dist), alpha, kl_bounds)
    values = networks.critic.apply(params["critic"], batch.obs)
    clip = hparams.value_clip_eps if config.clip_value_loss else None
    v_loss, v_metrics = value_loss(values, batch.target, batch.value, clip)
    entropy, e_metrics = entropy_bonus(dist.entropy())
    loss = policy_loss + eta_loss + alpha_loss + hparams.vf_coef * v_loss - hparams.ent_coef * entropy
    metrics = {
        **policy_metrics, **eta_metrics, **v_metrics, **e_metrics, **alpha_metrics,
        **_multiplier_metrics("alpha", alpha),  # as these steps used them
        "advantage_threshold": threshold,  # of the (standardised, if normalize_advantages) advantages
        "loss": loss,
    }
    return loss, metrics


def _update(config, env, networks, hparams, state: VMPOState, _):
    """One iteration: rollout, GAE, `update_epochs` passes of minibatch steps on the joint loss."""
    key, rollout_key, epoch_key = jax.random.split(state.key, 3)
    env_carry, traj = collect_rollout(config, env, networks, state, rollout_key)
    traj, reward_scaling = scale_rollout_rewards(config, hparams, state.reward_scaling, traj)
    batch = trust_region_batch(config, networks, hparams, state, traj)

    loss_fn = functools.partial(_loss, config, networks, hparams, _kl_bounds(env, hparams))
    epoch = functools.partial(sgd_epoch, config, _optimizer(config, hparams), loss_fn, batch)
    start = {"networks": state.params, "duals": state.duals}
    (trained, opt_state), losses = jax.lax.scan(
        epoch, (start, state.opt_state), jax.random.split(epoch_key, config.update_epochs)
    )
    params, duals = trained["networks"], trained["duals"]
    new_dist = networks.actor.apply(params["actor"], batch.obs)
    kls = trust_region_kls(batch.old_dist, new_dist)
    obs_stats = update_obs_stats(config, state.obs_stats, traj)

    update = state.update + 1
    metrics = {
        **epoch_metrics(losses),
        # After the update's steps, over the whole rollout: what the multipliers bound (a
        # Gaussian's parts as kl_mu, kl_sigma) and the whole KL(pi_old || pi).
        **_multiplier_metrics("kl", jnp.mean(kls.reshape(-1, kls.shape[-1]), axis=0)),
        "kl": jnp.mean(batch.old_dist.kl(new_dist)),
        **rollout_metrics(config, update, traj, batch),
    }
    new_state = VMPOState(params=params, opt_state=opt_state, env=env_carry, obs_stats=obs_stats, key=key,
                          update=update, duals=duals, reward_scaling=reward_scaling)
    return new_state, metrics


def _init(config, env, networks, key, hparams) -> VMPOState:
    core = initial_core(config, env, networks, key)
    duals = Duals(
        log_eta=jnp.log(jnp.asarray(hparams.init_eta, jnp.float32)),
        log_alpha=jnp.full(_kl_bounds(env, hparams).shape, jnp.log(jnp.asarray(hparams.init_alpha, jnp.float32))),
    )
    opt_state = _optimizer(config, hparams).init({"networks": core.params, "duals": duals})
    return VMPOState.from_core(core, opt_state=opt_state, duals=duals)


def make_trainer(config: VMPOConfig) -> Trainer:
    """Build V-MPO's functions for `config` (validated here, before anything compiles)."""
    return actor_critic_trainer(config, _init, _update)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
