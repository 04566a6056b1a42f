"""REINFORCE: Monte Carlo policy gradient on complete episodes (Williams, 1992).

Every update resets `num_envs` environments and runs them for the episode horizon `T`
(the environment's time limit, or `max_episode_steps`), so each environment finishes its
first episode within the rollout. Steps after that first end are masked out (the
auto-reset keeps stepping underneath; those steps are simulated and thrown away). With
`N = num_envs` episodes, mask `m_t^i`, and per-step weights `psi_t^i`, the loss is

    L(theta) = -(1/N) sum_i sum_t m_t^i log pi(a_t^i | s_t^i) psi_t^i

the textbook per-episode sum (a sum over the steps of each episode averaged over
episodes, NOT a mean over steps), whose gradient is the Monte Carlo estimate of
`-grad J`. The weights are set by the config:

    weighting="total"          psi_t = R(tau) = sum_t' gamma^t' r_t'       (Williams, 1992)
    weighting="reward_to_go"   psi_t = G_t = sum_{t'>=t} gamma^(t'-t) r_t'  (causality)
    discount_weighting=True    psi_t <- gamma^t psi_t   (reward_to_go only)
    baseline="none"            psi_t <- psi_t
    baseline="batch_mean"      psi_t^i <- psi_t^i - mean_{j != i, m_t^j = 1} psi_t^j
    baseline="value"           psi_t <- psi_t - V(s_t)   (gamma^t V(s_t) with discount_weighting)
    baseline="leave_one_out"   psi_t^k <- psi_t^k - mean_{j in group(k), j != k} psi_t^j
    baseline="group_norm"      psi_t^k <- (psi_t^k - mean_j psi_t^j) / (std_j psi_t^j + 1e-8), j in group(k)

Returns are true episode returns: nothing is bootstrapped, so a time-limit-truncated
episode's return is the (discounted) sum of the rewards it got.

Which gradient is estimated (Sutton & Barto, 2018, sec. 13.3; Nota & Thomas, 2020):
`total` is unbiased for `grad J_gamma`, `J_gamma = E[sum_t gamma^t r_t]`, for any gamma
(`R(tau)` already carries the discount). `reward_to_go` is unbiased for the same gradient
when `gamma = 1` or with `discount_weighting`; without it and `gamma < 1` it is the common
"discounted" estimator, which is not the gradient of any objective (Nota & Thomas, 2020)
but is what most implementations use. The batch-mean and value baselines keep the estimate
unbiased: the leave-one-out batch mean does not depend on episode `i`, and the value baseline uses the critic as it was before this
batch (it is then regressed on `G_t` by `value_iters` full-batch Adam steps, as in VPG,
Schulman et al., 2016, sec. 5). With `total`, `V(s_t)` (fit to `G_t`) is still a valid
but poorly matched baseline; use `batch_mean` there.

Group baselines (`group_size = K >= 2`, `num_envs` a multiple of K): each update resets
`num_envs` environments and copies the first state of each group of K consecutive ones into
the other K - 1 (`rollout.share_start_states`), so a group's K episodes start from one state
and part only by their own policy (and environment) draws. Each column scores only its first
episode (the mask above), so every episode that enters the estimate starts from its group's
shared state; what the auto-reset simulates after it is masked out and never compared.
At step t every member of the group counts, a finished one with its weight past its end:
R(tau) for `total`, 0 for `reward_to_go` (measured on CartPole, this beats averaging only the
members still running, which leaves late steps of long episodes with a noisy baseline or
none). `leave_one_out` is Kool et al.'s (2019) RLOO baseline, `R_k - mean_{j != k} R_j` with
`total`, unbiased because, given the start state, the other episodes are independent of
episode k. `group_norm` is GRPO's group-normalised advantage (Shao et al., 2024), biased: its
mean and std include episode k (`returns.group_baseline_weights`).

The estimators are library kernels shared with `pgjax.algos.diagnostics` and the notebooks:
`rollout.collect_episodes` (episodes and their first-episode mask), `returns.episode_weights`,
`returns.batch_baseline`, `returns.value_baseline`, `returns.group_baseline_weights`,
`returns.reward_to_go` (the critic's targets) and `losses.episode_policy_loss`.
`make_trainer(config)` gives `init`, `run(state, hparams, num_updates)` and `train`, all pure:
the whole run is one `jit`, chunks compose bit for bit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.algos._on_policy import OnPolicyState, actor_critic_trainer, initial_core
from pgjax.algos._trainer import train_function
from pgjax.algos.actor_critic import (
    fit_value_function,
    initial_carry,
    observe,
    sample_step,
    scale_rollout_rewards,
    update_obs_stats,
)
from pgjax.algos.contract import Trainer
from pgjax.algos.rollout import collect_episodes, first_episode_metrics
from pgjax.config import (
    ConfigError,
    OnPolicyConfig,
    config_dataclass,
    discount_field,
    entropy_coef_field,
    field,
    hparams_dataclass,
    make_env,
    non_negative,
    one_of,
    positive,
)
from pgjax.kernels.losses import episode_policy_loss
from pgjax.kernels.returns import (
    GROUP_BASELINES,
    WEIGHTINGS,
    batch_baseline,
    episode_weights,
    group_baseline_weights,
    reward_to_go,
    value_baseline,
)
from pgjax.types import Array

BASELINES = ("none", "batch_mean", "value", *GROUP_BASELINES)


@hparams_dataclass
class ReinforceHParams:
    """Traced hyper-parameters: vmap over them to sweep without recompiling."""

    learning_rate: float = field(5e-3, "policy Adam step size (one step per batch of episodes)", positive())
    value_learning_rate: float = field(3e-3, "critic Adam step size (baseline='value' only)", positive())
    gamma: float = discount_field("discount factor; 1 gives the undiscounted estimators")
    ent_coef: float = entropy_coef_field(0.0, "entropy bonus, summed over each episode's steps like the loss")


@config_dataclass
class ReinforceConfig(OnPolicyConfig):
    """Static REINFORCE settings (shared on-policy ones in `OnPolicyConfig`): changing one recompiles."""

    num_envs: int = field(8, "episodes per update, one per environment", positive())
    num_steps: int = field(
        500, "rollout length; must equal the episode horizon (the env's time limit or max_episode_steps)", positive()
    )
    max_episode_steps: int = field(0, "time limit of training episodes; 0 keeps the environment's own", non_negative())
    weighting: str = field("reward_to_go", "weight of grad log pi(a_t|s_t): total return R(tau) or reward-to-go G_t",
                           one_of(*WEIGHTINGS))
    discount_weighting: bool = field(False, "multiply reward-to-go weights by gamma^t (the discounted objective)")
    baseline: str = field("value", "subtracted from the weights: none, leave-one-out batch mean, learned V(s_t), or "
                          "over each group of group_size episodes: leave-one-out mean or group normalisation",
                          one_of(*BASELINES))
    group_size: int = field(1, "episodes per shared start state (consecutive environments); leave_one_out and "
                            "group_norm need >= 2, and num_envs must be a multiple", positive())
    value_iters: int = field(20, "full-batch critic Adam steps per update (baseline='value')", positive())
    hparams: ReinforceHParams = field(ReinforceHParams(), "traced hyper-parameters")


    def validate(self) -> None:
        super().validate()
        if self.discount_weighting and self.weighting == "total":
            raise ConfigError(
                "discount_weighting=true applies to weighting='reward_to_go' only: the total return "
                "R(tau) = sum_t gamma^t r_t already weights the discounted objective. Set discount_weighting=false."
            )
        if self.num_envs % self.group_size:
            raise ConfigError(
                f"num_envs={self.num_envs} must be a multiple of group_size={self.group_size}: each group of "
                f"group_size episodes shares a start state. Set num_envs to a multiple of {self.group_size}."
            )
        if self.baseline in GROUP_BASELINES and self.group_size < 2:
            raise ConfigError(
                f"baseline={self.baseline!r} needs group_size >= 2 (got group_size={self.group_size}): it compares "
                f"each episode with the others from its start state. Set group_size to a divisor >= 2 of "
                f"num_envs={self.num_envs}."
            )
        horizon = episode_horizon(self)
        if self.num_steps != horizon:
            source = (f"max_episode_steps={self.max_episode_steps}" if self.max_episode_steps
                      else f"the time limit of {self.env_id}")
            raise ConfigError(
                f"num_steps={self.num_steps} must equal the episode horizon {horizon} ({source}): each update "
                f"runs one whole episode per environment. Set num_steps={horizon}, or set max_episode_steps "
                f"and num_steps to the same value to change the horizon."
            )


def episode_horizon(config: ReinforceConfig) -> int:
    """The longest episode: `max_episode_steps`, or the environment's own time limit."""
    if config.max_episode_steps:
        return config.max_episode_steps
    try:
        return make_env(config, 1).max_episode_steps
    except ValueError as err:
        raise ConfigError(str(err)) from None


