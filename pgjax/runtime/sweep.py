"""Sweeps: seeds x hyper-parameter grids, batched, sharded, chunked by memory, resumable.

A sweep is a base config, a grid (`{"hparams.learning_rate": [1e-4, 1e-3], "num_envs":
[4, 8]}`) and seeds. Its cells are the cartesian product grid x seeds. Grid keys under
`hparams.` are traced: cells that differ only there share one compiled program and run in
one batch. Other keys change shapes or control flow: each combination of them is a group,
compiled once. Seed `s` uses `fold_in(PRNGKey(root_seed), s)` in every cell, so adding
seeds or grid values never changes existing cells.

Within a group the cells run as `pgjax.runtime.sharding.cell_function`: sharded over all devices,
a `vmap` over `width` cells at a time, so a cell's result does not depend on the device
count or on how many cells share a launch. Before launch the memory of a launch is
estimated (the state and metrics of each cell from `jax.eval_shape`, plus the compiled
program's `memory_analysis`); a group too large for `memory_limit` runs as several
launches, with identical results.

Every finished cell is written atomically to `cells/cell-NNNNN.json` with its config,
seed, versions and per-update metrics, after its final policy (`cells/cell-NNNNN.policy.npz`:
parameters and observation statistics, `pgjax.records.cell_policies`; with `save_state` also the
whole final training state) so that `pgjax eval` can evaluate it. Re-running with `resume` skips the cells already
written; since results do not depend on batching, the sweep ends byte-identical to an
uninterrupted one. A cell whose parameters or loss become non-finite is marked
`diverged` with the first such update; the other cells are computed as if it were fine.

With `eval_every` K, every cell's policy is evaluated after every K-th chunk and after the
last (`experiment.evaluation_updates`, as `pgjax train` does), on the same episodes for all
cells (`experiment.SeedEvaluator`: mode, episode count, evaluation seed), and the rows go
into its cell file (`eval_metrics`, with `eval_protocol`). A SIGINT or SIGTERM stops the
sweep after the current chunk (`pgjax.runtime.resumable.Signals`): the finished cells are
kept, the unfinished launch's cells run again on resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from pgjax import config as cfg
from pgjax.records import cell_policies, runs
from pgjax.runtime import cells, sharding
from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED, DEFAULT_MODE, GREEDY
from pgjax.runtime.experiment import (
    SeedEvaluator,
    SeedLayout,
    chunk_sizes,
    evaluation_updates,
    first_nonfinite_update,
    seed_keys,
    train_seeds,
)
from pgjax.runtime.loading import algorithm, build_config
from pgjax.runtime.resumable import Signals, refuse_contradictions

TRACED_PREFIX = "hparams."
PREFIX = "pgjax sweep"  # how the sweep's notes begin
# Settings of a sweep kept in its sweep.json, with their flags and the defaults of a new sweep;
# `resumed_spec` refuses a flag that contradicts one.
SWEEP_SETTINGS = {"seeds": ("--seeds", [0]), "root_seed": ("--root-seed", 0), "width": ("--width", 8),
                  "chunks": ("--chunks", 10), "eval_every": ("--eval-every", 0),
                  "eval_episodes": ("--eval-episodes", 32), "eval_mode": ("--eval-mode", DEFAULT_MODE)}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a sweep: grid values and a seed."""

    index: int
    group: int
    overrides: dict  # dotted key -> value, from the grid
    seed: int
    config: Any  # the cell's full, validated config

    @property
    def name(self) -> str:
        return f"cell-{self.index:05d}"


@dataclasses.dataclass(frozen=True)
class Group:
    """Cells that share the static settings, hence one compiled program."""

    index: int
    static: dict  # dotted key -> value for the non-traced grid keys
    config: Any
    cells: tuple[Cell, ...]


def parse_grid_item(text: str) -> tuple[str, list]:
    """`'hparams.learning_rate=1e-4,1e-3'` or `'hidden_sizes=[[32],[64,64]]'` -> key, values."""
    if "=" not in text:
        raise cfg.ConfigError(f"--grid {text!r} must look like key=v1,v2 or key=[v1,v2]")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if raw.startswith("["):
        _, values = cfg.parse_override(f"{key}={raw}")
        if not isinstance(values, list):
            raise cfg.ConfigError(f"--grid {text!r}: the values must be a list")
    else:
        values = [cfg.parse_override(f"{key}={part}")[1] for part in raw.split(",")]
    if not values:
        raise cfg.ConfigError(f"--grid {text!r}: no values")
    if len({repr(v) for v in values}) != len(values):
        raise cfg.ConfigError(f"--grid {key}={values!r}: values repeat")
    return key, values


