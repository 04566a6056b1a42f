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

Returns are true episode returns: nothing is bootstrapped, so a time-limit-truncated
episode's return is the (discounted) sum of the rewards it got.

Which gradient is estimated (Sutton & Barto, 2018, sec. 13.3; Nota & Thomas, 2020):
`total` is unbiased for `grad J_gamma`, `J_gamma = E[sum_t gamma^t r_t]`, for any gamma
(`R(tau)` already carries the discount). `reward_to_go` is unbiased for the same gradient
when `gamma = 1` or with `discount_weighting`; without it and `gamma < 1` it is the common
"discounted" estimator, which is not the gradient of any objective (Nota & Thomas, 2020)
but is what most implementations use. Both baselines keep the estimate unbiased: the leave-one-out batch mean does not
depend on episode `i`, and the value baseline uses the critic as it was before this
batch (it is then regressed on `G_t` by `value_iters` full-batch Adam steps, as in VPG,
Schulman et al., 2016, sec. 5). With `total`, `V(s_t)` (fit to `G_t`) is still a valid
but poorly matched baseline; use `batch_mean` there.

The kernels (`first_episode_mask`, `reward_to_go`, `episode_weights`, `batch_baseline`,
`value_baseline`, `episode_policy_loss`, `collect_episodes`) are module-level so that
`pgjax.diagnostics` and the tests call them. `make_trainer(config)` gives `init`, `run(state, hparams, num_updates)` and
`train`, all pure: the whole run is one `jit`, chunks compose bit for bit.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from pgjax import returns
from pgjax.actor_critic import fit_value_function, init_actor_critic, observe, sample_step, update_obs_stats
from pgjax.algos._trainer import actor_critic_trainer
from pgjax.config import (
    ConfigError,
    OnPolicyConfig,
    config_dataclass,
    field,
    hparams_dataclass,
    non_negative,
    one_of,
    positive,
    unit_interval,
)
from pgjax.envs import VecEnv, init_running_stats, make_vec_env
from pgjax.recurrent import Sequences, apply_time_major, initial_hidden, sequences_from_rollout
from pgjax.rollout import PolicyFn, reset_env_carry, rollout
from pgjax.types import Array, PRNGKey, RunningStats, Trainer, Transition

WEIGHTINGS = ("total", "reward_to_go")
BASELINES = ("none", "batch_mean", "value")


