"""PPO: determinism, vmap over seeds and hyper-parameters, chunked runs, strict config."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import compiled_trainer, hparam_grid, leaves_equal

from pgjax import config as cfg
from pgjax.algos import ppo
from pgjax.experiment import seed_keys

TINY = ppo.PPOConfig(
    env_id="CartPole-v1", num_envs=4, num_steps=16, total_timesteps=4 * 16 * 6,
    update_epochs=2, num_minibatches=2, hidden_sizes=(16, 16),
)


@pytest.fixture(scope="module")
def compiled():
    """The tiny config's trainer and its jitted train / vmapped sweep, shared by the tests below."""
    return compiled_trainer("ppo", ppo, TINY)


@pytest.fixture(scope="module")
def tiny_trainer(compiled):
    return compiled.trainer


@pytest.fixture(scope="module")
def tiny_train(compiled):
    return compiled.train


@pytest.fixture(scope="module")
def tiny_sweep(compiled):
    return compiled.sweep


def test_same_seed_is_bit_identical_and_seeds_differ(tiny_train):
    key = jax.random.PRNGKey(3)
    a, b = tiny_train(key, TINY.hparams), tiny_train(key, TINY.hparams)
    assert leaves_equal(a, b)
    c = tiny_train(jax.random.PRNGKey(4), TINY.hparams)
    assert not np.array_equal(a.metrics["loss"], c.metrics["loss"])


