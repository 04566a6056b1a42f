"""Trust-region kernels: the KL between policies, its Fisher-vector product, conjugate
gradient, the natural step, a KL-checked backtracking line search and the dual update.

Every kernel works on parameter pytrees of any structure (flax `{"params": ...}` dicts,
tuples, single arrays) and is pure, so it runs with or without `jit` and under `vmap`.
The problem they solve is the trust-region policy update (Schulman et al., 2015, TRPO)

    maximise_theta  L(theta) = mean_i [pi_theta(a_i|s_i) / pi_old(a_i|s_i) A_i]
    subject to      KL_bar(theta) = mean_i KL(pi_old(.|s_i) || pi_theta(.|s_i)) <= delta,

whose second-order solution is the natural gradient step (Kakade, 2001)
`theta + sqrt(2 delta / g^T F^-1 g) F^-1 g`, `g = grad L`, `F` the Hessian of `KL_bar` at
`theta_old` (the Fisher information of the policy averaged over states).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from pgjax.types import Array

Params = Any  # a pytree of arrays

# --- pytree arithmetic -------------------------------------------------------------------------


def tree_vdot(a: Params, b: Params) -> Array:
    """`sum_leaves <a, b>` in the leaves' dtype (float32 for flax parameters)."""
    return sum((jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))), jnp.zeros(()))


def tree_axpy(alpha: Array, x: Params, y: Params) -> Params:
    """`alpha x + y` leaf by leaf."""
    return jax.tree.map(lambda u, v: alpha * u + v, x, y)


def tree_where(condition: Array, x: Params, y: Params) -> Params:
    """`x` where the scalar `condition` holds, else `y`, leaf by leaf (no branch: vmap-safe)."""
    return jax.tree.map(lambda u, v: jnp.where(condition, u, v), x, y)


# --- KL and its Fisher-vector product ------------------------------------------------------------


def mean_kl(policy_apply: Callable, old_params: Params, new_params: Params, obs: Array) -> Array:
    """`KL_bar = mean_i KL(pi_old(.|s_i) || pi_new(.|s_i))`, closed form per state.

    `policy_apply(params, obs)` returns a distribution with `.kl(other)` (pgjax's
    `Categorical` or `DiagGaussian`). The old policy is a constant (stop_gradient), so the
    derivatives are those of the KL as a function of the new parameters only.
    """
    old = jax.lax.stop_gradient(policy_apply(old_params, obs))
    return jnp.mean(old.kl(policy_apply(new_params, obs)))


def fisher_vector_product(kl_fn: Callable[[Params], Array], params: Params, vector: Params, damping: Array) -> Params:
    """`(F + damping I) v` with `F = Hessian of kl_fn at params`, without forming `F`.

    Forward-over-reverse: `F v = d/de grad kl_fn(params + e v)` at `e = 0` (`jax.jvp` of
    `jax.grad`; Pearlmutter, 1994). At `params = theta_old`, with `kl_fn(theta) =
    KL_bar(theta_old, theta)`, `F` is the average Fisher information of the policy
    (Schulman et al., 2015, appendix C). Damping keeps CG well posed where `F` is singular.
    """
    chex.assert_trees_all_equal_shapes(params, vector)
    _, hvp = jax.jvp(jax.grad(kl_fn), (params,), (vector,))
    return tree_axpy(damping, vector, hvp)


def subsample(key: Array, batch: Any, size: int) -> Any:
    """`size` rows of every leaf of `batch` (leading axis), drawn without replacement.

    The Fisher-vector product on a fraction of the rollout is cheaper and, for a good
    direction, nearly as accurate (Schulman et al., 2015, sec. 6 use 10%). `size` is static.
    """
    num_rows = jax.tree.leaves(batch)[0].shape[0]
    if size >= num_rows:
        return batch
    rows = jax.random.permutation(key, num_rows)[:size]
    return jax.tree.map(lambda x: x[rows], batch)


# --- conjugate gradient ----------------------------------------------------------------------------


class CGResult(NamedTuple):
    x: Params  # approximate solution of A x = b
    residual_norm: Array  # ||b - A x|| as tracked by the recursion (the true one up to rounding)
    iterations: Array  # int32: iterations that changed x (< num_iters once the tolerance is met)