@hparams_dataclass
class ReinforceHParams:
    """Traced hyper-parameters: vmap over them to sweep without recompiling."""

    learning_rate: float = field(5e-3, "policy Adam step size (one step per batch of episodes)", positive())
    value_learning_rate: float = field(3e-3, "critic Adam step size (baseline='value' only)", positive())
    gamma: float = field(0.99, "discount factor; 1 gives the undiscounted estimators", unit_interval())
    ent_coef: float = field(0.0, "entropy bonus, summed over each episode's steps like the loss", non_negative())


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
    baseline: str = field("value", "subtracted from the weights: none, leave-one-out batch mean, or learned V(s_t)",
                          one_of(*BASELINES))
    value_iters: int = field(20, "full-batch critic Adam steps per update (baseline='value')", positive())
    hparams: ReinforceHParams = field(ReinforceHParams(), "traced hyper-parameters")


    def validate(self) -> None:
        super().validate()
        if self.discount_weighting and self.weighting == "total":
            raise ConfigError(
                "discount_weighting=true applies to weighting='reward_to_go' only: the total return "
                "R(tau) = sum_t gamma^t r_t already weights the discounted objective. Set discount_weighting=false."
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
        return make_vec_env(config.env_id, 1).max_episode_steps
    except ValueError as err:
        raise ConfigError(str(err)) from None


class ReinforceState(NamedTuple):
    """Everything a run needs to continue (environments are reset every update)."""

    params: dict  # {"actor": ..., "critic": ...}; the critic serves the value baseline only
    policy_opt_state: Any
    value_opt_state: Any
    obs_stats: RunningStats
    key: PRNGKey
    update: Array  # int32 scalar: updates done so far
    episode_steps: Array  # int32 scalar: unmasked (first-episode) steps so far


# --- kernels -------------------------------------------------------------------------------


def first_episode_mask(terminated: Array, truncated: Array) -> Array:
    """`m_t = 1` up to and including the step that ends each column's first episode, else 0.

    `[T, ...]` bool flags -> float32 mask of the same shape.
    """
    chex.assert_equal_shape([terminated, truncated])
    done = jnp.logical_or(terminated, truncated).astype(jnp.int32)
    ends_before = jnp.cumsum(done, axis=0) - done
    return (ends_before == 0).astype(jnp.float32)


def reward_to_go(rewards: Array, mask: Array, gamma: Array | float) -> Array:
    """`G_t = sum_{t' >= t} gamma^(t'-t) m_t' r_t'` (no bootstrap); `G_0` is the return `R(tau)`.

    Williams (1992); Sutton & Barto (2018), eq. 3.8. Shapes `[T, ...]`.
    """
    chex.assert_equal_shape([rewards, mask])
    never = jnp.zeros(rewards.shape, bool)  # the mask already stops each sum at the episode end
    return returns.discounted_returns(rewards * mask, never, never, gamma) * mask


def times_discount(values: Array, gamma: Array | float) -> Array:
    """`gamma^t values_t` for time-major `values [T, ...]`."""
    powers = jnp.power(gamma, jnp.arange(values.shape[0], dtype=values.dtype))
    return values * powers.reshape((values.shape[0],) + (1,) * (values.ndim - 1))


def episode_weights(
    rewards: Array, mask: Array, gamma: Array | float, weighting: str, discount_weighting: bool = False
) -> Array:
    """Per-step weights of `grad log pi(a_t|s_t)` before any baseline.

    `weighting="total"`: `R(tau) = sum_t gamma^t r_t` at every step (Williams, 1992);
    `"reward_to_go"`: `G_t`, optionally times `gamma^t` (`discount_weighting`). Zero on
    masked steps. Shapes `[T, ...]`; `weighting` and `discount_weighting` are static.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}: expected one of {WEIGHTINGS}")
    if discount_weighting and weighting == "total":
        raise ValueError("discount_weighting applies to 'reward_to_go'; R(tau) is already discounted")
    to_go = reward_to_go(rewards, mask, gamma)
    if weighting == "total":
        return jnp.broadcast_to(to_go[0], to_go.shape) * mask
    if discount_weighting:
        return times_discount(to_go, gamma)
    return to_go


def batch_baseline(weights: Array, mask: Array) -> Array:
    """Leave-one-out mean `b_t^i = sum_{j != i} m_t^j w_t^j / sum_{j != i} m_t^j` (0 if no other is alive).

    Episodes are the columns of `[T, N]` arrays. `b^i` never looks at episode `i`, so
    subtracting it leaves the gradient estimate unbiased. Zero on masked steps.
    """
    chex.assert_rank(weights, 2)
    chex.assert_equal_shape([weights, mask])
    live = weights * mask
    others_sum = jnp.sum(live, axis=1, keepdims=True) - live
    others_count = jnp.sum(mask, axis=1, keepdims=True) - mask
    return jnp.where(others_count > 0, others_sum / jnp.maximum(others_count, 1.0), 0.0) * mask


def value_baseline(values: Array, mask: Array, gamma: Array | float, discount_weighting: bool = False) -> Array:
    """`b_t = V(s_t)` (times `gamma^t` with `discount_weighting`), zero on masked steps."""
    chex.assert_equal_shape([values, mask])
    baseline = values * mask
    return times_discount(baseline, gamma) if discount_weighting else baseline


def episode_policy_loss(log_probs: Array, psi: Array, mask: Array) -> tuple[Array, dict]:
    """`L = -(1/N) sum_i sum_t m_t^i log pi(a_t^i|s_t^i) psi_t^i`, `[T, N]` inputs, `psi` held constant.

    A per-episode sum averaged over the N episodes (not a per-step mean), so `-grad L` is
    the REINFORCE estimate of the policy gradient (Williams, 1992).
    """
    chex.assert_rank(log_probs, 2)
    chex.assert_equal_shape([log_probs, psi, mask])
    num_episodes = log_probs.shape[1]
    loss = -jnp.sum(mask * log_probs * jax.lax.stop_gradient(psi)) / num_episodes
    return loss, {"policy_loss": loss}


def collect_episodes(
    env: VecEnv, policy_fn: PolicyFn, key: PRNGKey, num_steps: int, hidden=None
) -> tuple[Transition, Array]:
    """Reset every environment (and a recurrent policy's `hidden` state) and run `num_steps`
    steps: `(transitions [T, N], first-episode mask [T, N])`."""
    reset_key, run_key = jax.random.split(key)
    _, transitions = rollout(env, policy_fn, reset_env_carry(env, reset_key, hidden), run_key, num_steps)
    return transitions, first_episode_mask(transitions.terminated, transitions.truncated)


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
    return weights


def _policy_loss(networks, hparams, actor_params, obs, actions, psi, mask):
    dist = apply_time_major(networks.actor, actor_params, obs)
    pg_loss, metrics = episode_policy_loss(dist.log_prob(actions), psi, mask)
    entropies = dist.entropy() * mask
    entropy_per_episode = jnp.sum(entropies) / mask.shape[1]
    loss = pg_loss - hparams.ent_coef * entropy_per_episode
    return loss, {**metrics, "entropy": jnp.sum(entropies) / jnp.maximum(jnp.sum(mask), 1.0), "loss": loss}


def _fit_critic(config, networks, hparams, critic_params, opt_state, obs, targets, mask):
    if isinstance(obs, Sequences):  # whole batch-major sequences, the targets laid out alike
        return fit_value_function(
            networks.critic, make_value_optimizer(hparams), critic_params, opt_state,
            obs, targets.T, config.value_iters, weights=mask.T,
        )
    return fit_value_function(
        networks.critic, make_value_optimizer(hparams), critic_params, opt_state,
        obs.reshape(-1, *obs.shape[2:]), targets.reshape(-1), config.value_iters, weights=mask.reshape(-1),
    )


def _episode_metrics(traj: Transition, mask: Array) -> dict:
    """Undiscounted return and length of each environment's first episode, averaged over the N episodes."""
    truncated = jnp.sum(traj.truncated * mask, axis=0)
    return {
        "episode_return": jnp.mean(jnp.sum(traj.reward * mask, axis=0)),
        "episode_length": jnp.mean(jnp.sum(mask, axis=0)),
        "episodes": jnp.asarray(mask.shape[1], jnp.float32),
        "truncated_fraction": jnp.mean(truncated),
    }


def _update(config, env, networks, hparams, state: ReinforceState, _):
    """One REINFORCE iteration: N fresh episodes, one policy gradient step, the critic fit."""
    key, rollout_key = jax.random.split(state.key)
    policy = functools.partial(sample_step, config, env, networks, state.params, state.obs_stats)
    hidden = initial_hidden(config, config.num_envs)
    traj, mask = collect_episodes(env, policy, rollout_key, config.num_steps, hidden)
    obs = observe(config, state.obs_stats, traj.obs)
    if hidden is not None:  # a recurrent policy re-runs each environment's steps from the reset
        obs = sequences_from_rollout(obs, traj.terminated | traj.truncated, hidden)
    # The baseline's V(s_t) for the whole batch in one critic call, before the critic is fit.
    values = apply_time_major(networks.critic, state.params["critic"], obs) if config.baseline == "value" else None

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
        **_episode_metrics(traj, mask),
        "env_steps": update * config.batch_size,  # simulated, masked steps included
        "episode_steps": episode_steps,  # first-episode steps that enter the estimate
    }
    new_state = ReinforceState(params, policy_opt_state, value_opt_state, obs_stats, key, update, episode_steps)
    return new_state, metrics


def _init(config, env, networks, key, hparams) -> ReinforceState:
    key, params_key = jax.random.split(key)
    params = init_actor_critic(networks, env, params_key)
    return ReinforceState(
        params,
        make_policy_optimizer(hparams).init(params["actor"]),
        make_value_optimizer(hparams).init(params["critic"]),
        init_running_stats(env.obs_shape),
        key,
        jnp.zeros((), jnp.int32),
        jnp.zeros((), jnp.int32),
    )


def make_trainer(config: ReinforceConfig) -> Trainer:
    """Build REINFORCE's functions for `config` (validated here, before anything compiles)."""
    return actor_critic_trainer(config, _init, _update, max_episode_steps=config.max_episode_steps or None)


def make_train(config: ReinforceConfig):
    """`train(key, hparams=None) -> TrainOutput`; jit it, vmap it over keys and hparams."""
    return make_trainer(config).train


CONFIG = ReinforceConfig  # the config class the CLI and loaders build for this algorithm
