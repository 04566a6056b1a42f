"""Exploration noise: the OU step against its formula, its stationary variance and
autocorrelation against the closed forms, the reset at episode ends, Gaussian noise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.kernels import noise


@pytest.mark.parametrize("jit", [False, True])
def test_ou_step_is_the_euler_maruyama_formula(jit):
    key = jax.random.PRNGKey(0)
    x = jnp.asarray([[0.5, -1.0], [2.0, 0.0], [0.0, 0.3]])
    step = jax.jit(noise.ou_step) if jit else noise.ou_step
    out = step(key, x, 0.15, 0.2, 0.01, 0.1)
    z = np.asarray(jax.random.normal(key, x.shape), np.float64)
    expected = np.asarray(x, np.float64) + 0.15 * (0.1 - np.asarray(x)) * 0.01 + 0.2 * np.sqrt(0.01) * z
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def _simulate(theta, sigma, dt, steps, processes, key):
    def step(x, k):
        x = noise.ou_step(k, x, theta, sigma, dt)
        return x, x

    _, xs = jax.lax.scan(step, noise.ou_init((processes,)), jax.random.split(key, steps))
    return np.asarray(xs, np.float64)  # [steps, processes]


@pytest.mark.parametrize("theta, sigma, dt", [(0.15, 0.2, 1.0), (0.15, 0.3, 0.1)])
def test_ou_stationary_variance_and_autocorrelation(theta, sigma, dt):
    a = 1.0 - theta * dt
    burn_in = int(10 / (theta * dt))  # a^burn_in < 1e-4: started at 0, now stationary
    xs = _simulate(theta, sigma, dt, burn_in + 400, 4096, jax.random.PRNGKey(1))[burn_in:]
    var = sigma**2 * dt / (1.0 - a**2)  # the AR(1) closed form (module docstring)
    # 4096 independent processes x 400 correlated steps: the variance estimate is within ~2%.
    np.testing.assert_allclose(xs.var(), var, rtol=0.05)
    for lag in (1, 5, 20):
        corr = np.mean(xs[lag:] * xs[:-lag]) / np.mean(xs * xs)
        np.testing.assert_allclose(corr, a**lag, atol=0.02)
    # Independent noise would have lag-1 correlation ~0: this process is time-correlated.
    assert a > 0.8


def test_ou_reset_where_episodes_ended_only():
    x = jnp.arange(12.0).reshape(4, 3) + 1.0
    done = jnp.asarray([False, True, False, True])
    out = np.asarray(noise.ou_reset(x, done))
    np.testing.assert_array_equal(out[[1, 3]], 0.0)
    np.testing.assert_array_equal(out[[0, 2]], np.asarray(x)[[0, 2]])
    np.testing.assert_array_equal(noise.ou_reset(x, done, mu=0.5)[1], 0.5)


def test_ou_process_restarts_after_reset():
    """After a reset the state is mu again, so the next value has the one-step spread only."""
    x = jnp.full((20000, 1), 5.0)
    x = noise.ou_reset(x, jnp.ones((20000,), bool))
    nxt = np.asarray(noise.ou_step(jax.random.PRNGKey(2), x, 0.15, 0.2))
    assert abs(nxt.mean()) < 0.01 and nxt.std() == pytest.approx(0.2, rel=0.03)


def test_gaussian_noise_scale():
    eps = np.asarray(noise.gaussian_noise(jax.random.PRNGKey(3), (50000,), 0.3))
    assert eps.std() == pytest.approx(0.3, rel=0.02) and abs(eps.mean()) < 0.01
    lag1 = np.mean(eps[1:] * eps[:-1]) / eps.var()
    assert abs(lag1) < 0.02  # independent in time, unlike OU
