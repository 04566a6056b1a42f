"""Network heads: shapes, the log-std parameterisations, near-uniform initial policies."""

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.kernels.distributions import Categorical, DiagGaussian
from pgjax.networks.heads import CategoricalActor, GaussianActor, ValueCritic
from pgjax.networks.torsos import MLP


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
    params, _dist = _init_apply(module, obs)
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
    from pgjax.networks.initializers import orthogonal

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


def _deferred_batch(keys, shape, gain):
    """`len(keys)` deferred kernels of `shape`, boxed as one ensemble (batch axis in front)."""
    from pgjax.networks.initializers import orthogonal_deferred

    return jax.vmap(lambda k: orthogonal_deferred(gain)(k, shape))(keys).replace(batch_dims=1)


def test_deferred_orthogonal_kernels_are_orthogonal_and_haar_distributed():
    """The path every pgjax network takes: Gaussian draws boxed by `orthogonal_deferred`,
    zero-padded into shared batches and orthogonalised by one loop per group
    (`orthogonalize`). Checked: Q^T Q = gain^2 I to float32 precision, and against the Haar
    measure on O(n) drawn by scipy (`ortho_group`, Mezzadri's sign-fixed QR) with two-sample
    KS tests on a fixed entry, the trace and the eigenvalue phases (the law that tells a
    rotation-invariant distribution from, say, one biased towards the identity), the
    determinant's sign, and the exact Beta law of a squared entry of a Stiefel column."""
    import scipy.stats

    from pgjax.networks.initializers import orthogonalize

    n, samples = 6, 3000
    keys = jax.random.split(jax.random.PRNGKey(3), 3 * samples).reshape(3, samples, 2)
    boxes = {
        "square": _deferred_batch(keys[0], (n, n), 2.0),  # thin group, padded to 10 rows
        "tall": _deferred_batch(keys[1], (10, 3), 0.5),
        "wide": _deferred_batch(keys[2], (3, 10), 1.0),  # stored transposed
        "conv": _deferred_batch(keys[0, :50], (3, 3, 4, 20), 1.0),  # 36 x 20: a group of its own
    }
    out = jax.jit(orthogonalize)(boxes)
    assert not any("DeferredOrthogonal" in str(type(x)) for x in jax.tree.leaves(out))
    square = np.asarray(out["square"], np.float64) / 2.0
    tall = np.asarray(out["tall"], np.float64) / 0.5
    wide = np.asarray(out["wide"], np.float64)
    conv = np.asarray(out["conv"], np.float64).reshape(50, 36, 20)
    for q, eye in ((square, np.eye(n)), (tall, np.eye(3)), (np.swapaxes(wide, 1, 2), np.eye(3)), (conv, np.eye(20))):
        assert np.abs(np.einsum("bij,bik->bjk", q, q) - eye).max() < 2e-6
    # The boxed draw is orthogonal()'s draw: the same key gives the same kernel.
    from pgjax.networks.initializers import orthogonal

    np.testing.assert_allclose(out["square"][5], orthogonal(2.0)(keys[0, 5], (n, n)), atol=2e-6)
    np.testing.assert_allclose(out["wide"][7], orthogonal(1.0)(keys[2, 7], (3, 10)), atol=2e-6)

    haar = scipy.stats.ortho_group.rvs(n, size=samples, random_state=np.random.default_rng(0))

    def phases(q):
        return np.abs(np.angle(np.linalg.eigvals(q))).ravel()

    for name, stat in (("entry", lambda q: q[:, 1, 4]), ("trace", lambda q: np.trace(q, axis1=1, axis2=2)),
                       ("phases", phases)):
        p = scipy.stats.ks_2samp(stat(square), stat(haar)).pvalue
        assert p > 1e-3, (name, p)
    assert abs(np.mean(np.linalg.det(square) < 0) - 0.5) < 0.04  # O(n), not SO(n)
    # Stiefel: each column is uniform on the sphere S^9, so q_11^2 ~ Beta(1/2, 9/2).
    assert scipy.stats.kstest(tall[:, 0, 0] ** 2, scipy.stats.beta(0.5, 4.5).cdf).pvalue > 1e-3


