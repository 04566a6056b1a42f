"""Soft actor-critic kernels: soft values, Bellman targets, actor and temperature losses.

Pure functions on arrays, shared by continuous SAC (tanh-squashed Gaussian policy, one
reparameterised sample per state) and discrete SAC (categorical policy, expectations over
actions in closed form). Critic ensembles come first: `q_values [K, B]` (continuous, at one
action per state) or `[K, B, A]` (discrete, every action); the soft value takes the minimum
over the K critics (clipped double Q, Fujimoto et al., 2018; Haarnoja et al., 2018).

Termination is not truncation: a stored transition's `next_obs` is the true observation
reached, so a truncated step bootstraps from it like any other step and only
`terminated` zeroes the bootstrap. That is why the targets here take no `truncated` flag.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from pgjax.kernels import losses
from pgjax.kernels.distributions import tanh_gaussian_log_prob
from pgjax.kernels.targets import bellman_target
from pgjax.types import Array, PRNGKey

# --- the squashed Gaussian policy ------------------------------------------------------------


def sample_tanh_gaussian(key: PRNGKey, mean: Array, log_std: Array) -> tuple[Array, Array]:
    """Reparameterised `a = tanh(mean + std * eps)`, `eps ~ N(0, I)`, and `log pi(a)`.

    Differentiable in `mean` and `log_std` (the reparameterisation trick, Haarnoja et al.,
    2018, eq. 11). The log-prob is computed from the pre-tanh sample `u` with the
    softplus-form Jacobian, so it stays finite where `tanh(u)` rounds to +-1 (|u| up to 20
    and beyond). `mean, log_std [..., D]` -> `(actions [..., D] in [-1, 1], log_probs [...])`.
    """
    chex.assert_equal_shape([mean, log_std])
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(pre_tanh), tanh_gaussian_log_prob(mean, log_std, pre_tanh)


# --- soft values and targets -----------------------------------------------------------------


def soft_state_value(q_values: Array, log_probs: Array, alpha: Array) -> Array:
    """One-sample soft value `V(s) = min_k Q_k(s, a) - alpha log pi(a|s)`, `a ~ pi(.|s)`.

    Haarnoja et al. (2018), eq. 3. `q_values [K, B]`, `log_probs [B]` -> `[B]`.
    """
    chex.assert_rank(q_values, 2)
    chex.assert_equal_shape([q_values[0], log_probs])
    return jnp.min(q_values, axis=0) - alpha * log_probs


def discrete_soft_state_value(q_values: Array, logits: Array, alpha: Array) -> Array:
    """Exact soft value `V(s) = sum_a pi(a|s) [min_k Q_k(s, a) - alpha log pi(a|s)]`.

    Christodoulou (2019), eq. 10: the expectation over actions in closed form, no sample.
    `q_values [K, B, A]`, `logits [B, A]` -> `[B]`.
    """
    chex.assert_rank(q_values, 3)
    chex.assert_equal_shape([q_values[0], logits])
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (jnp.min(q_values, axis=0) - alpha * log_p), axis=-1)


def soft_q_target(
    rewards: Array, terminated: Array, next_q_values: Array, next_log_probs: Array, alpha: Array, gamma: Array
) -> Array:
    """Twin soft-Q target `y = r + gamma (1 - d) [min_k Q'_k(s', a') - alpha log pi(a'|s')]`.

    `a' ~ pi(.|s')` sampled once, `Q'` the target critics (Haarnoja et al., 2018b, eq. 3 with
    clipped double Q). `next_q_values [K, B]`, the rest `[B]` -> `[B]`.
    """
    next_values = soft_state_value(next_q_values, next_log_probs, alpha)
    return bellman_target(rewards, terminated, next_values, gamma)


def discrete_soft_q_target(
    rewards: Array, terminated: Array, next_q_values: Array, next_logits: Array, alpha: Array, gamma: Array
) -> Array:
    """Discrete twin soft-Q target `r + gamma (1 - d) sum_a' pi(a'|s') [min_k Q'_k(s', a') - alpha log pi(a'|s')]`.

    Christodoulou (2019). `next_q_values [K, B, A]`, `next_logits [B, A]`, the rest `[B]`.
    """
    next_values = discrete_soft_state_value(next_q_values, next_logits, alpha)
    return bellman_target(rewards, terminated, next_values, gamma)


# --- losses ----------------------------------------------------------------------------------


def critic_loss(q_values: Array, targets: Array) -> tuple[Array, dict]:
    """`sum_k 1/2 mean_b (Q_k(s, a) - y)^2`: every critic of the ensemble regresses on `y`.

    `q_values [K, B]`, `targets [B]` (treated as constants).
    """
    chex.assert_rank(q_values, 2)
    chex.assert_equal_shape([q_values[0], targets])
    errors = q_values - jax.lax.stop_gradient(targets)[None, :]
    loss = 0.5 * jnp.sum(jnp.mean(errors**2, axis=1))
    return loss, {"critic_loss": loss, "q_mean": jnp.mean(q_values), "target_mean": jnp.mean(targets)}


def value_loss(values: Array, targets: Array) -> tuple[Array, dict]:
    """Soft state-value loss of SAC v1, `1/2 mean (V(s) - V_hat(s))^2` (`losses.value_loss`), with
    `V_hat = min_k Q_k(s, a) - alpha log pi(a|s)`, `a ~ pi` (Haarnoja et al., 2018, eq. 5). `[B]`."""
    loss, metrics = losses.value_loss(values, targets)
    return loss, {**metrics, "v_mean": jnp.mean(values)}


def actor_loss(q_values: Array, log_probs: Array, alpha: Array) -> tuple[Array, dict]:
    """`mean_b [alpha log pi(a|s) - min_k Q_k(s, a)]`, `a = f(eps; s)` reparameterised.

    Haarnoja et al. (2018b), eq. 7/12; the gradient flows into the policy through both
    `log_probs` and the actions inside `q_values` (the critics' parameters are held fixed by
    the caller). `q_values [K, B]`, `log_probs [B]`.
    """
    loss = -jnp.mean(soft_state_value(q_values, log_probs, jax.lax.stop_gradient(alpha)))
    return loss, {"actor_loss": loss, "entropy": -jnp.mean(jax.lax.stop_gradient(log_probs))}


def discrete_actor_loss(q_values: Array, logits: Array, alpha: Array) -> tuple[Array, dict]:
    """`mean_b sum_a pi(a|s) [alpha log pi(a|s) - min_k Q_k(s, a)]`, exact over actions.

    Christodoulou (2019), eq. 12: no sample and no reparameterisation are needed.
    `q_values [K, B, A]` (constants), `logits [B, A]`.
    """
    q_values = jax.lax.stop_gradient(q_values)
    loss = -jnp.mean(discrete_soft_state_value(q_values, logits, jax.lax.stop_gradient(alpha)))
    log_p = jax.nn.log_softmax(jax.lax.stop_gradient(logits), axis=-1)
    entropy = -jnp.mean(jnp.sum(jnp.exp(log_p) * log_p, axis=-1))
    return loss, {"actor_loss": loss, "entropy": entropy}


def temperature_loss(log_alpha: Array, entropies: Array, target_entropy: Array) -> tuple[Array, dict]:
    """`J(alpha) = mean_b alpha (H_b - H_target)` with `alpha = exp(log_alpha)`.

    Haarnoja et al. (2018b), eq. 18, `J = E[-alpha log pi(a|s) - alpha H_target]`, written
    with an entropy estimate `H_b`: `-log pi(a|s)` of one sample (continuous) or the exact
    `-sum_a pi log pi` (discrete, Christodoulou 2019, eq. 11). Too much entropy raises
    the loss with alpha, so the gradient lowers alpha, and vice versa. `entropies [B]`.
    """
    alpha = jnp.exp(log_alpha)
    loss = jnp.mean(alpha * jax.lax.stop_gradient(entropies - target_entropy))
    return loss, {"alpha_loss": loss, "alpha": alpha}
