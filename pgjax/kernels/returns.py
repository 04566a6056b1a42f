"""Return estimators over time-major rollouts `[T, ...]` that keep termination and truncation apart.

Conventions shared by every function here:

* `next_values[t]` is `V(s_{t+1})` for the state actually reached by step `t`: for a step
  that ended an episode it is the value of the true final observation, not of the reset
  observation that follows in an auto-resetting batch.
* `terminated[t]`: `s_{t+1}` is terminal, so nothing is bootstrapped (`discount = 0`).
* `truncated[t]`: the episode was cut by a time limit; bootstrap with `next_values[t]`.
* Either flag ends the episode, so no trace or sum crosses from `t` to `t + 1`.
* The last step of a rollout bootstraps from `next_values[T - 1]`.

Trailing batch dimensions are allowed; `gamma` and `lambda_` may be traced scalars.

The whole-episode estimators at the end (REINFORCE's; Williams, 1992) take instead a mask
`m [T, ...]` of each column's first episode (`first_episode_mask`): nothing is
bootstrapped, and every step after that episode's end is zero.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from pgjax.kernels import inputs
from pgjax.types import Array


def _inputs(kernel: str, floats: dict, flags: dict | None = None, ranks: tuple[int, ...] | None = (1, 2, 3),
            layout: str = "[T, ...] with at most two batch dimensions") -> list[Array]:
    """The kernel's array arguments, in the order given (`floats`, then `flags`), cast where safe
    (`pgjax.kernels.inputs`), the first checked for rank and all for one shape."""
    arrays = {name: inputs.as_float(kernel, name, x) for name, x in floats.items()}
    arrays.update({name: inputs.as_flags(kernel, name, x) for name, x in (flags or {}).items()})
    first = next(iter(arrays))
    inputs.rank_in(kernel, first, arrays[first], ranks, layout)
    inputs.same_shape(kernel, **arrays)
    return list(arrays.values())


def _as_float(flags: Array, like: Array) -> Array:
    return flags.astype(like.dtype)


def td_errors(
    rewards: Array, values: Array, next_values: Array, terminated: Array, gamma: float
) -> Array:
    """One-step TD errors `delta_t = r_t + gamma (1 - term_t) V(s_{t+1}) - V(s_t)`.

    Sutton & Barto (2018), eq. 6.5. Shapes `[T, ...]`.
    """
    rewards, values, next_values, terminated = _inputs(
        "td_errors", {"rewards": rewards, "values": values, "next_values": next_values}, {"terminated": terminated})
    gamma = inputs.as_coefficient("td_errors", "gamma", gamma, rewards.shape[1:])
    discounts = gamma * (1.0 - _as_float(terminated, rewards))
    return rewards + discounts * next_values - values


def gae(
    rewards: Array,
    values: Array,
    next_values: Array,
    terminated: Array,
    truncated: Array,
    gamma: float,
    lambda_: float,
) -> Array:
    """Generalised advantage estimates by a reverse scan.

    `A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}`, `done = term | trunc`, with
    `delta_t` from `td_errors`. Schulman et al. (2016), eq. 16. Shapes `[T, ...]`.
    `A + values` are the lambda-returns (value targets).
    """
    rewards, values, next_values, terminated, truncated = _inputs(
        "gae", {"rewards": rewards, "values": values, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated})
    gamma, lambda_ = (inputs.as_coefficient("gae", n, c, rewards.shape[1:]) for n, c in (("gamma", gamma), ("lambda_", lambda_)))
    deltas = td_errors(rewards, values, next_values, terminated, gamma)
    done = _as_float(jnp.logical_or(terminated, truncated), rewards)
    trace = gamma * lambda_ * (1.0 - done)

    def backward(advantage_next, step):
        delta, trace_t = step
        advantage = delta + trace_t * advantage_next
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(rewards[0]), (deltas, trace), reverse=True)
    return advantages


def lambda_returns(
    rewards: Array,
    next_values: Array,
    terminated: Array,
    truncated: Array,
    gamma: float,
    lambda_: float,
) -> Array:
    """Lambda-returns by a reverse scan.

    `G_t = r_t + gamma (1 - term_t) [(1 - l_t) V(s_{t+1}) + l_t G_{t+1}]` with
    `l_t = lambda (1 - done_t)` and `l_{T-1} = 0`. Sutton & Barto (2018), eq. 12.18 with
    the episode cut explicit. Shapes `[T, ...]`.
    """
    rewards, next_values, terminated, truncated = _inputs(
        "lambda_returns", {"rewards": rewards, "next_values": next_values}, {"terminated": terminated, "truncated": truncated})
    gamma, lambda_ = (inputs.as_coefficient("lambda_returns", n, c, rewards.shape[1:]) for n, c in (("gamma", gamma), ("lambda_", lambda_)))
    discounts = gamma * (1.0 - _as_float(terminated, rewards))
    done = _as_float(jnp.logical_or(terminated, truncated), rewards)
    lambdas = lambda_ * (1.0 - done)

    def backward(return_next, step):
        reward, discount, lam, next_value = step
        ret = reward + discount * ((1.0 - lam) * next_value + lam * return_next)
        return ret, ret

    # Seeding the carry with V(s_T) makes the last step bootstrap whatever lambda is.
    _, returns = jax.lax.scan(
        backward, next_values[-1], (rewards, discounts, lambdas, next_values), reverse=True
    )
    return returns


def discounted_returns(
    rewards: Array,
    terminated: Array,
    truncated: Array,
    gamma: float,
    next_values: Array | None = None,
) -> Array:
    """Discounted reward-to-go `G_t = r_t + gamma (1 - term_t) [done_t ? V(s_{t+1}) : G_{t+1}]`.

    With `next_values=None` nothing is bootstrapped (a pure Monte Carlo return: truncated
    episodes and the rollout end count as zero thereafter). Williams (1992); Sutton &
    Barto (2018), eq. 3.8. Equals `lambda_returns(..., lambda_=1)`. Shapes `[T, ...]`.
    """
    rewards, terminated, truncated = _inputs(
        "discounted_returns", {"rewards": rewards}, {"terminated": terminated, "truncated": truncated})
    gamma = inputs.as_coefficient("discounted_returns", "gamma", gamma, rewards.shape[1:])
    if next_values is None:
        next_values = jnp.zeros_like(rewards)
    return lambda_returns(rewards, next_values, terminated, truncated, gamma, 1.0)


def n_step_returns(
    rewards: Array,
    next_values: Array,
    terminated: Array,
    truncated: Array,
    gamma: float,
    n: int,
) -> Array:
    """n-step returns `G_t = sum_{k<n} gamma^k r_{t+k} + gamma^n V(s_{t+n})`, cut at episode ends.

    An episode end inside the window bootstraps with `V(final obs)` after truncation and
    with zero after termination; the rollout end bootstraps with `next_values[T-1]`.
    Sutton & Barto (2018), eq. 7.1. `n` is a static int >= 1; n >= T gives the
    bootstrapped reward-to-go. Built as n applications of the one-step backup, O(nT).
    """
    rewards, next_values, terminated, truncated = _inputs(
        "n_step_returns", {"rewards": rewards, "next_values": next_values}, {"terminated": terminated, "truncated": truncated})
    gamma = inputs.as_coefficient("n_step_returns", "gamma", gamma, rewards.shape[1:])
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n={n!r} must be a whole number >= 1 (a static Python int)")
    n = int(n)
    discounts = gamma * (1.0 - _as_float(terminated, rewards))
    done = jnp.logical_or(terminated, truncated)

    def backup(_, tail):
        # tail[t] is the (k-1)-step return from s_{t+1}; done steps ignore it.
        returns = rewards + discounts * jnp.where(done, next_values, tail)
        return jnp.concatenate([returns[1:], next_values[-1:]], axis=0)

    n_eff = min(n, rewards.shape[0])  # windows longer than the rollout change nothing
    tail = jax.lax.fori_loop(0, n_eff - 1, backup, next_values)
    return rewards + discounts * jnp.where(done, next_values, tail)


# --- whole episodes: Monte Carlo returns, weightings and baselines (REINFORCE) --------------

WEIGHTINGS = ("total", "reward_to_go")


def first_episode_mask(terminated: Array, truncated: Array) -> Array:
    """`m_t = 1` up to and including the step that ends each column's first episode, else 0.

    `[T, ...]` bool flags -> float32 mask of the same shape.
    """
    terminated, truncated = _inputs("first_episode_mask", {}, {"terminated": terminated, "truncated": truncated}, ranks=None, layout="[T, ...]")
    done = jnp.logical_or(terminated, truncated).astype(jnp.int32)
    ends_before = jnp.cumsum(done, axis=0) - done
    return (ends_before == 0).astype(jnp.float32)


def reward_to_go(rewards: Array, mask: Array, gamma: Array | float) -> Array:
    """`G_t = sum_{t' >= t} gamma^(t'-t) m_t' r_t'` (no bootstrap); `G_0` is the return `R(tau)`.

    Williams (1992); Sutton & Barto (2018), eq. 3.8. Shapes `[T, ...]`.
    """
    rewards, mask = _inputs("reward_to_go", {"rewards": rewards, "mask": mask}, ranks=None, layout="[T, ...]")
    never = jnp.zeros(rewards.shape, bool)  # the mask already stops each sum at the episode end
    return discounted_returns(rewards * mask, never, never, gamma) * mask


def times_discount(values: Array, gamma: Array | float) -> Array:
    """`gamma^t values_t` for time-major `values [T, ...]`."""
    (values,) = _inputs("times_discount", {"values": values}, ranks=None, layout="[T, ...]")
    gamma = inputs.as_coefficient("times_discount", "gamma", gamma, values.shape[1:])
    steps = jnp.arange(values.shape[0], dtype=values.dtype).reshape((values.shape[0],) + (1,) * (values.ndim - 1))
    return values * jnp.power(gamma, steps)


def episode_weights(
    rewards: Array, mask: Array, gamma: Array | float, weighting: str, discount_weighting: bool = False
) -> Array:
    """Per-step weights `psi_t` of `grad log pi(a_t|s_t)` before any baseline.

    `weighting="total"`: `R(tau) = sum_t gamma^t r_t` at every step (Williams, 1992);
    `"reward_to_go"`: `G_t`, optionally times `gamma^t` (`discount_weighting`; Sutton &
    Barto, 2018, sec. 13.3; Nota & Thomas, 2020). Zero on masked steps. Shapes `[T, ...]`;
    `weighting` and `discount_weighting` are static.
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
    subtracting it leaves the gradient estimate unbiased (Kool et al., 2019). Zero on
    masked steps.
    """
    weights, mask = _inputs("batch_baseline", {"weights": weights, "mask": mask}, ranks=(2,), layout="[T, N]")
    return _leave_one_out_mean(weights, mask)


def _leave_one_out_mean(values: Array, mask: Array) -> Array:
    """Over the last axis: the mean of the other members with `mask = 1` (0 if none), zero where `mask = 0`."""
    live = values * mask
    others_sum = jnp.sum(live, axis=-1, keepdims=True) - live
    others_count = jnp.sum(mask, axis=-1, keepdims=True) - mask
    return jnp.where(others_count > 0, others_sum / jnp.maximum(others_count, 1.0), 0.0) * mask


def value_baseline(values: Array, mask: Array, gamma: Array | float, discount_weighting: bool = False) -> Array:
    """`b_t = V(s_t)` (times `gamma^t` with `discount_weighting`), zero on masked steps.

    Sutton & Barto (2018), sec. 13.4 (REINFORCE with baseline). Shapes `[T, ...]`.
    """
    values, mask = _inputs("value_baseline", {"values": values, "mask": mask}, ranks=None, layout="[T, ...]")
    baseline = values * mask
    return times_discount(baseline, gamma) if discount_weighting else baseline


# --- groups of episodes from one start state (Kool et al., 2019; Shao et al., 2024) ------------

GROUP_BASELINES = ("leave_one_out", "group_norm")


def _group(kernel: str, values: Array) -> Array:
    """`values [..., K]` as a float array, the last axis a group of K >= 2 episodes."""
    (values,) = _inputs(kernel, {"values": values}, ranks=None, layout="[..., K], the last axis a group of K episodes")
    if values.shape[-1] < 2:
        raise ValueError(f"{kernel}: values has shape {list(values.shape)}, groups of {values.shape[-1]} episode; "
                         f"a group (the last axis) needs at least 2 episodes")
    return values


def leave_one_out_baseline(values: Array) -> Array:
    """Leave-one-out (RLOO) baseline over a group: `b_k = (sum_j x_j - x_k) / (K - 1)`.

    So `x_k - b_k = K/(K-1) (x_k - mean_j x_j)`, and the `x_k - b_k` sum to zero over the group.
    Given the shared start state the group's episodes are independent and `b_k` never looks
    at episode `k`, so subtracting it leaves the gradient estimate unbiased (Kool et al., 2019,
    "Buy 4 REINFORCE samples, get a baseline for free!"). Shapes `[..., K]`, the group the
    last axis, `K >= 2`.
    """
    values = _group("leave_one_out_baseline", values)
    return _leave_one_out_mean(values, jnp.ones_like(values))


def group_normalized_advantages(values: Array, eps: float = 1e-8) -> Array:
    """Group-normalised advantages `A_k = (x_k - mean_j x_j) / (std_j x_j + eps)` over a group.

    Population standard deviation (ddof 0); equal values give zeros. GRPO's outcome advantage
    (Shao et al., 2024, DeepSeekMath, sec. 4.1.2). Biased: the mean includes `x_k` itself
    (shrinking the estimate by `(K-1)/K`) and the std, a statistic of every member with
    episode `k` included, rescales each group by a different, data-dependent factor.
    Shapes `[..., K]`, the group the last axis, `K >= 2`.
    """
    values = _group("group_normalized_advantages", values)
    centred = values - jnp.mean(values, axis=-1, keepdims=True)
    return centred / (jnp.sqrt(jnp.mean(centred**2, axis=-1, keepdims=True)) + eps)


def in_groups(x: Array, group_size: int) -> Array:
    """`[..., N] -> [..., N / K, K]`: consecutive columns `gK, ..., gK + K - 1` form group `g`."""
    if isinstance(group_size, bool) or not isinstance(group_size, numbers.Integral) or group_size < 2:
        raise ValueError(f"group_size={group_size!r} must be a whole number >= 2 (a static Python int)")
    if x.shape[-1] % group_size:
        raise ValueError(f"{x.shape[-1]} episodes (shape {list(x.shape)}) do not split into groups of {group_size}")
    return x.reshape(x.shape[:-1] + (x.shape[-1] // group_size, group_size))


def group_baseline_weights(weights: Array, mask: Array, weighting: str, group_size: int, baseline: str) -> Array:
    """`psi [T, N]` from `episode_weights` `[T, N]` whose groups of `group_size` consecutive episodes
    share a start state.

    At each step `t`, every member of the group counts, a finished one with its weight past its
    end: its return `R(tau)` for `weighting="total"`, 0 for `"reward_to_go"` (no reward is left).
    `"leave_one_out"` gives `w_t^k - leave_one_out_baseline(w_t)_k` (with `total`, Kool et al.'s
    `R_k - mean_{j != k} R_j` at every step); `"group_norm"` gives
    `group_normalized_advantages(w_t)_k`. Zero on masked steps. `weighting`, `group_size` and
    `baseline` are static.
    """
    weights, mask = _inputs("group_baseline_weights", {"weights": weights, "mask": mask}, ranks=(2,), layout="[T, N]")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}: expected one of {WEIGHTINGS}")
    # Row 0 holds every episode's R(tau): each column's first episode starts at t = 0.
    counted = in_groups(jnp.broadcast_to(weights[0], weights.shape) if weighting == "total" else weights, group_size)
    if baseline == "leave_one_out":
        psi = counted - leave_one_out_baseline(counted)
    elif baseline == "group_norm":
        psi = group_normalized_advantages(counted)
    else:
        raise ValueError(f"baseline={baseline!r}: expected one of {GROUP_BASELINES}")
    return psi.reshape(weights.shape) * mask
