"""Off-policy metrics rows (`log_interval`): a row summarises K iterations, and choosing K
changes nothing but the metrics' resolution. The reference is the same run logged at one row
per iteration, summarised here in NumPy."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algos import sac, td3
from pgjax.algos._off_policy import summarise_iterations
from pgjax.config import ConfigError
from tests.contract import TINY, leaves_equal

K = 4


def _plain(tree):
    """Typed PRNG keys as their raw data, so that every leaf compares with NumPy."""
    is_key = lambda x: hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def _numpy_rows(per_iteration: dict, k: int) -> dict:
    """The rows `summarise_iterations` must give, from per-iteration metrics, with plain loops."""
    n = len(per_iteration["episodes"]) // k
    rows = {name: [] for name in per_iteration}
    for r in range(n):
        block = {name: np.asarray(v[r * k:(r + 1) * k], np.float64) for name, v in per_iteration.items()}
        episodes = block["episodes"]
        for name, values in block.items():
            if name in ("episode_return", "episode_length"):
                total = sum(x * c for x, c in zip(values, episodes) if c > 0)
                rows[name].append(total / episodes.sum() if episodes.sum() > 0 else np.nan)
            elif name == "episodes":
                rows[name].append(episodes.sum())
            elif name in ("buffer_size", "env_steps"):
                rows[name].append(values[-1])
            else:
                finite = values[~np.isnan(values)]
                rows[name].append(finite.mean() if finite.size else np.nan)
    return {name: np.asarray(v) for name, v in rows.items()}


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "nojit"])
def test_summarise_iterations_matches_numpy(jit):
    rng = np.random.default_rng(0)
    k = 6
    episodes = np.array([0, 2, 0, 1, 0, 0], np.float32)
    per_iteration = {
        "episodes": episodes,
        "episode_return": np.where(episodes > 0, rng.normal(size=k), np.nan).astype(np.float32),
        "episode_length": np.where(episodes > 0, rng.integers(1, 200, size=k), np.nan).astype(np.float32),
        "critic_loss": rng.normal(size=k).astype(np.float32),
        "noise_rms": np.array([np.nan, 1, 2, np.nan, 3, 4], np.float32),
    }
    summarise = jax.jit(summarise_iterations) if jit else summarise_iterations
    row = summarise({name: jnp.asarray(v) for name, v in per_iteration.items()})
    want = _numpy_rows(per_iteration, k)
    for name, value in want.items():
        np.testing.assert_allclose(float(row[name]), value[0], rtol=1e-6, err_msg=name)
    quiet = summarise({**{n: jnp.asarray(v) for n, v in per_iteration.items()}, "episodes": jnp.zeros(k)})
    assert np.isnan(float(quiet["episode_return"])) and float(quiet["episodes"]) == 0


@pytest.mark.parametrize("name,module", [("sac", sac), pytest.param("td3", td3, marks=pytest.mark.slow)])
def test_rows_summarise_iterations_and_change_nothing_else(name, module):
    base = TINY[name]
    # 8 rows of 32 iterations: Pendulum episodes (200 steps) end inside a row
    base = dataclasses.replace(base, total_timesteps=base.learning_starts + base.num_envs * 8 * K * 8)
    fine = dataclasses.replace(base, log_interval=base.num_envs)
    coarse = dataclasses.replace(base, log_interval=base.num_envs * 8 * K)
    assert fine.num_updates == coarse.num_updates * coarse.num_steps
    key = jax.random.key(3)
    outs = []
    for config in (fine, coarse):
        outs.append(jax.jit(module.make_trainer(config).train)(key))
    (fine_out, coarse_out) = outs
    # the same iterations ran: identical parameters, buffer, keys (only the row counter differs)
    assert int(fine_out.state.update) == fine.num_updates and int(coarse_out.state.update) == coarse.num_updates
    assert leaves_equal(_plain(fine_out.state._replace(update=None)), _plain(coarse_out.state._replace(update=None)))
    expected = _numpy_rows({k: np.asarray(v) for k, v in fine_out.metrics.items() if k != "finite"}, coarse.num_steps)
    assert int(np.sum(expected["episodes"])) > 0  # the episode statistics are exercised
    for metric, want in expected.items():
        np.testing.assert_allclose(np.asarray(coarse_out.metrics[metric], np.float64), want, rtol=2e-6,
                                   atol=1e-6, err_msg=metric)


def test_automatic_interval_bounds_the_rows():
    config = dataclasses.replace(TINY["sac"], total_timesteps=2_000_000, learning_starts=8, buffer_size=64)
    assert config.log_interval == 0
    assert 500 < config.num_updates <= 1000
    assert config.num_updates * config.env_steps_per_update <= config.total_timesteps
    small = TINY["sac"]  # a tiny run keeps one row per iteration
    assert small.num_steps == 1 and small.num_updates == small.learning_iterations


@pytest.mark.parametrize("overrides,message", [
    ({"log_interval": 3}, "log_interval=3 is not a multiple of num_envs=2"),
    ({"log_interval": 10_000}, "log_interval=10000 is longer than the 24 learning steps"),
    ({"log_interval": -2}, "log_interval"),
])
def test_bad_log_interval_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TINY["sac"], **overrides).validate()