def conjugate_gradient(
    matvec: Callable[[Params], Params], b: Params, num_iters: int, residual_tol: Array = 1e-10
) -> CGResult:
    """Solve `A x = b` for symmetric positive definite `A` given only `v -> A v`, from `x0 = 0`.

    Hestenes & Stiefel (1952); Nocedal & Wright (2006), algorithm 5.2:
    `alpha = r.r / p.Ap; x += alpha p; r -= alpha Ap; p = r + (r'.r' / r.r) p`.

    Exactly `num_iters` (static) matrix-vector products in a `lax.fori_loop`: once
    `r.r <= residual_tol` the iterate is frozen by a select, not a branch, so the cost is
    fixed and identical for every member of a `vmap` (a seed or hyper-parameter sweep).
    Reports the residual norm and the iterations used (see the README for why not
    `jax.scipy.sparse.linalg.cg`, which reports neither).
    """
    zeros = jax.tree.map(jnp.zeros_like, b)
    rr = tree_vdot(b, b)

    def body(_, carry):
        x, r, p, rr, iterations = carry
        ap = matvec(p)
        p_ap = tree_vdot(p, ap)
        # Frozen once converged, or once p.Ap underflows (float32 after ~n iterations):
        # a select, and the guarded divisions never see 0.
        active = (rr > residual_tol) & (p_ap > 0.0)
        alpha = jnp.where(active, rr / jnp.where(active, p_ap, 1.0), 0.0)
        x = tree_axpy(alpha, p, x)
        r = tree_axpy(-alpha, ap, r)
        rr_new = jnp.where(active, tree_vdot(r, r), rr)
        beta = rr_new / jnp.where(active, rr, 1.0)
        p = tree_where(active, tree_axpy(beta, p, r), p)
        return x, r, p, rr_new, iterations + active.astype(jnp.int32)

    x, _, _, rr, iterations = jax.lax.fori_loop(0, num_iters, body, (zeros, b, b, rr, jnp.zeros((), jnp.int32)))
    return CGResult(x, jnp.sqrt(rr), iterations)


# --- the natural step ------------------------------------------------------------------------------


def natural_step(direction: Params, gradient: Params, max_kl: Array, eps: float = 1e-12) -> tuple[Params, Array]:
    """`sqrt(2 delta / g^T F^-1 g) F^-1 g`: the natural gradient step to the KL radius `delta`.

    `direction` is `F^-1 g` (from `conjugate_gradient`); the quadratic model of the KL,
    `1/2 s^T F s`, equals `delta` at this step (Schulman et al., 2015, appendix C). Returns
    the step and `g^T F^-1 g`; a zero gradient gives a zero step, not nan.
    """
    g_f_inv_g = tree_vdot(gradient, direction)
    scale = jnp.sqrt(2.0 * max_kl / jnp.maximum(g_f_inv_g, eps))
    return jax.tree.map(lambda d: scale * d, direction), g_f_inv_g


# --- the KL-checked backtracking line search -------------------------------------------------------


class LineSearchResult(NamedTuple):
    params: Params  # accepted parameters, or exactly the old ones if no step was accepted
    accepted: Array  # bool
    steps: Array  # int32: candidate steps evaluated (1 = the full step was accepted)
    fraction: Array  # float32: accepted fraction of the full step (0 if none)
    kl: Array  # mean KL of the returned parameters (0 if none accepted)
    improvement: Array  # surrogate(returned) - surrogate(old) (0 if none accepted)


def backtracking_line_search(
    surrogate_fn: Callable[[Params], Array],
    kl_fn: Callable[[Params], Array],
    params: Params,
    full_step: Params,
    max_kl: Array,
    num_backtracks: int = 10,
    backtrack_coef: Array = 0.5,
) -> LineSearchResult:
    """The largest `theta + c^k s`, `k = 0..num_backtracks-1`, with `kl_fn <= max_kl` and
    `surrogate_fn` strictly above its value at `theta`; else `theta` itself.

    Schulman et al. (2015), appendix C: shrink the natural step until the measured (not the
    quadratic-model) KL is within the trust region and the surrogate improves. A
    `lax.while_loop` stops at the first accepted step; under `vmap` it runs until every
    member is done and each keeps its own first acceptance. The result is selected with
    `jnp.where`, never a branch, so "no step" returns the old parameters bit for bit.
    """
    base = surrogate_fn(params)

    def candidate(k):
        fraction = backtrack_coef ** k.astype(jnp.float32)
        new = tree_axpy(fraction, full_step, params)
        kl, improvement = kl_fn(new), surrogate_fn(new) - base
        ok = (kl <= max_kl) & (improvement > 0.0) & jnp.isfinite(kl) & jnp.isfinite(improvement)
        return ok, fraction, kl, improvement

    def cond(carry):
        k, accepted, *_ = carry
        return (k < num_backtracks) & ~accepted

    def body(carry):
        k, _, _, _, _ = carry
        ok, fraction, kl, improvement = candidate(k)
        return k + 1, ok, fraction, kl, improvement

    zero = jnp.zeros((), jnp.float32)
    init = (jnp.zeros((), jnp.int32), jnp.zeros((), bool), zero, zero, zero)
    steps, accepted, fraction, kl, improvement = jax.lax.while_loop(cond, body, init)
    fraction = jnp.where(accepted, fraction, 0.0)
    new_params = tree_where(accepted, tree_axpy(fraction, full_step, params), params)
    return LineSearchResult(
        new_params, accepted, steps, fraction, jnp.where(accepted, kl, 0.0), jnp.where(accepted, improvement, 0.0)
    )


# --- the Lagrangian view ---------------------------------------------------------------------------


def dual_update(multiplier: Array, kl: Array, max_kl: Array, step_size: Array) -> Array:
    """Projected dual ascent on the KL constraint: `lambda <- max(0, lambda + alpha (KL - delta))`.

    The multiplier of `max L(theta) - lambda (KL_bar(theta) - delta)` grows while the
    constraint is violated and shrinks (never below 0) while it is slack (Boyd &
    Vandenberghe, 2004, sec. 5.5; PPO's adaptive KL penalty, Schulman et al., 2017, sec. 4).
    """
    return jnp.maximum(0.0, multiplier + step_size * (kl - max_kl))
