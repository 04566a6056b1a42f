"""PPO: continuous actions, observation statistics, the ratio-deviation metrics it shares with
SPO (its update with another policy term), strict config (the trainer contract is
tests/test_contract.py)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref  # tests/ is on sys.path (conftest.py)
from contract import TINY as CONTRACT_TINY

from pgjax import config as cfg
from pgjax.algos import ppo, spo

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


@pytest.mark.parametrize("jit", [False, True])
def test_minibatch_step_reports_the_global_gradient_norm(jit):
    # loss = 1/2 sum_leaves sum(c * p^2): the gradient of each leaf is c * p, so the norm is
    # known in closed form; the reference sums in float64, one leaf at a time.
    rng = np.random.default_rng(0)
    params = {"actor": {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=4)},
              "critic": {"kernel": rng.normal(size=(4, 1))}}
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    scale = jax.tree.map(lambda x: jnp.asarray(rng.uniform(0.5, 3.0, size=x.shape), jnp.float32), params)

    def loss_fn(p, batch):
        loss = 0.5 * sum(jnp.sum(c * x**2) for c, x in zip(jax.tree.leaves(batch), jax.tree.leaves(p)))
        return loss, {"loss": loss}

    config = dataclasses.replace(TINY, anneal_lr=False)
    optimizer = ppo.make_optimizer(config, ppo.PPOHParams(max_grad_norm=0.5))
    step = functools.partial(ppo.minibatch_step, optimizer, loss_fn)
    step = jax.jit(step) if jit else step
    (new_params, _), metrics = step((params, optimizer.init(params)), scale)
    grads = [np.float64(c) * np.float64(x) for c, x in zip(jax.tree.leaves(scale), jax.tree.leaves(params))]
    expected = np.sqrt(sum(np.sum(g**2) for g in grads))
    assert expected > 0.5  # the clip is active, so the optimizer computed the same norm
    np.testing.assert_allclose(float(metrics["grad_norm"]), expected, rtol=1e-6)
    assert not np.allclose(jax.tree.leaves(new_params)[0], jax.tree.leaves(params)[0])


def _recording(policy_loss, seen):
    """`policy_loss` that also hands each minibatch's log-ratios to the host (test only)."""
    def recorded(hparams, log_probs, old_log_probs, advantages):
        jax.debug.callback(lambda x: seen.append(np.asarray(x, np.float64)), log_probs - old_log_probs)
        return policy_loss(hparams, log_probs, old_log_probs, advantages)
    return recorded


@pytest.mark.parametrize("objective", ["clip", "spo"])
def test_ratio_deviation_metrics_cover_every_minibatch_of_the_update(objective):
    """An update logs how far the ratio left [1 - eps, 1 + eps] over all its epochs'
    minibatches, each measured before its gradient step: the fraction outside and the mean
    excess over every sample seen, and the largest deviation (NumPy oracle on the pooled
    log-ratios). A large step size and a narrow band put many ratios outside."""
    module, eps_field = (ppo, "clip_eps") if objective == "clip" else (spo, "ratio_eps")
    policy_loss = ppo.clip_objective if objective == "clip" else spo.penalty_objective
    config_class = ppo.PPOConfig if objective == "clip" else spo.SPOConfig
    config = cfg.from_dict(config_class, {k: v for k, v in cfg.to_dict(TINY).items() if k != "hparams"})
    hp = dataclasses.replace(config.hparams, learning_rate=0.05, **{eps_field: 0.02})
    trainer = module.make_trainer(config)
    state = trainer.init(jax.random.PRNGKey(0), hp)
    seen = []
    update = functools.partial(ppo.surrogate_update, _recording(policy_loss, seen), config, trainer.env,
                               trainer.networks)
    _, metrics = jax.jit(update)(hp, state, None)
    jax.effects_barrier()
    assert len(seen) == config.update_epochs * config.num_minibatches
    expected = ref.ratio_deviation(np.concatenate(seen), 0.02)
    assert 0.05 < expected["ratio_outside_frac"] < 0.95
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-5, atol=1e-7, err_msg=name)


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


@pytest.mark.parametrize("values, message", [
    ({"hparams": {"ratio_eps": 0.0}}, "hparams.ratio_eps=0.0 is out of range: must be > 0"),
    ({"hparams": {"clip_eps": 0.2}}, "unknown config key 'hparams.clip_eps'"),  # SPO has no clip
    ({"num_envs": 3, "num_steps": 5, "num_minibatches": 4}, "num_minibatches=4 does not divide the batch"),
])
def test_spo_bad_config_values_are_named(values, message):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.from_dict(spo.SPOConfig, values)
    assert message in str(err.value)


def test_overrides_parse_numbers_lists_and_strings():
    assert cfg.parse_override("hparams.gamma=0.9") == (["hparams", "gamma"], 0.9)
    assert cfg.parse_override("hidden_sizes=[32,32]") == (["hidden_sizes"], [32, 32])
    assert cfg.parse_override("env_id=Acrobot-v1") == (["env_id"], "Acrobot-v1")
    assert cfg.parse_override("anneal_lr=false") == (["anneal_lr"], False)
    config = cfg.from_dict(ppo.PPOConfig, cfg.merge({}, ["hparams", "gamma"], 0.9))
    assert config.hparams.gamma == 0.9 and config.hparams.clip_eps == 0.2