def test_network_init_returns_plain_orthogonal_kernels():
    # Network.init and init_networks leave no box behind; the ensemble's members differ.
    from pgjax.networks.initializers import init_networks

    obs, action = jnp.zeros((1, 3)), jnp.zeros((1, 2))
    ensemble = QEnsemble(2, (8, 8))
    for params in (ensemble.init(jax.random.PRNGKey(0), obs, action),
                   init_networks({"q": (ensemble, jax.random.PRNGKey(0), (obs, action))})["q"]):
        kernels = params["params"]["VmapQCritic_0"]
        hidden = np.asarray(kernels["MLP_0"]["Dense_1"]["kernel"], np.float64)  # [2, 8, 8]
        for member in hidden:
            np.testing.assert_allclose(member.T @ member, 2.0 * np.eye(8), atol=1e-5)
        assert np.abs(hidden[0] - hidden[1]).max() > 0.1
        assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(params))


# --- torsos: flatten + MLP, CNN, chosen from the observation space ----------------------------

from pgjax.networks.heads import DeterministicActor, QEnsemble
from pgjax.networks.torsos import CNN, TorsoSpec, check_torso, flatten_obs, resolve_torso, torso_spec

CNN_SPEC = TorsoSpec("cnn", 3, channels=(4, 3), kernel_sizes=(3, 2), strides=(1, 2))


def _conv_valid(x, kernel, bias, stride):
    """Plain NumPy float64 VALID cross-correlation: x [N, H, W, C], kernel [k, k, C, F]."""
    k = kernel.shape[0]
    out_h, out_w = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j, :] = np.einsum("nabc,abcf->nf", patch, kernel) + bias
    return out


def _cnn_reference(params, obs, strides):
    """The CNN's features from its parameters, written from the definition (ReLU, flatten)."""
    x = np.asarray(obs, np.float64)
    batch = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:])
    for i, stride in enumerate(strides):
        layer = params["params"][f"Conv_{i}"]
        x = np.maximum(_conv_valid(x, np.asarray(layer["kernel"], np.float64), np.asarray(layer["bias"], np.float64), stride), 0.0)
    return x.reshape(*batch, -1)


