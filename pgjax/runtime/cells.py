"""One compiled-cells program: a trainer's `init` and chunk programs over a padded axis of
cells (a run's seeds, or a sweep group's cells), sharded over a device mesh in `vmap`
groups of a fixed width, compiled ahead of time, with the memory check of a launch.

`pgjax train` (`pgjax.runtime.run.TrainingRun`), sweeps (`pgjax.runtime.sweep`) and the
seed evaluation (`experiment.SeedEvaluator`) build their programs here. The compilations
belong to the `CellsProgram` object and go with it: there is no process-wide cache (XLA's
persistent compile cache, `pgjax.runtime.compile_cache`, still serves a later process).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from pgjax.runtime import sharding


def without_weak_types(tree: Any) -> Any:
    """Weakly typed leaves (gymnax's step counter, flashbax's index) as ordinary ones, as a
    state restored from a checkpoint has them: fresh and resumed states then trace one chunk
    program (the values are the same)."""
    return jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype) if jax.typeof(x).weak_type else x, tree)


def tree_bytes(tree: Any) -> int:
    return int(sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def top_level_fields(state: Any) -> dict[str, Any]:
    """A state's children by field name, whatever kind of named pytree it is (a NamedTuple
    off-policy, an `OnPolicyState` dataclass on-policy): `{"state": state}` for a bare leaf."""
    children, _ = jax.tree_util.tree_flatten_with_path(state, is_leaf=lambda x: x is not state)
    return {jax.tree_util.keystr(path, simple=True) or "state": child for path, child in children}


def cell_shapes(trainer: Any, updates_per_launch: int) -> tuple[Any, dict]:
    """`(state, metrics of one compiled chunk)` of one cell, as shapes (`jax.eval_shape`)."""
    key = jax.ShapeDtypeStruct((2,), np.uint32)
    state = jax.eval_shape(trainer.init, key, trainer.config.hparams)
    _, metrics = jax.eval_shape(lambda s: trainer.run(s, trainer.config.hparams, updates_per_launch), state)
    return state, metrics


def cell_bytes(trainer: Any, updates_per_launch: int) -> dict:
    """Bytes one cell holds: its state and the metrics of one compiled chunk."""
    state, metrics = cell_shapes(trainer, updates_per_launch)
    return {"state": tree_bytes(state), "metrics": tree_bytes(metrics)}


def largest_parts(trainer: Any, updates_per_launch: int, cell_need: int | None = None, count: int = 2) -> str:
    """The `count` largest parts of one cell's memory, each named by the config fields that
    size it (what a refused launch should change), largest first: the replay buffer
    (`buffer_size` x one transition), the environments' states (`num_envs`), the networks
    with their optimiser state (`hidden_sizes`), one chunk's metrics (updates per chunk).
    Given `cell_need`, XLA's count for one cell of the compiled chunk, also its temporaries:
    an on-policy rollout's observations (`num_envs` x `num_steps` x the observation size,
    before and after each step) and the rest of the program's intermediate values."""
    config = trainer.config
    state, metrics = cell_shapes(trainer, updates_per_launch)
    fields = top_level_fields(state)
    buffer, envs = tree_bytes(fields.pop("buffer", ())), tree_bytes(fields.pop("env", ()))
    chunk = f"{updates_per_launch} updates x {len(metrics)} metrics: more --chunks make chunks shorter"
    parts = [(tree_bytes(fields), f"the networks and their optimiser state (hidden_sizes={list(config.hidden_sizes)})"),
             (envs, f"the environments' states (num_envs={config.num_envs})"),
             (tree_bytes(metrics), f"one chunk's metrics ({chunk})")]
    if buffer:
        row = buffer // config.buffer_size
        parts.append((buffer, f"the replay buffer (buffer_size={config.buffer_size} transitions x {row} bytes)"))
    if cell_need is not None:
        if not buffer:  # on-policy: the rollout `[num_steps, num_envs]`, a temporary of the chunk program
            obs_size = math.prod(trainer.env.obs_shape)
            sizes = f"num_envs={config.num_envs} x num_steps={config.num_steps} x {obs_size} floats"
            parts.append((2 * config.num_envs * config.num_steps * obs_size * 4,
                          f"one rollout's observations ({sizes}, before and after each step)"))
        rest = cell_need - tree_bytes(state) - sum(size for size, _ in parts)  # the state comes in and goes out
        grow = "they grow with num_envs x num_steps and the network's sizes"
        parts.append((rest, f"the compiled update's other intermediate values ({grow})"))
    parts.sort(key=lambda part: -part[0])
    return ", ".join(f"{what} {size / 1e6:.2f} MB" for size, what in parts[:count])