def parse_grid(items: Sequence[str], overrides: Sequence[str] = ()) -> dict[str, list]:
    """Every `--grid` item (`parse_grid_item`) as one grid; a key given twice, or also set by
    a `KEY=VALUE` override, is refused rather than one of them silently winning."""
    grid: dict[str, list] = {}
    given: dict[str, str] = {}
    for item in items:
        key, values = parse_grid_item(item)
        if key in grid:
            raise cfg.ConfigError(f"--grid {key} is given twice ({given[key]!r} and {item!r}); give all its values "
                                  f"in one --grid {key}=v1,v2,...")
        grid[key], given[key] = values, item
    for text in overrides:
        key = ".".join(cfg.parse_override(text)[0])
        if key in grid:
            raise cfg.ConfigError(f"{text} sets {key}, which --grid {given[key]!r} also sets; give it in one place "
                                  "(the override, or the grid's values)")
    return grid


def resumed_spec(sweep_dir: Path, given: dict) -> dict:
    """The sweep.json of the sweep in `sweep_dir`, with the `SWEEP_SETTINGS` that `given`
    (key -> value, None: not given) repeats or, for an older sweep.json without them, sets;
    a given setting that contradicts the sweep's is refused (`ConfigError`), before
    anything compiles."""
    path = Path(sweep_dir) / "sweep.json"
    if not path.exists():
        raise cfg.ConfigError(f"--resume {str(sweep_dir)!r}: no sweep.json there (not a pgjax sweep folder)")
    spec = runs.read_json(path)
    refuse_contradictions(spec, given, SWEEP_SETTINGS, "sweep", path)
    return spec


def plan(algo: str, base_values: dict, grid: dict[str, list], seeds: Sequence[int]) -> list[Group]:
    """Every cell's config built and validated (nothing compiled yet), grouped by static settings.

    Cell order: grid points in the order of `grid` (last key fastest), seeds fastest of all.
    Raises `ConfigError` naming the field, the value and what is allowed.
    """
    algorithm(algo)  # an unknown name fails before any grid point is built
    keys = list(grid)
    static_keys = [k for k in keys if not k.startswith(TRACED_PREFIX)]
    groups: dict[tuple, list[Cell]] = {}
    group_static: dict[tuple, dict] = {}
    index = 0
    for point in itertools.product(*(grid[k] for k in keys)):
        overrides = dict(zip(keys, point))
        values = base_values
        for key, value in overrides.items():
            values = cfg.merge(values, key.split("."), value)
        try:
            _, config = build_config(algo, values)
        except cfg.ConfigError as err:
            raise cfg.ConfigError(f"grid point {overrides}: {err}") from None
        static = {k: overrides[k] for k in static_keys}
        group_key = tuple(repr(static[k]) for k in static_keys)
        group_static[group_key] = static
        for seed in seeds:
            groups.setdefault(group_key, []).append(Cell(index, -1, overrides, int(seed), config))
            index += 1
    out = []
    for g, (group_key, members) in enumerate(groups.items()):
        members = tuple(dataclasses.replace(c, group=g) for c in members)
        # Cells of a group differ only in traced fields, so their static config is one.
        out.append(Group(g, group_static[group_key], _static_part(members[0].config), members))
    return out


def _static_part(config: Any) -> Any:
    """The config with the default hparams: what the group's compiled program depends on."""
    return dataclasses.replace(config, hparams=type(config.hparams)())


# --- memory ------------------------------------------------------------------------------

# The memory helpers live with the compiled-cells program; these names stay for callers.
tree_bytes, cell_bytes, default_memory_limit = cells.tree_bytes, cells.cell_bytes, cells.default_memory_limit
launch_bytes_estimate, compiled_bytes = cells.launch_bytes_estimate, cells.compiled_bytes


def parse_bytes(text: str | int) -> int:
    """`'512MB'`, `'2GB'`, `'1.5e9'` (or a number of bytes) -> bytes, at least 1: a limit of
    zero, a negative or a non-finite one is refused, not read as "no limit"."""
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "B": 1}
    t = str(text).strip().upper()
    value = None
    for unit, factor in units.items():
        if t.endswith(unit):
            try:
                value = float(t[: -len(unit)]) * factor
            except ValueError:
                pass
            break
    if value is None and not isinstance(text, bool):
        try:
            value = float(t)
        except ValueError:
            pass
    if value is None:
        raise cfg.ConfigError(f"--memory-limit {text!r}: use bytes or a size such as 512MB or 2GB")
    if not math.isfinite(value) or value < 1:
        raise cfg.ConfigError(f"--memory-limit {text!r}: must be a positive, finite size such as 512MB or 2GB")
    return int(value)


