"""Trust-region kernels against dense references: the Fisher-vector product against the
explicit Hessian of the KL (and the score outer-product Fisher), CG against
`numpy.linalg.solve`, the natural direction against a dense `F^-1 g`, the line search's
guarantees and the dual update. Every kernel runs with and without `jax.jit`.
"""

import functools
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from pgjax.algos import npg
from pgjax.kernels import trust_region as tr
from pgjax.networks.heads import CategoricalActor, GaussianActor

VARIANTS = {"eager": lambda f: f, "jit": jax.jit}


@pytest.fixture(params=list(VARIANTS))
def variant(request):
    return VARIANTS[request.param]


class TinyPolicy(NamedTuple):
    apply: callable
    params: dict  # a flax pytree: {"params": {"MLP_0": ..., "Dense_0": ..., ("log_std")}}
    obs: jax.Array


@functools.cache
def _tiny_policy(kind: str, seed: int = 0) -> TinyPolicy:
    """A policy small enough for a dense Hessian: obs dim 3, one hidden layer of 4."""
    obs = jax.random.normal(jax.random.PRNGKey(100 + seed), (16, 3))
    if kind == "categorical":
        net = CategoricalActor(num_actions=3, hidden_sizes=(4,))
    else:
        net = GaussianActor(action_dim=2, hidden_sizes=(4,), init_log_std=-0.3)
    params = net.init(jax.random.PRNGKey(seed), obs)
    # Move away from the near-uniform initial policy (output gain 0.01) so F is not tiny.
    params = jax.tree.map(lambda p: p + 0.5 * jax.random.normal(jax.random.PRNGKey(7), p.shape), params)
    return TinyPolicy(net.apply, params, obs)


def _dense_kl_hessian(policy: TinyPolicy) -> np.ndarray:
    """The explicit Fisher: Hessian of `theta -> KL_bar(theta_old, theta)` at theta_old."""
    flat, unravel = ravel_pytree(policy.params)
    kl = lambda theta: tr.mean_kl(policy.apply, policy.params, unravel(theta), policy.obs)
    return np.asarray(jax.jit(jax.hessian(kl))(flat), np.float64)


def _score_fisher(policy: TinyPolicy) -> np.ndarray:
    """`F = mean_s sum_a pi(a|s) grad log pi(a|s) grad log pi(a|s)^T` (categorical), in float64.

    An independent definition of the Fisher: no KL, no second derivative.
    """
    flat, unravel = ravel_pytree(policy.params)

    def log_probs(theta):
        return jax.nn.log_softmax(policy.apply(unravel(theta), policy.obs).logits, axis=-1)  # [N, K]

    scores = np.asarray(jax.jit(jax.jacobian(log_probs))(flat), np.float64)  # [N, K, P]
    probs = np.exp(np.asarray(log_probs(flat), np.float64))  # [N, K]
    fisher = np.einsum("nk,nkp,nkq->pq", probs, scores, scores)
    return fisher / policy.obs.shape[0]


def _random_like(params, seed):
    flat, unravel = ravel_pytree(params)
    return unravel(jax.random.normal(jax.random.PRNGKey(seed), flat.shape))


# --- KL and the Fisher-vector product ------------------------------------------------------------


@pytest.mark.parametrize("kind, variant", [("categorical", "eager"), ("categorical", "jit"), ("gaussian", "jit")])
def test_kl_and_its_gradient_vanish_at_the_old_parameters(kind, variant):
    policy, variant = _tiny_policy(kind), VARIANTS[variant]
    kl_fn = functools.partial(tr.mean_kl, policy.apply, policy.params, obs=policy.obs)
    value, grads = variant(jax.value_and_grad(kl_fn))(policy.params)
    # Zero up to float32 rounding (two softmaxes of the same logits: ~6e-9 here) ...
    assert abs(float(value)) <= 1e-7
    assert max(np.abs(g).max() for g in jax.tree.leaves(grads)) <= 1e-6
    # ... while away from theta_old both the KL and its gradient are clearly positive.
    moved = jax.tree.map(lambda p, v: p + 0.1 * v, policy.params, _random_like(policy.params, 1))
    value, grads = variant(jax.value_and_grad(kl_fn))(moved)
    assert float(value) > 1e-3 and max(np.abs(g).max() for g in jax.tree.leaves(grads)) > 1e-2


