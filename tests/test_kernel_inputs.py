"""Kernels called from a notebook (issue 34): every public kernel of `returns` and
`distributions` takes array-likes (lists, Python numbers, integer arrays) and gives the
numbers of float32 arrays; a coefficient (`gamma`, `lambda_`) may be a number, a
one-element list or one value per column; anything else is one line naming the kernel and
the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.kernels import distributions as d
from pgjax.kernels import returns

F = np.float32

# (kernel, array-like arguments, the same as float32 arrays)
DISTRIBUTION_CASES = [
    (d.categorical_log_prob, ([[0, 1], [2, 0]], [1, 0]), (F([[0, 1], [2, 0]]), np.int32([1, 0]))),
    (d.categorical_entropy, ([0, 1, 2],), (F([0, 1, 2]),)),
    (d.categorical_kl, ([0.0, 1.0], [1, 0]), (F([0, 1]), F([1, 0]))),
    (d.diag_gaussian_log_prob, ([0.5], 0, [1]), (F([0.5]), F(0), F([1]))),
    (d.diag_gaussian_entropy, ([0.0, 1],), (F([0, 1]),)),
    (d.diag_gaussian_kl, ([0.0], [0.0], [1], 0.5), (F([0]), F([0]), F([1]), F(0.5))),
    (d.tanh_log_det_jacobian, ([1.0, 9],), (F([1, 9]),)),
    (d.tanh_gaussian_log_prob, ([0.0], [0.0], [1]), (F([0]), F([0]), F([1]))),
]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("kernel, given, arrays", DISTRIBUTION_CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_distribution_kernels_accept_lists_and_numbers(kernel, given, arrays, jit):
    """The array-likes give the float32 arrays' numbers; under jit the arrays give them too."""
    expected = kernel(*map(jnp.asarray, arrays))
    np.testing.assert_allclose(kernel(*given), expected, rtol=1e-6)
    if jit:
        np.testing.assert_allclose(jax.jit(kernel)(*map(jnp.asarray, arrays)), expected, rtol=1e-6)


def test_distribution_objects_accept_lists():
    key = jax.random.key(0)
    cat = d.Categorical([0.0, 5.0])
    assert int(cat.mode()) == 1 and cat.sample(key).shape == ()
    np.testing.assert_allclose(cat.entropy(), d.categorical_entropy(F([0, 5])), rtol=1e-6)
    gauss = d.DiagGaussian([0.0, 1.0], 0.0)
    assert gauss.shape == (2,) and gauss.sample(key).shape == (2,)
    np.testing.assert_allclose(gauss.mode(), [0, 1])
    np.testing.assert_allclose(gauss.entropy(), d.diag_gaussian_entropy(F([0, 0])), rtol=1e-6)


def _episode(batch=False):
    rewards, terminated, truncated = F([1, 2, 3, 4]), np.array([0, 1, 0, 0], bool), np.array([0, 0, 0, 1], bool)
    values, next_values = F([0.1, 0.2, 0.3, 0.4]), F([0.5, 0.6, 0.7, 0.8])
    if batch:  # two identical columns: [T, 2]
        rewards, terminated, truncated, values, next_values = (np.stack([x, x], 1) for x in
                                                               (rewards, terminated, truncated, values, next_values))
    return rewards, values, next_values, terminated, truncated


@pytest.mark.parametrize("gamma", [[0.9], (0.9,), np.float32(0.9), np.array([0.9], np.float32), jnp.float32(0.9)])
def test_array_like_gamma_equals_a_number(gamma):
    rewards, values, next_values, terminated, truncated = _episode()
    cases = [
        (returns.gae, (rewards, values, next_values, terminated, truncated), (0.95,)),
        (returns.lambda_returns, (rewards, next_values, terminated, truncated), (0.95,)),
        (returns.discounted_returns, (rewards, terminated, truncated), ()),
        (returns.td_errors, (rewards, values, next_values, terminated), ()),
        (returns.n_step_returns, (rewards, next_values, terminated, truncated), (2,)),
        (returns.times_discount, (rewards,), ()),
        (returns.reward_to_go, (rewards, np.ones(4, F)), ()),
    ]
    for kernel, arrays, rest in cases:
        np.testing.assert_allclose(kernel(*arrays, gamma, *rest), kernel(*arrays, 0.9, *rest), rtol=1e-6,
                                   err_msg=kernel.__name__)
    np.testing.assert_allclose(returns.gae(rewards, values, next_values, terminated, truncated, 0.9, [0.95]),
                               returns.gae(rewards, values, next_values, terminated, truncated, 0.9, 0.95), rtol=1e-6)


def test_one_gamma_per_column_equals_each_column_alone():
    rewards, values, next_values, terminated, truncated = _episode(batch=True)
    both = returns.gae(rewards, values, next_values, terminated, truncated, [0.9, 0.5], 0.95)
    single = _episode()
    np.testing.assert_allclose(both[:, 0], returns.gae(*single, 0.9, 0.95), rtol=1e-6)
    np.testing.assert_allclose(both[:, 1], returns.gae(*single, 0.5, 0.95), rtol=1e-6)
    np.testing.assert_allclose(returns.times_discount(rewards, [0.9, 0.5])[:, 1],
                               returns.times_discount(rewards[:, 0], 0.5), rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda e: returns.gae(*e, [0.9, 0.8, 0.7], 0.95),
     r"gae: gamma has shape \[3\]; expected a number or one value per column \(shape \[\]\)"),
    (lambda e: returns.gae(*e, 0.9, "x"), "gae: lambda_ must be numbers"),
    (lambda e: returns.discounted_returns(e[0], e[3], e[4], None), "discounted_returns: gamma must be numbers"),
    (lambda e: d.categorical_entropy("ab"), "categorical_entropy: logits must be numbers"),
    (lambda e: d.diag_gaussian_kl([0.0], [0.0], {"a": 1}, [0.0]), "diag_gaussian_kl: mean_q must be numbers"),
    (lambda e: d.DiagGaussian(["a"], 0.0).sample(jax.random.key(0)), "DiagGaussian.sample: mean must be numbers"),
])
def test_bad_kernel_arguments_are_one_line_naming_the_argument(call, message):
    with pytest.raises((TypeError, ValueError), match=message) as info:
        call(_episode())
    assert "\n" not in str(info.value)