def default_memory_limit(devices: Sequence[Any]) -> int:
    """Per-device bytes a launch may use: the accelerator's limit, or half the free host RAM
    shared among the CPU devices."""
    mine = [d for d in devices if d.process_index == jax.process_index()] or list(devices)
    stats = mine[0].memory_stats() if hasattr(mine[0], "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(0.9 * stats["bytes_limit"])
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(0.5 * available / len(devices))


def launch_bytes_estimate(per_cell: dict, cells_per_device: int, temp_bytes: int = 0) -> int:
    """Per-device bytes of a launch: state in and out, metrics out, the program's temporaries."""
    return cells_per_device * (2 * per_cell["state"] + per_cell["metrics"]) + temp_bytes


def compiled_bytes(compiled: Any) -> int | None:
    """Per-device bytes of a compiled program from XLA's `memory_analysis`, if available."""
    try:
        m = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError, AttributeError):  # not every backend implements it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


class CellsProgram:
    """`trainer.init` and `trainer.run` over `[n]` cells sharded on `mesh`, a `vmap` over
    `width` cells at a time (`sharding.cell_function`), `n` a multiple of `width * mesh.size`.

    `init(keys, hparams)` gives a state without weakly typed leaves (as a restored one),
    so fresh and resumed states run one program. `chunk(size)` is the jitted program of a
    chunk of `size` updates. With `keys` and `hparams` given (placed arrays, or abstract
    ones carrying the cells' sharding, whose leading axis is `n`), `compile(size)` compiles
    that program ahead of time, once per size, and `run` calls the compiled program;
    without them `run` calls the jitted one.
    """

    def __init__(self, trainer: Any, mesh: Any, width: int, keys: Any = None, hparams: Any = None):
        self.trainer, self.mesh, self.width = trainer, mesh, width
        self.keys, self.hparams = keys, hparams
        self.init = sharding.cell_function(lambda key, hp: without_weak_types(trainer.init(key, hp)), mesh, width)
        self._jitted: dict[int, Callable] = {}
        self._compiled: dict[int, Any] = {}

    @property
    def cells(self) -> int | None:
        """Cells of one launch (padding included), or None without inputs."""
        return None if self.keys is None else int(jax.tree.leaves(self.keys)[0].shape[0])

    @property
    def cells_per_device(self) -> int:
        return self.cells // self.mesh.size

    def chunk(self, size: int) -> Callable:
        """The jitted `(state, hparams) -> (state, metrics)` of `size` updates."""
        if size not in self._jitted:
            trainer = self.trainer
            self._jitted[size] = sharding.cell_function(lambda s, h: trainer.run(s, h, size), self.mesh, self.width)
        return self._jitted[size]

    def abstract_state(self) -> Any:
        """The placed state's structure (`init`'s output; nothing is computed)."""
        return sharding.abstract_cells(jax.eval_shape(self.init, self.keys, self.hparams), self.mesh)

    def compile(self, size: int) -> Any:
        """The chunk program of `size` updates compiled ahead of time for this launch."""
        if size not in self._compiled:
            self._compiled[size] = self.chunk(size).lower(self.abstract_state(), self.hparams).compile()
        return self._compiled[size]

    def run(self, state: Any, hparams: Any, size: int) -> tuple[Any, dict]:
        if self.keys is None:
            return self.chunk(size)(state, hparams)
        return self.compile(size)(state, hparams)

    @property
    def functions(self) -> tuple[Callable, Callable]:
        """`(init, run)` as `experiment.train_seeds` takes them."""
        return self.init, self.run

    def estimated_bytes(self, size: int) -> int:
        """Per-device bytes of a launch by shapes alone: state in and out and one chunk's
        metrics for the cells each device holds."""
        return launch_bytes_estimate(cell_bytes(self.trainer, size), self.cells_per_device)

    def compiled_bytes(self, size: int) -> int | None:
        """Per-device bytes by XLA's count for the compiled chunk of `size` updates
        (temporaries included); compiles it (a later `run` of that size reuses it)."""
        return compiled_bytes(self.compile(size))

    def forget(self) -> None:
        """Drop the compiled programs."""
        self._compiled.clear()
        self._jitted.clear()


def memory_limit(mesh: Any, limit: int | None = None) -> int:
    """`limit`, else the default per-device limit of `mesh`'s devices (the smallest over processes)."""
    if limit:
        return limit
    return sharding.smallest_over_processes(default_memory_limit(list(mesh.devices.flat)))
