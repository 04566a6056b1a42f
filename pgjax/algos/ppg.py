"""Phasic Policy Gradient, PPG (Cobbe, Hilton, Klimov & Schulman, 2021, Algorithm 1).

Two networks: the policy network, whose features also feed an auxiliary value head
`V_aux`, and a separate value network `V`. Training alternates two phases:

1. **policy phase**, `policy_iterations` (N_pi) iterations, each one update of `run`: roll
   out, GAE, then PPO's epochs (`ppo.surrogate_epochs` with `clip_objective`:
   `L_clip - ent_coef H` on the policy network, `vf_coef 1/2 (V - V_targ)^2` on the value
   network; E_pi = E_V = `update_epochs`), and store the rollout's observations and value
   targets `V_targ` (its lambda-returns) in the auxiliary buffer;
2. **auxiliary phase**, after every N_pi-th iteration: record `pi_old`, the policy at its
   start, on every buffered state, then `aux_epochs` (E_aux) passes of shuffled minibatches
   over the buffer, each one Adam step on

       L_joint + L_V = 1/2 mean (V_aux(s) - V_targ)^2 + beta_clone mean KL(pi_old(.|s) || pi(.|s))
                     + 1/2 mean (V(s) - V_targ)^2

   (`losses.ppg_joint_loss` on the policy network; the value network's extra training).

The buffer and both optimisers' states are part of the training state, and the phase is
`update % policy_iterations`, so the whole run is one compiled program and chunks may end
mid-phase: `run(a)` then `run(b)` equals `run(a + b)` and checkpoints resume exactly. Per
update the metrics add `phase_iteration` (0 .. N_pi - 1), `aux_phase` (1 on updates that
end with the auxiliary phase) and the auxiliary phase's means (`aux_loss`, `aux_value_loss`,
`clone_kl`, `joint_loss`, `aux_critic_loss`, `aux_grad_norm`; 0 on the other updates).

Feed-forward policies only (MLP or CNN torso): a recurrent policy's auxiliary phase would
need every buffered rollout's initial hidden state, so `core = "gru"` is refused.
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
from pgjax.algos.actor_critic import flatten_rollout, gae_batch, observe, scale_rollout_rewards, update_obs_stats
from pgjax.algos.contract import Trainer
from pgjax.algos.ppo import (
    PPOConfig,
    PPOHParams,
    clip_objective,
    clipped_adam,
    epoch_metrics,
    make_optimizer,
    minibatch_pass,
    surrogate_epochs,
)
from pgjax.config import ConfigError, config_dataclass, field, hparams_dataclass, non_negative, positive
from pgjax.kernels.losses import ppg_joint_loss, value_loss
from pgjax.types import Array


@hparams_dataclass
class PPGHParams(PPOHParams):
    """Traced hyper-parameters: PPO's, and the auxiliary phase's. vmap over them to sweep."""

    beta_clone: float = field(1.0, "weight beta_clone of the behaviour-cloning KL(pi_old || pi) in L_joint", non_negative())
    aux_learning_rate: float = field(2.5e-4, "Adam step size of the auxiliary phase (constant)", positive())


@config_dataclass
class PPGConfig(PPOConfig):
    """Static settings: PPO's for the policy phase (`update_epochs` is E_pi = E_V), and the phases'."""

    update_epochs: int = field(1, "policy-phase passes over each rollout, E_pi = E_V (paper: 1)", positive())
    clip_value_loss: bool = field(False, "clip value updates around the rollout's values (the paper does not)")
    policy_iterations: int = field(
        32, "N_pi: policy-phase iterations (rollouts) per phase; the auxiliary phase trains on their rollouts", positive()
    )
    aux_epochs: int = field(6, "E_aux: passes of the auxiliary phase over its buffer", positive())
    aux_minibatches: int = field(
        16, "auxiliary minibatches per buffered rollout in each auxiliary epoch; must divide num_envs * num_steps",
        positive(),
    )
    hparams: PPGHParams = field(PPGHParams(), "traced hyper-parameters")

    # The auxiliary phase replays single states; a recurrent one would need each buffered
    # rollout's initial hidden state (not stored).
    supports_recurrent_core = False
    policy_aux_value_head = True  # actor_critic.make_actor_critic: V_aux on the policy network

    def validate(self) -> None:
        super().validate()
        if self.batch_size % self.aux_minibatches:
            raise ConfigError(
                f"aux_minibatches={self.aux_minibatches} does not divide the batch num_envs * num_steps = "
                f"{self.num_envs} * {self.num_steps} = {self.batch_size}; choose a divisor of {self.batch_size}."
            )
        if self.num_updates < self.policy_iterations:
            raise ConfigError(
                f"policy_iterations={self.policy_iterations} is more than the run's {self.num_updates} updates "
                f"(total_timesteps={self.total_timesteps}): no auxiliary phase would run; lower policy_iterations "
                "or raise total_timesteps."
            )


class AuxBuffer(NamedTuple):
    """The phase's rollouts for the auxiliary phase: slot i holds policy iteration i's."""

    obs: Array  # [N_pi, T*B, *obs_shape] raw observations (normalised when the auxiliary phase reads them)
    target: Array  # [N_pi, T*B] value targets V_targ: the rollout's lambda-returns


@struct.dataclass(kw_only=True)
class PPGState(RolloutState):
    """`RolloutState` (`params["actor"]`: the policy network with V_aux; `update` counts policy
    iterations), the two phases' optimiser states and the auxiliary buffer."""

    opt_state: optax.OptState  # the policy phase's Adam
    aux_opt_state: optax.OptState  # the auxiliary phase's Adam
    buffer: AuxBuffer


