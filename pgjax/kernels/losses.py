"""Policy and value losses and the diagnostics that go with them.

Every loss returns `(loss, metrics)` where metrics is a flat dict of scalars, so a
`lax.scan` over minibatches stacks them. Inputs are flat batches `[N]` (any shape works
as long as all arguments agree). Advantages and targets are treated as constants.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pgjax.kernels import inputs
from pgjax.types import Array


def _inputs(kernel: str, **arrays) -> list[Array]:
    """The loss's array arguments cast where safe (lists, ints -> float32) and checked for one shape."""
    cast = {name: inputs.as_float(kernel, name, x) for name, x in arrays.items()}
    inputs.same_shape(kernel, **cast)
    return list(cast.values())


def normalize_advantages(advantages: Array, eps: float = 1e-8) -> Array:
    """`(A - mean(A)) / (std(A) + eps)` over the whole batch."""
    return (advantages - advantages.mean()) / (advantages.std() + eps)


def policy_gradient_loss(log_probs: Array, advantages: Array) -> tuple[Array, dict]:
    """REINFORCE / actor-critic surrogate `L = -mean(log pi(a|s) * A)`.

    Its gradient is the score-function estimate of `-grad J` (Williams, 1992).
    """
    log_probs, advantages = _inputs("policy_gradient_loss", log_probs=log_probs, advantages=advantages)
    loss = -jnp.mean(log_probs * jax.lax.stop_gradient(advantages))
    return loss, {"policy_loss": loss}


def episode_policy_loss(log_probs: Array, psi: Array, mask: Array) -> tuple[Array, dict]:
    """`L = -(1/N) sum_i sum_t m_t^i log pi(a_t^i|s_t^i) psi_t^i`, `[T, N]` inputs, `psi` held constant.

    A per-episode sum averaged over the N episodes (not a per-step mean), so `-grad L` is
    the REINFORCE estimate of the policy gradient (Williams, 1992). `mask` is
    `returns.first_episode_mask`, `psi` e.g. `returns.episode_weights` minus a baseline.
    """
    log_probs, psi, mask = _inputs("episode_policy_loss", log_probs=log_probs, psi=psi, mask=mask)
    inputs.rank_in("episode_policy_loss", "log_probs", log_probs, (2,), "[T, N]")
    num_episodes = log_probs.shape[1]
    loss = -jnp.sum(mask * log_probs * jax.lax.stop_gradient(psi)) / num_episodes
    return loss, {"policy_loss": loss}


def approx_kl(log_ratio: Array) -> Array:
    """Unbiased low-variance estimate of `KL(old || new)`: `mean((r - 1) - log r)` (Schulman, 2020)."""
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


def ppo_clip_loss(
    log_probs: Array, old_log_probs: Array, advantages: Array, clip_eps: float
) -> tuple[Array, dict]:
    """PPO clipped surrogate `L = -mean(min(r A, clip(r, 1-eps, 1+eps) A))`, `r = pi/pi_old`.

    Schulman et al. (2017), eq. 7. Metrics: approx-KL and the fraction of clipped ratios.
    """
    log_probs, old_log_probs, advantages = _inputs(
        "ppo_clip_loss", log_probs=log_probs, old_log_probs=old_log_probs, advantages=advantages)
    advantages = jax.lax.stop_gradient(advantages)
    log_ratio = log_probs - old_log_probs
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    deviation = ratio_deviation(log_ratio, clip_eps)
    metrics = {
        "policy_loss": loss,
        "approx_kl": jax.lax.stop_gradient(approx_kl(log_ratio)),
        "clip_fraction": deviation["ratio_outside_frac"],  # CleanRL's name for the same fraction
        **deviation,
    }
    return loss, metrics


def ratio_deviation(log_ratio: Array, eps: float) -> dict:
    """How far the probability ratio `r = exp(log_ratio)` strays outside `[1 - eps, 1 + eps]`.

    `ratio_outside_frac = mean(|r - 1| > eps)`, `ratio_excess_mean = mean(max(|r - 1| - eps, 0))`
    and `ratio_deviation_max = max |r - 1|`: the trust region that PPO's clip (Schulman et al.,
    2017, eq. 7) and SPO's penalty (Xie et al., 2025) are meant to hold the ratio in, and by how
    much it is left. Any shape; diagnostics only (no gradient).
    """
    deviation = jnp.abs(jnp.exp(jax.lax.stop_gradient(log_ratio)) - 1.0)
    return {
        "ratio_outside_frac": jnp.mean((deviation > eps).astype(jnp.float32)),
        "ratio_excess_mean": jnp.mean(jnp.maximum(deviation - eps, 0.0)),
        "ratio_deviation_max": jnp.max(deviation),
    }


def spo_loss(
    log_probs: Array, old_log_probs: Array, advantages: Array, eps: float
) -> tuple[Array, dict]:
    """SPO's penalised surrogate `L = -mean(r A - |A| / (2 eps) (r - 1)^2)`, `r = pi/pi_old`.

    Xie et al. (2025, "Simple Policy Optimization", ICML; arXiv 2401.16025), the SPO objective
    `f_spo(r, A)` of sec. 5.1 ("Objective Class"). Per sample the objective is a concave
    parabola in `r` whose maximum lies on the trust-region boundary, `r* = 1 + sign(A) eps`;
    beyond it the gradient pulls `r` back, where PPO's clip only stops pushing. At `r = 1` the
    penalty's gradient is zero, so the first step is the policy gradient. Inputs `[N]` (any shape, all the same). Metrics:
    approx-KL and `ratio_deviation`'s.
    """
    log_probs, old_log_probs, advantages = _inputs(
        "spo_loss", log_probs=log_probs, old_log_probs=old_log_probs, advantages=advantages)
    advantages = jax.lax.stop_gradient(advantages)
    log_ratio = log_probs - old_log_probs
    ratio = jnp.exp(log_ratio)
    penalty = jnp.abs(advantages) / (2.0 * eps) * (ratio - 1.0) ** 2
    loss = -jnp.mean(ratio * advantages - penalty)
    metrics = {
        "policy_loss": loss,
        "approx_kl": jax.lax.stop_gradient(approx_kl(log_ratio)),
        **ratio_deviation(log_ratio, eps),
    }
    return loss, metrics