def test_cnn_matches_a_numpy_convolution_with_and_without_jit():
    module = CNN((4, 3), (3, 2), (1, 2), "relu")
    obs = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (2, 3, 10, 10, 5))  # [T, B, H, W, C] booleans
    params = module.init(jax.random.PRNGKey(1), obs)
    # Non-zero biases, so a wrong bias or padding shows.
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(2), p.shape), params)
    expected = _cnn_reference(params, obs, (1, 2))
    assert expected.shape == (2, 3, 4 * 4 * 3)  # 10 -> 8 (k3 s1) -> 4 (k2 s2), 3 channels
    for apply in (module.apply, jax.jit(module.apply)):
        features = apply(params, obs)
        assert features.dtype == jnp.float32
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_conv_valid_matches_numpy_and_lax_conv_under_vmap_and_grad():
    from pgjax.networks.torsos import conv_valid

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 9, 11, 4))  # [seeds, N, H, W, C]
    kernels = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 4, 5))  # one 3x3 kernel per seed
    for stride in (1, 2):
        expected = np.stack([_conv_valid(np.asarray(x[s], np.float64), np.asarray(kernels[s], np.float64), 0.0, stride)
                             for s in range(3)])
        conv = jax.vmap(lambda xs, k: conv_valid(xs, k, stride))
        for apply in (conv, jax.jit(conv)):
            np.testing.assert_allclose(apply(x, kernels), expected, rtol=1e-5, atol=1e-5)

        # Gradients against XLA's own convolution (the layer's backward pass is the im2col one).
        def loss(conv_fn, k):
            return jnp.sum(jnp.sin(jax.vmap(conv_fn)(x, k)))

        lax_conv = lambda xs, k: jax.lax.conv_general_dilated(
            xs, k, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        ours = jax.jit(jax.grad(lambda k: loss(lambda xs, kk: conv_valid(xs, kk, stride), k)))(kernels)
        np.testing.assert_allclose(ours, jax.grad(lambda k: loss(lax_conv, k))(kernels), rtol=1e-4, atol=1e-4)


def test_cnn_gives_a_grid_one_channel():
    module = CNN((2,), (3,), (1,), "relu", obs_rank=2)
    grid = jax.random.normal(jax.random.PRNGKey(0), (6, 10, 5))  # Catch-like [B, H, W]
    params = module.init(jax.random.PRNGKey(1), grid)
    assert params["params"]["Conv_0"]["kernel"].shape == (3, 3, 1, 2)
    np.testing.assert_allclose(module.apply(params, grid), _cnn_reference(params, grid[..., None], (1,)), rtol=1e-5, atol=1e-5)
    single = module.apply(params, grid[0])  # no batch axis at all
    np.testing.assert_allclose(single, module.apply(params, grid)[0], rtol=1e-6)


def test_mlp_torso_flattens_any_observation_rank():
    obs = jax.random.bernoulli(jax.random.PRNGKey(0), 0.5, (7, 10, 10, 4))  # MinAtar-like booleans
    flat = np.asarray(obs, np.float32).reshape(7, 400)
    image_critic = ValueCritic((16,), torso=TorsoSpec("mlp", 3))
    params = image_critic.init(jax.random.PRNGKey(1), obs)
    # The same parameters on the flattened float observations give the same values.
    np.testing.assert_array_equal(image_critic.apply(params, obs), ValueCritic((16,)).apply(params, flat))
    assert flatten_obs(jnp.zeros((3, 2)), 0).shape == (3, 2, 1)  # scalar observations (FrozenLake)
    assert flatten_obs(jnp.zeros((5, 4), jnp.int32), 1).dtype == jnp.float32


def test_every_head_takes_the_cnn_torso():
    obs = jnp.ones((5, 10, 10, 4))
    action = jnp.zeros((5, 2))
    heads = {
        "categorical": (CategoricalActor(3, (8,), torso=CNN_SPEC), (obs,), lambda d: d.logits.shape == (5, 3)),
        "gaussian": (GaussianActor(2, (8,), torso=CNN_SPEC), (obs,), lambda d: d.mean.shape == (5, 2)),
        "value": (ValueCritic((8,), torso=CNN_SPEC), (obs,), lambda v: v.shape == (5,)),
        "q": (QEnsemble(2, (8,), "relu", torso=CNN_SPEC), (obs, action), lambda q: q.shape == (2, 5)),
        "discrete q": (QEnsemble(2, (8,), "relu", num_actions=3, torso=CNN_SPEC), (obs,), lambda q: q.shape == (2, 5, 3)),
        "deterministic": (DeterministicActor((-1.0, -2.0), (1.0, 2.0), (8,), torso=CNN_SPEC), (obs,), lambda a: a.shape == (5, 2)),
    }
    for name, (module, args, shape_ok) in heads.items():
        params = module.init(jax.random.PRNGKey(0), *args)
        assert shape_ok(module.apply(params, *args)), name
        assert "CNN_0" in str(jax.tree_util.tree_structure(params)), name


def test_cnn_init_is_orthogonal_with_gain_sqrt2_and_zero_bias():
    params = CNN((16, 8), (3, 3), (1, 1)).init(jax.random.PRNGKey(0), jnp.zeros((1, 10, 10, 4)))
    for name, rows in (("Conv_0", 3 * 3 * 4), ("Conv_1", 3 * 3 * 16)):
        kernel = np.asarray(params["params"][name]["kernel"], np.float64)
        matrix = kernel.reshape(rows, -1)  # fan-in rows x output channels
        np.testing.assert_allclose(matrix.T @ matrix, 2.0 * np.eye(matrix.shape[1]), atol=1e-5)
        np.testing.assert_array_equal(params["params"][name]["bias"], 0.0)


def test_the_torso_a_config_gets():
    from types import SimpleNamespace

    config = SimpleNamespace(torso="auto", cnn_channels=(16,), cnn_kernel_sizes=(3,), cnn_strides=(1,))
    assert resolve_torso("auto", (10, 10, 4)) == "cnn"  # MinAtar
    assert resolve_torso("auto", (10, 5)) == "mlp" and resolve_torso("auto", ()) == "mlp"
    assert resolve_torso("mlp", (10, 10, 4)) == "mlp"
    assert torso_spec(config, (4,)) == TorsoSpec()  # vector observations: the MLP pgjax always had
    assert torso_spec(config, (10, 10, 4)) == TorsoSpec("cnn", 3, (16,), (3,), (1,))
    assert check_torso(config, (10, 10, 4)) is None and check_torso(config, (4,)) is None
    cnn = SimpleNamespace(**{**vars(config), "torso": "cnn"})
    assert "torso='cnn' needs grid or image observations" in check_torso(cnn, (4,))
    assert "shrink" in check_torso(cnn, (1, 1))  # SimpleBandit's 1x1 grid under a 3x3 kernel
    ragged = SimpleNamespace(**{**vars(cnn), "cnn_strides": (1, 1)})
    assert "same length" in check_torso(ragged, (10, 10, 4))


# --- registries: a torso or core is one registration away from a config choice -------------


def test_a_registered_torso_is_a_config_choice_and_builds_the_networks():
    import pytest

    from pgjax.algos.actor_critic import init_actor_critic, make_actor_critic
    from pgjax.algos.ppo import PPOConfig
    from pgjax.config import ConfigError
    from pgjax.envs import make_vec_env
    from pgjax.networks import torsos

    with pytest.raises(ConfigError, match="torso='doubled' is out of range: must be 'auto' or a registered torso"):
        PPOConfig(torso="doubled")
    torsos.register_torso("doubled", torsos.Torso(lambda obs, spec, act: 2.0 * flatten_obs(obs, spec.obs_rank)))
    try:
        config = PPOConfig(torso="doubled", hidden_sizes=(8,))
        env = make_vec_env("CartPole-v1", 2)
        networks = make_actor_critic(config, env)
        params = init_actor_critic(networks, env, jax.random.PRNGKey(0))
        obs = jnp.ones((2, 4))
        values = networks.critic.apply(params["critic"], obs)
        hidden, out = params["critic"]["params"]["MLP_0"]["Dense_0"], params["critic"]["params"]["Dense_0"]
        features = jnp.tanh(2.0 * obs @ hidden["kernel"] + hidden["bias"][None])
        np.testing.assert_allclose(values, (features @ out["kernel"])[:, 0] + out["bias"][0], atol=1e-6)
    finally:
        del torsos.TORSOS["doubled"]


def test_the_feed_forward_core_threads_an_empty_carry():
    import pytest

    from pgjax.algos.actor_critic import init_actor_critic, make_actor_critic, sample_step
    from pgjax.algos.ppo import PPOConfig
    from pgjax.config import ConfigError
    from pgjax.envs import init_running_stats, make_vec_env
    from pgjax.networks.cores import CORES, FeedForward, make_core

    assert set(CORES) >= {"none", "gru", "mingru"} and isinstance(make_core(PPOConfig()), FeedForward)
    with pytest.raises(ConfigError, match="core='lstm' is out of range: must be a registered core"):
        PPOConfig(core="lstm")
    config = PPOConfig(hidden_sizes=(8,))
    env = make_vec_env("CartPole-v1", 3)
    networks = make_actor_critic(config, env)
    params = init_actor_critic(networks, env, jax.random.PRNGKey(0))
    carry = networks.core.init_carry(3)
    assert carry == ()
    step, carry = sample_step(config, env, networks, params, init_running_stats((4,)), jax.random.PRNGKey(1),
                              jnp.zeros((3, 4)), carry)
    assert carry == () and step.action.shape == (3,)
