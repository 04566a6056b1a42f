"""The `init` and `bias_init_max` network settings: the default orthogonal initialisation,
or LeCun-normal kernels and uniform biases (gymnax-blines' networks), through every family's
trainer init."""

import jax
import numpy as np
import pytest

import pgjax
from pgjax.algos import ALGORITHMS
from pgjax.config import INITS as CONFIG_INITS
from pgjax.config import ConfigError
from pgjax.networks.initializers import INITS


def _params(algo: str, overrides=None):
    config = pgjax.load_config(algo, overrides or {})
    trainer = ALGORITHMS[algo].make_trainer(config)
    return trainer.init(jax.random.PRNGKey(0), config.hparams).params


def _leaves(params, name: str):
    return [(jax.tree_util.keystr(path), np.asarray(leaf))
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
            if getattr(path[-1], "key", None) == name]


def test_the_config_names_the_same_schemes_as_the_networks():
    assert CONFIG_INITS == INITS


@pytest.mark.parametrize("algo", ["ppo", "ddpg", "sac"])
def test_lecun_kernels_have_variance_one_over_fan_in_and_biases_start_uniform(algo):
    env_id = "CartPole-v1" if algo == "ppo" else "Pendulum-v1"
    params = _params(algo, {"env_id": env_id, "hidden_sizes": [256, 256], "init": "lecun", "bias_init_max": 0.05})
    kernels = _leaves(params, "kernel")
    assert kernels
    for where, kernel in kernels:
        fan_in = kernel.shape[-2]  # dense kernels [..., in, out]; a critic ensemble's members lead
        if kernel.size < 500:
            continue  # too few draws for a tight statistic
        # flax's lecun_normal: a truncated normal rescaled to variance exactly 1/fan_in
        assert abs(kernel.std() * np.sqrt(fan_in) - 1.0) < 0.1, where
        assert abs(kernel.mean()) < 4.0 * kernel.std() / np.sqrt(kernel.size), where
    # the policy output is LeCun-scaled too (orthogonal init scales it by 0.01)
    policy_out = [k for where, k in kernels if "actor" in where][-1]
    assert policy_out.std() * np.sqrt(policy_out.shape[0]) > 0.5
    biases = np.concatenate([b.ravel() for _, b in _leaves(params, "bias")])
    assert biases.min() >= 0.0 and biases.max() < 0.05
    assert abs(biases.mean() - 0.025) < 0.005


def test_the_default_keeps_orthogonal_kernels_and_zero_biases():
    params = _params("ppo", {"hidden_sizes": [64, 64]})
    for where, kernel in _leaves(params, "kernel"):
        gram = kernel.T @ kernel if kernel.shape[0] >= kernel.shape[1] else kernel @ kernel.T
        gain2 = gram[0, 0]
        np.testing.assert_allclose(gram, gain2 * np.eye(gram.shape[0]), atol=2e-4 * max(gain2, 1.0), err_msg=where)
    assert all((b == 0).all() for _, b in _leaves(params, "bias"))


def test_a_gaussian_policy_keeps_its_initial_log_std():
    params = _params("ppo", {"env_id": "Pendulum-v1", "init": "lecun", "bias_init_max": 0.05, "init_log_std": -0.5})
    log_std = _leaves(params, "log_std")
    assert log_std and all(np.allclose(v, -0.5) for _, v in log_std)


@pytest.mark.parametrize("key,value,allowed", [("init", "xavier", "one of 'orthogonal', 'lecun'"), ("bias_init_max", -0.1, ">= 0")])
def test_a_bad_initialisation_is_refused_naming_the_field(key, value, allowed):
    with pytest.raises(ConfigError) as err:
        pgjax.load_config("ppo", {key: value})
    assert key in str(err.value) and allowed in str(err.value)
