"""Closed-form distribution kernels in `pgjax.kernels.distributions` vs NumPy / SciPy / distrax."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from pgjax.kernels import distributions as D


def np_log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    return logits - special.logsumexp(logits, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def cat_data():
    rng = np.random.default_rng(0)
    logits_p = (2.0 * rng.normal(size=(4, 5, 6))).astype(np.float32)
    logits_q = (2.0 * rng.normal(size=(4, 5, 6))).astype(np.float32)
    actions = rng.integers(0, 6, size=(4, 5))
    return logits_p, logits_q, actions


@pytest.fixture(scope="module")
def gauss_data():
    rng = np.random.default_rng(1)
    n, d = 64, 4
    mean_p = rng.normal(size=(n, d)).astype(np.float32)
    log_std_p = rng.uniform(-1.0, 1.0, size=(n, d)).astype(np.float32)
    mean_q = rng.normal(size=(n, d)).astype(np.float32)
    log_std_q = rng.uniform(-1.0, 1.0, size=(n, d)).astype(np.float32)
    actions = (mean_p + np.exp(log_std_p) * 2.0 * rng.normal(size=(n, d))).astype(np.float32)
    return mean_p, log_std_p, mean_q, log_std_q, actions


# --- categorical ---------------------------------------------------------------------------


def test_categorical_log_prob_entropy_kl_vs_numpy(cat_data):
    logits_p, logits_q, actions = cat_data
    lp = np_log_softmax(logits_p)
    lq = np_log_softmax(logits_q)
    p = np.exp(lp)
    expected_logp = np.take_along_axis(lp, actions[..., None], axis=-1)[..., 0]
    expected_ent = -np.sum(p * lp, axis=-1)
    expected_kl = np.sum(p * (lp - lq), axis=-1)
    with jax.numpy_rank_promotion("raise"):
        logp = D.categorical_log_prob(logits_p, actions)
        ent = D.categorical_entropy(logits_p)
        kl = D.categorical_kl(logits_p, logits_q)
    assert logp.shape == ent.shape == kl.shape == (4, 5)
    np.testing.assert_allclose(logp, expected_logp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ent, expected_ent, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-5, atol=1e-5)
    # Same through the pytree class, and under jit.
    dist_p, dist_q = D.Categorical(jnp.asarray(logits_p)), D.Categorical(jnp.asarray(logits_q))
    np.testing.assert_allclose(jax.jit(lambda d, a: d.log_prob(a))(dist_p, actions), expected_logp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda d: d.entropy())(dist_p), expected_ent, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda a, b: a.kl(b))(dist_p, dist_q), expected_kl, rtol=1e-5, atol=1e-5)


def test_categorical_kl_properties(cat_data):
    logits_p, logits_q, _ = cat_data
    np.testing.assert_allclose(D.categorical_kl(logits_p, logits_p), 0.0, atol=1e-6)
    assert np.all(np.asarray(D.categorical_kl(logits_p, logits_q)) > 0.0)
    # Invariant to a per-row shift of the logits (they are unnormalised).
    shifted = logits_q + np.float32(3.0)
    np.testing.assert_allclose(
        D.categorical_kl(logits_p, shifted), D.categorical_kl(logits_p, logits_q), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("K", [2, 5, 18])
def test_uniform_categorical_entropy_is_log_k(K):
    logits = jnp.full((3, K), 0.7)
    np.testing.assert_allclose(D.categorical_entropy(logits), np.log(K), rtol=1e-6)
    # Any non-uniform distribution has strictly less entropy.
    logits2 = logits.at[:, 0].add(1.0)
    assert np.all(np.asarray(D.categorical_entropy(logits2)) < np.log(K) - 1e-3)


def test_categorical_sample_and_mode():
    logits = jnp.array([[0.0, 1.0, -1.0, 2.0], [3.0, 0.0, 0.0, 0.0]])
    dist = D.Categorical(logits)
    np.testing.assert_array_equal(dist.mode(), [3, 0])
    n = 20000
    samples = D.Categorical(jnp.broadcast_to(logits, (n, 2, 4))).sample(jax.random.PRNGKey(0))
    assert samples.shape == (n, 2) and samples.dtype.kind == "i"
    probs = np.exp(np_log_softmax(logits))
    for row in range(2):
        freq = np.bincount(np.asarray(samples[:, row]), minlength=4) / n
        se = np.sqrt(probs[row] * (1 - probs[row]) / n)
        assert np.all(np.abs(freq - probs[row]) < 5 * se + 1e-12), (freq, probs[row])


# --- diagonal Gaussian ---------------------------------------------------------------------


def test_diag_gaussian_log_prob_vs_scipy(gauss_data):
    mean, log_std, _, _, actions = gauss_data
    with jax.numpy_rank_promotion("raise"):
        logp = np.asarray(D.diag_gaussian_log_prob(mean, log_std, actions), np.float64)
    m, s, a = (np.asarray(x, np.float64) for x in (mean, np.exp(np.float64(log_std)), actions))
    by_norm = stats.norm.logpdf(a, loc=m, scale=s).sum(axis=-1)
    by_mvn = np.array(
        [stats.multivariate_normal(mean=m[i], cov=np.diag(s[i] ** 2)).logpdf(a[i]) for i in range(len(m))]
    )
    np.testing.assert_allclose(by_norm, by_mvn, rtol=1e-10)  # the two references agree
    assert logp.shape == (len(m),)
    err = np.max(np.abs(logp - by_mvn))
    # Measured (float32 kernel vs float64 scipy): max abs error 2.9e-6 for |log p| up to 31,
    # i.e. 1.5e-7 relative.
    assert err < 1e-5, err
    dist = D.DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std))
    np.testing.assert_allclose(dist.log_prob(actions), by_mvn, rtol=1e-5, atol=1e-5)


def test_diag_gaussian_shared_log_std_broadcasts(gauss_data):
    """State-independent log_std `[D]` with a batch of means `[N, D]` (documented to broadcast)."""
    mean, log_std, _, _, actions = gauss_data
    shared = log_std[0]
    dist = D.DiagGaussian(jnp.asarray(mean), jnp.asarray(shared))
    expected = stats.norm.logpdf(
        np.float64(actions), loc=np.float64(mean), scale=np.exp(np.float64(shared))
    ).sum(-1)
    np.testing.assert_allclose(dist.log_prob(actions), expected, rtol=1e-5, atol=1e-5)
    ent = dist.entropy()
    assert ent.shape == (len(mean),)
    np.testing.assert_allclose(ent, stats.norm.entropy(scale=np.exp(np.float64(shared))).sum(), rtol=1e-6)


def test_diag_gaussian_entropy_vs_scipy(gauss_data):
    _, log_std, _, _, _ = gauss_data
    with jax.numpy_rank_promotion("raise"):
        ent = D.diag_gaussian_entropy(log_std)
    s = np.exp(np.float64(log_std))
    expected = np.array([stats.multivariate_normal(cov=np.diag(si**2)).entropy() for si in s])
    np.testing.assert_allclose(ent, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ent, stats.norm.entropy(scale=s).sum(-1), rtol=1e-5, atol=1e-5)


def test_diag_gaussian_kl_closed_form_and_distrax(gauss_data):
    mp, lsp, mq, lsq, _ = gauss_data
    with jax.numpy_rank_promotion("raise"):
        kl = np.asarray(D.diag_gaussian_kl(mp, lsp, mq, lsq), np.float64)
    mp64, mq64 = np.float64(mp), np.float64(mq)
    sp, sq = np.exp(np.float64(lsp)), np.exp(np.float64(lsq))
    closed = np.sum(np.log(sq / sp) + (sp**2 + (mp64 - mq64) ** 2) / (2 * sq**2) - 0.5, axis=-1)
    np.testing.assert_allclose(kl, closed, rtol=1e-5, atol=1e-5)
    ref_distrax = distrax.MultivariateNormalDiag(jnp.asarray(mp), jnp.exp(jnp.asarray(lsp))).kl_divergence(
        distrax.MultivariateNormalDiag(jnp.asarray(mq), jnp.exp(jnp.asarray(lsq)))
    )
    np.testing.assert_allclose(kl, ref_distrax, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(D.diag_gaussian_kl(mp, lsp, mp, lsp), 0.0, atol=1e-6)
    dist_p, dist_q = D.DiagGaussian(jnp.asarray(mp), jnp.asarray(lsp)), D.DiagGaussian(jnp.asarray(mq), jnp.asarray(lsq))
    np.testing.assert_allclose(dist_p.kl(dist_q), closed, rtol=1e-5, atol=1e-5)
    # Asymmetric: KL(p||q) != KL(q||p) in general (catches swapped arguments).
    assert np.max(np.abs(kl - np.asarray(D.diag_gaussian_kl(mq, lsq, mp, lsp)))) > 0.1


def test_diag_gaussian_kl_monte_carlo(gauss_data):
    mp, lsp, mq, lsq, _ = gauss_data
    mp, lsp, mq, lsq = (np.float64(x[:3]) for x in (mp, lsp, mq, lsq))  # 3 pairs
    rng = np.random.default_rng(2)
    n = 20000
    kl = np.asarray(D.diag_gaussian_kl(np.float32(mp), np.float32(lsp), np.float32(mq), np.float32(lsq)))
    for i in range(3):
        x = mp[i] + np.exp(lsp[i]) * rng.normal(size=(n, mp.shape[1]))
        log_ratio = (
            stats.norm.logpdf(x, mp[i], np.exp(lsp[i])) - stats.norm.logpdf(x, mq[i], np.exp(lsq[i]))
        ).sum(-1)
        se = log_ratio.std() / np.sqrt(n)
        assert abs(log_ratio.mean() - kl[i]) < 5 * se, (log_ratio.mean(), kl[i], se)


def test_diag_gaussian_sample_moments_and_mode():
    mean = jnp.array([0.5, -2.0, 10.0])
    log_std = jnp.array([0.0, -1.0, 1.0])
    dist = D.DiagGaussian(mean, log_std)
    np.testing.assert_array_equal(dist.mode(), mean)
    n = 20000
    x = np.asarray(D.DiagGaussian(jnp.broadcast_to(mean, (n, 3)), log_std).sample(jax.random.PRNGKey(3)), np.float64)
    assert x.shape == (n, 3)
    std = np.exp(np.asarray(log_std, np.float64))
    assert np.all(np.abs(x.mean(0) - np.asarray(mean)) < 5 * std / np.sqrt(n)), x.mean(0)
    assert np.all(np.abs(x.std(0) - std) < 5 * std / np.sqrt(2 * n)), x.std(0)
    # Batched parameters give one independent draw per row.
    batched = D.DiagGaussian(jnp.zeros((7, 3)), jnp.zeros(3))
    s = batched.sample(jax.random.PRNGKey(4))
    assert s.shape == (7, 3)
    assert len(np.unique(np.asarray(s[:, 0]))) == 7


# --- tanh-squashed Gaussian ----------------------------------------------------------------


def np_gauss_logpdf(u, mean, log_std):
    return stats.norm.logpdf(u, loc=mean, scale=np.exp(log_std)).sum(-1)


def np_stable_log_det(u):
    """log(1 - tanh(u)^2) = 2 (log 2 - |u| - log1p(exp(-2|u|))), float64, summed over dims."""
    au = np.abs(np.asarray(u, np.float64))
    return np.sum(2.0 * (np.log(2.0) - au - np.log1p(np.exp(-2.0 * au))), axis=-1)


def test_tanh_gaussian_change_of_variables_float64():
    """(a) Moderate u: the kernel's density of a = tanh(u) equals a numerical change of
    variables, both analytic (N(u) / (1 - tanh^2 u)) and by differentiating the CDF of a."""
    rng = np.random.default_rng(5)
    mean = rng.normal(size=(40, 2)) * 0.5
    log_std = rng.uniform(-0.5, 0.5, size=(40, 2))
    u = rng.uniform(-2.5, 2.5, size=(40, 2))
    kernel = np.asarray(
        D.tanh_gaussian_log_prob(np.float32(mean), np.float32(log_std), np.float32(u)), np.float64
    )
    # Inputs as the kernel saw them (rounded to float32), evaluated in float64.
    mean, log_std, u = (np.float64(np.float32(x)) for x in (mean, log_std, u))
    analytic = np_gauss_logpdf(u, mean, log_std) - np.sum(np.log1p(-np.tanh(u) ** 2), axis=-1)
    # Density of a from the CDF F(a) = Phi((artanh(a) - mean) / std), central difference per dim.
    a = np.tanh(u)
    h = 1e-6 * (1.0 - a**2)
    std = np.exp(log_std)
    cdf = lambda x: stats.norm.cdf((np.arctanh(x) - mean) / std)
    fd_density = (cdf(a + h) - cdf(a - h)) / (2 * h)
    numerical = np.sum(np.log(fd_density), axis=-1)
    np.testing.assert_allclose(numerical, analytic, rtol=1e-6, atol=1e-6)  # references agree
    np.testing.assert_allclose(kernel, analytic, rtol=1e-5, atol=2e-5)
    # Not the Gaussian log-density of u itself: the Jacobian term matters here.
    assert np.max(np.abs(kernel - np_gauss_logpdf(u, mean, log_std))) > 1.0


def test_tanh_gaussian_log_prob_stable_float32_up_to_20():
    """(b) Finite in float32 for |u| <= 20 and close to the float64 stable analytic form."""
    u = np.linspace(-20.0, 20.0, 161, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    mean = np.array([0.3, -0.2], np.float32)
    log_std = np.array([1.5, 2.0], np.float32)  # wide, so |u| = 20 is not absurdly unlikely
    mean_b = np.broadcast_to(mean, u.shape)
    log_std_b = np.broadcast_to(log_std, u.shape)
    with jax.numpy_rank_promotion("raise"):
        out = D.tanh_gaussian_log_prob(mean_b, log_std_b, u)
        log_det = D.tanh_log_det_jacobian(u)
    assert out.dtype == jnp.float32
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(log_det))
    expected_det = np_stable_log_det(u)
    expected = np_gauss_logpdf(np.float64(u), np.float64(mean_b), np.float64(log_std_b)) - expected_det
    # Measured: max abs error 6.1e-6 on log-densities in [-5.3, 58.5]; log-det alone 3.1e-6.
    np.testing.assert_allclose(log_det, expected_det, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-5)
    # The stable float64 form itself agrees with the naive one where the latter is accurate.
    mid = np.linspace(-3, 3, 13)[:, None]
    np.testing.assert_allclose(np_stable_log_det(mid), np.log1p(-np.tanh(mid[:, 0]) ** 2), rtol=1e-12)
    # Symmetric in u (up to float32 rounding: measured 3.8e-6).
    np.testing.assert_allclose(log_det, log_det[::-1], rtol=0, atol=1e-5)


def test_naive_tanh_log_det_is_inf_in_float32():
    """(c) Why the stable form exists: the naive float32 formula is -inf at u = 10."""
    u = jnp.float32(10.0)
    naive = jnp.log(1.0 - jnp.tanh(u) ** 2)
    assert naive == -jnp.inf
    stable = D.tanh_log_det_jacobian(jnp.array([10.0], jnp.float32))
    assert np.isfinite(stable)
    assert float(stable) == pytest.approx(np_stable_log_det(np.array([10.0])), abs=1e-5)
    # The "+1e-6 inside the log" workaround is finite but biased by ~25 nats at u = 20.
    biased = float(jnp.log(1.0 - jnp.tanh(jnp.float32(20.0)) ** 2 + 1e-6))
    assert biased - float(np_stable_log_det(np.array([20.0]))) > 20.0


def test_masked_actions_give_finite_entropy_kl_and_gradients():
    """Logit -inf masks an action: 0 log 0 = 0, and no nan in values or gradients (bug found here)."""
    from pgjax.kernels import distributions as D

    logits = jnp.array([0.0, -jnp.inf, 1.0])
    p = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    assert float(D.categorical_entropy(logits)) == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-6)
    other = jnp.array([0.5, 0.0, 0.0])
    q = np.exp([0.5, 0.0, 0.0]) / np.exp([0.5, 0.0, 0.0]).sum()
    expected_kl = p[0] * np.log(p[0] / q[0]) + p[1] * np.log(p[1] / q[2])
    assert float(D.categorical_kl(logits, other)) == pytest.approx(float(expected_kl), rel=1e-5)
    grad = jax.grad(lambda l: D.categorical_entropy(l))(logits)
    assert np.isfinite(np.asarray(grad)).all()
    grad_kl = jax.grad(lambda l: D.categorical_kl(l, other))(logits)
    assert np.isfinite(np.asarray(grad_kl)).all()


def test_diag_gaussian_broadcasts_mean_and_log_std():
    from pgjax.kernels.distributions import DiagGaussian

    dist = DiagGaussian(jnp.zeros(2), jnp.log(jnp.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])))
    samples = dist.sample(jax.random.PRNGKey(0))
    assert samples.shape == (3, 2) and not np.allclose(samples[0], samples[1])
    assert dist.mode().shape == (3, 2)
    entropy = np.asarray(dist.entropy())
    assert entropy.shape == (3,)
    np.testing.assert_allclose(np.diff(entropy), [2 * np.log(2.0), 2 * np.log(1.5)], rtol=1e-5)
