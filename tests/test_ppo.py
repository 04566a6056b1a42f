"""PPO: continuous actions, observation statistics, strict config (the trainer contract is
tests/test_contract.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import TINY as CONTRACT_TINY

from pgjax import config as cfg
from pgjax.algos import ppo

TINY = CONTRACT_TINY["ppo"]  # the trainer contract (determinism, chunks, vmap, checkpoints): test_contract.py


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