@pytest.mark.parametrize("kind, variant", [("categorical", "eager"), ("categorical", "jit"), ("gaussian", "jit")])
def test_fisher_vector_product_equals_the_dense_kl_hessian_times_a_vector(kind, variant):
    policy, variant = _tiny_policy(kind), VARIANTS[variant]
    hessian = _dense_kl_hessian(policy)
    vector = _random_like(policy.params, 2)
    kl_fn = functools.partial(tr.mean_kl, policy.apply, policy.params, obs=policy.obs)
    fvp_fn = variant(functools.partial(tr.fisher_vector_product, kl_fn))
    flat_v = np.asarray(ravel_pytree(vector)[0], np.float64)
    for damping in (0.0, 0.1):
        fvp = fvp_fn(policy.params, vector, damping)
        expected = (hessian + damping * np.eye(len(flat_v))) @ flat_v
        got = np.asarray(ravel_pytree(fvp)[0], np.float64)
        assert jax.tree.structure(fvp) == jax.tree.structure(policy.params)  # same pytree back
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_the_kl_hessian_is_the_score_outer_product_fisher():
    # The identity the FVP relies on: Hessian of KL at theta_old = E[score score^T].
    policy = _tiny_policy("categorical")
    hessian, fisher = _dense_kl_hessian(policy), _score_fisher(policy)
    np.testing.assert_allclose(hessian, fisher, rtol=1e-4, atol=1e-6 * np.abs(fisher).max())


