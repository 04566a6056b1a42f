"""Gradient-estimator diagnostics: mean and variance of policy-gradient estimates for a fixed policy.

For a FIXED actor (and optionally a fixed critic) we draw `num_batches` independent batches
of `N = episodes_per_batch` whole episodes (horizon `H`: the environment's time limit or
`horizon`), and from each batch compute, with the same episodes, the estimate

    g = (1/N) sum_i sum_t m_t^i grad log pi(a_t^i | s_t^i) psi_t^i

(`-grad` of `losses.episode_policy_loss`, flattened over the actor's parameters) for
each weighting `psi`:

    total                      R(tau) = sum_t gamma^t r_t at every step (Williams, 1992)
    reward_to_go               G_t = sum_{t'>=t} gamma^(t'-t) r_t'
    reward_to_go_batch_mean    G_t minus the leave-one-out mean of G_t over the batch's other
                               episodes still running at t
    total_leave_one_out        R(tau) minus the mean return of the other episodes of its group
                               (Kool et al., 2019; `group_size` only, as the next three)
    total_group_norm           R(tau) normalised by its group's mean and std (Shao et al., 2024)
    reward_to_go_leave_one_out G_t minus the mean of the others' G_t in its group (0 once ended)
    reward_to_go_group_norm    G_t normalised by its group's mean and std of G_t at step t
    reward_to_go_value         G_t - V(s_t), the given critic
    gae_<lambda>               GAE(gamma, lambda) advantages from the given critic, with a
                               time-limit cut bootstrapped by V(final obs) (`returns.gae`)

(with `discount_weighting`, every weighting but `total` is multiplied by `gamma^t`). Per
estimator we report the mean over batches, the per-coordinate variance of one batch's
estimate, its sum (the trace of the covariance) and the standard error of the mean.

Which gradient each estimates, for the H-step objective `J = E[sum_{t<H} gamma^t r_t]`
(Sutton & Barto, 2018, sec. 13.3-13.4; Greensmith et al., 2004; Schulman et al., 2016):

* `total` is unbiased for `grad J` for any gamma.
* `reward_to_go` drops the past rewards, whose score terms have mean zero: unbiased for the
  same `grad J` when `gamma = 1` or with `discount_weighting`. With `gamma < 1` and no
  `gamma^t` it is the usual "discounted" estimator, which is biased for `grad J` (Thomas,
  2014; Nota & Thomas, 2020). So with `gamma = 1`, total and reward-to-go (with or without
  either baseline) estimate the same gradient and only their variances differ.
* The batch-mean baseline never looks at episode `i`, and the critic is fixed (not fit on
  the batch): both baselines leave the mean unchanged. So does the group leave-one-out
  baseline (Kool et al., 2019). Group normalisation (Shao et al., 2024) does not: it divides
  by a spread that includes episode `i`, which also changes the scale of the estimate, so
  its variance is not comparable with the others' as a number.
* GAE with an approximate critic is biased for `lambda < 1`. With `lambda = 1` it equals
  `G_t - V(s_t)` on episodes that terminate (unbiased); on an episode cut by the time limit
  it adds `gamma^(H-t) V(s_H)`, which estimates the return beyond the limit, so it targets
  the time-unlimited task and is biased for the H-step objective unless `V(s_H) = 0`.

With `group_size = K >= 2`, each batch's episodes come in groups of K consecutive ones from
one start state (`rollout.collect_episodes`), as REINFORCE trains with the group baselines;
every estimator is then computed on those grouped episodes. To compare with independent
episodes at the same batch size, make a second call without `group_size`.

Observations go to the networks raw, or normalised with `obs_stats` if given (pass the
state's `obs_stats` for a policy trained with `normalize_obs`).

In a notebook::

    trainer = reinforce.make_trainer(config)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0), config.hparams)
    args = dict(env_id="CartPole-v1", key=jax.random.PRNGKey(1), num_batches=200, episodes_per_batch=8)
    stats = gradient_diagnostics(trainer.networks, state.params["actor"], state.params["critic"], horizon=100, **args)
    stats["reward_to_go"].total_variance, stats["gae_0.97"].mean
    by_h = variance_vs_horizon(trainer.networks, state.params["actor"], horizons=[25, 50, 100, 200], **args)
    plt.loglog([25, 50, 100, 200], total_variances(by_h)["total"])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from pgjax.algos.actor_critic import to_env_action
from pgjax.algos.rollout import PolicyStep, collect_episodes
from pgjax.envs import make_vec_env, normalize_obs
from pgjax.kernels import returns
from pgjax.kernels.losses import episode_policy_loss
from pgjax.kernels.returns import (
    GROUP_BASELINES,
    WEIGHTINGS,
    batch_baseline,
    episode_weights,
    group_baseline_weights,
    times_discount,
    value_baseline,
)
from pgjax.types import Array, PRNGKey, RunningStats

DEFAULT_GAE_LAMBDAS = (0.0, 0.5, 0.9, 0.97, 1.0)


class GradientStats(NamedTuple):
    """Statistics of one estimator over `num_batches` batch estimates (P = actor parameters)."""

    mean: Array  # [P] mean gradient estimate over batches
    variance: Array  # [P] variance of one batch's estimate, per coordinate (ddof=1)
    total_variance: Array  # [] sum of `variance`: trace of the covariance of a batch estimate
    standard_error: Array  # [P] standard error of `mean`: sqrt(variance / num_batches)


def estimator_names(gae_lambdas: Sequence[float] = DEFAULT_GAE_LAMBDAS, with_critic: bool = True,
                    grouped: bool = False) -> list[str]:
    """The estimators computed, in order: the critic-free ones (the group baselines if `grouped`),
    then (with a critic) the rest."""
    names = ["total", "reward_to_go", "reward_to_go_batch_mean"]
    if grouped:
        names += [f"{weighting}_{baseline}" for weighting in WEIGHTINGS for baseline in GROUP_BASELINES]
    if with_critic:
        names += ["reward_to_go_value"] + [f"gae_{lam:g}" for lam in gae_lambdas]
    return names


def _observe(obs_stats: RunningStats | None, obs: Array) -> Array:
    return obs if obs_stats is None else normalize_obs(obs_stats, obs)


def _policy_step(env, networks, actor_params, obs_stats, key, obs) -> PolicyStep:
    dist = networks.actor.apply(actor_params, _observe(obs_stats, obs))
    action = dist.sample(key)
    return PolicyStep(action, to_env_action(env, action), dist.log_prob(action))


def _weights(traj, mask, values, next_values, gamma, gae_lambdas, discount_weighting, with_critic,
             group_size) -> Array:
    """Every estimator's `psi [T, N]`, stacked `[E, T, N]` in `estimator_names` order."""
    total = episode_weights(traj.reward, mask, gamma, "total")
    rtg = episode_weights(traj.reward, mask, gamma, "reward_to_go", discount_weighting)
    psis = [total, rtg, rtg - batch_baseline(rtg, mask)]
    if group_size > 1:
        psis += [group_baseline_weights(weights, mask, weighting, group_size, baseline)
                 for weighting, weights in (("total", total), ("reward_to_go", rtg)) for baseline in GROUP_BASELINES]
    if not with_critic:
        return jnp.stack(psis)
    psis.append(rtg - value_baseline(values, mask, gamma, discount_weighting))
    gae = functools.partial(returns.gae, traj.reward, values, next_values, traj.terminated, traj.truncated, gamma)
    advantages = jax.vmap(gae)(jnp.asarray(gae_lambdas, jnp.float32)) * mask[None]  # one scan for every lambda
    if discount_weighting:
        advantages = jax.vmap(times_discount, in_axes=(0, None))(advantages, gamma)
    return jnp.concatenate([jnp.stack(psis), advantages])


