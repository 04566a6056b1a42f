"""Return estimators in `pgjax.kernels.returns` against the float64 loop oracles in `reference.py`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref  # tests/ is on sys.path (conftest.py, and pytest's default "prepend" import mode)

from pgjax.kernels import returns as R

GAMMA = 0.97
LAMBDA = 0.9
B = 3

# One jitted version of each kernel for the whole module, so a shape compiles once.
# gamma / lambda_ are ordinary (traced) arguments; only n is static.
_JITTED = {
    "td_errors": jax.jit(R.td_errors),
    "gae": jax.jit(R.gae),
    "lambda_returns": jax.jit(R.lambda_returns),
    "discounted_returns": jax.jit(R.discounted_returns),
    "n_step_returns": jax.jit(R.n_step_returns, static_argnames="n"),
}


def kernel(name: str, jit: bool):
    return _JITTED[name] if jit else getattr(R, name)


def rollout(seed, T, batch_shape=(B,), p_term=0.12, p_trunc=0.12, consistent=True, both=True):
    """Random float32 rollout with terminations and truncations.

    With `consistent`, `next_values[t] == values[t + 1]` wherever step t did not end an
    episode (as a real rollout would give); at episode ends next_values holds the value of
    the true final observation, drawn independently of the reset state's value.
    With `both=False`, no step is flagged both terminated and truncated.
    """
    rng = np.random.default_rng(seed)
    shape = (T, *batch_shape)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    next_values = rng.normal(size=shape).astype(np.float32)
    terminated = rng.random(shape) < p_term
    truncated = rng.random(shape) < p_trunc
    if not both:
        truncated &= ~terminated
    elif T >= 4 and p_term > 0 and p_trunc > 0:
        # Make sure at least one step carries both flags.
        first = (T // 2,) + (0,) * len(batch_shape)
        terminated[first] = truncated[first] = True
    if consistent:
        ended = terminated | truncated
        next_values[:-1] = np.where(ended[:-1], next_values[:-1], values[1:])
    return {
        "rewards": rewards,
        "values": values,
        "next_values": next_values,
        "terminated": terminated,
        "truncated": truncated,
    }


def close(actual, expected, rtol=1e-5):
    """float32 result vs float64 oracle: relative error against the scale of the output."""
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def rel_err(actual, expected):
    scale = max(1.0, float(np.max(np.abs(expected))))
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected))) / scale


# --- every estimator vs the oracle ---------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("T", [1, 7, 50])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimators_match_oracle(seed, T, jit):
    d = rollout(seed, T)
    r, v, nv, te, tr = d["rewards"], d["values"], d["next_values"], d["terminated"], d["truncated"]
    # The random draw must actually exercise the interesting cases (for T > 1).
    if T == 50:
        assert te.any() and tr.any() and (te & tr).any() and (~(te | tr)).any()

    with jax.numpy_rank_promotion("raise"):
        close(kernel("td_errors", jit)(r, v, nv, te, GAMMA), ref.td_errors(r, v, nv, te, GAMMA))
        close(
            kernel("gae", jit)(r, v, nv, te, tr, GAMMA, LAMBDA),
            ref.gae(r, v, nv, te, tr, GAMMA, LAMBDA),
        )
        close(
            kernel("lambda_returns", jit)(r, nv, te, tr, GAMMA, LAMBDA),
            ref.lambda_returns(r, nv, te, tr, GAMMA, LAMBDA),
        )
        close(
            kernel("discounted_returns", jit)(r, te, tr, GAMMA),
            ref.discounted_returns(r, te, tr, GAMMA),
        )
        close(
            kernel("discounted_returns", jit)(r, te, tr, GAMMA, nv),
            ref.discounted_returns(r, te, tr, GAMMA, nv),
        )
        for n in (1, 3):
            close(
                kernel("n_step_returns", jit)(r, nv, te, tr, GAMMA, n=n),
                ref.n_step_returns(r, nv, te, tr, GAMMA, n),
            )


def test_oracle_hand_example():
    """Pin the oracles themselves on a hand-computed 4-step, single-env rollout.

    Steps: 0 normal, 1 truncated (V(final obs) = 10), 2 normal, 3 terminated.
    """
    r = np.array([1.0, 2.0, 3.0, 4.0])
    nv = np.array([5.0, 10.0, 7.0, 99.0])
    te = np.array([False, False, False, True])
    tr = np.array([False, True, False, False])
    g = 0.5
    # Reward-to-go with bootstrap: step 1 bootstraps 10, step 3 nothing.
    expected = np.array([1 + g * (2 + g * 10), 2 + g * 10, 3 + g * 4, 4.0])
    np.testing.assert_allclose(ref.discounted_returns(r, te, tr, g, nv), expected)
    # Without bootstrap: truncation counts as zero afterwards.
    np.testing.assert_allclose(ref.discounted_returns(r, te, tr, g), [1 + g * 2, 2, 3 + g * 4, 4])
    # 1-step returns.
    np.testing.assert_allclose(ref.n_step_returns(r, nv, te, tr, g, 1), [1 + g * 5, 2 + g * 10, 3 + g * 7, 4])
    # The vectorised GAE oracle used for T=2000 agrees with the plain loop.
    for seed in range(3):
        d = rollout(seed, 50)
        args = [d[k] for k in ("rewards", "values", "next_values", "terminated", "truncated")]
        np.testing.assert_allclose(ref.gae_fast(*args, 0.99, 0.95), ref.gae(*args, 0.99, 0.95), atol=1e-12)
    # Lambda-return at step 0 with lambda = 0.5: (1 - l) G1 + l G2 (episode ends at step 1).
    lam = 0.5
    g1, g2 = 1 + g * 5, 1 + g * (2 + g * 10)
    assert ref.lambda_returns(r, nv, te, tr, g, lam)[0] == pytest.approx((1 - lam) * g1 + lam * g2)
    # Rollout end without an episode end: bootstrap next_values[T-1].
    te2 = np.zeros(4, bool)
    assert ref.n_step_returns(r, nv, te2, tr, g, 5)[2] == pytest.approx(3 + g * 4 + g * g * 99)


def test_long_rollout_float32_error():
    """T=2000, gamma=0.99, lambda=0.95, sparse episode ends: float32 vs float64 error.

    Measured on jax 0.10.2 CPU (seed 123): GAE max abs error 2.6e-6 with max |A| = 10.3,
    i.e. 2.5e-7 of the output scale; bootstrapped reward-to-go 1.3e-5 abs with max |G| = 19
    (6.5e-7 of scale); 20-step returns 2.7e-7 of scale. Asserted at 1e-5 of scale.
    """
    T, gamma, lam = 2000, 0.99, 0.95
    d = rollout(123, T, p_term=0.002, p_trunc=0.002)
    r, v, nv, te, tr = d["rewards"], d["values"], d["next_values"], d["terminated"], d["truncated"]
    with jax.numpy_rank_promotion("raise"):
        adv = kernel("gae", True)(r, v, nv, te, tr, gamma, lam)
        ret = kernel("discounted_returns", True)(r, te, tr, gamma, nv)
        nstep = kernel("n_step_returns", True)(r, nv, te, tr, gamma, n=20)
    adv_ref = ref.gae_fast(r, v, nv, te, tr, gamma, lam)
    ret_ref = ref.discounted_returns(r, te, tr, gamma, nv)
    nstep_ref = ref.n_step_returns(r, nv, te, tr, gamma, 20)
    errors = {
        "gae": rel_err(adv, adv_ref),
        "discounted": rel_err(ret, ret_ref),
        "n_step_20": rel_err(nstep, nstep_ref),
    }
    print("T=2000 float32 max error / output scale:", errors)
    for name, err in errors.items():
        assert err < 1e-5, (name, err)
    # Cross-check: gae + values are lambda-returns (values are consistent by construction).
    lr = kernel("lambda_returns", True)(r, nv, te, tr, gamma, lam)
    close(np.asarray(adv) + v, ref.gae_fast(r, v, nv, te, tr, gamma, lam) + v)
    close(lr, adv_ref + v.astype(np.float64))


# --- identities between the estimators -----------------------------------------------------


@pytest.mark.parametrize("seed", [3, 4])
def test_identities(seed):
    jit = True  # eager vs jit is covered by test_estimators_match_oracle
    T = 50
    d = rollout(seed, T, consistent=True)
    r, v, nv, te, tr = d["rewards"], d["values"], d["next_values"], d["terminated"], d["truncated"]
    gae, td, lr = kernel("gae", jit), kernel("td_errors", jit), kernel("lambda_returns", jit)
    dr, ns = kernel("discounted_returns", jit), kernel("n_step_returns", jit)
    tol = {"rtol": 2e-5, "atol": 2e-5}
    with jax.numpy_rank_promotion("raise"):
        # lambda = 0: GAE is the TD error.
        np.testing.assert_allclose(gae(r, v, nv, te, tr, GAMMA, 0.0), td(r, v, nv, te, GAMMA), **tol)
        # lambda = 1: GAE is the bootstrapped reward-to-go minus the baseline.
        np.testing.assert_allclose(
            gae(r, v, nv, te, tr, GAMMA, 1.0), np.asarray(dr(r, te, tr, GAMMA, nv)) - v, **tol
        )
        # GAE + V = lambda-returns when next_values[t] == values[t+1] inside episodes.
        for lam in (0.0, 0.5, LAMBDA, 1.0):
            np.testing.assert_allclose(
                np.asarray(gae(r, v, nv, te, tr, GAMMA, lam)) + v, lr(r, nv, te, tr, GAMMA, lam), **tol
            )
        # lambda = 1 lambda-returns are the bootstrapped reward-to-go.
        np.testing.assert_allclose(lr(r, nv, te, tr, GAMMA, 1.0), dr(r, te, tr, GAMMA, nv), **tol)
        # lambda = 0 lambda-returns are the one-step returns.
        np.testing.assert_allclose(lr(r, nv, te, tr, GAMMA, 0.0), ns(r, nv, te, tr, GAMMA, n=1), **tol)
        # n >= T: n-step returns are the bootstrapped reward-to-go.
        for n in (T, T + 7):
            np.testing.assert_allclose(ns(r, nv, te, tr, GAMMA, n=n), dr(r, te, tr, GAMMA, nv), **tol)
        # n = 1: r + gamma (1 - term) V(s').
        np.testing.assert_allclose(
            ns(r, nv, te, tr, GAMMA, n=1), r + GAMMA * (1.0 - te) * nv, rtol=1e-6, atol=1e-6
        )
        # Monte Carlo reward-to-go == bootstrapped one with zero next_values.
        np.testing.assert_allclose(
            dr(r, te, tr, GAMMA), dr(r, te, tr, GAMMA, np.zeros_like(nv)), rtol=0, atol=0
        )


def test_inconsistent_values_break_gae_lambda_identity():
    """The GAE + V == lambda-return identity needs next_values[t] == values[t+1]; check the
    test above would notice if it did not hold (guards against a vacuous identity)."""
    d = rollout(5, 50, consistent=False)
    r, v, nv, te, tr = d["rewards"], d["values"], d["next_values"], d["terminated"], d["truncated"]
    lhs = np.asarray(_JITTED["gae"](r, v, nv, te, tr, GAMMA, LAMBDA)) + v
    rhs = np.asarray(_JITTED["lambda_returns"](r, nv, te, tr, GAMMA, LAMBDA))
    assert np.max(np.abs(lhs - rhs)) > 1e-2


# --- truncation vs termination -------------------------------------------------------------


def _flag_rollout():
    """T=8, one env: step 2 truncated only, step 5 terminated only, nothing else ends."""
    d = rollout(7, 8, batch_shape=(1,), p_term=0.0, p_trunc=0.0)
    d["truncated"][2, 0] = True
    d["terminated"][5, 0] = True
    return d


_J = {name: kernel(name, True) for name in _JITTED}
ESTIMATORS = {
    "gae": lambda d: _J["gae"](
        d["rewards"], d["values"], d["next_values"], d["terminated"], d["truncated"], GAMMA, LAMBDA
    ),
    "lambda_returns": lambda d: _J["lambda_returns"](
        d["rewards"], d["next_values"], d["terminated"], d["truncated"], GAMMA, LAMBDA
    ),
    "discounted_returns": lambda d: _J["discounted_returns"](
        d["rewards"], d["terminated"], d["truncated"], GAMMA, d["next_values"]
    ),
    "n_step_3": lambda d: _J["n_step_returns"](
        d["rewards"], d["next_values"], d["terminated"], d["truncated"], GAMMA, n=3
    ),
    "td_errors": lambda d: _J["td_errors"](
        d["rewards"], d["values"], d["next_values"], d["terminated"], GAMMA
    ),
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_truncation_bootstraps_final_obs_value(name):
    fn = ESTIMATORS[name]
    d = _flag_rollout()
    base = np.asarray(fn(d))
    bumped = {k: v.copy() for k, v in d.items()}
    bumped["next_values"][2, 0] += 1.0  # V(final obs) of the truncated step
    diff = np.asarray(fn(bumped)) - base
    # At the truncated step the result moves by exactly gamma * 1.
    assert diff[2, 0] == pytest.approx(GAMMA, rel=1e-5)
    # Nothing after the episode boundary depends on it.
    np.testing.assert_array_equal(diff[3:], 0.0)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_termination_ignores_next_value(name):
    fn = ESTIMATORS[name]
    d = _flag_rollout()
    base = np.asarray(fn(d))
    bumped = {k: v.copy() for k, v in d.items()}
    bumped["next_values"][5, 0] += 1000.0  # value after a terminal step: must be ignored
    np.testing.assert_array_equal(np.asarray(fn(bumped)), base)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_episode_end_cuts_the_sum(name):
    """Rewards after an episode end do not reach steps before it."""
    fn = ESTIMATORS[name]
    d = _flag_rollout()
    base = np.asarray(fn(d))
    bumped = {k: v.copy() for k, v in d.items()}
    bumped["rewards"][3, 0] += 1.0  # first step of the episode after the truncation at 2
    bumped["values"][3, 0] += 1.0
    diff = np.asarray(fn(bumped)) - base
    np.testing.assert_array_equal(diff[:3], 0.0)


@pytest.mark.parametrize("name", ["gae", "lambda_returns", "discounted_returns", "n_step_3"])
def test_reward_propagates_inside_episode(name):
    """Counterpart of the cut: inside an episode, a later reward does reach earlier steps."""
    fn = ESTIMATORS[name]
    d = _flag_rollout()
    base = np.asarray(fn(d))
    bumped = {k: v.copy() for k, v in d.items()}
    bumped["rewards"][4, 0] += 1.0
    diff = np.asarray(fn(bumped)) - base
    assert diff[3, 0] > 0.5 * GAMMA * LAMBDA
    np.testing.assert_array_equal(diff[:3], 0.0)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_terminated_dominates_truncated(name):
    """A step flagged both terminated and truncated behaves as terminated only."""
    fn = ESTIMATORS[name]
    d = _flag_rollout()
    both = {k: v.copy() for k, v in d.items()}
    both["truncated"][5, 0] = True  # step 5 is now terminated and truncated
    np.testing.assert_array_equal(np.asarray(fn(both)), np.asarray(fn(d)))
    # ...and differs from truncated-only at that step (so the check is not vacuous).
    trunc_only = {k: v.copy() for k, v in both.items()}
    trunc_only["terminated"][5, 0] = False
    trunc_only["next_values"][5, 0] = 3.0
    assert not np.allclose(np.asarray(fn(trunc_only))[5], np.asarray(fn(d))[5])


def test_last_step_bootstraps_without_flags():
    """No flags at the rollout end: last step bootstraps next_values[T-1], for any lambda/n."""
    r = np.array([1.0, 2.0], np.float32)
    nv = np.array([0.5, 4.0], np.float32)
    v = np.array([0.25, 0.5], np.float32)
    f = np.zeros(2, bool)
    g = 0.5
    expected_last = 2.0 + g * 4.0
    J = _JITTED
    for lam in (0.0, 0.3, 1.0):
        assert float(J["lambda_returns"](r, nv, f, f, g, lam)[1]) == pytest.approx(expected_last)
        assert float(J["gae"](r, v, nv, f, f, g, lam)[1]) == pytest.approx(expected_last - 0.5)
    for n in (1, 2, 5):
        assert float(J["n_step_returns"](r, nv, f, f, g, n=n)[1]) == pytest.approx(expected_last)
    assert float(J["discounted_returns"](r, f, f, g, nv)[0]) == pytest.approx(1.0 + g * expected_last)
    # Without next_values the rollout end counts as zero.
    np.testing.assert_allclose(J["discounted_returns"](r, f, f, g), [1.0 + g * 2.0, 2.0])


# --- shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", [(), (B,), (B, 2)], ids=["T", "TB", "TBC"])
def test_trailing_batch_dims(batch_shape):
    T = 7
    J = _JITTED
    d = rollout(11, T, batch_shape=batch_shape)
    r, v, nv, te, tr = d["rewards"], d["values"], d["next_values"], d["terminated"], d["truncated"]
    with jax.numpy_rank_promotion("raise"):
        out = {
            "gae": J["gae"](r, v, nv, te, tr, GAMMA, LAMBDA),
            "lambda_returns": J["lambda_returns"](r, nv, te, tr, GAMMA, LAMBDA),
            "discounted_returns": J["discounted_returns"](r, te, tr, GAMMA, nv),
            "n_step_returns": J["n_step_returns"](r, nv, te, tr, GAMMA, n=3),
        }
    expected = {
        "gae": ref.gae(r, v, nv, te, tr, GAMMA, LAMBDA),
        "lambda_returns": ref.lambda_returns(r, nv, te, tr, GAMMA, LAMBDA),
        "discounted_returns": ref.discounted_returns(r, te, tr, GAMMA, nv),
        "n_step_returns": ref.n_step_returns(r, nv, te, tr, GAMMA, 3),
    }
    for name, value in out.items():
        assert value.shape == (T, *batch_shape), name
        close(value, expected[name])
    # Each batch column equals the kernel run on that column alone ([T] input).
    if batch_shape:
        for idx in np.ndindex(*batch_shape):
            col = (slice(None), *idx)
            single = J["gae"](r[col], v[col], nv[col], te[col], tr[col], GAMMA, LAMBDA)
            np.testing.assert_allclose(np.asarray(out["gae"])[col], single, rtol=1e-6, atol=1e-6)


def test_shape_mismatch_and_bad_n_raise():
    d = rollout(0, 5)
    r, nv, te, tr = d["rewards"], d["next_values"], d["terminated"], d["truncated"]
    with pytest.raises(ValueError, match=r"lambda_returns: arguments must share one shape; got rewards \[5, 3\], "
                                         r"next_values \[5, 2\]"):
        R.lambda_returns(r, nv[:, :2], te, tr, GAMMA, LAMBDA)
    with pytest.raises(ValueError, match=r"gae: rewards has shape \[5, 3, 1, 1, 1\] \(rank 5\); expected rank 1 or 2 or 3"):
        R.gae(r[..., None, None, None], r[..., None, None, None], r[..., None, None, None],
              te[..., None, None, None], tr[..., None, None, None], GAMMA, LAMBDA)  # rank 5
    for bad_n in (0, -1, 2.0):
        with pytest.raises(ValueError):
            R.n_step_returns(r, nv, te, tr, GAMMA, bad_n)


# --- traced gamma / lambda -----------------------------------------------------------------


def test_traced_gamma_lambda_under_jit_no_retrace():
    d = rollout(21, 20)
    r, v, nv, te, tr = d["rewards"], d["values"], d["next_values"], d["terminated"], d["truncated"]
    traces = []

    @jax.jit
    def f(gamma, lam):
        traces.append(None)
        return (
            R.gae(r, v, nv, te, tr, gamma, lam),
            R.lambda_returns(r, nv, te, tr, gamma, lam),
            R.discounted_returns(r, te, tr, gamma, nv),
            R.n_step_returns(r, nv, te, tr, gamma, 3),
        )

    with jax.numpy_rank_promotion("raise"):
        for gamma, lam in [(0.9, 0.8), (0.99, 0.95), (0.5, 0.0)]:
            adv, lr, dr, ns = f(jnp.float32(gamma), jnp.float32(lam))
            close(adv, ref.gae(r, v, nv, te, tr, gamma, lam))
            close(lr, ref.lambda_returns(r, nv, te, tr, gamma, lam))
            close(dr, ref.discounted_returns(r, te, tr, gamma, nv))
            close(ns, ref.n_step_returns(r, nv, te, tr, gamma, 3))
    assert len(traces) == 1  # gamma and lambda are data, not compile-time constants


def test_vmap_over_gammas():
    d = rollout(22, 15)
    r, v, nv, te, tr = d["rewards"], d["values"], d["next_values"], d["terminated"], d["truncated"]
    gammas = jnp.array([0.0, 0.5, 0.9, 0.99], jnp.float32)
    lambdas = jnp.array([0.0, 0.3, 0.95, 1.0], jnp.float32)
    with jax.numpy_rank_promotion("raise"):
        adv = jax.jit(jax.vmap(lambda g: R.gae(r, v, nv, te, tr, g, LAMBDA)))(gammas)
        ns = jax.vmap(lambda g: R.n_step_returns(r, nv, te, tr, g, 4))(gammas)
        lr = jax.vmap(lambda g, l: R.lambda_returns(r, nv, te, tr, g, l))(gammas, lambdas)
    assert adv.shape == (4, 15, B) and ns.shape == (4, 15, B) and lr.shape == (4, 15, B)
    for i, g in enumerate(np.asarray(gammas, np.float64)):
        lam = float(lambdas[i])
        close(adv[i], ref.gae(r, v, nv, te, tr, g, LAMBDA))
        close(ns[i], ref.n_step_returns(r, nv, te, tr, g, 4))
        close(lr[i], ref.lambda_returns(r, nv, te, tr, g, lam))
    # gamma = 0: every estimator collapses to the immediate reward (minus V for GAE).
    np.testing.assert_allclose(adv[0], r - v, rtol=1e-6, atol=1e-6)


def test_n_step_accepts_numpy_ints_and_rejects_bools():
    rewards = jnp.ones((4, 2))
    flags = jnp.zeros((4, 2), bool)
    a = R.n_step_returns(rewards, rewards, flags, flags, 0.9, np.int64(2))
    b = R.n_step_returns(rewards, rewards, flags, flags, 0.9, 2)
    np.testing.assert_array_equal(a, b)
    for bad in (True, 0, 1.5):
        with pytest.raises(ValueError, match="n="):
            R.n_step_returns(rewards, rewards, flags, flags, 0.9, bad)


# --- whole episodes: first-episode mask, Monte Carlo weights and baselines --------------------


def _maybe_jit(fn, jit, **kw):
    return jax.jit(fn, **kw) if jit else fn


@pytest.mark.parametrize("jit", [False, True])
def test_first_episode_mask_matches_oracle(jit):
    rng = np.random.default_rng(5)
    terminated = rng.random((12, 4, 2)) < 0.15
    truncated = rng.random((12, 4, 2)) < 0.1
    got = _maybe_jit(R.first_episode_mask, jit)(terminated, truncated)
    want = ref.first_episode_mask(terminated, truncated)
    assert got.dtype == jnp.float32 and 0 < want.sum() < want.size  # some episodes end, some columns run on
    np.testing.assert_array_equal(got, want)


def test_first_episode_mask_on_hand_written_flags():
    terminated = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]], bool)
    truncated = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]], bool)
    expected = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0], [0, 0, 0]], np.float32)
    np.testing.assert_array_equal(R.first_episode_mask(terminated, truncated), expected)


def _episodes(seed, T=9, lengths=(9, 3, 1, 6, 9)):
    """Random rewards and values `[T, N]`, the mask of episodes of the given lengths, and the
    rewards after each episode's end set large so that a kernel reading them fails."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    mask = (np.arange(T)[:, None] < lengths[None, :]).astype(np.float32)
    rewards = np.where(mask > 0, rng.normal(size=mask.shape), 100.0).astype(np.float32)
    values = rng.normal(size=mask.shape).astype(np.float32)
    return rewards, values, mask, lengths


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_episode_estimators_match_oracle(jit, gamma):
    rewards, values, mask, lengths = _episodes(0)
    assert np.array_equal(ref.episode_lengths(mask), lengths)
    to_go = _maybe_jit(R.reward_to_go, jit)(rewards, mask, gamma)
    np.testing.assert_allclose(to_go, ref.episode_weights(rewards, lengths, gamma, "reward_to_go"), rtol=1e-5, atol=1e-5)
    weights_fn = _maybe_jit(R.episode_weights, jit, static_argnums=(3, 4))
    for weighting, discount_weighting in [("total", False), ("reward_to_go", False), ("reward_to_go", True)]:
        got = weights_fn(rewards, mask, gamma, weighting, discount_weighting)
        want = ref.episode_weights(rewards, lengths, gamma, weighting, discount_weighting)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{weighting}, {discount_weighting}")
    weights = ref.episode_weights(rewards, lengths, gamma, "reward_to_go").astype(np.float32)
    got = _maybe_jit(R.batch_baseline, jit)(weights, mask)
    np.testing.assert_allclose(got, ref.leave_one_out_baseline(weights, lengths), rtol=1e-5, atol=1e-6)
    value_fn = _maybe_jit(R.value_baseline, jit, static_argnums=3)
    for discount_weighting in (False, True):
        got = value_fn(values, mask, gamma, discount_weighting)
        np.testing.assert_allclose(got, ref.value_baseline(values, lengths, gamma, discount_weighting), rtol=1e-6)
    powers = gamma ** np.arange(rewards.shape[0])[:, None, None]
    np.testing.assert_allclose(_maybe_jit(R.times_discount, jit)(values[..., None], gamma), values[..., None] * powers,
                               rtol=1e-6)


