"""Running a trainer over many seeds, in compiled chunks, and evaluating the results.

The seed axis is a `vmap`. Per-seed keys are `fold_in(PRNGKey(root_seed), seed)`, so adding
seeds never changes the results of the existing ones. A run is cut into chunks of
updates, each one call of the same compiled function, so the host can show progress and
write metrics between chunks; the chunks compose to the same result as one long scan.

Sharded over devices (`SeedLayout`, `seed_functions`), the seeds are cut into groups of a
fixed `width` like a sweep's cells (`pgjax.runtime.sharding`): the width depends on the number of
seeds and the machine's cores, never on the devices used, so a seed's result is the same
bit for bit on one device or on several.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.runtime import sharding
from pgjax.runtime.cells import CellsProgram
from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED, DEFAULT_MODE, GREEDY
from pgjax.runtime.evaluation import Episodes, eval_env, evaluate_states, policy_act_fn, run_episodes
from pgjax.types import Array

SEED_LIMIT = 2**32  # PRNGKey and fold_in keep the low 32 bits: 2**32 + s would collide with s


def check_seeds(root_seed: int, seeds: Sequence[int] = ()) -> None:
    """Refuse a root seed or seed id outside [0, 2**32), which would silently alias a small one."""
    for name, value in (("root seed", root_seed), *(("seed", s) for s in seeds)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < SEED_LIMIT:
            raise ValueError(f"{name} {value!r} is out of range: seeds are integers in [0, 2**32) "
                             f"(JAX's keys hold 32 bits, so {SEED_LIMIT} + s would repeat seed s)")


def seed_keys(root_seed: int, seeds: Sequence[int]) -> Array:
    """`[len(seeds)]` keys, `fold_in(PRNGKey(root_seed), seed)` for each seed (all in [0, 2**32))."""
    check_seeds(root_seed, seeds)
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


def remaining_chunk_sizes(num_updates: int, max_chunks: int, done: int) -> list[int]:
    """The chunks still to run after `done` updates: the tail of the original plan when
    `done` falls on one of its boundaries (same compiled sizes after a resume), else a
    fresh plan for what is left."""
    sizes, total = chunk_sizes(num_updates, max_chunks), 0
    for i, size in enumerate(sizes):
        if total == done:
            return sizes[i:]
        total += size
    return [] if done >= num_updates else chunk_sizes(num_updates - done, max_chunks)


def evaluation_updates(num_updates: int, max_chunks: int, every: int) -> set[int]:
    """The updates after which a run evaluates: the end of every `every`-th chunk of the
    run's chunk plan (`chunk_sizes`), and the last update; none when `every` is 0. Fixed by
    the plan, so a resumed run evaluates at the same points."""
    if every <= 0:
        return set()
    ends = np.cumsum(chunk_sizes(num_updates, max_chunks))
    return {int(end) for i, end in enumerate(ends) if (i + 1) % every == 0} | {num_updates}


def compile_seed_functions(trainer: Any, hparams_batched: bool = False):
    """`(init, run)`: the trainer's `init` and `run` vmapped over a leading seed/cell axis
    and jitted (`run`'s update count is static). Inputs placed with a sharding keep it."""
    axis = 0 if hparams_batched else None
    init = jax.jit(jax.vmap(trainer.init, in_axes=(0, axis)))
    run = jax.jit(jax.vmap(trainer.run, in_axes=(0, axis, None)), static_argnums=2)
    return init, run


def default_seed_width(num_seeds: int, platform: str | None = None) -> int:
    """Seeds per vmap group: on CPU `ceil(S / usable cores)`, one group per core; on an
    accelerator all `S` (one `vmap`, as without sharding).

    It depends on the machine's cores, never on the number of devices a run uses, so
    `--host-devices 1` and the default give the same numbers (a run records its width,
    and `--width` pins it across machines). A wider `vmap` is faster per seed on one
    device; one group per core keeps every core busy.
    """
    if (platform or jax.default_backend()) != "cpu":
        return num_seeds
    return -(-num_seeds // sharding.usable_cores())


@dataclasses.dataclass(frozen=True)
class SeedLayout:
    """How `num_seeds` seeds lie on devices: groups of `width`, padded to whole groups per device.

    Only as many devices as there are groups are used (`num_devices`), so no device computes
    padding alone; the padding repeats the last seed and is dropped from every result.
    """

    num_seeds: int
    width: int
    num_devices: int

    @classmethod
    def plan(cls, num_seeds: int, width: int, available_devices: int) -> SeedLayout:
        """With several processes every device takes part (a process with no device in the
        mesh could not join the computation); the padding is computed and dropped."""
        width = max(1, min(width, num_seeds))
        if jax.process_count() > 1:
            return cls(num_seeds, width, available_devices)
        return cls(num_seeds, width, max(1, min(available_devices, -(-num_seeds // width))))

    @property
    def padded(self) -> int:
        """Seeds computed, padding included: a multiple of `width * num_devices`."""
        return sharding.padded_size(self.num_seeds, self.width * self.num_devices)

    @property
    def per_device(self) -> int:
        return self.padded // self.num_devices


def seed_mesh(layout: SeedLayout) -> Any:
    """The mesh a layout runs on: the first `num_devices` devices of the default backend."""
    return sharding.cell_mesh(jax.devices()[: layout.num_devices])


def seed_functions(trainer: Any, mesh: Any, width: int) -> tuple[Callable, Callable]:
    """`(init, run)` as `compile_seed_functions(trainer, hparams_batched=True)` gives them, but
    each one `sharding.cell_function`: sharded over `mesh`, a `vmap` over `width` seeds at a
    time (a `cells.CellsProgram` without inputs: `run` jits each chunk size once). Inputs
    carry the padded seed axis (`SeedLayout.padded`)."""
    return CellsProgram(trainer, mesh, width).functions


def place_seeds(tree: Any, layout: SeedLayout, mesh: Any) -> Any:
    """`[S, ...]` arrays (PRNG key arrays included) padded to `layout.padded` rows by
    repeating the last and sharded over `mesh`. With several processes each builds the
    global arrays from its identical host copy (`sharding.put_cells`; raw uint32 keys)."""
    if jax.process_count() > 1:
        return sharding.put_cells(sharding.pad_cells(jax.device_get(tree), layout.padded), mesh)
    place = sharding.cells_sharding(mesh)
    extra = layout.padded - layout.num_seeds

    def pad(x):
        x = jnp.asarray(x) if not isinstance(x, jax.Array) else x
        return jax.device_put(jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]) if extra else x, place)

    return jax.tree.map(pad, tree)


def unpad_seeds(tree: Any, layout: SeedLayout) -> Any:
    """The first `num_seeds` rows, as single-device arrays on the first device (the same
    placement whatever the layout, so checkpoints do not record the device count); with
    several processes, NumPy rows gathered to every process (`sharding.fetch`)."""
    if jax.process_count() > 1:
        return jax.tree.map(lambda x: x[: layout.num_seeds], sharding.fetch(tree))
    device = jax.devices()[0]
    return jax.tree.map(lambda x: jax.device_put(x[: layout.num_seeds], device), tree)


def train_seeds(
    trainer: Any,
    keys: Array,
    hparams: Any = None,
    *,
    hparams_batched: bool = False,
    max_chunks: int = 20,
    on_chunk: Callable[[int, Any, dict], None] | None = None,
    state: Any = None,
    updates_done: int = 0,
    functions: tuple | None = None,
    fetch: Callable[[Any], Any] = jax.device_get,
) -> tuple[Any, dict]:
    """Train one seed per key, vmapped, in compiled chunks.

    `hparams` is shared by all seeds, or (with `hparams_batched`) carries a leading axis of
    the same length as `keys`. `on_chunk(updates_done, state, chunk_metrics)` is called on
    the host after each chunk (the train command writes metrics and a checkpoint there).
    To continue a run, pass its `state` and `updates_done`; `keys` is then unused.
    `functions` are `compile_seed_functions`' pair (to share compilations), `fetch` brings
    metrics to the host. Returns the final state and the metrics of the updates run here,
    each `[S, U]`.
    """
    hparams = trainer.config.hparams if hparams is None else hparams
    init, run = functions or compile_seed_functions(trainer, hparams_batched)
    if state is None:
        state = init(keys, hparams)
    chunks = []
    for size in remaining_chunk_sizes(trainer.config.num_updates, max_chunks, updates_done):
        state, metrics = run(state, hparams, size)
        metrics = fetch(metrics)
        chunks.append(metrics)
        updates_done += size
        if on_chunk is not None:
            on_chunk(updates_done, state, metrics)
    if not chunks:
        return state, {}
    merged = {k: np.concatenate([c[k] for c in chunks], axis=1) for k in chunks[0]}
    return state, merged


def first_nonfinite_update(metrics: dict, updates_before: int = 0) -> list[int | None]:
    """Per seed/cell, the first update (1-based) after which parameters or a loss were
    non-finite (from the `finite` metric of `_trainer.run_updates`; for trainers without
    it, from the loss metrics), or None. `metrics`: name -> `[S, U]`."""
    if "finite" in metrics:
        bad = ~np.asarray(metrics["finite"], bool)
    else:
        losses = [np.asarray(v, float) for k, v in metrics.items() if "loss" in k]
        bad = np.any([~np.isfinite(v) for v in losses], axis=0) if losses else None
    if bad is None:
        return [None] * len(next(iter(metrics.values())))
    return [updates_before + int(np.argmax(row)) + 1 if row.any() else None for row in bad]


def evaluate_seeds(
    trainer: Any, state: Any, num_episodes: int = 32, eval_seed: int = 10_000, deterministic: bool = False
) -> tuple[Array, Array]:
    """Evaluate each seed's final policy on the same `num_episodes` start states.

    Returns `(returns, lengths)`, each `[S, num_episodes]`; `evaluation.evaluate_states`
    (sampled actions by default here) with its truncation flags dropped. Each call compiles
    its program; `evaluation.StateEvaluator` keeps one for repeated evaluations.
    """
    episodes = evaluate_states(trainer, state, num_episodes, eval_seed, deterministic)
    return episodes.returns, episodes.lengths


class SeedEvaluator:
    """`evaluation.run_episodes` for every seed of a layout, compiled once and reused: the
    evaluation during training (after chunks) and the final one of `pgjax train`.

    Every seed plays the same `num_episodes` episodes (start states and action noise from
    `PRNGKey(eval_seed)`, shared by all training seeds); seeds are grouped as `layout` lays
    them out, so the numbers do not depend on the device count.
    """

    def __init__(self, trainer: Any, layout: SeedLayout, num_episodes: int = 32, eval_seed: int = DEFAULT_EVAL_SEED,
                 deterministic: bool = DEFAULT_MODE == GREEDY, max_episode_steps: int | None = None,
                 mesh: Any = None):
        env = eval_env(trainer, num_episodes, max_episode_steps)

        def one_seed(key, params, obs_stats):
            return run_episodes(env, policy_act_fn(trainer, params, obs_stats, deterministic), key)

        # `mesh`: the one training runs on (a sweep's cells), else the layout's devices.
        self.layout, self.mesh = layout, seed_mesh(layout) if mesh is None else mesh
        self._run = sharding.cell_function(one_seed, self.mesh, layout.width)
        keys = jnp.broadcast_to(jax.random.PRNGKey(eval_seed), (layout.num_seeds, 2))
        self._keys = place_seeds(keys, layout, self.mesh)

    def placed(self, params: Any, obs_stats: Any) -> Episodes:
        """Evaluate policies laid out as training runs them (padded, sharded, e.g. the state a
        chunk returns): NumPy `Episodes`, each `[S, num_episodes]`."""
        episodes = self._run(self._keys, params, obs_stats)
        return Episodes(*(np.asarray(x)[: self.layout.num_seeds] for x in sharding.fetch(episodes)))

    def means(self, params: Any, obs_stats: Any) -> dict[str, np.ndarray]:
        """`placed`'s episodes as each seed's mean `return`, `length` and `truncated` (the
        fraction ended by the time limit), each `[S]`: an evaluation row during training."""
        episodes = self.placed(params, obs_stats)
        return {"return": episodes.returns.mean(axis=1), "length": episodes.lengths.mean(axis=1),
                "truncated": episodes.truncated.mean(axis=1)}

    def __call__(self, state: Any) -> Episodes:
        """Evaluate the policies of `[S]` state rows (a checkpoint, a final state)."""
        return self.placed(*place_seeds((state.params, state.obs_stats), self.layout, self.mesh))


def evaluate_layout(
    trainer: Any,
    state: Any,
    layout: SeedLayout,
    num_episodes: int = 32,
    eval_seed: int = DEFAULT_EVAL_SEED,
    deterministic: bool = DEFAULT_MODE == GREEDY,
    max_episode_steps: int | None = None,
) -> Episodes:
    """`evaluation.evaluate_states` with the seeds sharded as `layout` lays them out (groups
    of `layout.width` per device), so the numbers do not depend on the device count.
    Greedy by default (`evaluation.DEFAULT_MODE`), as every results file.

    `state` holds `[S]` rows; returns NumPy `Episodes`, each `[S, num_episodes]`. Build a
    `SeedEvaluator` to evaluate several states with one compilation.
    """
    return SeedEvaluator(trainer, layout, num_episodes, eval_seed, deterministic, max_episode_steps)(state)