@struct.dataclass(kw_only=True)
class ReinforceState(OnPolicyState):
    """`OnPolicyState` (no `env`: every update resets the environments; the critic serves the
    value baseline only), the two optimiser states and the first-episode step count."""

    policy_opt_state: optax.OptState
    value_opt_state: optax.OptState
    episode_steps: Array  # int32 scalar: unmasked (first-episode) steps so far


# --- training ----------------------------------------------------------------------------


def make_policy_optimizer(hparams: ReinforceHParams) -> optax.GradientTransformation:
    return optax.adam(hparams.learning_rate)


def make_value_optimizer(hparams: ReinforceHParams) -> optax.GradientTransformation:
    return optax.adam(hparams.value_learning_rate)


def _psi(config: ReinforceConfig, hparams, rewards: Array, values: Array | None, mask: Array) -> Array:
    """The configured weights minus the configured baseline (`values`: V(s_t) before this update's fit)."""
    weights = episode_weights(rewards, mask, hparams.gamma, config.weighting, config.discount_weighting)
    if config.baseline == "batch_mean":
        return weights - batch_baseline(weights, mask)
    if config.baseline == "value":
        return weights - value_baseline(values, mask, hparams.gamma, config.discount_weighting)
    if config.baseline in GROUP_BASELINES:
        return group_baseline_weights(weights, mask, config.weighting, config.group_size, config.baseline)
    return weights