def test_metrics_have_one_row_per_update(tiny_train):
    out = tiny_train(jax.random.PRNGKey(0), TINY.hparams)
    for name in ["loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                 "explained_variance", "episode_return", "episodes", "grad_norm", "env_steps"]:
        assert out.metrics[name].shape == (TINY.num_updates,), name
    np.testing.assert_array_equal(out.metrics["env_steps"], TINY.batch_size * np.arange(1, 7))
    assert int(out.state.update) == TINY.num_updates


def test_vmap_over_seeds_matches_separate_runs(tiny_train, tiny_sweep):
    keys = seed_keys(0, [0, 1, 2])
    batched = tiny_sweep(keys, hparam_grid(TINY.hparams, gamma=[TINY.hparams.gamma] * 3))
    for i in range(3):
        single = tiny_train(keys[i], TINY.hparams)
        # vmap is not bit-identical (different XLA fusion); compare the first updates.
        np.testing.assert_allclose(batched.metrics["loss"][i, :3], single.metrics["loss"][:3], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batched.metrics["episode_return"][i, :2], single.metrics["episode_return"][:2], rtol=1e-5)


def test_adding_seeds_does_not_change_existing_ones():
    a = seed_keys(7, [0, 1])
    b = seed_keys(7, [0, 1, 2, 3])
    np.testing.assert_array_equal(a, b[:2])


def test_hparams_sweep_is_a_vmap_without_recompiling(tiny_trainer, tiny_train, tiny_sweep):
    traces = []

    def train(key, hparams):
        traces.append(1)  # runs only while tracing
        return tiny_trainer.train(key, hparams)

    keys = jnp.stack([jax.random.PRNGKey(0)] * 3)
    grid = hparam_grid(TINY.hparams, learning_rate=[1e-4, 1e-3, 1e-2], clip_eps=[0.1, 0.2, 0.3])
    counted = jax.jit(jax.vmap(train))
    out = counted(keys, grid)
    counted(keys, hparam_grid(TINY.hparams, gamma=[0.9, 0.95, 0.99]))
    assert len(traces) == 1  # new values, same shapes: no retrace, no recompile
    # The values take effect: different learning rates give different parameters ...
    final = jax.tree.leaves(out.state.params)[0]
    assert not np.allclose(final[0], final[1]) and not np.allclose(final[1], final[2])
    # ... and each cell matches a run with that hyper-parameter alone.
    cell = dataclasses.replace(TINY.hparams, learning_rate=1e-3, clip_eps=0.2)
    single = tiny_train(keys[1], cell)
    np.testing.assert_allclose(out.metrics["loss"][1, :3], single.metrics["loss"][:3], rtol=1e-4, atol=1e-5)


def test_chunked_run_equals_one_long_run(tiny_trainer, tiny_train):
    key, hp = jax.random.PRNGKey(11), TINY.hparams
    whole = tiny_train(key, hp)
    run = jax.jit(tiny_trainer.run, static_argnums=2)
    state, m1 = run(jax.jit(tiny_trainer.init)(key, hp), hp, 3)
    state, m2 = run(state, hp, 3)
    assert leaves_equal(whole.state, state)
    for name in whole.metrics:
        np.testing.assert_array_equal(whole.metrics[name], np.concatenate([m1[name], m2[name]]))


def test_continuous_actions_are_clipped_for_the_env_but_scored_unclipped():
    config = dataclasses.replace(TINY, env_id="Pendulum-v1", init_log_std=1.5)
    trainer = ppo.make_trainer(config)
    out = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    assert np.isfinite(out.metrics["loss"]).all()
    # With std e^1.5 many samples leave [-2, 2]; the env sees clipped actions only.
    obs = jnp.zeros((256, 3))
    actions = trainer.act(out.state.params, out.state.obs_stats, jax.random.PRNGKey(1), obs)
    assert float(jnp.abs(actions).max()) <= 2.0
    dist = trainer.networks.actor.apply(out.state.params["actor"], obs)
    assert float(jnp.abs(dist.sample(jax.random.PRNGKey(1))).max()) > 2.0


def test_observation_normalisation_statistics_live_in_the_state():
    config = dataclasses.replace(TINY, normalize_obs=True)
    trainer = ppo.make_trainer(config)
    out = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    stats = out.state.obs_stats
    assert float(stats.count) == pytest.approx(TINY.num_updates * TINY.batch_size, rel=1e-3)
    assert np.all(np.asarray(stats.var) > 0) and not np.allclose(stats.mean, 0.0)


# --- configuration ------------------------------------------------------------------------


def test_shipped_configs_load_and_build():
    from pathlib import Path

    from pgjax.cli import load_config

    files = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.toml"))
    assert files, "no configs shipped"
    for path in files:
        _, module, config = load_config(None, path, None, [])
        module.make_trainer(config)


@pytest.mark.parametrize("values, message", [
    ({"num_minibatchs": 4}, "unknown config key 'num_minibatchs'. Did you mean 'num_minibatches'?"),
    ({"hparams": {"gama": 0.9}}, "Did you mean 'hparams.gamma'?"),
    ({"hparams": {"gamma": 1.5}}, "hparams.gamma=1.5 is out of range: must be in (0, 1]"),
    ({"hparams": {"gamma": 0.0}}, "hparams.gamma=0.0 is out of range"),
    ({"num_envs": 3, "num_steps": 5, "num_minibatches": 4}, "num_minibatches=4 does not divide the batch"),
    ({"num_envs": "four"}, "num_envs='four': expected a whole number"),
    ({"num_envs": 2.5}, "num_envs=2.5: expected a whole number"),
    ({"anneal_lr": 1}, "anneal_lr=1: expected true or false"),
    ({"activation": "sigmoid"}, "activation='sigmoid' is out of range: must be one of 'tanh'"),
    ({"total_timesteps": 100}, "total_timesteps=100 is smaller than one rollout"),
])
def test_bad_config_values_are_named(values, message):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.from_dict(ppo.PPOConfig, values)
    assert message in str(err.value)


def test_overrides_parse_numbers_lists_and_strings():
    assert cfg.parse_override("hparams.gamma=0.9") == (["hparams", "gamma"], 0.9)
    assert cfg.parse_override("hidden_sizes=[32,32]") == (["hidden_sizes"], [32, 32])
    assert cfg.parse_override("env_id=Acrobot-v1") == (["env_id"], "Acrobot-v1")
    assert cfg.parse_override("anneal_lr=false") == (["anneal_lr"], False)
    config = cfg.from_dict(ppo.PPOConfig, cfg.merge({}, ["hparams", "gamma"], 0.9))
    assert config.hparams.gamma == 0.9 and config.hparams.clip_eps == 0.2