def importance_surrogate(log_probs: Array, old_log_probs: Array, advantages: Array) -> Array:
    """The surrogate objective `L(theta) = mean(pi_theta(a|s) / pi_old(a|s) A)` (to maximise).

    Its gradient at `theta_old` is the policy gradient (Kakade & Langford, 2002; Schulman
    et al., 2015, eq. 14): NPG and TRPO step on it, PPO-KL penalises it.
    """
    log_probs, old_log_probs, advantages = _inputs(
        "importance_surrogate", log_probs=log_probs, old_log_probs=old_log_probs, advantages=advantages)
    return jnp.mean(jnp.exp(log_probs - old_log_probs) * jax.lax.stop_gradient(advantages))


def kl_penalty_loss(
    log_probs: Array, old_log_probs: Array, advantages: Array, kls: Array, kl_coef: Array, max_kl: Array
) -> tuple[Array, dict]:
    """Minus the Lagrangian of the trust-region problem, `-[L(theta) - lambda (mean(KL) - delta)]`.

    `L` is `importance_surrogate`, `kls [N]` the per-state `KL(pi_old || pi_theta)`, `lambda`
    the multiplier (a constant here) and `delta = max_kl`: PPO's adaptive KL penalty
    (Schulman et al., 2017, sec. 4). Metrics: the loss, the surrogate and approx-KL.
    """
    log_probs, kls = _inputs("kl_penalty_loss", log_probs=log_probs, kls=kls)
    surrogate = importance_surrogate(log_probs, old_log_probs, advantages)
    kl = jnp.mean(kls)
    loss = -(surrogate - kl_coef * (kl - max_kl))
    return loss, {"policy_loss": loss, "surrogate": surrogate, "approx_kl": approx_kl(log_probs - old_log_probs)}


def value_loss(
    values: Array,
    targets: Array,
    old_values: Array | None = None,
    clip_eps: float | None = None,
) -> tuple[Array, dict]:
    """Squared error `1/2 mean((V - target)^2)`, optionally PPO-clipped around `old_values`.

    Clipped form: `1/2 mean(max((V - y)^2, (V_old + clip(V - V_old, -eps, eps) - y)^2))`
    (Schulman et al., 2017 baselines implementation).
    """
    values, targets = _inputs("value_loss", values=values, targets=targets)
    targets = jax.lax.stop_gradient(targets)
    squared = (values - targets) ** 2
    if clip_eps is not None:
        if old_values is None:
            raise ValueError("value_loss: clip_eps needs old_values")
        clipped_values = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        squared = jnp.maximum(squared, (clipped_values - targets) ** 2)
    loss = 0.5 * jnp.mean(squared)
    return loss, {"value_loss": loss}


def ppg_joint_loss(aux_values: Array, targets: Array, old_dist, dist, beta_clone: Array) -> tuple[Array, dict]:
    """PPG's auxiliary-phase loss on the policy network, `L_joint = L_aux + beta_clone KL_bar`:

        L_aux  = 1/2 mean_i (V_aux(s_i) - V_targ_i)^2
        KL_bar = mean_i KL(pi_old(.|s_i) || pi_theta(.|s_i))

    (Cobbe et al., 2021, "Phasic Policy Gradient", sec. 2, "Algorithm": the joint loss and the
    auxiliary value loss of Algorithm 1; the paper numbers neither equation). The value head
    on the policy's features learns the value targets while the behaviour-cloning KL keeps the
    policy where the auxiliary phase found it. `aux_values`, `targets [N]`; `old_dist` (held
    constant) and `dist` are `Categorical` or `DiagGaussian` over the same N states, the KL
    their closed form (`distributions`).
    Metrics: `aux_value_loss` (L_aux), `clone_kl` (KL_bar) and `joint_loss`.
    """
    aux_loss, _ = value_loss(aux_values, targets)
    kls = jax.lax.stop_gradient(old_dist).kl(dist)
    inputs.same_shape("ppg_joint_loss", aux_values=jnp.asarray(aux_values), kls=kls)
    kl = jnp.mean(kls)
    loss = aux_loss + beta_clone * kl
    return loss, {"aux_value_loss": aux_loss, "clone_kl": kl, "joint_loss": loss}


def entropy_bonus(entropies: Array) -> tuple[Array, dict]:
    """Mean policy entropy; algorithms subtract `ent_coef * entropy` from the loss."""
    entropy = jnp.mean(entropies)
    return entropy, {"entropy": entropy}


def explained_variance(predictions: Array, targets: Array) -> Array:
    """`1 - Var[y - y_hat] / Var[y]`: 1 is perfect, 0 is no better than a constant.

    nan when the targets are constant. In float32 the variance of a constant array can be
    a rounding residue (~1e-15 of its square) rather than 0, so "constant" means
    `Var[y] <= 1e-12 * mean(y^2)`.
    """
    var_y = jnp.var(targets)
    informative = var_y > 1e-12 * jnp.mean(targets**2)
    ratio = jnp.var(targets - predictions) / jnp.where(informative, var_y, 1.0)
    return jnp.where(informative, 1.0 - ratio, jnp.nan)