# --- running -------------------------------------------------------------------------------


@dataclasses.dataclass
class SweepSettings:
    """How to run a sweep. Only `width` can change a cell's training (the vmap width of the
    compiled program, fixed per sweep and stored in each cell); the others never do.
    `max_chunks` and the `eval_` settings fix where and how the cells are evaluated."""

    width: int = 8  # cells per vmap group (results depend on it: fixed per sweep, stored)
    max_chunks: int = 10  # compiled chunks of updates per launch (progress between them)
    memory_limit: int | None = None  # per-device bytes; None: default_memory_limit
    devices: Sequence[Any] | None = None  # default: all devices
    save_state: bool = False  # also keep each cell's whole final training state (cell-N.state.npz)
    eval_every: int = 0  # evaluate every cell after every K-th chunk and the last; 0: never during training
    eval_episodes: int = 32  # episodes per evaluation, the same start states for every cell
    eval_mode: str = DEFAULT_MODE  # "greedy" (the policy's mode) or "stochastic" (sampled actions)

    @property
    def eval_protocol(self) -> dict:
        """How the cells are evaluated, as every results file states it."""
        return {"mode": self.eval_mode, "episodes": self.eval_episodes, "eval_seed": DEFAULT_EVAL_SEED,
                "every": self.eval_every}