class AuxBatch(NamedTuple):
    """The auxiliary phase's rows `[N_pi * T * B]`."""

    obs: Array  # what the networks see (normalised if normalize_obs)
    target: Array  # V_targ
    old_dist: Any  # pi_old(.|s): the policy at the start of the auxiliary phase


def make_aux_optimizer(hparams: PPGHParams):
    return clipped_adam(hparams.aux_learning_rate, hparams.max_grad_norm)


def store_rollout(buffer: AuxBuffer, slot: Array, obs: Array, target: Array) -> AuxBuffer:
    """`buffer` with slot `slot` holding one rollout's rows (`obs [T*B, ...]`, `target [T*B]`)."""
    return AuxBuffer(
        jax.lax.dynamic_update_index_in_dim(buffer.obs, obs, slot, 0),
        jax.lax.dynamic_update_index_in_dim(buffer.target, target, slot, 0),
    )


def _aux_loss(networks, hparams, params, batch: AuxBatch):
    """`L_joint` on the policy network plus the value network's `1/2 mean (V - V_targ)^2`."""
    dist, aux_values = networks.actor.apply(params["actor"], batch.obs, with_aux_value=True)
    joint, metrics = ppg_joint_loss(aux_values, batch.target, batch.old_dist, dist, hparams.beta_clone)
    critic_loss, _ = value_loss(networks.critic.apply(params["critic"], batch.obs), batch.target)
    loss = joint + critic_loss
    return loss, {**metrics, "aux_critic_loss": critic_loss, "aux_loss": loss}


