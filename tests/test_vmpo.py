"""V-MPO: its kernels (`pgjax.kernels.vmpo_losses`) against the NumPy oracles in
`reference.py`, with and without `jit`; its dual variables answering their bounds; continuous
actions with the decoupled KL; a recurrent core; config errors. The trainer contract runs in
tests/test_contract.py, the CartPole learning test in tests/test_learning.py.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref  # tests/ is on sys.path (conftest.py)
from contract import TINY, contract_trainer, hparam_grid

from pgjax import config as cfg
from pgjax.algos import vmpo
from pgjax.kernels import distributions as D
from pgjax.kernels import vmpo_losses as V
from pgjax.runtime.experiment import seed_keys

JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def _maybe_jit(fn, jit):
    return jax.jit(fn) if jit else fn


# --- the E-step: top half, temperature, weights ---------------------------------------------------


@JIT
@pytest.mark.parametrize("shape", [(1,), (7,), (64,), (4, 9)])
def test_top_half_matches_numpy(shape, jit):
    advantages = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
    with jax.numpy_rank_promotion("raise"):
        mask, threshold = _maybe_jit(V.top_half, jit)(advantages)
    expected_mask, expected_threshold = ref.vmpo_top_half(advantages)
    np.testing.assert_array_equal(mask, expected_mask)
    assert float(threshold) == np.float32(expected_threshold)
    assert mask.sum() == (advantages.size + 1) // 2  # no ties: exactly ceil(N/2)


@JIT
def test_top_half_keeps_every_tie_at_the_threshold_whatever_the_order(jit):
    # N = 8, k = 4: the 4th largest is 1.0, held by four samples; all four are kept (6 in all).
    advantages = np.array([1.0, 3.0, 1.0, -2.0, 2.0, 1.0, 0.5, 1.0], np.float32)
    top_half = _maybe_jit(V.top_half, jit)
    mask, threshold = top_half(advantages)
    np.testing.assert_array_equal(mask, ref.vmpo_top_half(advantages)[0])
    np.testing.assert_array_equal(mask, [1, 1, 1, 0, 1, 1, 0, 1])
    assert float(threshold) == 1.0
    permutation = np.random.default_rng(0).permutation(8)
    np.testing.assert_array_equal(top_half(advantages[permutation])[0], np.asarray(mask)[permutation])
    np.testing.assert_array_equal(top_half(np.zeros(5, np.float32))[0], 1.0)  # all tied: all kept


def _temperature_case(seed, shape=(48,), scale=1.0):
    rng = np.random.default_rng(seed)
    advantages = (scale * rng.normal(size=shape)).astype(np.float32)
    return advantages, np.asarray(V.top_half(advantages)[0])


@JIT
@pytest.mark.parametrize("eta, scale", [(1.0, 1.0), (0.3, 2.0), (0.05, 10.0)])  # the last: A / eta up to ~600
def test_temperature_loss_weights_and_their_kl_match_numpy(eta, scale, jit):
    advantages, mask = _temperature_case(1, (6, 8), scale)
    eps = 0.1
    with jax.numpy_rank_promotion("raise"):
        loss, metrics = _maybe_jit(V.temperature_loss, jit)(advantages, mask, jnp.float32(eta), eps)
        weights = _maybe_jit(V.temperature_weights, jit)(advantages, mask, jnp.float32(eta))
    expected_loss, expected_weights, expected_kl = ref.vmpo_temperature(
        advantages.astype(np.float64), mask, np.float64(np.float32(eta)), eps)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["temperature_kl"], expected_kl, rtol=1e-4, atol=1e-6)
    assert float(metrics["temperature_loss"]) == float(loss) and float(metrics["eta"]) == np.float32(eta)
    assert weights.shape == advantages.shape and np.all(np.asarray(weights)[mask == 0] == 0.0)
    np.testing.assert_allclose(np.sum(weights), 1.0, rtol=1e-6)


@JIT
def test_temperature_gradient_is_the_bound_minus_the_weights_kl(jit):
    """dL_eta/deta = eps - KL(psi || uniform): checked against a central difference of the
    float64 oracle, and no gradient reaches the advantages."""
    advantages, mask = _temperature_case(2)
    eps, eta = 0.05, 0.7
    grad = _maybe_jit(jax.grad(lambda t, a: V.temperature_loss(a, mask, t, eps)[0], argnums=(0, 1)), jit)
    d_eta, d_advantages = grad(jnp.float32(eta), jnp.asarray(advantages))
    a64, h = advantages.astype(np.float64), 1e-6
    numeric = (ref.vmpo_temperature(a64, mask, eta + h, eps)[0] - ref.vmpo_temperature(a64, mask, eta - h, eps)[0]) / (2 * h)
    np.testing.assert_allclose(d_eta, numeric, rtol=1e-4)
    np.testing.assert_allclose(d_eta, eps - ref.vmpo_temperature(a64, mask, eta, eps)[2], rtol=1e-4)
    np.testing.assert_array_equal(d_advantages, 0.0)
    # The weights are a constant of the policy loss: nothing flows back into eta through them.
    d_weights = jax.grad(lambda t: jnp.sum(V.temperature_weights(advantages, mask, t) * advantages))(jnp.float32(eta))
    assert float(d_weights) == 0.0


@JIT
def test_weighted_log_likelihood_loss_value_and_gradient(jit):
    advantages, mask = _temperature_case(3)
    weights = V.temperature_weights(advantages, mask, 0.5)
    log_probs = np.random.default_rng(3).normal(size=advantages.shape).astype(np.float32) - 1.0
    fn = _maybe_jit(V.weighted_log_likelihood_loss, jit)
    loss, metrics = fn(log_probs, weights)
    np.testing.assert_allclose(loss, ref.vmpo_policy_loss(log_probs, np.asarray(weights)), rtol=1e-5)
    assert float(metrics["policy_loss"]) == float(loss)
    d_log_probs, d_weights = jax.grad(lambda lp, w: fn(lp, w)[0], argnums=(0, 1))(jnp.asarray(log_probs), weights)
    np.testing.assert_allclose(d_log_probs, -np.asarray(weights), rtol=1e-6)
    np.testing.assert_array_equal(d_weights, 0.0)


# --- the trust region ------------------------------------------------------------------------------


@JIT
@pytest.mark.parametrize("num_constraints", [1, 2])
def test_kl_multiplier_loss_value_and_gradients(num_constraints, jit):
    rng = np.random.default_rng(num_constraints)
    kls = rng.uniform(0.0, 0.05, size=(32, num_constraints)).astype(np.float32)
    alphas = rng.uniform(0.5, 3.0, size=num_constraints).astype(np.float32)
    epsilons = np.array([0.01, 1e-3][:num_constraints], np.float32)
    fn = _maybe_jit(V.kl_multiplier_loss, jit)
    with jax.numpy_rank_promotion("raise"):
        loss, metrics = fn(kls, alphas, epsilons)
    expected, mean_kls = ref.vmpo_alpha_loss(kls, alphas.astype(np.float64), epsilons.astype(np.float64))
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-7)
    assert float(metrics["alpha_loss"]) == float(loss)
    d_kls, d_alphas = jax.grad(lambda k, a: fn(k, a, epsilons)[0], argnums=(0, 1))(jnp.asarray(kls), jnp.asarray(alphas))
    # alpha is pushed up while its KL is above the bound (gradient descent on eps - KL < 0) ...
    np.testing.assert_allclose(d_alphas, epsilons - np.array(mean_kls), rtol=1e-5, atol=1e-8)
    # ... and the policy sees the KL penalised by the (constant) multiplier.
    np.testing.assert_allclose(d_kls, np.broadcast_to(alphas / kls.shape[0], kls.shape), rtol=1e-6)


@JIT
def test_decoupled_gaussian_kl_matches_numpy_and_splits_the_kl(jit):
    rng = np.random.default_rng(5)
    mean_old, mean = rng.normal(size=(2, 10, 3)).astype(np.float32)
    log_std_old, log_std = (0.3 * rng.normal(size=(2, 10, 3))).astype(np.float32)
    fn = _maybe_jit(V.decoupled_gaussian_kl, jit)
    kl_mu, kl_sigma = fn(mean_old, log_std_old, mean, log_std)
    expected_mu, expected_sigma = ref.decoupled_gaussian_kl(mean_old, np.exp(np.float64(log_std_old)), mean,
                                                            np.exp(np.float64(log_std)))
    np.testing.assert_allclose(kl_mu, expected_mu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(kl_sigma, expected_sigma, rtol=1e-4, atol=1e-6)
    # With the covariance unchanged the whole KL is the mean's part; with the mean unchanged, the covariance's.
    kl_mu_only, no_sigma = fn(mean_old, log_std_old, mean, log_std_old)
    np.testing.assert_allclose(kl_mu_only, D.diag_gaussian_kl(mean_old, log_std_old, mean, log_std_old), rtol=1e-6)
    np.testing.assert_array_equal(no_sigma, 0.0)
    no_mu, kl_sigma_only = fn(mean_old, log_std_old, mean_old, log_std)
    np.testing.assert_allclose(kl_sigma_only, D.diag_gaussian_kl(mean_old, log_std_old, mean_old, log_std), rtol=1e-6)
    np.testing.assert_array_equal(no_mu, 0.0)


@pytest.mark.parametrize("call, message", [
    (lambda: V.temperature_loss(np.zeros(4), np.ones(3), 1.0, 0.1),
     "temperature_loss: arguments must share one shape; got advantages [4], mask [3]"),
    (lambda: V.kl_multiplier_loss(np.zeros((5, 2)), np.ones(1), np.ones(1)),
     "kl_multiplier_loss: kls has shape [5, 2]; expected [..., 1], one column per multiplier"),
    (lambda: V.top_half(np.float32(1.0)), "top_half: advantages has shape [] (rank 0)"),
])
def test_bad_kernel_inputs_are_named(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


# --- the algorithm ---------------------------------------------------------------------------------


def test_each_dual_variable_follows_its_own_bound():
    """One compiled sweep (the contract's) over three cells: impossible-to-meet bounds drive
    eta and alpha up, bounds met by any update drive them down, from the same start."""
    tiny = contract_trainer("vmpo")
    hp = tiny.config.hparams
    grid = hparam_grid(hp, epsilon_eta=[1e-4, 5.0, hp.epsilon_eta], epsilon_alpha=[1e-7, 1.0, hp.epsilon_alpha])
    out = tiny.sweep(jnp.stack([seed_keys(0, [0])[0]] * 3), grid)
    log_eta, log_alpha = np.asarray(out.state.duals.log_eta), np.asarray(out.state.duals.log_alpha)
    start_eta, start_alpha = np.log(np.float32(hp.init_eta)), np.log(np.float32(hp.init_alpha))
    assert log_alpha.shape == (3, 1)  # one KL constraint for a categorical policy
    # eps_eta = 1e-4 < KL(psi || uniform): flatter weights wanted, eta rises; 5.0 > log|D~| >= that KL: eta falls.
    assert log_eta[0] > start_eta > log_eta[1]
    # eps_alpha = 1e-7 below any KL a step makes: alpha rises; 1.0 far above it: alpha falls.
    assert log_alpha[0, 0] > start_alpha > log_alpha[1, 0]
    m = jax.tree.map(np.asarray, out.metrics)
    assert np.all(m["temperature_kl"][0] > 1e-4)  # the first cell's bound is never met
    np.testing.assert_allclose(m["eta"][:, 0], hp.init_eta, rtol=0.1)  # the first update starts from init


def test_continuous_actions_bound_the_mean_and_the_covariance_separately():
    config = dataclasses.replace(TINY["vmpo"], env_id="Pendulum-v1", normalize_obs=True)
    out = jax.jit(vmpo.make_trainer(config).train)(jax.random.PRNGKey(0))
    m = jax.tree.map(np.asarray, out.metrics)
    for name in ("loss", "alpha_mu", "alpha_sigma", "kl_mu", "kl_sigma", "kl", "eta"):
        assert np.isfinite(m[name]).all(), name
    assert out.state.duals.log_alpha.shape == (2,)
    assert not np.allclose(out.state.params["actor"]["params"]["log_std"], config.init_log_std)  # the scale learns
    # The covariance's bound (1e-4) is tighter than the mean's (1e-2), so its multiplier ends higher.
    assert m["alpha_sigma"][-1] > m["alpha_mu"][-1]


def test_recurrent_core_selects_the_top_half_over_whole_sequences():
    config = dataclasses.replace(TINY["vmpo"], core="gru", core_size=8)
    out = jax.jit(vmpo.make_trainer(config).train)(jax.random.PRNGKey(0))
    m = jax.tree.map(np.asarray, out.metrics)
    assert np.isfinite(m["loss"]).all() and np.isfinite(m["kl"]).all()
    assert np.asarray(out.state.env.hidden["actor"]).any()  # the GRU carried something


@pytest.mark.slow  # the torso is picked for every on-policy algorithm alike (tests/test_learning.py: PPO on Catch)
def test_cnn_torso_trains():
    config = dataclasses.replace(TINY["vmpo"], env_id="Catch-bsuite", torso="cnn")
    out = jax.jit(vmpo.make_trainer(config).train)(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(out.metrics["loss"])).all()


@pytest.mark.parametrize("values, message", [
    ({"hparams": {"epsilon_eta": 0}}, "hparams.epsilon_eta=0.0 is out of range: must be > 0"),
    ({"hparams": {"init_alpha": -1.0}}, "hparams.init_alpha=-1.0 is out of range: must be > 0"),
    ({"hparams": {"clip_eps": 0.2}}, "unknown config key 'hparams.clip_eps'"),
    ({"num_minibatches": 3}, "num_minibatches=3 does not divide the batch"),
])
def test_bad_config_values_are_named(values, message):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.from_dict(vmpo.VMPOConfig, values)
    assert message in str(err.value)
