"""Policy distributions: log-likelihood, entropy and KL in closed form.

Pure functions on distribution parameters, plus two small pytree classes (`Categorical`,
`DiagGaussian`) that networks return so algorithms can stay agnostic of the action type.
The last axis of a Gaussian is the action dimension; everything before it is batch.
Every function accepts array-likes (lists, Python numbers) as `pgjax.kernels.returns` does:
they become float32 arrays (`pgjax.kernels.inputs`); anything else is one `TypeError` line
naming the function and the argument.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.kernels import inputs
from pgjax.types import Array, PRNGKey

# Python floats holding the float32 values `jnp.log` gave (same bits in every formula): a jnp
# constant here would start JAX's backend on `import pgjax`, before a caller could choose
# its devices (`--host-devices`, XLA_FLAGS).
LOG_2PI = float(np.float32(math.log(2.0 * math.pi)))
LOG_2 = float(np.float32(math.log(2.0)))

# --- categorical ---------------------------------------------------------------------------


def categorical_log_prob(logits: Array, actions: Array) -> Array:
    """`log pi(a) = logits[a] - logsumexp(logits)`; logits `[..., K]`, actions `[...]` int."""
    logits = inputs.as_float("categorical_log_prob", "logits", logits)
    actions = inputs.as_flags("categorical_log_prob", "actions", actions)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_p, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]


def _log_softmax_masked(logits: Array) -> tuple[Array, Array]:
    """`(p, log p)` with `log p` set to 0 where `p = 0`, so `0 * log 0` terms vanish.

    Masked actions (logit -inf) then contribute nothing, and no nan reaches a gradient.
    """
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.exp(log_p), jnp.where(jnp.isneginf(log_p), 0.0, log_p)


def categorical_entropy(logits: Array) -> Array:
    """`H = -sum_a pi(a) log pi(a)`, with `0 log 0 = 0` (masked actions allowed)."""
    logits = inputs.as_float("categorical_entropy", "logits", logits)
    p, log_p = _log_softmax_masked(logits)
    return -jnp.sum(p * log_p, axis=-1)


def categorical_kl(logits_p: Array, logits_q: Array) -> Array:
    """`KL(p || q) = sum_a p(a) (log p(a) - log q(a))`, over the actions where `p(a) > 0`."""
    logits_p, logits_q = inputs.as_float("categorical_kl", "logits_p", logits_p), inputs.as_float("categorical_kl", "logits_q", logits_q)
    p, log_p = _log_softmax_masked(logits_p)
    log_q = jax.nn.log_softmax(logits_q, axis=-1)
    return jnp.sum(jnp.where(p > 0, p * (log_p - log_q), 0.0), axis=-1)


# --- diagonal Gaussian -------------------------------------------------------------------


def _broadcast(*arrays: Array) -> list[Array]:
    """Broadcast on purpose (a shared `[D]` log-std against `[N, D]` means is intended)."""
    shape = jnp.broadcast_shapes(*(jnp.shape(a) for a in arrays))
    return [jnp.broadcast_to(a, shape) for a in arrays]


def diag_gaussian_log_prob(mean: Array, log_std: Array, actions: Array) -> Array:
    """`-1/2 (n log 2pi + sum_i[(a_i - mu_i)^2 / sigma_i^2 + 2 log sigma_i])`, summed over the last axis."""
    mean, log_std, actions = inputs.as_float("diag_gaussian_log_prob", "mean", mean), inputs.as_float("diag_gaussian_log_prob", "log_std", log_std), inputs.as_float("diag_gaussian_log_prob", "actions", actions)
    mean, log_std, actions = _broadcast(mean, log_std, actions)
    z = (actions - mean) * jnp.exp(-log_std)
    n = mean.shape[-1]
    return -0.5 * (n * LOG_2PI + jnp.sum(z**2 + 2.0 * log_std, axis=-1))


def diag_gaussian_entropy(log_std: Array) -> Array:
    """`H = sum_i (log sigma_i + 1/2 log(2 pi e))`."""
    log_std = inputs.as_float("diag_gaussian_entropy", "log_std", log_std)
    return jnp.sum(log_std + 0.5 * (LOG_2PI + 1.0), axis=-1)


def diag_gaussian_kl(mean_p: Array, log_std_p: Array, mean_q: Array, log_std_q: Array) -> Array:
    """`KL(p || q) = sum_i [log(s_q/s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2]`."""
    mean_p, log_std_p, mean_q, log_std_q = inputs.as_float("diag_gaussian_kl", "mean_p", mean_p), inputs.as_float("diag_gaussian_kl", "log_std_p", log_std_p), inputs.as_float("diag_gaussian_kl", "mean_q", mean_q), inputs.as_float("diag_gaussian_kl", "log_std_q", log_std_q)
    mean_p, log_std_p, mean_q, log_std_q = _broadcast(mean_p, log_std_p, mean_q, log_std_q)
    var_ratio = jnp.exp(2.0 * (log_std_p - log_std_q))
    mean_term = ((mean_p - mean_q) * jnp.exp(-log_std_q)) ** 2
    return jnp.sum(log_std_q - log_std_p + 0.5 * (var_ratio + mean_term - 1.0), axis=-1)


# --- tanh-squashed Gaussian ----------------------------------------------------------------


def tanh_log_det_jacobian(pre_tanh: Array) -> Array:
    """`log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`, stable for any u in float32.

    The naive form is -inf from |u| >= 8 in float32; adding 1e-6 inside the log biases it by
    up to ~25 nats. Summed over the last axis.
    """
    pre_tanh = inputs.as_float("tanh_log_det_jacobian", "pre_tanh", pre_tanh)
    return jnp.sum(2.0 * (LOG_2 - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


def tanh_gaussian_log_prob(mean: Array, log_std: Array, pre_tanh: Array) -> Array:
    """Log-density of `a = tanh(u)`, `u ~ N(mean, std)`: `log N(u) - sum log(1 - tanh(u)^2)`.

    Takes the pre-tanh sample `u`, so it is exact and finite even where `tanh(u)` rounds to
    +-1 (Haarnoja et al., 2018, appendix C).
    """
    mean, log_std, pre_tanh = inputs.as_float("tanh_gaussian_log_prob", "mean", mean), inputs.as_float("tanh_gaussian_log_prob", "log_std", log_std), inputs.as_float("tanh_gaussian_log_prob", "pre_tanh", pre_tanh)
    return diag_gaussian_log_prob(mean, log_std, pre_tanh) - tanh_log_det_jacobian(pre_tanh)


# --- distribution objects ---------------------------------------------------------------


class Categorical(NamedTuple):
    """Categorical policy over the last axis of `logits`."""

    logits: Array

    def sample(self, key: PRNGKey) -> Array:
        return jax.random.categorical(key, inputs.as_float("Categorical.sample", "logits", self.logits), axis=-1)

    def mode(self) -> Array:
        return jnp.argmax(inputs.as_float("Categorical.mode", "logits", self.logits), axis=-1)

    def log_prob(self, actions: Array) -> Array:
        return categorical_log_prob(self.logits, actions)

    def entropy(self) -> Array:
        return categorical_entropy(self.logits)

    def kl(self, other: Categorical) -> Array:
        return categorical_kl(self.logits, other.logits)


class DiagGaussian(NamedTuple):
    """Diagonal Gaussian policy; `mean` and `log_std` broadcast to `[..., action_dim]`."""

    mean: Array
    log_std: Array

    @property
    def shape(self) -> tuple[int, ...]:
        return jnp.broadcast_shapes(np.shape(self.mean), np.shape(self.log_std))

    def sample(self, key: PRNGKey) -> Array:
        mean, log_std = _broadcast(*(inputs.as_float("DiagGaussian.sample", name, x)
                                     for name, x in (("mean", self.mean), ("log_std", self.log_std))))
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    def mode(self) -> Array:
        return jnp.broadcast_to(inputs.as_float("DiagGaussian.mode", "mean", self.mean), self.shape)

    def log_prob(self, actions: Array) -> Array:
        return diag_gaussian_log_prob(self.mean, self.log_std, actions)

    def entropy(self) -> Array:
        return diag_gaussian_entropy(jnp.broadcast_to(inputs.as_float("DiagGaussian.entropy", "log_std", self.log_std),
                                                      self.shape))

    def kl(self, other: DiagGaussian) -> Array:
        return diag_gaussian_kl(self.mean, self.log_std, other.mean, other.log_std)
