"""PPO with an adaptive KL penalty: the trust-region problem solved by its Lagrangian.

TRPO's problem `max L(theta) s.t. KL_bar(theta) <= delta` has the Lagrangian
`L(theta) - lambda (KL_bar(theta) - delta)`. Each update (Schulman et al., 2017, sec. 4,
with the multiplier moved by projected dual ascent instead of doubling/halving):

1. primal: `update_epochs` passes of minibatch Adam steps on
   `-[mean(r A) - lambda (mean KL(pi_old || pi_theta) - delta)] + vf_coef V_loss - ent_coef H`
   with `lambda` fixed (the KL in closed form against the rollout's policy);
2. dual: measure `KL_bar` of the new policy on the whole rollout and set
   `lambda <- max(0, lambda + kl_coef_lr (KL_bar - delta))` (`trust_region.dual_update`).

The multiplier is part of the training state (so checkpoints resume it) and is logged per
update with the measured KL. With no clip range of its own, the ratio-deviation diagnostic
(`losses.ratio_deviation`: how far `r` strays outside `[1 - eps, 1 + eps]`) is measured at
`RATIO_EPS`, PPO's default `clip_eps`. Everything else is PPO's (`pgjax.algos.ppo`:
its config, optimiser, minibatching rules and value loss).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.algos._on_policy import RolloutState, actor_critic_trainer, collect_rollout, initial_core, rollout_metrics
from pgjax.algos._trainer import train_function
from pgjax.algos.actor_critic import gae_batch, scale_rollout_rewards, update_obs_stats
from pgjax.algos.contract import Trainer
from pgjax.algos.ppo import (
    MinibatchActorCriticHParams,
    PPOConfig,
    PPOHParams,
    epoch_metrics,
    make_optimizer,
    sgd_epoch,
    value_and_entropy_terms,
)
from pgjax.config import (
    config_dataclass,
    entropy_coef_field,
    field,
    hparams_dataclass,
    non_negative,
    positive,
)
from pgjax.kernels.losses import (
    kl_penalty_loss,
    normalize_advantages,
    ratio_deviation,
)
from pgjax.kernels.trust_region import dual_update, mean_kl
from pgjax.types import Array

# The band [1 - eps, 1 + eps] the ratio-deviation metrics measure: PPO's default clip_eps, read
# from PPO's hyper-parameters so the two cannot drift apart.
RATIO_EPS = PPOHParams().clip_eps


@hparams_dataclass
class PPOKLHParams(MinibatchActorCriticHParams):
    """Traced hyper-parameters: vmap over them (max_kl, kl_coef_lr, ...) without recompiling.

    PPO's, without the ratio clip (the KL penalty replaces it) and with no entropy bonus by
    default.
    """

    ent_coef: float = entropy_coef_field(0.0)
    max_kl: float = field(0.01, "KL target delta: the constraint mean KL(old || new) <= delta", positive())
    init_kl_coef: float = field(1.0, "initial Lagrange multiplier lambda of the KL constraint", non_negative())
    kl_coef_lr: float = field(50.0, "dual ascent step size alpha: lambda += alpha (KL - delta)", positive())


@config_dataclass
class PPOKLConfig(PPOConfig):
    """Static settings: PPO's (epochs, minibatches, annealing, value clipping) with KL hparams."""

    hparams: PPOKLHParams = field(PPOKLHParams(), "traced hyper-parameters")


@struct.dataclass(kw_only=True)
class PPOKLState(RolloutState):
    """`RolloutState`, the optimiser's state and the KL multiplier."""

    opt_state: optax.OptState
    kl_coef: Array  # float32 scalar: the Lagrange multiplier lambda


class Batch(NamedTuple):
    """`GAEBatch`'s fields and the rollout policy's distributions."""

    obs: Array
    action: Array
    log_prob: Array
    value: Array
    advantage: Array
    target: Array
    old_dist: Any  # the rollout policy's distribution at each state (for the closed-form KL)