class _GroupRunner:
    """One group's `cells.CellsProgram` on a mesh, at the launch size that fits memory.

    The chunk program is compiled ahead of time for a launch of `cells_per_launch` cells
    (the compiled program's `memory_analysis` checks the estimate); every launch is padded
    to that size, so each chunk length compiles once. The compilations belong to the
    runner, which belongs to one `run_sweep` call.
    """

    def __init__(self, algorithm: Any, group: Group, settings: SweepSettings, mesh):
        self.trainer = algorithm.make_trainer(group.config)
        # The vmap width depends on the group's size only, never on what is left to do, so a
        # resumed sweep computes its cells with the same program as an uninterrupted one.
        self.mesh, self.width = mesh, min(settings.width, len(group.cells))
        self.sizes = chunk_sizes(self.trainer.config.num_updates, settings.max_chunks)
        self.per_cell = cells.cell_bytes(self.trainer, max(self.sizes))
        limit = cells.memory_limit(mesh, settings.memory_limit)
        units = self._units_by_estimate(len(group.cells), limit)
        estimate = self._fit_launch(units, limit)
        self.estimate = {"per_cell_state_bytes": self.per_cell["state"], "per_cell_metrics_bytes": self.per_cell["metrics"],
                         "cells_per_launch": self.cells_per_launch, "bytes_per_device": estimate, "limit": limit}
        self.eval_at = evaluation_updates(self.trainer.config.num_updates, settings.max_chunks, settings.eval_every)
        # Laid out as the launch's state is (padded cells, this mesh): evaluated where it lies.
        layout = SeedLayout(self.cells_per_launch, self.width, mesh.size)
        self.evaluator = SeedEvaluator(self.trainer, layout, settings.eval_episodes, DEFAULT_EVAL_SEED,
                                       settings.eval_mode == GREEDY, mesh=mesh) if self.eval_at else None

    @property
    def unit(self) -> int:
        """The smallest launch: one vmap group on every device."""
        return self.width * self.mesh.size

    def _units_by_estimate(self, num_cells: int, limit: int) -> int:
        """Units per launch before compiling: as many as the group needs, as many as the
        `eval_shape` estimate fits in `limit`, at least one."""
        units_needed = -(-num_cells // self.unit)
        fit = limit // max(1, cells.launch_bytes_estimate(self.per_cell, self.width))
        return max(1, min(units_needed, fit))

    def _program(self, num_cells: int) -> cells.CellsProgram:
        """The group's program for launches of `num_cells` cells (abstract, sharded inputs)."""
        key = jax.ShapeDtypeStruct((num_cells, 2), np.uint32)
        hp = jax.tree.map(lambda x: jax.ShapeDtypeStruct((num_cells,), np.asarray(jax.numpy.asarray(x)).dtype),
                          self.trainer.config.hparams)
        return cells.CellsProgram(self.trainer, self.mesh, self.width, sharding.abstract_cells(key, self.mesh),
                                  sharding.abstract_cells(hp, self.mesh))

    def _fit_launch(self, units: int, limit: int) -> int:
        """Set `cells_per_launch` and `program`, compiling the largest chunk and shrinking the
        launch until the compiled program's bytes per device fit `limit`; return those
        bytes. MemoryError if one unit does not fit."""
        while True:
            self.cells_per_launch = units * self.unit
            self.program = self._program(self.cells_per_launch)
            estimate = (self.program.compiled_bytes(max(self.sizes))
                        or cells.launch_bytes_estimate(self.per_cell, units * self.width))
            if estimate <= limit or units == 1:
                break
            units = max(1, min(units - 1, int(units * limit / estimate)))
        if estimate > limit:
            compiled = self.program.compiled_bytes(max(self.sizes)) is not None  # compiled above: no new compile
            parts = cells.largest_parts(self.trainer, max(self.sizes), estimate // self.width if compiled else None)
            raise MemoryError(
                f"one launch of {self.unit} cells ({self.width} per vmap group x {self.mesh.size} devices) needs about "
                f"{estimate / 1e6:.2f} MB per device, more than the limit {limit / 1e6:.2f} MB; the largest parts of "
                f"one cell: {parts}; lower those{', lower --width' if self.width > 1 else ''}, or raise --memory-limit"
            )
        return estimate

    @property
    def init(self):
        return self.program.init

    def run(self, state, hparams, size):
        return self.program.run(state, hparams, size)


def write_cell(path: Path, record: dict) -> None:
    """Atomic JSON (temporary file, then rename); nan/inf become null (standard JSON)."""
    runs.write_json(path, _finite_or_none(record))


def _finite_or_none(x):
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _cell_record(algo: str, cell: Cell, root_seed: int, width: int, metrics: dict, versions: dict) -> dict:
    (diverged_at,) = first_nonfinite_update({k: v[None] for k, v in metrics.items()})
    returns = np.asarray(metrics.get("episode_return", [np.nan]), float)
    tail = returns[-max(1, len(returns) // 10):]
    return {
        "algo": algo, "cell": cell.index, "group": cell.group, "seed": cell.seed, "root_seed": root_seed,
        "overrides": cell.overrides, "config": cfg.to_dict(cell.config), "vmap_width": width,
        "versions": versions, "diverged": diverged_at is not None, "diverged_at_update": diverged_at,
        "final_train_return": float(np.nanmean(tail)) if np.isfinite(tail).any() else None,
        "metrics": {k: compact_values(m) for k, m in sorted(metrics.items())},
    }


def compact_values(values) -> list:
    """A metric's values for JSON, each written with the fewest digits that read back to the
    same array value (a float32 needs at most 9, not the 17 of its float64 repr): the cell
    files are about half the size, and nothing is rounded."""
    array = np.asarray(values)
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        return array.astype(int).tolist()
    if array.dtype.itemsize <= 4:
        array = array.astype(np.float32)
        return [float(np.format_float_positional(x, unique=True, trim="-")) if np.isfinite(x) else float(x)
                for x in array]
    return array.astype(float).tolist()


def _cell_done(path: Path, save_state: bool = False) -> bool:
    """A cell file that exists and reads back, with its policy file (and state file if
    asked for) complete; otherwise the cell is run again (cells are deterministic), with a
    note. Records from before policies were kept (no `policy` entry) count as done."""
    if not path.exists():
        return False
    try:
        record = runs.read_json(path)
    except runs.RunFileError as err:
        print(f"pgjax sweep: note: running the cell again: {err}", file=sys.stderr)
        return False
    wanted = [record.get("policy")] + ([path.name.replace(".json", cell_policies.STATE_SUFFIX)] if save_state else [])
    for name in filter(None, wanted):
        if not cell_policies.readable(path.parent / name):
            print(f"pgjax sweep: note: running the cell again: {path.parent / name} is missing or damaged",
                  file=sys.stderr)
            return False
    return True


def run_sweep(
    out_dir: Path,
    algo: str,
    groups: list[Group],
    root_seed: int,
    settings: SweepSettings,
    *,
    on_progress: Callable[[int], None] | None = None,
    on_cell: Callable[[Cell], None] | None = None,
    on_metrics: Callable[[list[Cell], dict], None] | None = None,
    on_eval: Callable[[list[Cell], int, dict], None] | None = None,
) -> dict:
    """Run every cell not yet written in `out_dir/cells/`, writing each as it finishes.

    `on_progress(env_steps)` after each compiled chunk (steps summed over cells);
    `on_metrics(cells, metrics)` after each chunk too, with the launch's cells and their
    chunk metrics (name -> `[len(cells), U]`, e.g. for `pgjax.records.tracking`); `on_eval(cells,
    env_steps, values)` after each evaluation (`return`, `length`, `truncated` -> `[len(cells)]`);
    `on_cell(cell)` after each cell file is written. Returns launch statistics. A SIGINT or
    SIGTERM stops it after the current chunk with `resumable.Interrupted` (the finished
    cells written); a second one at once.
    """
    cells_dir = Path(out_dir) / "cells"
    if sharding.is_writer():
        cells_dir.mkdir(parents=True, exist_ok=True)
    mesh = sharding.cell_mesh(settings.devices)
    versions = runs.versions()
    stats = {"launches": 0, "cells_run": 0, "cells_skipped": 0, "groups": []}
    with Signals(PREFIX) as signals:
        for group in groups:
            # Process 0 reads which cells are done; every process then runs the same launches.
            done = sharding.from_writer(np.array([sharding.is_writer() and _cell_done(cells_dir / f"{c.name}.json",
                                                                                        settings.save_state)
                                                  for c in group.cells]))
            todo = [c for c, finished in zip(group.cells, done) if not finished]
            stats["cells_skipped"] += len(group.cells) - len(todo)
            if not todo:
                continue
            signals.check_everywhere()  # a signal during the last launch: stop before compiling the next group
            runner = _GroupRunner(algorithm(algo), group, settings, mesh)
            stats["groups"].append({"group": group.index, "static": group.static, **runner.estimate})
            for start in range(0, len(todo), runner.cells_per_launch):
                signals.check_everywhere()
                launch = todo[start:start + runner.cells_per_launch]
                keys = np.asarray(seed_keys(root_seed, [c.seed for c in launch]))
                hparams = jax.tree.map(
                    lambda *xs: np.stack([np.asarray(jax.numpy.asarray(x)) for x in xs]),
                    *[c.config.hparams for c in launch])
                padded = sharding.pad_cells((keys, hparams), runner.cells_per_launch)
                keys, hparams = sharding.put_cells(padded, mesh)
                chunks = _LaunchChunks(runner, launch, signals, settings.eval_protocol, on_progress, on_metrics, on_eval)
                state, metrics = train_seeds(
                    runner.trainer, keys, hparams, hparams_batched=True, max_chunks=settings.max_chunks,
                    on_chunk=chunks, functions=(runner.init, runner.run), fetch=sharding.fetch,
                )
                stats["launches"] += 1
                policies = cell_policies.host_rows(cell_policies.policy_tree(state), sharding.fetch)
                states = cell_policies.host_rows(state, sharding.fetch) if settings.save_state else None
                for i, cell in enumerate(launch):
                    record = _cell_record(algo, cell, root_seed, runner.width, {k: v[i] for k, v in metrics.items()},
                                          versions)
                    record.update(chunks.eval_record(i), policy=cell.name + cell_policies.POLICY_SUFFIX)
                    if sharding.is_writer():  # parameters first: the record marks the cell finished
                        row = functools.partial(_row, i)
                        cell_policies.write_tree(cells_dir / record["policy"], jax.tree.map(row, policies))
                        if states is not None:
                            cell_policies.write_tree(cells_dir / (cell.name + cell_policies.STATE_SUFFIX),
                                                     jax.tree.map(row, states))
                        write_cell(cells_dir / f"{cell.name}.json", record)
                    stats["cells_run"] += 1
                    if on_cell is not None:
                        on_cell(cell)
        if signals.received is not None:
            print(f"{PREFIX}: note: {signal.Signals(signals.received).name} came during the last chunk: every cell "
                  "is finished, so the sweep ends as usual", file=sys.stderr)
    return stats


class _LaunchChunks:
    """After each chunk of a launch: progress, metrics, the evaluation if due (its rows kept
    for the cell files), then a requested stop; not after the last chunk, whose cells are
    written first."""

    def __init__(self, runner: _GroupRunner, launch: list[Cell], signals: Signals, protocol: dict,
                 on_progress, on_metrics, on_eval):
        self.runner, self.launch, self.signals, self.protocol = runner, launch, signals, protocol
        self.on_progress, self.on_metrics, self.on_eval = on_progress, on_metrics, on_eval
        self.steps_per_update = runner.trainer.config.env_steps_per_update
        self.evals: list[tuple[int, dict]] = []  # (update, name -> [len(launch)]) per evaluation

    def __call__(self, done: int, state, metrics: dict) -> None:
        n = len(self.launch)  # rows past the launch's cells are padding
        if self.on_progress is not None:
            self.on_progress(metrics_steps(metrics, self.steps_per_update * n))
        if self.on_metrics is not None:
            self.on_metrics(self.launch, {k: v[:n] for k, v in metrics.items()})
        if done in self.runner.eval_at:
            values = {k: v[:n] for k, v in self.runner.evaluator.means(state.params, state.obs_stats).items()}
            self.evals.append((done, values))
            if self.on_eval is not None:
                self.on_eval(self.launch, done * self.steps_per_update, values)
        if done < self.runner.trainer.config.num_updates:
            self.signals.check_everywhere()

    def eval_record(self, i: int) -> dict:
        """The evaluations of the launch's `i`-th cell for its file, rows as `pgjax train`'s
        eval.csv columns (none without evaluation)."""
        if not self.evals:
            return {}
        updates = [update for update, _ in self.evals]
        rows = {"update": updates, "env_steps": [u * self.steps_per_update for u in updates]}
        rows.update({f"eval_{k}": compact_values([values[k][i] for _, values in self.evals]) for k in self.evals[0][1]})
        return {"eval_protocol": self.protocol, "eval_metrics": rows}


def _row(i: int, x: np.ndarray) -> np.ndarray:
    return x[i]


class LaunchFolder:
    """The folder a launch made (`made`; None for a resumed or another process's folder), and
    whether to remove it at the end of the launch if no cell finished in it (`discard`)."""

    made: Path | None = None
    discard: bool = False


def cell_record_paths(out_dir: Path) -> list[Path]:
    """The record of every finished cell in the sweep folder `out_dir`, in cell order."""
    return sorted((Path(out_dir) / "cells").glob("cell-*.json"))


def no_cell_finished(out_dir: Path) -> bool:
    """True if no cell record has been written in the sweep folder `out_dir`."""
    return not cell_record_paths(out_dir)


@contextlib.contextmanager
def removed_if_no_cell_finished():
    """Around a launch, yielding a `LaunchFolder` to fill in once the launch makes its folder.
    The one rule for a sweep folder nothing finished in: the folder this launch made is
    removed, with every file in it (`sweep.json`, tracker files: all this launch's), if no
    cell finished in it and the launch either ends by Ctrl-C as a KeyboardInterrupt (before
    `run_sweep` sets its signal handlers or after it restored them) or set `discard` (e.g.
    after a memory refusal). A folder not made by this launch (`--resume`) is never removed."""
    folder = LaunchFolder()
    try:
        yield folder
    except KeyboardInterrupt:
        _remove_if_no_cell_finished(folder.made)
        raise
    if folder.discard:
        _remove_if_no_cell_finished(folder.made)


def _remove_if_no_cell_finished(made: Path | None) -> None:
    if made is not None and no_cell_finished(made):
        shutil.rmtree(made, ignore_errors=True)


def metrics_steps(metrics: dict, batch_steps: int) -> int:
    """Environment steps a chunk of `[S, U]` metrics stands for (all cells of a launch)."""
    return next(iter(metrics.values())).shape[1] * batch_steps


def read_cells(out_dir: Path) -> list[dict]:
    """Every written cell record, in cell order."""
    return [runs.read_json(p) for p in cell_record_paths(out_dir)]


def write_results_table(out_dir: Path, records: list[dict]) -> Path:
    """`results.csv`: one row per cell (grid values, seed, final return, divergence)."""
    import csv
    import io

    keys = sorted({k for r in records for k in r["overrides"]})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["cell", "group", *keys, "seed", "final_train_return", "diverged", "diverged_at_update"])
    for r in records:
        writer.writerow([r["cell"], r["group"], *[json_value(r["overrides"].get(k)) for k in keys], r["seed"],
                         "" if r["final_train_return"] is None else f"{r['final_train_return']:.7g}",
                         int(r["diverged"]), r["diverged_at_update"] or ""])
    path = Path(out_dir) / "results.csv"
    runs.write_text(path, buf.getvalue())
    return path


def json_value(v: Any) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v)