def test_subsampled_fisher_vector_product_uses_a_subset_of_the_rows():
    policy = _tiny_policy("categorical")
    key = jax.random.PRNGKey(5)
    rows = tr.subsample(key, policy.obs, 6)
    assert rows.shape == (6, 3)
    # Rows come from the batch, without repetition.
    matches = (np.asarray(rows)[:, None, :] == np.asarray(policy.obs)[None]).all(-1)
    assert (matches.sum(1) == 1).all() and len(set(matches.argmax(1))) == 6
    assert tr.subsample(key, policy.obs, 16) is policy.obs  # the whole batch: untouched
    # The subsampled product is the dense Hessian of the KL over exactly those rows.
    sub = policy._replace(obs=rows)
    vector = _random_like(policy.params, 3)
    kl_fn = functools.partial(tr.mean_kl, policy.apply, policy.params, obs=rows)
    got = ravel_pytree(jax.jit(functools.partial(tr.fisher_vector_product, kl_fn))(policy.params, vector, 0.0))[0]
    expected = _dense_kl_hessian(sub) @ np.asarray(ravel_pytree(vector)[0], np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


# --- conjugate gradient ----------------------------------------------------------------------------


def _spd_system(n=12, condition=20.0, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.geomspace(1.0, condition, n)) @ q.T
    return a, rng.normal(size=n)


def _as_tree(vector):
    """Split a vector into a two-leaf pytree of different shapes (CG must not care)."""
    return {"w": vector[:8].reshape(2, 4), "b": vector[8:]}


def _from_tree(tree):
    return jnp.concatenate([tree["w"].reshape(-1), tree["b"]])


def test_conjugate_gradient_matches_a_dense_solve_on_pytrees(variant):
    a, b = _spd_system()
    a32 = jnp.asarray(a, jnp.float32)
    matvec = lambda x: _as_tree(a32 @ _from_tree(x))

    def solve(b_tree):
        return tr.conjugate_gradient(matvec, b_tree, num_iters=12, residual_tol=0.0)

    result = variant(solve)(_as_tree(jnp.asarray(b, jnp.float32)))
    expected = np.linalg.solve(a, b)
    np.testing.assert_allclose(_from_tree(result.x), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # The reported residual is ||b - A x|| (to float32 rounding), and small.
    true_residual = np.linalg.norm(b - a @ np.asarray(_from_tree(result.x), np.float64))
    assert float(result.residual_norm) == pytest.approx(true_residual, abs=1e-4)
    assert float(result.residual_norm) < 1e-3 * np.linalg.norm(b)
    assert int(result.iterations) == 12
    # jax.scipy's CG on the same operator agrees (it reports no residual or iteration count).
    scipy_x, _ = jax.scipy.sparse.linalg.cg(matvec, _as_tree(jnp.asarray(b, jnp.float32)), tol=1e-10, maxiter=12)
    np.testing.assert_allclose(_from_tree(scipy_x), _from_tree(result.x), rtol=1e-4, atol=1e-5)


def test_conjugate_gradient_iteration_count_and_tolerance():
    a, b = _spd_system()
    matvec = functools.partial(jnp.matmul, jnp.asarray(a, jnp.float32))
    b32 = jnp.asarray(b, jnp.float32)
    # Zero iterations: x = 0, residual = ||b||.
    none = tr.conjugate_gradient(matvec, b32, num_iters=0)
    assert np.all(np.asarray(none.x) == 0.0) and float(none.residual_norm) == pytest.approx(np.linalg.norm(b), rel=1e-6)
    # Fewer iterations leave a larger residual (CG decreases the A-norm error monotonically).
    residuals = [float(tr.conjugate_gradient(matvec, b32, k).residual_norm) for k in (2, 5, 12)]
    assert residuals[0] > residuals[2] and residuals[1] > residuals[2]
    # A loose tolerance stops the updates early; the iterate is then frozen, not changed.
    loose = tr.conjugate_gradient(matvec, b32, num_iters=12, residual_tol=1e-2 * float(b @ b))
    assert 0 < int(loose.iterations) < 12
    frozen = tr.conjugate_gradient(matvec, b32, num_iters=int(loose.iterations))
    np.testing.assert_array_equal(loose.x, frozen.x)
    # Under vmap, each right-hand side gets its own iterate and residual.
    batch = jnp.stack([b32, 2.0 * b32, jnp.zeros_like(b32)])
    solved = jax.vmap(functools.partial(tr.conjugate_gradient, matvec, num_iters=12))(batch)
    np.testing.assert_allclose(solved.x[1], 2.0 * solved.x[0], rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(solved.x[2]) == 0.0) and int(solved.iterations[2]) == 0


# --- the natural step and NPG's direction --------------------------------------------------------


class _Batch(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    advantage: jax.Array


def test_npg_direction_equals_the_dense_inverse_fisher_times_the_gradient():
    # jit only: the kernels it chains are checked eagerly above.
    policy = _tiny_policy("categorical")
    dist = policy.apply(policy.params, policy.obs)
    actions = dist.sample(jax.random.PRNGKey(9))
    advantages = jax.random.normal(jax.random.PRNGKey(10), actions.shape)
    batch = _Batch(policy.obs, actions, dist.log_prob(actions), advantages)
    num_params = ravel_pytree(policy.params)[0].size
    # Twice as many CG iterations as parameters and a tolerance below float32 reach: CG
    # must keep the converged iterate, not break down once p.Ap underflows.
    config = npg.NPGConfig(cg_iters=2 * num_params, hidden_sizes=(4,))
    hparams = npg.NPGHParams(max_kl=0.02, damping=0.05, cg_residual_tol=1e-30)
    actor = SimpleNamespace(actor=SimpleNamespace(apply=policy.apply))  # npg only calls networks.actor.apply

    def direction(params):
        step, _, metrics = npg.natural_gradient_step(config, actor, hparams, params, batch, jax.random.PRNGKey(0))
        return step, metrics

    step, metrics = jax.jit(direction)(policy.params)

    # Dense: g = grad of mean(r A) at theta_old = mean(grad log pi(a|s) A); x = (F + d I)^-1 g.
    flat, unravel = ravel_pytree(policy.params)
    surrogate = lambda theta: npg.surrogate(actor, batch, unravel(theta))
    g = np.asarray(jax.grad(surrogate)(flat), np.float64)
    fisher = _dense_kl_hessian(policy) + hparams.damping * np.eye(num_params)
    x = np.linalg.solve(fisher, g)
    expected = np.sqrt(2 * hparams.max_kl / (g @ x)) * x
    got = np.asarray(ravel_pytree(step)[0], np.float64)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())
    # The quadratic model of the KL is exactly delta at the natural step.
    assert 0.5 * got @ fisher @ got == pytest.approx(hparams.max_kl, rel=2e-3)
    assert float(metrics["step_norm"]) == pytest.approx(np.linalg.norm(expected), rel=2e-3)
    assert float(metrics["g_f_inv_g"]) == pytest.approx(g @ x, rel=2e-3)


def test_natural_step_of_a_zero_gradient_is_zero_not_nan():
    zero = {"a": jnp.zeros(3)}
    step, gfg = tr.natural_step(zero, zero, 0.01)
    assert np.all(np.asarray(step["a"]) == 0.0) and float(gfg) == 0.0


# --- the line search ---------------------------------------------------------------------------------


def _line_search_problem(policy, seed):
    """A surrogate that improves along `direction` to first order, and the policy's KL."""
    direction = _random_like(policy.params, seed)
    kl_fn = functools.partial(tr.mean_kl, policy.apply, policy.params, obs=policy.obs)
    surrogate = lambda p: tr.tree_vdot(direction, p)
    return direction, kl_fn, surrogate


@pytest.mark.parametrize("seed, variant", [(0, "eager"), (0, "jit"), (1, "jit"), (2, "jit")])
def test_line_search_never_exceeds_the_kl_radius_and_takes_the_largest_fraction(seed, variant):
    policy = _tiny_policy("categorical" if seed % 2 else "gaussian", seed)
    direction, kl_fn, surrogate = _line_search_problem(policy, seed)
    search = VARIANTS[variant](functools.partial(tr.backtracking_line_search, surrogate, kl_fn, num_backtracks=12))
    fractions = 0.6 ** np.arange(12, dtype=np.float32)
    kl_along = jax.jit(jax.vmap(lambda f, step: kl_fn(tr.tree_axpy(f, step, policy.params)), (0, None)))
    for max_kl in (0.003, 0.05):
        for scale in (0.05, 1.0, 5.0):  # from "already inside" to "far outside" the region
            full_step = jax.tree.map(functools.partial(jnp.multiply, scale), direction)
            result = search(policy.params, full_step, max_kl, backtrack_coef=0.6)
            measured = float(kl_fn(result.params))
            # The search's KL is computed in another compiled program: a float32 sum of log-prob
            # differences of O(1) terms, so the two agree to about eps * |log pi| ~ 1e-7 absolute
            # (seen: 2e-8 on an AMD EPYC host); the next fraction would change the KL by over 30%.
            assert measured <= max_kl and float(result.kl) == pytest.approx(measured, rel=1e-5, abs=1e-7)
            # Brute force over the same fractions: the first one that passes is the answer.
            passes = list(np.asarray(kl_along(fractions, full_step)) <= max_kl)
            first = passes.index(True) if any(passes) else None
            assert bool(result.accepted) == (first is not None)
            if first is not None:
                assert int(result.steps) == first + 1 and float(result.fraction) == pytest.approx(fractions[first])
                assert float(result.improvement) > 0


def test_line_search_without_improvement_returns_the_old_parameters_exactly(variant):
    policy = _tiny_policy("categorical")
    direction, kl_fn, _ = _line_search_problem(policy, 4)
    # Every move lowers this surrogate: nothing may be accepted.
    never = lambda p: -tr.tree_vdot(*(2 * [jax.tree.map(jnp.subtract, p, policy.params)]))
    small = jax.tree.map(lambda d: 1e-3 * d, direction)  # well inside the KL radius
    result = variant(functools.partial(tr.backtracking_line_search, never, kl_fn))(policy.params, small, 0.05)
    assert not bool(result.accepted) and int(result.steps) == 10
    assert float(result.fraction) == 0.0 and float(result.kl) == 0.0 and float(result.improvement) == 0.0
    for new, old in zip(jax.tree.leaves(result.params), jax.tree.leaves(policy.params)):
        np.testing.assert_array_equal(new, old)


def test_line_search_vmaps_over_the_radius():
    policy = _tiny_policy("categorical")
    direction, kl_fn, surrogate = _line_search_problem(policy, 5)
    search = functools.partial(tr.backtracking_line_search, surrogate, kl_fn, policy.params, direction)
    radii = jnp.asarray([1e-4, 1e-2, 1.0])
    batched = jax.jit(jax.vmap(search))(radii)
    for i, radius in enumerate(radii):
        single = search(radius)
        assert int(batched.steps[i]) == int(single.steps)
        # vmap fuses otherwise: the KL, a mean of O(1) log-prob differences, then agrees to about
        # eps * |log pi| ~ 1e-7 absolute, which for the smallest radius (KL ~ 5e-5) is over
        # 1e-4 relative (seen: 6.5e-9, 1.2e-4 relative, on an AVX-512 AMD EPYC host).
        np.testing.assert_allclose(batched.kl[i], single.kl, rtol=1e-4, atol=1e-7)
    assert np.all(np.asarray(batched.kl) <= np.asarray(radii))
    assert int(batched.steps[0]) > int(batched.steps[2])  # a smaller region backtracks further


# --- the dual update ---------------------------------------------------------------------------------


def test_dual_update_moves_the_multiplier_toward_the_constraint(variant):
    update = variant(tr.dual_update)
    assert float(update(1.0, 0.02, 0.01, 10.0)) == pytest.approx(1.1)  # violated: lambda grows
    assert float(update(1.0, 0.005, 0.01, 10.0)) == pytest.approx(0.95)  # slack: lambda shrinks
    assert float(update(0.02, 0.0, 0.01, 10.0)) == 0.0  # ... but never below zero
    assert float(update(0.0, 0.01, 0.01, 10.0)) == 0.0  # on the boundary: unchanged
    batched = jax.vmap(tr.dual_update, in_axes=(None, 0, None, None))(1.0, jnp.asarray([0.0, 0.01, 0.03]), 0.01, 10.0)
    np.testing.assert_allclose(batched, [0.9, 1.0, 1.2], rtol=1e-6)
