"""V-MPO's kernels (Song et al., 2019, arXiv:1909.12238): the E-step's top-half selection,
temperature loss and sample weights, the M-step's weighted maximum likelihood, and the loss
of the KL trust region's Lagrange multipliers.

V-MPO minimises `L_V(phi) + L_pi(theta) + L_eta(eta) + L_alpha(theta, alpha)` (sec. 4,
"Method", eq. 1-2; numbers as in the ICLR 2020 paper) on a batch `D` of rollout steps, where
`D~` is the half of `D` with the largest advantages `A`:

    psi(s, a) = exp(A(s, a) / eta) / sum_{D~} exp(A / eta)                           (eq. 3)
    L_pi      = -sum_{D~} psi(s, a) log pi_theta(a|s)                                 (eq. 3)
    L_eta     = eta eps_eta + eta log[(1/|D~|) sum_{D~} exp(A / eta)]                 (eq. 4)
    L_alpha   = (1/|D|) sum_D [alpha (eps_alpha - sg KL) + sg(alpha) KL]               (eq. 5)

with `KL = KL(pi_old(.|s) || pi_theta(.|s))` and `sg` a stop-gradient. Advantages are
constants everywhere (the E-step reweights samples; it does not differentiate them). Every
kernel takes arrays of any shape (`[N]` steps or `[B, T]` sequences): the batch is all
their elements.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pgjax.kernels import inputs
from pgjax.kernels.distributions import diag_gaussian_kl
from pgjax.types import Array


def _inputs(kernel: str, **arrays) -> list[Array]:
    cast = {name: inputs.as_float(kernel, name, x) for name, x in arrays.items()}
    inputs.same_shape(kernel, **cast)
    return list(cast.values())


def top_half(advantages: Array) -> tuple[Array, Array]:
    """The E-step's sample selection `D~ = {i : A_i >= A_(k)}`, `A_(k)` the k-th largest of
    the batch's `N` advantages, `k = ceil(N/2)` (Song et al., 2019, eq. 3: "the top half").

    Ties at the threshold are all kept, so the selection does not depend on the order of
    the batch (a minibatch shuffle cannot change it) and holds more than `k` samples only
    when advantages tie exactly at `A_(k)`. `advantages [...]` -> `(mask [...]` float32
    1/0, `threshold A_(k)` scalar`)`.
    """
    advantages = inputs.as_float("top_half", "advantages", advantages)
    inputs.rank_in("top_half", "advantages", advantages, None, "[...] (the batch's steps)")
    flat = jnp.sort(advantages.reshape(-1))
    threshold = flat[flat.size // 2]  # ascending, so the k-th largest sits at N - k = floor(N/2)
    return (advantages >= threshold).astype(jnp.float32), threshold


def _selected_logits(kernel: str, advantages: Array, mask: Array, temperature: Array) -> Array:
    """`A / eta` on the selected samples, `-inf` elsewhere (they drop out of every sum)."""
    advantages, mask = _inputs(kernel, advantages=advantages, mask=mask)
    return jnp.where(mask > 0, jax.lax.stop_gradient(advantages) / temperature, -jnp.inf)


def temperature_weights(advantages: Array, mask: Array, temperature: Array) -> Array:
    """The non-parametric target `psi_i = exp(A_i / eta) / sum_{j in D~} exp(A_j / eta)` on
    the selected samples, 0 elsewhere; a constant (no gradient reaches `eta` or `A`).

    Song et al. (2019), eq. 3. `advantages, mask [...]` (mask from `top_half`), `temperature`
    scalar > 0 -> `weights [...]` summing to 1.
    """
    logits = _selected_logits("temperature_weights", advantages, mask, jax.lax.stop_gradient(temperature))
    return jax.nn.softmax(logits.reshape(-1)).reshape(logits.shape)


def temperature_loss(advantages: Array, mask: Array, temperature: Array, epsilon: Array) -> tuple[Array, dict]:
    """The temperature's dual `L_eta = eta eps_eta + eta log[(1/|D~|) sum_{D~} exp(A / eta)]`.

    Song et al. (2019), eq. 4. Its derivative is `eps_eta - KL(psi || uniform on D~)`, so
    gradient descent on `eta` drives the weights' KL from uniform to `eps_eta`: a smaller
    bound means a higher temperature and flatter weights. `advantages, mask [...]`,
    `temperature`, `epsilon` scalars. Metrics: the loss, `eta`, and that KL (`temperature_kl`).
    """
    logits = _selected_logits("temperature_loss", advantages, mask, temperature)
    log_mean_exp = jax.nn.logsumexp(logits) - jnp.log(jnp.sum(mask))
    loss = temperature * epsilon + temperature * log_mean_exp
    # KL(psi || uniform) = sum_{D~} psi (A / eta - log_mean_exp), the unselected terms 0.
    shifted = jax.lax.stop_gradient(logits - log_mean_exp)
    kl_from_uniform = jnp.sum(jnp.where(mask > 0, jnp.exp(shifted) / jnp.sum(mask) * shifted, 0.0))
    return loss, {"temperature_loss": loss, "eta": jax.lax.stop_gradient(temperature), "temperature_kl": kl_from_uniform}


def weighted_log_likelihood_loss(log_probs: Array, weights: Array) -> tuple[Array, dict]:
    """The M-step's policy loss `L_pi = -sum_i psi_i log pi_theta(a_i|s_i)`, `psi` constant.

    Song et al. (2019), eq. 3: supervised learning on the selected actions, weighted by
    `temperature_weights`. `log_probs, weights [...]` -> scalar.
    """
    log_probs, weights = _inputs("weighted_log_likelihood_loss", log_probs=log_probs, weights=weights)
    loss = -jnp.sum(jax.lax.stop_gradient(weights) * log_probs)
    return loss, {"policy_loss": loss}


def kl_multiplier_loss(kls: Array, multipliers: Array, epsilons: Array) -> tuple[Array, dict]:
    """The trust region's Lagrangian `L_alpha = sum_k mean_i [alpha_k (eps_k - sg KL_ik) + sg(alpha_k) KL_ik]`.

    Song et al. (2019), eq. 5, with `K` constraints side by side (one for a categorical
    policy; the mean's and the covariance's for a Gaussian, `decoupled_gaussian_kl`). Its
    derivative in `alpha_k` is `eps_k - mean KL_k` (the multiplier grows while the constraint
    is violated), in the policy `alpha_k d KL_k`. `kls [..., K]` per state,
    `multipliers, epsilons [K]` -> scalar.
    """
    kls = inputs.as_float("kl_multiplier_loss", "kls", kls)
    multipliers, epsilons = _inputs("kl_multiplier_loss", multipliers=multipliers, epsilons=epsilons)
    inputs.rank_in("kl_multiplier_loss", "multipliers", multipliers, (1,), "[K] (one per constraint)")
    if kls.ndim < 1 or kls.shape[-1] != multipliers.shape[0]:
        raise ValueError(f"kl_multiplier_loss: kls has shape {list(kls.shape)}; expected [..., {multipliers.shape[0]}], "
                         "one column per multiplier")
    kl = jnp.mean(kls.reshape(-1, kls.shape[-1]), axis=0)
    loss = jnp.sum(multipliers * (epsilons - jax.lax.stop_gradient(kl)) + jax.lax.stop_gradient(multipliers) * kl)
    return loss, {"alpha_loss": loss}


def decoupled_gaussian_kl(mean_old: Array, log_std_old: Array, mean: Array, log_std: Array) -> tuple[Array, Array]:
    """The KL of a diagonal Gaussian split into its mean's and its covariance's parts,
    `KL_mu = KL(N(mu_old, s_old) || N(mu, s_old)) = sum_d (mu - mu_old)^2 / (2 s_old^2)` and
    `KL_sigma = KL(N(mu_old, s_old) || N(mu_old, s)) = sum_d [log(s / s_old) + s_old^2 / (2 s^2) - 1/2]`.

    Each bounded by its own multiplier, the mean can move fast while the covariance shrinks
    slowly (Song et al., 2019, appendix; Abdolmaleki et al., 2018, "Relative entropy
    regularized policy iteration"). Arguments broadcast to `[..., D]`; returns
    `(KL_mu, KL_sigma)`, each `[...]`.
    """
    return (diag_gaussian_kl(mean_old, log_std_old, mean, log_std_old),
            diag_gaussian_kl(mean_old, log_std_old, mean_old, log_std))
