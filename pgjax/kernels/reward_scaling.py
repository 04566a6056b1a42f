"""Reward scaling by a running estimate of the discounted return's standard deviation.

What SB3's `VecNormalize(norm_reward=True)` and gymnasium's `NormalizeReward` (CleanRL's
continuous PPO) do, as a pure kernel over a time-major rollout. Per environment a discounted
return is accumulated, `G_t = gamma * G_{t-1} + r_t`, restarted from zero after every step
that ends an episode (terminated *or* truncated: either way the next reward belongs to a
new episode). Every step's `[B]` returns are merged into running moments (Chan et al.,
1979; a masked-out step is not merged), and the reward is divided by the running standard
deviation: `r_t / sqrt(var_t + eps)`, clipped to `[-clip, clip]` as both peers do (10).
The mean of the returns is tracked but not subtracted: shifting rewards would change the
optimal policy where episodes can end, scaling does not.

Engstrom et al. (2020), "Implementation Matters in Deep RL: A Case Study on PPO and TRPO",
sec. 3 ("reward scaling"), describe and measure it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from pgjax.types import Array, RunningStats

EPSILON = 1e-8  # added to the variance (SB3's VecNormalize default)
CLIP = 10.0  # scaled rewards are clipped to [-CLIP, CLIP] (SB3's clip_reward, CleanRL's TransformReward)


class RewardScaling(NamedTuple):
    """What a run carries between rollouts: each environment's running discounted return and
    the running moments of those returns (scalar `RunningStats`)."""

    returns: Array  # [B] float32, the discounted return of each environment's current episode
    stats: RunningStats  # mean, var, count: float32 scalars


def init_reward_scaling(num_envs: int) -> RewardScaling:
    """Zero returns; moments as `envs.init_running_stats` (mean 0, var 1, count 1e-4, as SB3)."""
    zero = jnp.zeros((), jnp.float32)
    return RewardScaling(jnp.zeros((num_envs,), jnp.float32), RunningStats(zero, zero + 1.0, zero + 1e-4))


def merge_moments(stats: RunningStats, values: Array, weights: Array) -> RunningStats:
    """Merge the weighted batch `values [B]` (weights 0 or 1) into scalar running moments.

    Chan et al.'s parallel update with the batch's count `sum(w)`, mean and (population)
    variance over the weighted entries; an empty batch leaves the moments unchanged.
    """
    count = jnp.sum(weights)
    safe = jnp.maximum(count, 1.0)
    batch_mean = jnp.sum(weights * values) / safe
    batch_var = jnp.sum(weights * (values - batch_mean) ** 2) / safe
    total = stats.count + count
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * count / total
    m2 = stats.var * stats.count + batch_var * count + delta**2 * stats.count * count / total
    return RunningStats(mean=mean, var=m2 / total, count=total)


def scale_rewards(
    scaling: RewardScaling,
    rewards: Array,
    terminated: Array,
    truncated: Array,
    gamma: Array | float,
    mask: Array | None = None,
    clip: float = CLIP,
    eps: float = EPSILON,
) -> tuple[Array, RewardScaling]:
    """Rewards divided by the running std of the discounted return, and the new scaling state.

    For t = 0..T-1 and every environment (SB3 `VecNormalize.step_wait` order):
        G = gamma * G + r_t;  moments <- merge(moments, G where mask_t);
        scaled_t = clip(r_t / sqrt(var + eps), -clip, clip);  G = 0 where terminated_t | truncated_t.
    `rewards`, `terminated`, `truncated`, `mask` (optional, 1 = the step counts): `[T, B]`.
    Returns `(scaled [T, B], RewardScaling)`.
    """
    rewards = jnp.asarray(rewards, jnp.float32)
    ends = jnp.logical_or(terminated, truncated)
    weights = jnp.ones_like(rewards) if mask is None else jnp.asarray(mask, jnp.float32)

    def step(carry: RewardScaling, x):
        reward, end, weight = x
        returns = gamma * carry.returns + reward
        stats = merge_moments(carry.stats, returns, weight)
        scaled = jnp.clip(reward / jnp.sqrt(stats.var + eps), -clip, clip)
        return RewardScaling(jnp.where(end, 0.0, returns), stats), scaled

    scaling, scaled = jax.lax.scan(step, scaling, (rewards, ends, weights))
    return scaled, scaling
