"""Network heads: shapes, the log-std parameterisations, near-uniform initial policies."""

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.distributions import Categorical, DiagGaussian
from pgjax.networks import MLP, CategoricalActor, GaussianActor, ValueCritic


def _init_apply(module, obs):
    params = module.init(jax.random.PRNGKey(0), obs)
    return params, module.apply(params, obs)


def test_categorical_actor_starts_near_uniform():
    obs = jax.random.normal(jax.random.PRNGKey(1), (32, 4))
    _, dist = _init_apply(CategoricalActor(3, (16, 16)), obs)
    assert isinstance(dist, Categorical) and dist.logits.shape == (32, 3)
    # Output-layer gain 0.01: the initial policy is close to uniform (Andrychowicz et al., 2021).
    np.testing.assert_allclose(np.asarray(dist.entropy()), np.log(3.0), atol=1e-3)


def test_gaussian_actor_state_independent_log_std_is_a_parameter():
    obs = jnp.ones((5, 3))
    params, dist = _init_apply(GaussianActor(2, (8,), init_log_std=-0.5), obs)
    assert isinstance(dist, DiagGaussian) and dist.mean.shape == (5, 2) and dist.log_std.shape == (5, 2)
    np.testing.assert_allclose(params["params"]["log_std"], [-0.5, -0.5])
    np.testing.assert_allclose(dist.log_std, -0.5)


def test_gaussian_actor_state_dependent_log_std_is_clamped():
    module = GaussianActor(2, (8,), state_dependent_std=True, log_std_min=-5.0, log_std_max=2.0)
    obs = jnp.ones((4, 3))
    params, dist = _init_apply(module, obs)
    assert "log_std" not in params["params"]
    # Push the log-std head far in both directions: the output stays within the clamp.
    for scale in (1e4, -1e4):
        big = jax.tree.map(lambda x: x * scale, params)
        log_std = module.apply(big, obs).log_std
        assert float(log_std.max()) <= 2.0 and float(log_std.min()) >= -5.0
    varied = module.apply(params, jax.random.normal(jax.random.PRNGKey(2), (4, 3))).log_std
    assert not np.allclose(varied[0], varied[1])  # depends on the state


def test_value_critic_and_torso_shapes():
    obs = jnp.ones((7, 6))
    _, values = _init_apply(ValueCritic((32, 32)), obs)
    assert values.shape == (7,)
    _, features = _init_apply(MLP((5, 9), "relu"), obs)
    assert features.shape == (7, 9) and float(features.min()) >= 0.0


def test_orthogonal_init_is_orthogonal_without_lapack_qr():
    from pgjax.networks import orthogonal

    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    for shape in [(64, 64), (4, 64), (64, 2)]:
        init = jax.jit(jax.vmap(lambda k, s=shape: orthogonal(2.0)(k, s)))
        w = np.asarray(init(keys), np.float64) / 2.0
        gram = np.einsum("bij,bik->bjk", w, w) if shape[0] >= shape[1] else np.einsum("bji,bki->bjk", w, w)
        assert np.abs(gram - np.eye(gram.shape[-1])).max() < 2e-6, shape
    # Haar-distributed entries: mean 0, E[w_ij^2] = 1/n for an n x n orthogonal matrix.
    w = np.asarray(jax.vmap(lambda k: orthogonal()(k, (16, 16)))(keys))
    assert abs(w.mean()) < 0.01 and abs((w**2).mean() * 16 - 1.0) < 1e-3
    # No LAPACK QR in the program: batched QR deadlocks jaxlib's 2-thread CPU pool.
    jaxpr = str(jax.make_jaxpr(jax.vmap(lambda k: orthogonal()(k, (8, 8))))(keys[:2]))
    assert "geqrf" not in jaxpr and "householder_product" not in jaxpr and " qr" not in jaxpr