def _batch_gradients(env, networks, gamma, gae_lambdas, discount_weighting, group_size, actor_params,
                     critic_params, obs_stats, key) -> Array:
    """One batch of N episodes -> `[E, P]` flat gradient estimates, one row per estimator."""
    with_critic = critic_params is not None
    policy = functools.partial(_policy_step, env, networks, actor_params, obs_stats)
    traj, mask = collect_episodes(env, policy, key, env.max_episode_steps, group_size=group_size)
    obs = _observe(obs_stats, traj.obs)
    values = next_values = None
    if with_critic:  # V(s_t) and V(s_{t+1}) (true final observations) in one critic call
        both = _observe(obs_stats, jnp.stack([traj.obs, traj.next_obs]))
        values, next_values = networks.critic.apply(critic_params, both)
    psis = _weights(traj, mask, values, next_values, gamma, gae_lambdas, discount_weighting, with_critic, group_size)

    def gradient(psi):
        def objective(params):  # -L: its gradient is the ascent direction g
            log_probs = networks.actor.apply(params, obs).log_prob(traj.action)
            return -episode_policy_loss(log_probs, psi, mask)[0]

        return ravel_pytree(jax.grad(objective)(actor_params))[0]

    return jax.vmap(gradient)(psis)


def gradient_estimates(
    networks: Any,
    actor_params: Any,
    critic_params: Any = None,
    *,
    env_id: str,
    key: PRNGKey,
    num_batches: int = 100,
    episodes_per_batch: int = 16,
    horizon: int | None = None,
    gamma: float = 1.0,
    gae_lambdas: Sequence[float] = DEFAULT_GAE_LAMBDAS,
    discount_weighting: bool = False,
    obs_stats: RunningStats | None = None,
    batches_in_parallel: int | None = None,
    group_size: int = 1,
) -> dict[str, Array]:
    """Each estimator's `[num_batches, P]` gradient estimates from the same independent batches.

    `networks` is an `ActorCritic` (e.g. a trainer's), P the number of actor parameters
    (`jax.flatten_util.ravel_pytree` order). Without `critic_params` only the critic-free
    estimators are computed; with `group_size >= 2` (a divisor of `episodes_per_batch`) the
    episodes come in groups from shared start states and the group baselines are added.
    Batches run under one `jit`, vmapped
    `batches_in_parallel` at a time (default all; for long horizons lower it to a divisor
    of `num_batches` if memory is short). Repeated calls with the same static settings
    reuse the compiled function.
    """
    lambdas = tuple(float(lam) for lam in gae_lambdas)
    if episodes_per_batch % group_size:
        raise ValueError(f"episodes_per_batch={episodes_per_batch} must be a multiple of group_size={group_size}")
    all_batches = _compiled_estimates(
        env_id, episodes_per_batch, horizon, networks, lambdas, discount_weighting, group_size,
        min(batches_in_parallel or num_batches, num_batches),
    )
    estimates = all_batches(gamma, actor_params, critic_params, obs_stats, jax.random.split(key, num_batches))
    names = estimator_names(lambdas, with_critic=critic_params is not None, grouped=group_size > 1)
    return {name: estimates[:, i] for i, name in enumerate(names)}