def auxiliary_phase(config, networks, hparams, obs_stats, buffer: AuxBuffer, key, params, opt_state):
    """Algorithm 1's auxiliary phase on the whole buffer: `(params, opt_state, metrics)`.

    `pi_old` is recorded once, before the first step; every epoch shuffles all
    `policy_iterations * T * B` rows into `policy_iterations * aux_minibatches` minibatches.
    """
    obs = observe(config, obs_stats, buffer.obs.reshape(-1, *buffer.obs.shape[2:]))
    old_dist = jax.lax.stop_gradient(networks.actor.apply(params["actor"], obs))
    batch = AuxBatch(obs, buffer.target.reshape(-1), old_dist)
    loss_fn = functools.partial(_aux_loss, networks, hparams)
    num_minibatches = config.policy_iterations * config.aux_minibatches
    epoch = functools.partial(minibatch_pass, num_minibatches, make_aux_optimizer(hparams), loss_fn, batch)
    (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, config.aux_epochs))
    metrics = epoch_metrics(losses)
    metrics["aux_grad_norm"] = metrics.pop("grad_norm")
    return params, opt_state, metrics


def auxiliary_phase_where(ends_phase: Array, phase, params, opt_state):
    """`phase(params, opt_state)` if `ends_phase`, else the inputs and zero metrics.

    A loop of `ends_phase` (0 or 1) trips rather than `lax.cond`: under `vmap` (seeds, hparam
    grids) a cond on a batched predicate becomes a select that runs both branches, the whole
    auxiliary phase at every update; a loop runs while any cell needs it, and every cell's
    phase ends at the same update.
    """
    metrics = jax.eval_shape(phase, params, opt_state)[2]
    zeros = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metrics)
    return jax.lax.fori_loop(
        0, ends_phase.astype(jnp.int32), lambda _, carry: phase(*carry[:2]), (params, opt_state, zeros)
    )


def _update(config, env, networks, hparams, state: PPGState, _):
    """One policy-phase iteration (rollout, GAE, PPO epochs, the rollout buffered), then the
    auxiliary phase if this iteration ends a phase."""
    key, rollout_key, epoch_key, aux_key = jax.random.split(state.key, 4)
    env_carry, traj = collect_rollout(config, env, networks, state, rollout_key)
    traj, reward_scaling = scale_rollout_rewards(config, hparams, state.reward_scaling, traj)
    batch = gae_batch(config, networks, hparams, state.params, state.obs_stats, traj, state.env.hidden)
    carry = (state.params, state.opt_state)
    (params, opt_state), losses = surrogate_epochs(clip_objective, config, networks, hparams, carry, batch, epoch_key)

    iteration = state.update % config.policy_iterations
    buffer = store_rollout(state.buffer, iteration, flatten_rollout(networks, traj.obs), batch.target)
    obs_stats = update_obs_stats(config, state.obs_stats, traj)
    ends_phase = iteration == config.policy_iterations - 1
    phase = functools.partial(auxiliary_phase, config, networks, hparams, obs_stats, buffer, aux_key)
    params, aux_opt_state, aux_metrics = auxiliary_phase_where(ends_phase, phase, params, state.aux_opt_state)

    update = state.update + 1
    metrics = {
        **epoch_metrics(losses),
        **aux_metrics,
        "phase_iteration": iteration,
        "aux_phase": ends_phase.astype(jnp.float32),
        **rollout_metrics(config, update, traj, batch),
    }
    state = PPGState(params=params, opt_state=opt_state, aux_opt_state=aux_opt_state, env=env_carry,
                     obs_stats=obs_stats, key=key, update=update, buffer=buffer, reward_scaling=reward_scaling)
    return state, metrics


def _init(config, env, networks, key, hparams) -> PPGState:
    core = initial_core(config, env, networks, key)
    obs = core.env.obs
    rows = (config.policy_iterations, config.batch_size)
    buffer = AuxBuffer(jnp.zeros((*rows, *obs.shape[1:]), obs.dtype), jnp.zeros(rows, jnp.float32))
    return PPGState.from_core(
        core,
        opt_state=make_optimizer(config, hparams).init(core.params),
        aux_opt_state=make_aux_optimizer(hparams).init(core.params),
        buffer=buffer,
    )


def make_trainer(config: PPGConfig) -> Trainer:
    """Build PPG's functions for `config` (validated here, before anything compiles)."""
    return actor_critic_trainer(config, _init, _update)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
