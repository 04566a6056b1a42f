"""The trainer contract, once for every registered algorithm (`pgjax.algos.ALGORITHMS`) and
discrete SAC: registering an algorithm puts it under these tests.

- the same key gives bit-identical runs, another key another run;
- metrics are flat, one row per update, with the algorithm's names; the step count adds up;
- `run(a)` then `run(b)` equals `run(a + b)` bit for bit, and so does saving the state after
  `a` updates, restoring it and running `b` (checkpoint round trip);
- `vmap` over seeds matches separate runs (not bit for bit: XLA fuses differently), and a
  sweep over traced hyper-parameters is one trace whose cells match separate runs.

Each case compiles its small config once (`contract.contract_trainer`), shared by these
tests and the algorithm's own tests in the same process.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import ALGO_NAME, CASES, contract_trainer, hparam_grid, leaves_equal

from pgjax import config as cfg
from pgjax.records.checkpoint import Checkpointer
from pgjax.runtime.experiment import seed_keys

NAMES = list(CASES)

_ON_POLICY = ["loss", "episode_return", "episodes", "explained_variance", "env_steps"]
_VALUE_FIT = ["value_loss", "value_loss_after"]  # a separate critic regression (VPG, NPG, TRPO)
_NATURAL = ["kl", "surrogate_improvement", "cg_residual", "cg_iterations", "step_norm", "grad_norm", "entropy"]
_RATIO = ["ratio_outside_frac", "ratio_excess_mean", "ratio_deviation_max"]  # how far r left [1-eps, 1+eps]
_OFF_POLICY = ["critic_loss", "actor_loss", "q_mean", "episode_return", "episodes", "buffer_size", "env_steps"]
# Metrics each algorithm must report besides `finite` (an algorithm without an entry: none).
METRICS = {
    "reinforce": ["loss", "policy_loss", "entropy", "grad_norm", *_VALUE_FIT, "episode_return", "episode_length",
                  "episodes", "truncated_fraction", "env_steps", "episode_steps"],
    "vpg": [*_ON_POLICY, "policy_loss", "entropy", "grad_norm", "approx_kl", "episode_length", *_VALUE_FIT],
    "a2c": [*_ON_POLICY, "policy_loss", "value_loss", "entropy", "grad_norm", "actor_grad_norm", "critic_grad_norm",
            "episode_length"],
    "npg": [*_ON_POLICY, *_NATURAL, *_VALUE_FIT, "g_f_inv_g"],
    "trpo": [*_ON_POLICY, *_NATURAL, *_VALUE_FIT, "line_search_steps", "line_search_accepted", "step_fraction"],
    "ppo": [*_ON_POLICY, "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm",
            *_RATIO],
    "ppo_kl": [*_ON_POLICY, "policy_loss", "value_loss", "entropy", "approx_kl", "kl", "kl_coef", "kl_coef_next",
               "surrogate", *_RATIO],
    "spo": [*_ON_POLICY, "policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm", *_RATIO],
    "vmpo": [*_ON_POLICY, "policy_loss", "value_loss", "entropy", "grad_norm", "temperature_loss", "alpha_loss",
             "eta", "alpha", "kl", "temperature_kl", "advantage_threshold"],
    "ppg": [*_ON_POLICY, "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm",
            "aux_loss", "aux_value_loss", "clone_kl", "joint_loss", "aux_critic_loss", "aux_grad_norm", "aux_phase",
            "phase_iteration"],
    "ddpg": [*_OFF_POLICY, "target_q_mean", "noise_rms"],
    "td3": [*_OFF_POLICY, "target_q_mean", "noise_rms"],
    "sac": [*_OFF_POLICY, "target_mean", "alpha", "alpha_loss", "entropy"],
    "sac_discrete": [*_OFF_POLICY, "target_mean", "alpha", "alpha_loss", "entropy"],
}
# nan by design when no episode finished within an update.
MAY_BE_NAN = {"episode_return", "episode_length"}

# Traced hyper-parameters each case sweeps (three cells); the default sweeps gamma.
SWEEPS = {
    "reinforce": {"learning_rate": [1e-3, 1e-2, 1e-1], "value_learning_rate": [1e-3, 3e-3, 1e-2]},
    "vpg": {"learning_rate": [1e-4, 1e-3, 1e-2], "max_grad_norm": [0.1, 0.5, 1.0]},
    "a2c": {"learning_rate": [1e-4, 1e-3, 1e-2], "max_grad_norm": [0.1, 0.5, 1.0]},
    "npg": {"max_kl": [0.001, 0.01, 0.05], "damping": [0.01, 0.1, 0.5]},
    "trpo": {"max_kl": [0.001, 0.01, 0.05], "damping": [0.01, 0.1, 0.5]},
    "ppo": {"learning_rate": [1e-4, 1e-3, 1e-2], "clip_eps": [0.1, 0.2, 0.3]},
    "ppo_kl": {"max_kl": [0.001, 0.01, 0.05], "kl_coef_lr": [5.0, 50.0, 500.0]},
    "spo": {"learning_rate": [1e-4, 1e-3, 1e-2], "ratio_eps": [0.1, 0.2, 0.3]},
    "vmpo": {"epsilon_eta": [0.01, 0.1, 0.5], "epsilon_alpha": [0.001, 0.01, 0.05]},
    "ppg": {"aux_learning_rate": [1e-4, 1e-3, 1e-2], "beta_clone": [0.1, 1.0, 10.0]},
    "ddpg": {"critic_learning_rate": [1e-4, 1e-3, 1e-2]},
    "td3": {"critic_learning_rate": [1e-4, 1e-3, 1e-2]},
    "sac": {"critic_learning_rate": [3e-4, 1e-3, 1e-2]},
    "sac_discrete": {"critic_learning_rate": [3e-4, 1e-3, 1e-2]},
}
GAMMAS = [0.9, 0.95, 0.99]

# vmapped vs separate runs: (updates compared, rtol, atol) on every metric named like a loss.
# The natural-gradient step solves F x = g by conjugate gradient and divides by sqrt(g^T x),
# which magnifies the fusion differences of the first update.
CLOSE = {"npg": (2, 1e-3, 1e-5), "trpo": (2, 1e-3, 1e-5), "ppo_kl": (2, 1e-3, 1e-5)}
DEFAULT_CLOSE = (3, 1e-4, 1e-5)


@pytest.fixture(scope="module", params=NAMES)
def tiny(request):
    return contract_trainer(request.param)


def _losses_close(name, batched, single):
    updates, rtol, atol = CLOSE.get(name, DEFAULT_CLOSE)
    losses = [k for k in single if "loss" in k]
    assert losses, "no loss metric to compare"
    for k in losses:
        np.testing.assert_allclose(batched[k][:updates], single[k][:updates], rtol=rtol, atol=atol, err_msg=k)


def test_same_seed_is_bit_identical_and_seeds_differ(tiny):
    key, hp = jax.random.PRNGKey(3), tiny.config.hparams
    a, b = tiny.train(key, hp), tiny.train(key, hp)
    assert leaves_equal(a, b)
    c = tiny.train(jax.random.PRNGKey(4), hp)
    assert not leaves_equal(a.state.params, c.state.params)


def test_metrics_have_one_row_per_update(tiny):
    config = tiny.config
    out = tiny.train(jax.random.PRNGKey(0), config.hparams)
    metrics = jax.tree.map(np.asarray, out.metrics)
    assert not set(METRICS.get(tiny.name, [])) - set(metrics), "missing metrics"
    for name, values in metrics.items():
        assert values.shape == (config.num_updates,), name
        assert name in MAY_BE_NAN or np.isfinite(values).all(), name
    assert metrics["finite"].all()
    steps = metrics["env_steps"]  # environment steps so far, warm-up steps included
    np.testing.assert_array_equal(np.diff(steps), config.env_steps_per_update)
    assert config.total_timesteps - config.env_steps_per_update < steps[-1] <= config.total_timesteps
    assert int(out.state.update) == config.num_updates


def test_chunked_run_equals_one_long_run(tiny):
    key, hp = jax.random.PRNGKey(11), tiny.config.hparams
    whole = tiny.train(key, hp)
    half = tiny.config.num_updates // 2
    assert 2 * half == tiny.config.num_updates, "an even number of updates: one compiled chunk serves both halves"
    state, m1 = tiny.run(tiny.init(key, hp), hp, half)
    state, m2 = tiny.run(state, hp, half)
    assert leaves_equal(whole.state, state)
    for name in whole.metrics:
        np.testing.assert_array_equal(whole.metrics[name], np.concatenate([m1[name], m2[name]]))


@pytest.mark.parametrize("name", ["ppo", "sac"])
def test_one_update_chunks_of_seed_groups_equal_one_chunk(name):
    """The train command's path (`experiment.seed_functions`: 2 seeds in groups of one, the
    groups mapped): a run in 1-update chunks equals the run in one chunk, bit for bit. XLA
    inlines a loop of one trip and fused the body with the group map around it, so before
    `_trainer._one_update_loop` 8 of the 11 cases drifted here (seen on an AVX-512 host,
    metrics then parameters). One on-policy and one off-policy case: the loop is shared."""
    from contract import CASES, TINY

    from pgjax.runtime import experiment

    config = TINY[name]
    trainer = CASES[name].make_trainer(config)
    layout = experiment.SeedLayout.plan(2, 1, 1)
    mesh = experiment.seed_mesh(layout)
    init, run = experiment.seed_functions(trainer, mesh, layout.width)
    hparams = experiment.place_seeds(hparam_grid(config.hparams, gamma=[config.hparams.gamma] * 2), layout, mesh)
    start = init(experiment.place_seeds(seed_keys(0, [0, 1]), layout, mesh), hparams)
    whole, whole_metrics = run(start, hparams, config.num_updates)
    state, rows = start, []
    for _ in range(config.num_updates):
        state, metrics = run(state, hparams, 1)
        rows.append(jax.device_get(metrics))
    assert leaves_equal(jax.device_get(whole), jax.device_get(state))
    for metric, values in jax.device_get(whole_metrics).items():
        np.testing.assert_array_equal(values, np.concatenate([r[metric] for r in rows], axis=1), err_msg=metric)


def _save_and_restore(path, name, config, state, like):
    expected = {"algo": ALGO_NAME.get(name, name), "config": cfg.to_dict(config), "num_seeds": 1}
    saver = Checkpointer(path)
    saver.save(3, state, {**expected, "seeds": [0]})
    saver.close()
    loader = Checkpointer(path)
    restored, meta = loader.restore(like, expected)
    loader.close()
    assert meta["updates_done"] == 3
    return restored


def test_checkpoint_round_trip_resumes_bit_for_bit(tiny, tmp_path):
    """init, N/2 updates, N/2 updates  ==  init, N/2 updates, save, restore, N/2 updates
    (the same compiled chunk on both sides, as the CLI does)."""
    key, hp = jax.random.PRNGKey(0), tiny.config.hparams
    half = tiny.config.num_updates // 2
    start = tiny.init(key, hp)
    middle, _ = tiny.run(start, hp, half)
    end, second = tiny.run(middle, hp, half)
    restored = _save_and_restore(tmp_path / "ck", tiny.name, tiny.config, middle, jax.eval_shape(tiny.init, key, hp))
    assert leaves_equal(restored, middle)
    end_restored, second_restored = tiny.run(restored, hp, half)
    assert leaves_equal(end, end_restored) and leaves_equal(second, second_restored)
    assert not leaves_equal(start, end)  # the updates did change the state


def test_vmap_over_seeds_matches_separate_runs(tiny):
    hp = tiny.config.hparams
    keys = seed_keys(0, [0, 1, 2])
    batched = tiny.sweep(keys, hparam_grid(hp, gamma=[hp.gamma] * 3))
    for i in range(3):
        single = tiny.train(keys[i], hp)
        _losses_close(tiny.name, jax.tree.map(lambda x: x[i], batched.metrics), single.metrics)
    assert not leaves_equal(*(jax.tree.map(lambda x, i=i: x[i], batched.state.params) for i in (0, 1)))


def test_adding_seeds_does_not_change_existing_ones():
    a = seed_keys(7, [0, 1])
    b = seed_keys(7, [0, 1, 2, 3])
    np.testing.assert_array_equal(a, b[:2])


def test_hparams_sweep_is_one_trace_and_each_cell_is_its_own_run(tiny):
    hp = tiny.config.hparams
    columns = SWEEPS.get(tiny.name, {"gamma": GAMMAS})
    keys = jnp.stack([jax.random.PRNGKey(0)] * 3)
    out = tiny.sweep(keys, hparam_grid(hp, **columns))
    tiny.sweep(keys, hparam_grid(hp, gamma=GAMMAS))
    assert len(tiny.traces) == 1  # new values, same shapes: no retrace, no recompile
    # The values take effect: every cell ends with other parameters ...
    cells = [jax.tree.map(lambda x, i=i: x[i], out.state.params) for i in range(3)]
    assert not leaves_equal(cells[0], cells[1]) and not leaves_equal(cells[1], cells[2])
    # ... and a cell matches a run with its values alone.
    single = tiny.train(keys[1], dataclasses.replace(hp, **{k: v[1] for k, v in columns.items()}))
    _losses_close(tiny.name, jax.tree.map(lambda x: x[1], out.metrics), single.metrics)


def test_all_finite_flags_any_non_finite_parameter_or_loss_and_ignores_other_metrics():
    from types import SimpleNamespace

    from pgjax.algos._trainer import all_finite

    params = {
        "actor": {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}, "log_std": jnp.zeros(1), "count": jnp.ones((), jnp.int32)
    }
    metrics = {"loss": jnp.float32(1.0), "value_loss": jnp.float32(2.0), "episode_return": jnp.float32(jnp.nan)}
    check = jax.jit(lambda p, m: all_finite(SimpleNamespace(params=p), m))
    assert bool(check(params, metrics))  # a nan return (no episode finished) is not divergence
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        broken = jax.tree.map(lambda x: x, params)
        broken["actor"]["w"] = broken["actor"]["w"].at[2, 1].set(bad)
        assert not bool(check(broken, metrics))
        assert not bool(check(params, {**metrics, "value_loss": jnp.float32(bad)}))