# Process-wide on purpose: the key is static settings compared by value (the flax modules
# included; parameters are arguments, never part of it), so a notebook cell run again reuses
# its program; the bound keeps at most 16 programs alive.
@functools.lru_cache(maxsize=16)
def _compiled_estimates(
    env_id, episodes_per_batch, horizon, networks, lambdas, discount_weighting, group_size, batches_in_parallel
):
    """The jitted all-batches function for one static setting (cached: repeated calls reuse it)."""
    env = make_vec_env(env_id, episodes_per_batch, max_episode_steps=horizon)

    @jax.jit
    def all_batches(gamma, actor_params, critic_params, obs_stats, keys):
        one_batch = functools.partial(
            _batch_gradients, env, networks, gamma, lambdas, discount_weighting, group_size,
            actor_params, critic_params, obs_stats,
        )
        return jax.lax.map(one_batch, keys, batch_size=batches_in_parallel)

    return all_batches


def summarize(estimates: Array) -> GradientStats:
    """`[num_batches, P]` estimates -> mean, per-coordinate variance, its trace, standard error."""
    num_batches = estimates.shape[0]
    if num_batches < 2:
        raise ValueError("variances need num_batches >= 2")
    variance = jnp.var(estimates, axis=0, ddof=1)
    return GradientStats(
        mean=jnp.mean(estimates, axis=0),
        variance=variance,
        total_variance=jnp.sum(variance),
        standard_error=jnp.sqrt(variance / num_batches),
    )


def gradient_diagnostics(
    networks: Any, actor_params: Any, critic_params: Any = None, **kwargs
) -> dict[str, GradientStats]:
    """`GradientStats` per estimator; takes the arguments of `gradient_estimates`."""
    estimates = gradient_estimates(networks, actor_params, critic_params, **kwargs)
    return {name: summarize(values) for name, values in estimates.items()}


def variance_vs_horizon(
    networks: Any, actor_params: Any, critic_params: Any = None, *, horizons: Sequence[int], **kwargs
) -> dict[int, dict[str, GradientStats]]:
    """`gradient_diagnostics` at each horizon H (episodes truncated at H steps): `{H: {name: stats}}`.

    Each H is a different rollout length, hence one compilation per H. Takes the keyword
    arguments of `gradient_estimates` except `horizon`.
    """
    return {int(h): gradient_diagnostics(networks, actor_params, critic_params, horizon=int(h), **kwargs)
            for h in horizons}


def total_variances(by_horizon: dict[int, dict[str, GradientStats]]) -> dict[str, np.ndarray]:
    """`{name: [total variance at each H, in the order of by_horizon]}`, ready to plot against H."""
    horizons = list(by_horizon)
    names = list(by_horizon[horizons[0]])
    return {name: np.array([float(by_horizon[h][name].total_variance) for h in horizons]) for name in names}


__all__ = [
    "DEFAULT_GAE_LAMBDAS",
    "GradientStats",
    "estimator_names",
    "gradient_diagnostics",
    "gradient_estimates",
    "summarize",
    "total_variances",
    "variance_vs_horizon",
]