def trust_region_batch(config, networks, hparams, state, traj) -> Batch:
    """The rollout's GAE batch (`gae_batch`, from `state`'s parameters, statistics and
    carry) with the rollout policy's distribution at each state, for a closed-form KL
    against it. Shared with V-MPO (`pgjax.algos.vmpo`)."""
    base = gae_batch(config, networks, hparams, state.params, state.obs_stats, traj, state.env.hidden)
    old_dist = jax.lax.stop_gradient(networks.actor.apply(state.params["actor"], base.obs))
    return Batch(**base._asdict(), old_dist=old_dist)


def _loss(config, networks, hparams, kl_coef, params, batch: Batch):
    """Minus the Lagrangian `mean(r A) - lambda (KL - delta)`, plus value loss minus entropy."""
    dist = networks.actor.apply(params["actor"], batch.obs)
    advantages = normalize_advantages(batch.advantage) if config.normalize_advantages else batch.advantage
    log_probs = dist.log_prob(batch.action)
    policy_loss, metrics = kl_penalty_loss(
        log_probs, batch.log_prob, advantages, batch.old_dist.kl(dist), kl_coef, hparams.max_kl
    )
    metrics = {**metrics, **ratio_deviation(log_probs - batch.log_prob, RATIO_EPS)}
    value_term, entropy_term, vh_metrics = value_and_entropy_terms(config, networks, hparams, params, batch, dist)
    loss = policy_loss + value_term - entropy_term
    return loss, {**metrics, **vh_metrics, "loss": loss}


def _update(config, env, networks, hparams, state: PPOKLState, _):
    """One iteration: rollout, GAE, primal epochs at fixed lambda, then one dual step on lambda."""
    key, rollout_key, epoch_key = jax.random.split(state.key, 3)
    env_carry, traj = collect_rollout(config, env, networks, state, rollout_key)
    traj, reward_scaling = scale_rollout_rewards(config, hparams, state.reward_scaling, traj)
    batch = trust_region_batch(config, networks, hparams, state, traj)

    optimizer = make_optimizer(config, hparams)
    loss_fn = functools.partial(_loss, config, networks, hparams, state.kl_coef)
    epoch = functools.partial(sgd_epoch, config, optimizer, loss_fn, batch)
    (params, opt_state), losses = jax.lax.scan(
        epoch, (state.params, state.opt_state), jax.random.split(epoch_key, config.update_epochs)
    )
    kl = mean_kl(networks.actor.apply, state.params["actor"], params["actor"], batch.obs)
    kl_coef = dual_update(state.kl_coef, kl, hparams.max_kl, hparams.kl_coef_lr)
    obs_stats = update_obs_stats(config, state.obs_stats, traj)

    update = state.update + 1
    metrics = {
        **epoch_metrics(losses),
        "kl": kl,  # mean KL(old || new) over the rollout after the primal steps
        "kl_coef": state.kl_coef,  # the multiplier these primal steps used
        "kl_coef_next": kl_coef,  # after the dual step
        **rollout_metrics(config, update, traj, batch),
    }
    new_state = PPOKLState(params=params, opt_state=opt_state, env=env_carry, obs_stats=obs_stats, key=key,
                           update=update, kl_coef=kl_coef, reward_scaling=reward_scaling)
    return new_state, metrics


def _init(config, env, networks, key, hparams) -> PPOKLState:
    core = initial_core(config, env, networks, key)
    return PPOKLState.from_core(
        core,
        opt_state=make_optimizer(config, hparams).init(core.params),
        kl_coef=jnp.asarray(hparams.init_kl_coef, jnp.float32),
    )


def make_trainer(config: PPOKLConfig) -> Trainer:
    """Build PPO-KL's functions for `config` (validated here, before anything compiles)."""
    return actor_critic_trainer(config, _init, _update)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
