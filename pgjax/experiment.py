"""Running a trainer over many seeds, in compiled chunks, and evaluating the results.

The seed axis is a `vmap`. Per-seed keys are `fold_in(PRNGKey(root_seed), seed)`, so adding
seeds never changes the results of the existing ones. A run is cut into chunks of
updates, each one call of the same compiled function, so the host can show progress and
write metrics between chunks; the chunks compose to the same result as one long scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.envs import make_vec_env
from pgjax.evaluation import evaluate
from pgjax.types import Array


def seed_keys(root_seed: int, seeds: Sequence[int]) -> Array:
    """`[len(seeds)]` keys, `fold_in(PRNGKey(root_seed), seed)` for each seed."""
    root = jax.random.PRNGKey(root_seed)
    return jnp.stack([jax.random.fold_in(root, int(s)) for s in seeds])


def chunk_sizes(num_updates: int, max_chunks: int) -> list[int]:
    """Split `num_updates` into about `max_chunks` chunks, all of one size where possible.

    Equal chunks mean one compilation, so a divisor of `num_updates` giving between
    `max_chunks / 4` and `max_chunks` chunks is preferred; otherwise equal chunks and one
    remainder (a second compilation).
    """
    max_chunks = max(1, min(max_chunks, num_updates))
    for count in range(max_chunks, max(1, max_chunks // 4) - 1, -1):
        if num_updates % count == 0:
            return [num_updates // count] * count
    size = -(-num_updates // max_chunks)
    sizes = [size] * (num_updates // size)
    if num_updates % size:
        sizes.append(num_updates % size)
    return sizes


def train_seeds(
    trainer: Any,
    keys: Array,
    hparams: Any = None,
    *,
    hparams_batched: bool = False,
    max_chunks: int = 20,
    on_chunk: Callable[[int, Any, dict], None] | None = None,
) -> tuple[Any, dict]:
    """Train one seed per key, vmapped, in compiled chunks.

    `hparams` is shared by all seeds, or (with `hparams_batched`) carries a leading axis of
    the same length as `keys`. `on_chunk(updates_done, state, chunk_metrics)` is called on
    the host after each chunk. Returns the final state and the metrics, each `[S, U]`.
    """
    hparams = trainer.config.hparams if hparams is None else hparams
    axis = 0 if hparams_batched else None
    init = jax.jit(jax.vmap(trainer.init, in_axes=(0, axis)))
    run = jax.jit(jax.vmap(trainer.run, in_axes=(0, axis, None)), static_argnums=2)
    state = init(keys, hparams)
    chunks, done = [], 0
    for size in chunk_sizes(trainer.config.num_updates, max_chunks):
        state, metrics = run(state, hparams, size)
        metrics = jax.device_get(metrics)
        chunks.append(metrics)
        done += size
        if on_chunk is not None:
            on_chunk(done, state, metrics)
    merged = {k: np.concatenate([c[k] for c in chunks], axis=1) for k in chunks[0]}
    return state, merged


def evaluate_seeds(
    trainer: Any, state: Any, num_episodes: int = 32, eval_seed: int = 10_000, deterministic: bool = False
) -> tuple[Array, Array]:
    """Evaluate each seed's final policy on the same `num_episodes` start states.

    Returns `(returns, lengths)`, each `[S, num_episodes]`.
    """
    env = make_vec_env(trainer.config.env_id, num_episodes)
    key = jax.random.PRNGKey(eval_seed)

    def one_seed(params, obs_stats):
        def act(act_key, obs):
            return trainer.act(params, obs_stats, act_key, obs, deterministic)

        return evaluate(env, act, key)

    return jax.jit(jax.vmap(one_seed))(state.params, state.obs_stats)
