"""Helpers shared by the trainer contract tests (tests/test_contract.py), the algorithm tests
that reuse its small configs and compilations, and the learning tests (`train_and_evaluate`)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from pgjax import config as cfg
from pgjax.algos import ALGORITHMS, a2c, ddpg, npg, ppg, ppo, ppo_kl, reinforce, sac, spo, td3, trpo, vmpo, vpg

# Every trainer the contract covers: the registered algorithms, and SAC on discrete actions
# (its own networks and losses behind the same algorithm name).
CASES = {**ALGORITHMS, "sac_discrete": ALGORITHMS["sac"]}
ALGO_NAME = {"sac_discrete": "sac"}  # the registered name of a case, where it differs

# One small config per case, shared by the contract and the algorithm's own tests. A case
# without an entry (an algorithm registered later) gets `tiny_config`.
_ON_POLICY = {"env_id": "CartPole-v1", "num_envs": 4, "num_steps": 16, "total_timesteps": 4 * 16 * 6,
              "hidden_sizes": (16, 16)}
_DETERMINISTIC = {"env_id": "Pendulum-v1", "num_envs": 2, "total_timesteps": 64 + 2 * 12, "learning_starts": 64,
                  "buffer_size": 128, "batch_size": 32, "hidden_sizes": (16, 16), "updates_per_step": 2}
_SAC = {"num_envs": 2, "total_timesteps": 2 * (4 + 12), "learning_starts": 8, "buffer_size": 64, "batch_size": 8,
        "hidden_sizes": (16, 16)}
TINY = {
    "reinforce": reinforce.ReinforceConfig(**{**_ON_POLICY, "max_episode_steps": 16, "value_iters": 5}),
    "vpg": vpg.VPGConfig(**_ON_POLICY, value_iters=3, clip_grad_norm=True),
    "a2c": a2c.A2CConfig(**{**_ON_POLICY, "num_steps": 5, "total_timesteps": 4 * 5 * 6}, anneal_lr=True),
    "npg": npg.NPGConfig(**_ON_POLICY, cg_iters=5, fvp_fraction=0.5, value_iters=3),
    "trpo": trpo.TRPOConfig(**_ON_POLICY, cg_iters=5, fvp_fraction=0.5, value_iters=3, backtrack_iters=4),
    "ppo": ppo.PPOConfig(**_ON_POLICY, update_epochs=2, num_minibatches=2),
    "ppo_kl": ppo_kl.PPOKLConfig(**_ON_POLICY, update_epochs=2, num_minibatches=2),
    # Phases of 2 updates: the contract's 3-update chunks end mid-phase.
    "ppg": ppg.PPGConfig(**_ON_POLICY, num_minibatches=2, policy_iterations=2, aux_epochs=2, aux_minibatches=2),
    "spo": spo.SPOConfig(**_ON_POLICY, update_epochs=2, num_minibatches=2),
    "vmpo": vmpo.VMPOConfig(**_ON_POLICY, update_epochs=2, num_minibatches=2),
    "ddpg": ddpg.DDPGConfig(**_DETERMINISTIC),
    "td3": td3.TD3Config(**_DETERMINISTIC),
    "sac": sac.SACConfig(env_id="Pendulum-v1", **_SAC),
    "sac_discrete": sac.SACConfig(env_id="CartPole-v1", **_SAC),
}


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


def compiled_trainer(name: str, algorithm, config) -> SimpleNamespace:
    """`algorithm.make_trainer(config)` (a registry entry's) with its jitted `train`, `run`
    and `init`, and a jitted `sweep` (vmap of `train` over keys and hparams) that counts its
    traces in `traces`.
    Cache the result per test module so its tests share the compilations."""
    trainer = algorithm.make_trainer(config)
    traces = []

    def counted_train(key, hparams):
        traces.append(1)  # runs only while tracing
        return trainer.train(key, hparams)

    return SimpleNamespace(
        name=name, config=config, trainer=trainer, traces=traces,
        train=jax.jit(trainer.train), sweep=jax.jit(jax.vmap(counted_train)),
        run=jax.jit(trainer.run, static_argnums=2), init=jax.jit(trainer.init),
    )


@functools.cache
def contract_trainer(name: str) -> SimpleNamespace:
    """`compiled_trainer` for case `name` with its small config (`TINY`, else `tiny_config`),
    cached so the contract tests and the algorithm's own tests share the compilations."""
    algorithm = CASES[name]
    return compiled_trainer(name, algorithm, TINY[name] if name in TINY else tiny_config(algorithm.config_class))


# Small settings tried on every algorithm, each kept only if the algorithm has the field
# and the config still validates (so algorithms added later are covered unchanged).
TINY_CANDIDATES = [
    ("hidden_sizes", [8]), ("num_envs", 2), ("num_steps", 8), ("update_epochs", 1), ("num_minibatches", 1),
    ("batch_size", 8), ("buffer_size", 64), ("learning_starts", 8), ("cg_iters", 3), ("backtrack_iters", 3),
    ("value_iters", 2), ("max_episode_steps", 20),
]


def tiny_config(config_class, num_updates: int = 4):
    """The default config of `config_class`, shrunk field by field, with `num_updates` updates."""
    names = {f.name for f in dataclasses.fields(config_class)}
    values = {}
    for name, value in TINY_CANDIDATES:
        if name in names:
            try:
                cfg.from_dict(config_class, {**values, name: value})
            except cfg.ConfigError:
                continue
            values[name] = value
    config = cfg.from_dict(config_class, values)
    for total in (num_updates * config.batch_size, num_updates):  # on-policy steps, else updates
        try:
            candidate = cfg.from_dict(config_class, {**values, "total_timesteps": total})
        except cfg.ConfigError:
            continue
        if candidate.num_updates == num_updates:
            return candidate
    return config


CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def train_and_evaluate(config_file, overrides=(), seeds=4, deterministic=False, finite=("loss",)):
    """The learning-test protocol: the shipped `configs/<config_file>` (with `KEY=VALUE`
    overrides), seeds 0..seeds-1 via `seed_keys(0, ...)` trained as one vmapped program, the
    `finite` metrics checked, then each seed's final policy evaluated on the same 32 episodes
    (`evaluate_seeds`). Returns `(per-seed mean return [seeds], metrics as numpy)`."""
    from pgjax.commands import load_config
    from pgjax.runtime.experiment import evaluate_seeds, seed_keys

    _, algorithm, config = load_config(None, CONFIGS / config_file, None, list(overrides))
    trainer = algorithm.make_trainer(config)
    out = jax.jit(jax.vmap(trainer.train))(seed_keys(0, range(seeds)))
    for name in finite:
        assert np.isfinite(out.metrics[name]).all(), name
    returns, _ = evaluate_seeds(trainer, out.state, 32, deterministic=deterministic)
    per_seed = np.asarray(returns).mean(axis=1)
    print(f"{config_file} {list(overrides)}: per-seed evaluation returns {per_seed.round(1)}")
    return per_seed, jax.tree.map(np.asarray, out.metrics)
