"""Losses and diagnostics in `pgjax.kernels.losses` vs NumPy float64 implementations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref  # tests/ is on sys.path (conftest.py)
from scipy import special

from pgjax.kernels import distributions as D
from pgjax.kernels import losses as L

CLIP = 0.2


@pytest.fixture(scope="module")
def ppo_batch():
    rng = np.random.default_rng(0)
    n = 256
    old = rng.normal(size=n).astype(np.float32) - 1.0
    log_ratio = rng.uniform(-0.5, 0.5, size=n)
    new = (old + log_ratio).astype(np.float32)
    adv = rng.normal(size=n).astype(np.float32)
    return new, old, adv


def np_ppo(new, old, adv, eps):
    new, old, adv = (np.asarray(x, np.float64) for x in (new, old, adv))
    r = np.exp(new - old)
    return -np.mean(np.minimum(r * adv, np.clip(r, 1 - eps, 1 + eps) * adv))


def test_ppo_clip_loss_value_and_metrics(ppo_batch):
    new, old, adv = ppo_batch
    with jax.numpy_rank_promotion("raise"):
        loss, metrics = jax.jit(L.ppo_clip_loss)(new, old, adv, CLIP)
    np.testing.assert_allclose(loss, np_ppo(new, old, adv, CLIP), rtol=1e-5, atol=1e-6)
    assert float(metrics["policy_loss"]) == float(loss)
    log_ratio = np.float64(new) - np.float64(old)
    r = np.exp(log_ratio)
    clip_frac = np.mean(np.abs(r - 1) > CLIP)
    assert 0.1 < clip_frac < 0.9  # the batch exercises both regimes
    assert float(metrics["clip_fraction"]) == pytest.approx(clip_frac, abs=1e-7)
    np.testing.assert_allclose(metrics["approx_kl"], np.mean((r - 1) - log_ratio), rtol=1e-4, atol=1e-7)
    # Identical policies: loss = -mean(A), nothing clipped, zero KL.
    loss0, m0 = L.ppo_clip_loss(old, old, adv, CLIP)
    assert float(loss0) == pytest.approx(-np.mean(np.float64(adv)), abs=1e-6)
    assert float(m0["clip_fraction"]) == 0.0 and float(m0["approx_kl"]) == 0.0


def test_ppo_clip_loss_gradient(ppo_batch):
    new, old, adv = ppo_batch
    grad = jax.grad(lambda lp: L.ppo_clip_loss(lp, old, adv, CLIP)[0])(jnp.asarray(new))
    r = np.exp(np.float64(new) - np.float64(old))
    a = np.float64(adv)
    clipped_active = ((r > 1 + CLIP) & (a > 0)) | ((r < 1 - CLIP) & (a < 0))
    assert clipped_active.sum() > 10 and (~clipped_active).sum() > 10
    # d/dlogp of -mean(r A) is -r A / N (r = exp(logp - logp_old)); zero where clipping binds.
    expected = np.where(clipped_active, 0.0, -r * a / len(a))
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-9)
    assert np.all(np.asarray(grad)[clipped_active] == 0.0)
    # Ratio outside the range but on the side that does not bind keeps its gradient.
    unbound_outside = ((r > 1 + CLIP) & (a < 0)) | ((r < 1 - CLIP) & (a > 0))
    assert unbound_outside.any() and np.all(np.asarray(grad)[unbound_outside] != 0.0)
    # Advantages and old log-probs are constants.
    g_adv = jax.grad(lambda A: L.ppo_clip_loss(new, old, A, CLIP)[0])(jnp.asarray(adv))
    np.testing.assert_array_equal(g_adv, 0.0)


# --- SPO's penalised surrogate and the ratio-deviation diagnostic -----------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_spo_loss_and_ratio_deviation_vs_numpy(ppo_batch, jit):
    new, old, adv = ppo_batch
    spo_fn = jax.jit(L.spo_loss) if jit else L.spo_loss
    with jax.numpy_rank_promotion("raise"):
        loss, metrics = spo_fn(new, old, adv, CLIP)
    np.testing.assert_allclose(loss, ref.spo_loss(new, old, adv, CLIP), rtol=1e-5, atol=1e-6)
    assert float(metrics["policy_loss"]) == float(loss)
    expected = ref.ratio_deviation(np.float64(new) - np.float64(old), CLIP)
    assert 0.1 < expected["ratio_outside_frac"] < 0.9  # the batch exercises both regimes
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(metrics["approx_kl"], L.approx_kl(new - old), rtol=1e-6)
    # PPO reports the same diagnostic, and its clip fraction is the outside fraction.
    _, ppo_metrics = L.ppo_clip_loss(new, old, adv, CLIP)
    for name in expected:
        assert float(ppo_metrics[name]) == float(metrics[name]), name
    assert float(ppo_metrics["clip_fraction"]) == float(metrics["ratio_outside_frac"])
    # Identical policies: no penalty, loss = -mean(A), nothing outside.
    loss0, m0 = spo_fn(old, old, adv, CLIP)
    assert float(loss0) == pytest.approx(-np.mean(np.float64(adv)), abs=1e-6)
    assert all(float(m0[name]) == 0.0 for name in expected)


@pytest.mark.parametrize("jit", [False, True])
def test_ratio_deviation_vs_numpy_on_any_shape(jit):
    rng = np.random.default_rng(7)
    log_ratios = rng.normal(scale=0.3, size=(16, 8, 3)).astype(np.float32)  # [T, B, ...]
    fn = jax.jit(L.ratio_deviation) if jit else L.ratio_deviation
    for eps in (0.05, 0.2, 0.5):
        metrics = fn(log_ratios, eps)
        for name, value in ref.ratio_deviation(log_ratios, eps).items():
            np.testing.assert_allclose(metrics[name], value, rtol=1e-5, atol=1e-7, err_msg=f"{name} eps={eps}")
    wide = fn(log_ratios, 1e3)  # every ratio inside: nothing outside, no excess, the max unchanged
    assert float(wide["ratio_outside_frac"]) == 0.0 and float(wide["ratio_excess_mean"]) == 0.0
    assert float(wide["ratio_deviation_max"]) == pytest.approx(np.abs(np.expm1(np.float64(log_ratios))).max(), rel=1e-5)
    # A diagnostic: no gradient flows through it.
    g = jax.grad(lambda x: sum(fn(x, 0.2).values()))(jnp.asarray(log_ratios))
    np.testing.assert_array_equal(g, 0.0)


def test_spo_loss_gradient(ppo_batch):
    """d/dlog pi_i of -mean(r A - |A| (r - 1)^2 / (2 eps)) is -(A_i - |A_i| (r_i - 1) / eps) r_i / N."""
    new, old, adv = ppo_batch
    n = len(new)
    r, a = np.exp(np.float64(new) - np.float64(old)), np.float64(adv)
    grad = jax.grad(lambda lp: L.spo_loss(lp, old, adv, CLIP)[0])(jnp.asarray(new))
    np.testing.assert_allclose(grad, -(a - np.abs(a) * (r - 1) / CLIP) * r / n, rtol=1e-4, atol=1e-9)
    # The penalty's own gradient, (|A| (r - 1) / eps) r / N, has the sign of r - 1: it always
    # pulls the ratio back towards 1 ...
    surrogate = jax.grad(lambda lp: -L.importance_surrogate(lp, old, adv))(jnp.asarray(new))
    penalty = np.asarray(grad, np.float64) - np.asarray(surrogate, np.float64)
    np.testing.assert_allclose(penalty, np.abs(a) * (r - 1) * r / (CLIP * n), rtol=1e-3, atol=1e-8)
    assert np.all(np.sign(penalty) == np.sign(r - 1))
    # ... and is zero at r = 1: the first step from the rollout's policy is the policy gradient.
    at_old = jax.grad(lambda lp: L.spo_loss(lp, old, adv, CLIP)[0])(jnp.asarray(old))
    np.testing.assert_array_equal(at_old, -np.asarray(adv) / n)
    # Past the boundary in the advantage's direction, (r - 1) sign(A) > eps, the loss gradient
    # has the sign of A (a descent step moves r back), where PPO's clipped gradient is zero;
    # short of it, the sign of -A (a descent step moves r out towards the boundary).
    past = (r - 1) * np.sign(a) > CLIP
    assert past.sum() > 10 and (~past).sum() > 10
    assert np.all(np.sign(np.asarray(grad)[past]) == np.sign(a[past]))
    assert np.all(np.sign(np.asarray(grad)[~past]) == -np.sign(a[~past]))
    ppo_grad = jax.grad(lambda lp: L.ppo_clip_loss(lp, old, adv, CLIP)[0])(jnp.asarray(new))
    assert np.all(np.asarray(ppo_grad)[past] == 0.0)
    # On the boundary, r = 1 + sign(A) eps, the objective is at its maximum: zero gradient.
    boundary = jnp.asarray(old + np.log1p(np.sign(a) * CLIP), jnp.float32)
    g_b = jax.grad(lambda lp: L.spo_loss(lp, old, adv, CLIP)[0])(boundary)
    np.testing.assert_allclose(g_b, 0.0, atol=1e-7)
    # Advantages are constants.
    g_adv = jax.grad(lambda A: L.spo_loss(new, old, A, CLIP)[0])(jnp.asarray(adv))
    np.testing.assert_array_equal(g_adv, 0.0)


def test_approx_kl_is_kl_old_new_estimator():
    """mean((r - 1) - log r) with actions from the old policy estimates KL(old || new)."""
    rng = np.random.default_rng(1)
    logits_old = np.array([0.3, -1.0, 1.2, 0.0, -0.4])
    logits_new = np.array([0.0, -0.2, 0.9, 0.5, -1.0])
    lo, ln = logits_old - special.logsumexp(logits_old), logits_new - special.logsumexp(logits_new)
    n = 20000
    actions = rng.choice(5, size=n, p=np.exp(lo))
    log_ratio = (ln - lo)[actions]
    est = float(L.approx_kl(jnp.asarray(log_ratio, jnp.float32)))
    np.testing.assert_allclose(est, np.mean(np.expm1(log_ratio) - log_ratio), rtol=1e-4)
    kl_old_new = float(np.sum(np.exp(lo) * (lo - ln)))
    kl_new_old = float(np.sum(np.exp(ln) * (ln - lo)))
    se = np.std(np.expm1(log_ratio) - log_ratio) / np.sqrt(n)
    assert abs(est - kl_old_new) < 5 * se
    assert abs(kl_old_new - kl_new_old) > 10 * se  # the direction is distinguishable
    np.testing.assert_allclose(kl_old_new, D.categorical_kl(logits_old, logits_new), rtol=1e-5)


def test_value_loss_unclipped_and_clipped():
    rng = np.random.default_rng(2)
    n = 200
    values = rng.normal(size=n).astype(np.float32)
    old_values = (values + rng.uniform(-0.6, 0.6, size=n)).astype(np.float32)
    targets = rng.normal(size=n).astype(np.float32)
    v, vo, y = np.float64(values), np.float64(old_values), np.float64(targets)
    loss, m = L.value_loss(values, targets)
    np.testing.assert_allclose(loss, 0.5 * np.mean((v - y) ** 2), rtol=1e-5)
    assert float(m["value_loss"]) == float(loss)
    eps = 0.2
    clipped_v = vo + np.clip(v - vo, -eps, eps)
    expected = 0.5 * np.mean(np.maximum((v - y) ** 2, (clipped_v - y) ** 2))
    loss_c, _ = jax.jit(L.value_loss)(values, targets, old_values, eps)
    np.testing.assert_allclose(loss_c, expected, rtol=1e-5)
    assert float(loss_c) > float(loss)  # clipping binds somewhere in this batch
    # Huge eps: the clipped form equals the plain one.
    np.testing.assert_allclose(L.value_loss(values, targets, old_values, 1e6)[0], loss, rtol=1e-6)
    # Gradient: (V - y)/N unclipped; targets are constants.
    g = jax.grad(lambda vv: L.value_loss(vv, targets)[0])(jnp.asarray(values))
    np.testing.assert_allclose(g, (v - y) / n, rtol=1e-5, atol=1e-8)
    g_t = jax.grad(lambda t: L.value_loss(values, t)[0])(jnp.asarray(targets))
    np.testing.assert_array_equal(g_t, 0.0)
    with pytest.raises(ValueError):
        L.value_loss(values, targets, None, eps)


def test_explained_variance():
    rng = np.random.default_rng(3)
    y = rng.normal(size=500).astype(np.float32)
    pred = (y + 0.5 * rng.normal(size=500)).astype(np.float32)
    y64, p64 = np.float64(y), np.float64(pred)
    np.testing.assert_allclose(L.explained_variance(pred, y), 1 - np.var(y64 - p64) / np.var(y64), rtol=1e-5)
    assert float(L.explained_variance(y, y)) == pytest.approx(1.0, abs=1e-6)
    const = np.full_like(y, y.mean())
    assert float(L.explained_variance(const, y)) == pytest.approx(0.0, abs=1e-5)
    # Worse than a constant: negative.
    assert float(L.explained_variance(-y, y)) == pytest.approx(-3.0, abs=1e-5)
    # Constant targets with exactly zero float32 variance: nan (and see the test below).
    for c in (0.0, 1.0, -2.0):
        assert np.isnan(float(L.explained_variance(pred[:256], np.full(256, c, np.float32))))


def test_explained_variance_nan_for_generic_constant_targets():
    # jnp.var of a constant float32 array can be a rounding residue, not 0 (bug found here).
    for n, c in [(8, 0.1), (1000, 3.0), (777, -0.3)]:
        y = jnp.full((n,), c, jnp.float32)
        assert np.isnan(float(L.explained_variance(jnp.full((n,), 0.3, jnp.float32), y)))


def test_policy_gradient_loss_softmax_gradient():
    """Tiny tabular softmax policy: grad of -mean(A log pi(a|s)) is -mean(A (onehot(a) - pi(s)))."""
    rng = np.random.default_rng(4)
    S, K, N = 3, 4, 64
    theta = rng.normal(size=(S, K)).astype(np.float32)
    states = rng.integers(0, S, size=N)
    actions = rng.integers(0, K, size=N)
    adv = rng.normal(size=N).astype(np.float32)

    def loss_fn(th):
        logp = jax.nn.log_softmax(th[states], axis=-1)[np.arange(N), actions]
        return L.policy_gradient_loss(logp, jnp.asarray(adv))[0]

    loss, grad = jax.value_and_grad(loss_fn)(jnp.asarray(theta))
    th64 = np.float64(theta)
    pi = np.exp(th64 - special.logsumexp(th64, axis=-1, keepdims=True))
    expected_grad = np.zeros((S, K))
    for i in range(N):
        onehot = np.eye(K)[actions[i]]
        expected_grad[states[i]] -= adv[i] * (onehot - pi[states[i]]) / N
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss, -np.mean(adv * np.log(pi[states, actions])), rtol=1e-5)
    # Gradient wrt log-probs directly: -A / N; advantages are constants.
    logp = np.log(pi[states, actions]).astype(np.float32)
    g_lp, g_a = jax.grad(lambda lp, a: L.policy_gradient_loss(lp, a)[0], argnums=(0, 1))(
        jnp.asarray(logp), jnp.asarray(adv)
    )
    np.testing.assert_allclose(g_lp, -np.float64(adv) / N, rtol=1e-6)
    np.testing.assert_array_equal(g_a, 0.0)


def test_normalize_advantages():
    rng = np.random.default_rng(5)
    a = (3.0 + 7.0 * rng.normal(size=(16, 8))).astype(np.float32)
    out = np.asarray(L.normalize_advantages(a), np.float64)
    assert out.shape == a.shape
    assert abs(out.mean()) < 1e-6
    assert out.std() == pytest.approx(1.0, abs=1e-5)
    a64 = np.float64(a)
    np.testing.assert_allclose(out, (a64 - a64.mean()) / (a64.std() + 1e-8), rtol=1e-5, atol=1e-5)
    # Constant advantages: finite zeros thanks to eps.
    np.testing.assert_array_equal(L.normalize_advantages(jnp.zeros(10)), 0.0)


def test_entropy_bonus():
    e = np.array([0.5, 1.5, 2.0], np.float32)
    val, m = L.entropy_bonus(e)
    assert float(val) == pytest.approx(4.0 / 3.0)
    assert float(m["entropy"]) == float(val)


# --- REINFORCE's per-episode loss and the trust-region surrogates ----------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_episode_policy_loss_value_and_gradient(jit):
    """L = -(1/N) sum_i sum_t m log pi psi: dL/dlog pi = -m psi / N, and psi is a constant."""
    rng = np.random.default_rng(6)
    T, N = 7, 4
    lengths = np.array([7, 2, 5, 1])
    mask = (np.arange(T)[:, None] < lengths[None, :]).astype(np.float32)
    log_probs = rng.normal(size=(T, N)).astype(np.float32) - 1.0
    psi = rng.normal(size=(T, N)).astype(np.float32)
    fn = jax.jit(L.episode_policy_loss) if jit else L.episode_policy_loss
    loss, metrics = fn(log_probs, psi, mask)
    np.testing.assert_allclose(loss, ref.episode_policy_loss(log_probs, psi, lengths), rtol=1e-6)
    assert float(metrics["policy_loss"]) == float(loss)
    g_lp, g_psi = jax.grad(lambda lp, p: fn(lp, p, mask)[0], argnums=(0, 1))(jnp.asarray(log_probs), jnp.asarray(psi))
    np.testing.assert_allclose(g_lp, -mask * psi / N, rtol=1e-6)
    np.testing.assert_array_equal(g_psi, 0.0)


@pytest.mark.parametrize("jit", [False, True])
def test_importance_surrogate_and_kl_penalty_loss_vs_numpy(ppo_batch, jit):
    new, old, adv = ppo_batch
    kls = np.abs(new - old).astype(np.float32) ** 2  # any non-negative per-state numbers
    surrogate_fn = jax.jit(L.importance_surrogate) if jit else L.importance_surrogate
    penalty_fn = jax.jit(L.kl_penalty_loss) if jit else L.kl_penalty_loss
    np.testing.assert_allclose(surrogate_fn(new, old, adv), ref.importance_surrogate(new, old, adv), rtol=1e-5)
    for kl_coef, max_kl in [(0.0, 0.01), (3.0, 0.01), (3.0, 1.0)]:
        loss, metrics = penalty_fn(new, old, adv, kls, kl_coef, max_kl)
        np.testing.assert_allclose(loss, ref.kl_penalty_loss(new, old, adv, kls, kl_coef, max_kl), rtol=1e-5, atol=1e-6)
        assert float(metrics["policy_loss"]) == float(loss)
        np.testing.assert_allclose(metrics["surrogate"], ref.importance_surrogate(new, old, adv), rtol=1e-5)
        np.testing.assert_allclose(metrics["approx_kl"], L.approx_kl(new - old), rtol=1e-6)


def test_importance_surrogate_gradient_at_the_old_policy_is_the_policy_gradient(ppo_batch):
    """At pi = pi_old, grad mean(r A) = grad mean(A log pi) (Kakade & Langford, 2002); away from it,
    d/dlog pi_i = r_i A_i / N; the advantages are constants."""
    _, old, adv = ppo_batch
    n = len(old)
    grad_surrogate = jax.grad(lambda lp: L.importance_surrogate(lp, jnp.asarray(old), jnp.asarray(adv)))(jnp.asarray(old))
    grad_pg = jax.grad(lambda lp: -L.policy_gradient_loss(lp, jnp.asarray(adv))[0])(jnp.asarray(old))
    np.testing.assert_allclose(grad_surrogate, grad_pg, rtol=1e-6)
    new = old + 0.3
    g_lp, g_adv = jax.grad(L.importance_surrogate, argnums=(0, 2))(jnp.asarray(new), jnp.asarray(old), jnp.asarray(adv))
    np.testing.assert_allclose(g_lp, np.exp(np.float64(new) - old) * adv / n, rtol=1e-5)
    np.testing.assert_array_equal(g_adv, 0.0)