def test_batch_baseline_is_zero_without_another_running_episode():
    """At t where only one episode runs, its leave-one-out mean has nothing to average."""
    _, _, mask, _lengths = _episodes(1, lengths=(5, 2, 2))
    weights = np.ones(mask.shape, np.float32) * np.arange(1, 4, dtype=np.float32)
    got = np.asarray(R.batch_baseline(weights, mask))
    np.testing.assert_array_equal(got[2:5, 0], 0.0)  # episode 0 alone from t = 2
    np.testing.assert_array_equal(got[:2], [[2.5, 2.0, 1.5]] * 2)


def test_episode_weights_reject_bad_settings():
    rewards, _, mask, _ = _episodes(2)
    with pytest.raises(ValueError, match="weighting='rtg'"):
        R.episode_weights(rewards, mask, 0.9, "rtg")
    with pytest.raises(ValueError, match="discount_weighting applies to 'reward_to_go'"):
        R.episode_weights(rewards, mask, 0.9, "total", True)


# --- group baselines: episodes from one start state (RLOO, GRPO) --------------------------------


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("group_size", [2, 4, 8])
@pytest.mark.parametrize("weighting", R.WEIGHTINGS)
@pytest.mark.parametrize("baseline", R.GROUP_BASELINES)
def test_group_baseline_weights_match_oracle(baseline, weighting, group_size, jit):
    # Varied lengths: members end at different steps; episode 0's partner ends at t = 3.
    rewards, _, mask, lengths = _episodes(3, lengths=(9, 3, 1, 6, 9, 9, 2, 5))
    weights = R.episode_weights(rewards, mask, 0.9, weighting)
    np.testing.assert_allclose(weights, ref.episode_weights(rewards, lengths, 0.9, weighting), rtol=1e-5, atol=1e-5)
    kernel = _maybe_jit(R.group_baseline_weights, jit, static_argnums=(2, 3, 4))
    got = np.asarray(kernel(weights, mask, weighting, group_size, baseline))
    want = ref.group_baseline_weights(np.asarray(weights), lengths, group_size, weighting, baseline)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if group_size == 2:  # the finished partner still counts: with R_1 (total) or with 0 (reward-to-go)
        own, partner = np.asarray(weights)[3:9, 0], (np.asarray(weights)[0, 1] if weighting == "total" else 0.0)
        expected = own - partner if baseline == "leave_one_out" else np.sign(own - partner)
        np.testing.assert_allclose(got[3:9, 0], expected, rtol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("K", [2, 3, 5])
def test_leave_one_out_identities(K, jit):
    """b_k = (sum_j R_j - R_k)/(K-1), by a loop; sum_k (R_k - b_k) = 0; R_k - b_k = K/(K-1) (R_k - mean R)."""
    returns = np.random.default_rng(K).normal(3.0, 2.0, size=(6, K)).astype(np.float32)  # 6 groups of K
    got = np.asarray(_maybe_jit(R.leave_one_out_baseline, jit)(returns), np.float64)
    loop = np.array([[sum(row[j] for j in range(K) if j != k) / (K - 1) for k in range(K)] for row in returns.astype(float)])
    np.testing.assert_allclose(got, loop, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose((returns - got).sum(axis=-1), 0.0, atol=1e-5)
    centred = returns - returns.mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(returns - got, K / (K - 1) * centred, rtol=1e-5, atol=1e-5)
    if K == 2:  # each member's baseline is the other's return
        np.testing.assert_allclose(got, returns[:, ::-1], rtol=1e-6)
    normalized = np.asarray(_maybe_jit(R.group_normalized_advantages, jit)(returns), np.float64)
    np.testing.assert_allclose(normalized, centred / (returns.std(axis=-1, keepdims=True) + 1e-8), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalized.mean(axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized.std(axis=-1), 1.0, rtol=1e-5)
    if K == 2:  # a pair normalises to +-1
        np.testing.assert_allclose(normalized, np.sign(returns - returns[:, ::-1]), rtol=1e-5)


def test_equal_returns_normalise_to_zero():
    assert np.array_equal(R.group_normalized_advantages(np.full((2, 4), 7.0, np.float32)), np.zeros((2, 4)))


def test_groups_of_one_and_uneven_groups_are_refused():
    returns = np.ones((3, 1), np.float32)
    for kernel in (R.leave_one_out_baseline, R.group_normalized_advantages):
        with pytest.raises(ValueError, match=r"shape \[3, 1\], groups of 1 episode; a group .* needs at least 2"):
            kernel(returns)
    weights = np.ones((4, 6), np.float32)
    with pytest.raises(ValueError, match="group_size=1 must be a whole number >= 2"):
        R.group_baseline_weights(weights, weights, "total", 1, "leave_one_out")
    with pytest.raises(ValueError, match=r"6 episodes \(shape \[4, 6\]\) do not split into groups of 4"):
        R.group_baseline_weights(weights, weights, "total", 4, "leave_one_out")
    with pytest.raises(ValueError, match="baseline='rloo': expected one of"):
        R.group_baseline_weights(weights, weights, "total", 2, "rloo")
    with pytest.raises(ValueError, match="weighting='rtg': expected one of"):
        R.group_baseline_weights(weights, weights, "rtg", 2, "leave_one_out")
