"""NPG, TRPO and PPO-KL: their trust-region diagnostics (also per cell of a max_kl sweep), the
dual ascent on PPO-KL's multiplier, continuous actions, config errors, the CLI, and learning
(the trainer contract, for every algorithm: tests/test_contract.py).

Learning protocol (as tests/test_learning.py): seeds 0-3 via `seed_keys(0, ...)`, trained
as one vmapped program with the shipped config (on Pendulum with a shorter total_timesteps);
the statistic is the median over seeds of each seed's mean return over 32 evaluation
episodes (`evaluate_seeds`, stochastic policy).
Thresholds sit below the calibrated values recorded next to each test.
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import TINY, contract_trainer, hparam_grid, train_and_evaluate

from pgjax import config as cfg
from pgjax.algos import npg, ppo_kl, trpo
from pgjax.runtime.experiment import seed_keys

ROOT = Path(__file__).resolve().parent.parent
MODULES = {"npg": npg, "trpo": trpo, "ppo_kl": ppo_kl}  # small configs, the contract: contract.py, test_contract.py
SWEEP = {"max_kl": [0.001, 0.01, 0.05], "damping": [0.01, 0.1, 0.5]}


@pytest.mark.parametrize("name", ["npg", "trpo"])
def test_each_max_kl_cell_of_a_sweep_keeps_its_own_radius(name):
    """One vmapped program over three (max_kl, damping) cells (the contract's compiled sweep):
    TRPO's line search holds every update inside its cell's radius; NPG's full natural step
    fills the radius under the quadratic model, so its measured KL grows with it."""
    tiny = contract_trainer(name)
    keys = jnp.stack([seed_keys(0, [0])[0]] * 3)
    kl = np.asarray(tiny.sweep(keys, hparam_grid(tiny.config.hparams, **SWEEP)).metrics["kl"])
    if name == "trpo":
        assert np.all(kl <= np.asarray(SWEEP["max_kl"])[:, None])
    else:
        mean_kl = kl.mean(axis=1)
        assert mean_kl[0] < mean_kl[1] < mean_kl[2]


def test_trpo_accepts_only_improving_steps_within_the_radius():
    tiny = contract_trainer("trpo")
    out = tiny.train(jax.random.PRNGKey(0), tiny.config.hparams)
    m = jax.tree.map(np.asarray, out.metrics)
    accepted = m["line_search_accepted"] == 1.0
    assert accepted.any()
    assert np.all(m["kl"] <= tiny.config.hparams.max_kl)
    assert np.all(m["surrogate_improvement"][accepted] > 0)
    assert np.all((m["line_search_steps"] >= 1) & (m["line_search_steps"] <= tiny.config.backtrack_iters))
    np.testing.assert_allclose(m["step_fraction"][accepted], 0.8 ** (m["line_search_steps"][accepted] - 1), rtol=1e-6)
    assert np.all(m["cg_iterations"] <= tiny.config.cg_iters) and np.all(m["cg_residual"] >= 0)


def test_ppo_kl_multiplier_follows_projected_dual_ascent():
    tiny = contract_trainer("ppo_kl")
    hp = dataclasses.replace(tiny.config.hparams, max_kl=1e-4, init_kl_coef=0.5)  # a tight radius
    out = tiny.train(jax.random.PRNGKey(1), hp)
    m = jax.tree.map(np.asarray, out.metrics)
    assert m["kl_coef"][0] == np.float32(0.5)
    expected = np.maximum(0.0, m["kl_coef"] + np.float32(hp.kl_coef_lr) * (m["kl"] - np.float32(hp.max_kl)))
    np.testing.assert_allclose(m["kl_coef_next"], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(m["kl_coef"][1:], m["kl_coef_next"][:-1])  # carried in the state
    assert float(out.state.kl_coef) == m["kl_coef_next"][-1]
    assert np.all(m["kl_coef_next"][m["kl"] > hp.max_kl] > m["kl_coef"][m["kl"] > hp.max_kl])  # violated: up
    # With a loose radius the multiplier is driven down to zero (and no further).
    loose = tiny.train(jax.random.PRNGKey(1), dataclasses.replace(hp, max_kl=1.0, kl_coef_lr=500.0))
    np.testing.assert_array_equal(loose.metrics["kl_coef_next"], 0.0)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name == "trpo" else pytest.mark.slow) for name in MODULES  # shared policy code
])
def test_continuous_actions(name):
    config = dataclasses.replace(TINY[name], env_id="Pendulum-v1", normalize_obs=True)
    out = jax.jit(MODULES[name].make_trainer(config).train)(jax.random.PRNGKey(0))
    assert np.isfinite(out.metrics["loss"]).all() and np.isfinite(out.metrics["kl"]).all()
    assert float(out.state.obs_stats.count) == pytest.approx(config.num_updates * config.batch_size, rel=1e-3)
    log_std = out.state.params["actor"]["params"]["log_std"]
    assert not np.allclose(log_std, config.init_log_std)  # the Gaussian's scale is learned too


@pytest.mark.parametrize("config_class, values, message", [
    (npg.NPGConfig, {"fvp_fraction": 0.0}, "fvp_fraction=0.0 is out of range: must be in (0, 1]"),
    (npg.NPGConfig, {"cg_iter": 5}, "Did you mean 'cg_iters'?"),
    (npg.NPGConfig, {"hparams": {"max_kl": 0}}, "hparams.max_kl=0.0 is out of range: must be > 0"),
    (npg.NPGConfig, {"hparams": {"damping": -0.1}}, "hparams.damping=-0.1 is out of range: must be >= 0"),
    (trpo.TRPOConfig, {"backtrack_iters": 0}, "backtrack_iters=0 is out of range: must be > 0"),
    (trpo.TRPOConfig, {"hparams": {"backtrack_coef": 1.0}}, "hparams.backtrack_coef=1.0 is out of range: must be in (0, 1)"),
    (ppo_kl.PPOKLConfig, {"hparams": {"kl_coef_lr": 0}}, "hparams.kl_coef_lr=0.0 is out of range: must be > 0"),
    (ppo_kl.PPOKLConfig, {"hparams": {"clip_eps": 0.2}}, "unknown config key 'hparams.clip_eps'"),
    (ppo_kl.PPOKLConfig, {"num_minibatches": 3}, "num_minibatches=3 does not divide the batch"),
])
def test_bad_config_values_are_named(config_class, values, message):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.from_dict(config_class, values)
    assert message in str(err.value)


@pytest.mark.slow  # the CLI is algorithm-agnostic: test_cli.py trains PPO, every config is built
def test_cli_trains_trpo(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pgjax", "train", "--algo", "trpo", "--seeds", "0,1", "--out", str(tmp_path),
         "--chunks", "2", "--eval-episodes", "2", "--no-progress",
         "total_timesteps=512", "num_envs=4", "num_steps=32", "hidden_sizes=[8]", "value_iters=2"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "trpo" and config["config"]["hparams"]["backtrack_coef"] == 0.8
    assert "line_search_accepted" in (run_dir / "metrics.csv").read_text().splitlines()[0]


# --- learning ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_trpo_learns_cartpole():
    # Calibrated (1.5e5 steps, 146 updates, 4 vmapped seeds): [500, 500, 232.3, 493.5], median
    # 496.8; seeds 0-15: median 500, 14 of 16 at or above 484 (seeds 2 and 11: 232.3, 112.2).
    # A random policy scores about 22. Bar: median >= 400. The former 6e4 steps sat on a knife's
    # edge of float rounding (median 361.7 over seeds 0-7 on an Intel host, 309.7 over 0-3 on an
    # AMD EPYC one); it stays slow-marked because the hosts CI may run on differ in rounding, and
    # TRPO's default-run learning test is Pendulum (below).
    per_seed, metrics = train_and_evaluate("trpo_cartpole.toml")
    assert np.median(per_seed) >= 400
    assert np.all(metrics["kl"] <= 0.03)  # max_kl in the config: every step stayed inside


def test_npg_learns_cartpole():
    # Calibrated (1e5 steps, KL radius 0.02, no line search): [500, 456.6, 500, 500], median
    # 500 (seeds 4-7: [355.8, 500, 500, 404.7]); ~20 s on a quiet machine. Bar: median >= 400.
    # (6e4 steps at radius 0.03 gave median 469, then 383 after a float-rounding change at
    # initialisation: too fragile a budget to test.)
    per_seed, _ = train_and_evaluate("npg_cartpole.toml")
    assert np.median(per_seed) >= 400


def test_ppo_kl_learns_cartpole():
    # Calibrated (6e4 steps): [500, 500, 500, 500]; ~220 s at load ~20. Bar: median >= 400.
    per_seed, metrics = train_and_evaluate("ppo_kl_cartpole.toml")
    assert np.median(per_seed) >= 400
    # The multiplier rose above its initial 1.0 at some point: the constraint bound and the
    # dual step enforced it (calibration run: up to ~10 in the middle of training).
    assert metrics["kl_coef"].max() > 1.0


# Pendulum-v1: the shipped configs train 4e5 steps (70-85 s each at load ~3; their headers
# record those results). These tests train the same settings for 1.5e5 steps: only
# total_timesteps is overridden (so PPO-KL's learning rate anneals faster). A random policy
# scores about -1200, a good swing-up about -150.
PENDULUM_BUDGET = ["total_timesteps=150000"]  # 73 updates of 2048 steps


def test_trpo_learns_pendulum():
    # Calibrated (1.5e5 steps, 4 vmapped seeds): [-150.1, -191.2, -168.6, -173.5], median
    # -171.0 (the config's 4e5 steps: median -159.3); 42-49 s at load 2-3 on 2 cores, of
    # which ~20 s compiling. Bar: median >= -300.
    per_seed, metrics = train_and_evaluate("trpo_pendulum.toml", overrides=PENDULUM_BUDGET)
    assert np.median(per_seed) >= -300
    assert np.all(metrics["kl"] <= 0.02)  # max_kl in the config (calibration: at most 0.0199)


@pytest.mark.slow  # the default run proves this algorithm learns on CartPole
def test_npg_learns_pendulum():
    # Calibrated (1.5e5 steps, 4 vmapped seeds): [-164.1, -164.9, -168.2, -181.3], median
    # -166.5 (the config's 4e5 steps: -169.5, no better); 31-48 s at load 2-3. On an AMD EPYC
    # host (2026-11-27) 1.5e5 steps gave [-177.9, -591.0, -429.0, -157.5] (median -303.4), so
    # the budget is 2.5e5 steps: [-153.5, -158.2, -260.2, -158.8], median -158.5. Bar: median >= -300.
    per_seed, metrics = train_and_evaluate("npg_pendulum.toml", overrides=["total_timesteps=250000"])
    assert np.median(per_seed) >= -300
    # No line search: the full natural step is scaled to fill the radius 0.02 under the
    # quadratic model, so the measured KL sits around it (calibration: median 0.017,
    # 10th-90th percentile 0.014-0.020, max 0.083 over 4 seeds x 73 updates).
    assert 0.01 <= np.median(metrics["kl"]) <= 0.04


@pytest.mark.slow  # the default run proves this algorithm learns on CartPole
def test_ppo_kl_learns_pendulum():
    # Calibrated (1.5e5 steps, 4 vmapped seeds): [-148.8, -149.3, -169.6, -148.4], median
    # -149.0 (the config's 4e5 steps: -144.7); 36-44 s at load 2-3. Bar: median >= -300.
    per_seed, metrics = train_and_evaluate("ppo_kl_pendulum.toml", overrides=PENDULUM_BUDGET)
    assert np.median(per_seed) >= -300
    # The multiplier moved both ways from its initial 1.0: up while the KL exceeded the
    # target 0.01, down towards 0 once it did not (calibration: up to 1.5, down to 2e-5).
    assert metrics["kl_coef"].max() > 1.0 and metrics["kl_coef"].min() < 0.5
