"""Helpers shared by the algorithm contract tests (bit-identity, hyper-parameter grids) and the
learning tests (`train_and_evaluate`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np


def leaves_equal(a, b) -> bool:
    """Bit-identical pytrees of the same structure (nan equals nan: a chunk without a
    finished episode logs nan returns)."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(x, y, equal_nan=True) for x, y in zip(leaves_a, leaves_b)
    )


def hparam_grid(hparams, **columns):
    """`hparams` with a leading grid axis: every field repeated, the named columns replaced.

    `hparam_grid(hp, gamma=[0.9, 0.99])` gives two cells that differ only in gamma.
    """
    size = len(next(iter(columns.values())))
    grid = jax.tree.map(lambda x: jnp.full((size,), x, jnp.float32), hparams)
    return dataclasses.replace(grid, **{k: jnp.asarray(v, jnp.float32) for k, v in columns.items()})


def compiled_trainer(name: str, module, config) -> SimpleNamespace:
    """`module.make_trainer(config)` with its jitted `train`, `run` and `init`, and a jitted
    `sweep` (vmap of `train` over keys and hparams) that counts its traces in `traces`.
    Cache the result per test module so its tests share the compilations."""
    trainer = module.make_trainer(config)
    traces = []

    def counted_train(key, hparams):
        traces.append(1)  # runs only while tracing
        return trainer.train(key, hparams)

    return SimpleNamespace(
        name=name, config=config, trainer=trainer, traces=traces,
        train=jax.jit(trainer.train), sweep=jax.jit(jax.vmap(counted_train)),
        run=jax.jit(trainer.run, static_argnums=2), init=jax.jit(trainer.init),
    )


CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def train_and_evaluate(config_file, overrides=(), seeds=4, deterministic=False, finite=("loss",)):
    """The learning-test protocol: the shipped `configs/<config_file>` (with `KEY=VALUE`
    overrides), seeds 0..seeds-1 via `seed_keys(0, ...)` trained as one vmapped program, the
    `finite` metrics checked, then each seed's final policy evaluated on the same 32 episodes
    (`evaluate_seeds`). Returns `(per-seed mean return [seeds], metrics as numpy)`."""
    from pgjax.commands import load_config
    from pgjax.experiment import evaluate_seeds, seed_keys

    _, module, config = load_config(None, CONFIGS / config_file, None, list(overrides))
    trainer = module.make_trainer(config)
    out = jax.jit(jax.vmap(trainer.train))(seed_keys(0, range(seeds)))
    for name in finite:
        assert np.isfinite(out.metrics[name]).all(), name
    returns, _ = evaluate_seeds(trainer, out.state, 32, deterministic=deterministic)
    per_seed = np.asarray(returns).mean(axis=1)
    print(f"{config_file} {list(overrides)}: per-seed evaluation returns {per_seed.round(1)}")
    return per_seed, jax.tree.map(np.asarray, out.metrics)