def _policy_loss(networks, hparams, actor_params, obs, actions, psi, mask):
    dist = networks.core.apply_time_major(networks.actor, actor_params, obs)
    pg_loss, metrics = episode_policy_loss(dist.log_prob(actions), psi, mask)
    entropies = dist.entropy() * mask
    entropy_per_episode = jnp.sum(entropies) / mask.shape[1]
    loss = pg_loss - hparams.ent_coef * entropy_per_episode
    return loss, {**metrics, "entropy": jnp.sum(entropies) / jnp.maximum(jnp.sum(mask), 1.0), "loss": loss}


def _fit_critic(config, networks, hparams, critic_params, opt_state, obs, targets, mask):
    # Update rows (`core.rows`): single steps, or whole batch-major sequences with the targets laid out alike.
    obs, targets, mask = networks.core.rows((obs, targets, mask))
    return fit_value_function(
        networks.critic, make_value_optimizer(hparams), critic_params, opt_state,
        obs, targets, config.value_iters, weights=mask,
    )


def _update(config, env, networks, hparams, state: ReinforceState, _):
    """One REINFORCE iteration: N fresh episodes, one policy gradient step, the critic fit."""
    key, rollout_key = jax.random.split(state.key)
    policy = functools.partial(sample_step, config, env, networks, state.params, state.obs_stats)
    carry = initial_carry(networks, config.num_envs)
    raw, mask = collect_episodes(env, policy, rollout_key, config.num_steps, carry, config.group_size)
    # Fresh episodes every update: each return starts at zero; masked steps (after the first
    # episode) do not enter the moments.
    scaling = state.reward_scaling
    if scaling is not None:
        scaling = scaling._replace(returns=jnp.zeros_like(scaling.returns))
    traj, reward_scaling = scale_rollout_rewards(config, hparams, scaling, raw, mask)
    # A sequential core re-runs each environment's steps from the reset carry.
    obs = networks.core.sequence_inputs(observe(config, state.obs_stats, traj.obs), traj.terminated | traj.truncated, carry)
    # The baseline's V(s_t) for the whole batch in one critic call, before the critic is fit.
    values = networks.core.apply_time_major(networks.critic, state.params["critic"], obs) if config.baseline == "value" else None

    psi = _psi(config, hparams, traj.reward, values, mask)
    loss_fn = functools.partial(_policy_loss, networks, hparams)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params["actor"], obs, traj.action, psi, mask)
    updates, policy_opt_state = make_policy_optimizer(hparams).update(
        grads, state.policy_opt_state, state.params["actor"]
    )
    params = {"actor": optax.apply_updates(state.params["actor"], updates), "critic": state.params["critic"]}
    metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}

    value_opt_state = state.value_opt_state
    if config.baseline == "value":
        targets = reward_to_go(traj.reward, mask, hparams.gamma)
        params["critic"], value_opt_state, value_metrics = _fit_critic(
            config, networks, hparams, state.params["critic"], value_opt_state, obs, targets, mask
        )
        metrics = {**metrics, **value_metrics}

    # All simulated observations: each is a state the current policy visits.
    obs_stats = update_obs_stats(config, state.obs_stats, traj)

    update = state.update + 1
    episode_steps = state.episode_steps + jnp.sum(mask).astype(jnp.int32)
    metrics = {
        **metrics,
        **first_episode_metrics(raw, mask),  # the environment's rewards, whatever the scaling
        "env_steps": update * config.batch_size,  # simulated, masked steps included
        "episode_steps": episode_steps,  # first-episode steps that enter the estimate
    }
    new_state = ReinforceState(params=params, policy_opt_state=policy_opt_state, value_opt_state=value_opt_state,
                               obs_stats=obs_stats, key=key, update=update, episode_steps=episode_steps,
                               reward_scaling=reward_scaling)
    return new_state, metrics


def _init(config, env, networks, key, hparams) -> ReinforceState:
    core = initial_core(config, env, networks, key, reset_env=False)  # every update resets the environments
    return ReinforceState.from_core(
        core,
        policy_opt_state=make_policy_optimizer(hparams).init(core.params["actor"]),
        value_opt_state=make_value_optimizer(hparams).init(core.params["critic"]),
        episode_steps=jnp.zeros((), jnp.int32),
    )


def make_trainer(config: ReinforceConfig) -> Trainer:
    """Build REINFORCE's functions for `config` (validated here, before anything compiles)."""
    return actor_critic_trainer(config, _init, _update, max_episode_steps=config.max_episode_steps or None)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
