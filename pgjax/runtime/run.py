"""A training run in a run folder: start or resume it, train in compiled chunks, summarise.

`TrainingRun` is what `pgjax train` runs, callable from a notebook through `train` and
`resume` (also `pgjax.train`, `pgjax.resume`)::

    result = pgjax.train("configs/ppo_cartpole.toml", seeds=4, out="runs", chunks=10)
    result.run_dir, result.summary["final_train_return"], result.state
    pgjax.resume(result.run_dir)        # continues a stopped run, bit for bit

A run folder holds config.json (the config and the run's settings), metrics.csv (a row
per seed and update), eval.csv (every seed evaluated after every `eval_every`-th chunk), a
checkpoint of the whole training state after every chunk (checkpoints/), summary.json and
the learning-curve figures. After each chunk, on the host: metrics to metrics.csv and the
trackers, the evaluation if one is due, the checkpoint, the progress, then a requested stop
(SIGINT/SIGTERM: after the current chunk; again: at once). A resume restores the newest
intact checkpoint that metrics.csv covers and continues exactly as if never stopped.

The seeds run as one `cells.CellsProgram` (`SeedCells`), laid out by
`experiment.SeedLayout`, its largest chunk compiled ahead of time for the memory check and
reused by training; the program belongs to the run and goes with it.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgjax import config as cfg
from pgjax.records import runs
from pgjax.runtime.eval_modes import DEFAULT_MODE, GREEDY, STOCHASTIC, sampling_refused
from pgjax.runtime.resumable import Interrupted, Signals, continue_with, refuse_contradictions

# Settings of a run kept in its config.json, with their flags and the defaults of a new run.
RUN_SETTINGS = {"seeds": ("--seeds", [0]), "root_seed": ("--root-seed", 0), "chunks": ("--chunks", 20),
                "width": ("--width", None), "eval_episodes": ("--eval-episodes", 32),
                "eval_every": ("--eval-every", 1), "eval_mode": ("--eval-mode", DEFAULT_MODE),
                "log": ("--log", ["csv"])}
REQUIRED_RECORD = ("algo", "config", "seeds", "root_seed", "chunks")
PREFIX = "pgjax train"  # how the run's notes and errors begin
# Exit code of a run that finished with a seed whose parameters or loss became non-finite
# (the other seeds trained as if it were fine; its last finite state is kept, see
# `FINITE_DIR`), so that a cluster job can tell.
DIVERGED_EXIT = 3
FINITE_DIR = "finite_checkpoints"  # RUN_DIR/finite_checkpoints/<update>/: a diverged seed's last finite state


class ResumeError(Exception):
    """A run folder that cannot be continued (the message says why and what to do)."""


class Stopped(Exception):
    """`stop_after` chunks were run (tests of resume)."""


@dataclasses.dataclass
class TrainResult:
    """What a run gives back. `status`: "finished", "stopped" (after `stop_after` chunks),
    "interrupted" (a signal) or "failed" (a write failed; `message` says which).
    `exit_code` is what `pgjax train` exits with; `state` the final `[S]` training state
    (finished runs); `summary` the summary.json contents (finished runs, process 0)."""

    run_dir: Path
    status: str
    exit_code: int
    updates_done: int
    state: Any = None
    summary: dict | None = None
    message: str = ""


def diverged_message(diverged: dict[int, int], run_dir: Path) -> str:
    """One line naming each diverged (seed, update) and where its last finite state is."""
    kept = sorted((Path(run_dir) / FINITE_DIR).glob("[0-9]*"), key=lambda p: int(p.name))
    where = (f"the last finite checkpoints are kept in {Path(run_dir) / FINITE_DIR} (updates "
             f"{', '.join(p.name for p in kept)})" if kept else "no finite checkpoint was kept (none before it)")
    seeds = ", ".join(f"seed {s} at update {u}" for s, u in sorted(diverged.items()))
    return f"non-finite parameters or loss: {seeds}; {where}"


def plural(count: int, noun: str) -> str:
    """`1 seed`, `2 seeds`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _note(message: str) -> None:
    print(f"{PREFIX}: note: {message}", file=sys.stderr)


def _seeds_list(seeds: int | Sequence[int] | None) -> list[int] | None:
    if seeds is None:
        return None
    if isinstance(seeds, int):
        if seeds < 1:
            raise cfg.ConfigError(f"seeds={seeds}: a count must be >= 1 (or give a list of seed ids)")
        return list(range(seeds))
    seeds = [int(s) for s in seeds]
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise cfg.ConfigError(f"seeds={seeds}: need at least one distinct non-negative seed")
    return seeds


def new_record(algo_name: str, config: Any, settings: dict, checkpoints: bool = True) -> dict:
    """The run settings of a new run (config.json without the config): `settings` holds the
    keys of `RUN_SETTINGS` (None: the default)."""
    from pgjax.runtime.experiment import check_seeds, default_seed_width

    asked_chunks = settings.get("chunks") is not None  # the plan's note is for a count the user chose
    settings = {key: default if settings.get(key) is None else settings[key]
                for key, (_, default) in RUN_SETTINGS.items()}
    seeds = settings["seeds"]
    try:
        check_seeds(settings["root_seed"], seeds)
    except ValueError as exc:
        raise cfg.ConfigError(str(exc)) from None
    width = settings["width"] or default_seed_width(len(seeds))
    chunks = min(settings["chunks"], config.num_updates)  # a chunk holds at least one update
    if chunks < settings["chunks"]:
        _note(f"--chunks {settings['chunks']} is more than the {config.num_updates} updates; "
              f"running {chunks} chunks of one update")
    elif asked_chunks:
        _note_chunk_plan(config.num_updates, chunks)
    return {**settings, "algo": algo_name, "chunks": chunks, "width": min(width, len(seeds)),
            "checkpoints": checkpoints}


def _note_chunk_plan(num_updates: int, chunks: int) -> None:
    """Say so when the chunk plan (`experiment.chunk_sizes`: equal chunks where a divisor
    of the update count allows, one compilation) has fewer chunks than asked for: each
    chunk is a progress step, a checkpoint and an evaluation point."""
    from pgjax.runtime.experiment import chunk_sizes

    sizes = chunk_sizes(num_updates, chunks)
    if len(sizes) < chunks:
        shape = (f"{len(sizes)} equal chunks of {sizes[0]} updates" if len(set(sizes)) == 1
                 else f"{len(sizes)} chunks of {sizes[0]} updates (the last {sizes[-1]})")
        _note(f"--chunks {chunks}: the {num_updates} updates run as {shape} (chunk sizes are chosen to compile once "
              f"or twice); a --chunks that divides {num_updates} gives exactly that many")


def read_record(run_dir: Path) -> dict:
    """A run folder's config.json, checked for the entries a resume needs."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists() and not runs.recover_run_file(run_dir, PREFIX, required=True):
        raise cfg.ConfigError(f"--resume {str(run_dir)!r}: no config.json there (not a pgjax run folder)")
    record = runs.read_json(run_dir / "config.json")
    missing = [key for key in REQUIRED_RECORD if not isinstance(record, dict) or key not in record]
    if missing:
        raise runs.RunFileError(f"{run_dir / 'config.json'} is damaged: no {', '.join(missing)}")
    # Runs from before seed groups vmapped all their seeds at once, or before eval_episodes was kept.
    record.setdefault("width", len(record["seeds"]))
    record.setdefault("checkpoints", True)
    return record


def check_same_settings(record: dict, given: dict, run_dir: Path, no_checkpoint: bool = False) -> None:
    """A setting given with a resume must repeat the run's; one that differs is refused.
    Settings the run's config.json lacks (older runs) are taken from `given` or defaults."""
    refuse_contradictions(record, given, RUN_SETTINGS, "run", run_dir / "config.json")
    if no_checkpoint and record["checkpoints"]:
        raise cfg.ConfigError("--no-checkpoint contradicts the run being resumed, which writes checkpoints; "
                              "drop --no-checkpoint")


def resumed_config(record: dict, env: str | None, overrides: Sequence[str], algo: str | None,
                   run_dir: Path | None = None):
    """`(module, config)` of a resumed run: its config.json. `env`, `overrides` and `algo`
    may only repeat it: one that changes the config is refused here, before anything
    compiles and whether or not the run has a checkpoint yet, since a resume would train
    another config in a folder whose config.json, name and plots say the old one."""
    from pgjax.runtime.loading import build_config

    if algo is not None and algo != record["algo"]:
        raise cfg.ConfigError(f"--algo {algo} contradicts algo={record['algo']!r} of the run being resumed")
    values = record["config"]
    if env is not None:
        values = cfg.merge(values, ["env_id"], env)
    for text in overrides:
        path, value = cfg.parse_override(text)
        values = cfg.merge(values, path, value)
    module, config = build_config(record["algo"], values)
    if values is not record["config"]:
        _, own = build_config(record["algo"], record["config"])
        changed = cfg.config_differences(cfg.to_dict(own), cfg.to_dict(config))
        if changed:
            where = run_dir / "config.json" if run_dir is not None else "config.json"
            given = " ".join([*([f"--env {env}"] if env is not None else []), *overrides])
            raise cfg.ConfigError(
                f"{given} changes the config of the run being resumed ({where}, the config its checkpoints "
                f"hold): {'; '.join(changed)}; a resume continues the run's own config: drop them, or train a new "
                "run with them")
    return module, config


LOCK_FILE = "run.lock"


class RunLock:
    """`RUN_DIR/run.lock`: held (an exclusive `flock`) by the one process training in a run
    folder, and naming it (pid, host, start time). A second process is refused with who
    holds it; a lock left by a process that died is free (the kernel drops its `flock`) and
    is taken over. Taking it is also the first write into the folder: a read-only folder
    is refused here with one line."""

    def __init__(self, run_dir: Path):
        self.path, self._fd = Path(run_dir) / LOCK_FILE, None

    def acquire(self) -> RunLock:
        import datetime
        import fcntl
        import json
        import os
        import socket

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ResumeError(f"{self.path.parent} cannot be written ({err.strerror or err}): training writes "
                              "metrics, evaluations and checkpoints there; copy the folder somewhere writable and "
                              "resume the copy") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise ResumeError(f"{self.path.parent} is in use by another pgjax process ({holder}); wait for it "
                              f"to finish or stop it (Ctrl-C, or kill -TERM its pid), then resume") from None
        previous = _lock_holder(fd)
        if previous != "unknown":
            _note(f"taking over {self.path}: its holder ({previous}) is no longer running")
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        import os

        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                self.path.unlink(missing_ok=True)
            except OSError:  # a folder made read-only meanwhile: the kernel still drops the flock
                pass
            os.close(fd)


def _lock_holder(fd: int) -> str:
    """`pid P on host H since T` from a lock file's contents, or "unknown"."""
    import json
    import os

    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        return f"pid {holder['pid']} on host {holder['host']} since {holder['since']}"
    except (ValueError, TypeError, KeyError, OSError):
        return "unknown"


class SeedCells:
    """The seeds of a run laid out on the devices (`experiment.SeedLayout`) as one
    `cells.CellsProgram`: placed keys and hparams, the sharded init and chunk programs
    compiled ahead of time, and the conversion of results back to `[S]` rows."""

    def __init__(self, trainer, layout, keys, hparams):
        from pgjax.runtime import experiment
        from pgjax.runtime.cells import CellsProgram

        self.trainer, self.layout = trainer, layout
        self.mesh = experiment.seed_mesh(layout)
        keys, hparams = experiment.place_seeds((keys, hparams), layout, self.mesh)
        self.program = CellsProgram(trainer, self.mesh, layout.width, keys, hparams)

    @property
    def keys(self):
        return self.program.keys

    @property
    def hparams(self):
        return self.program.hparams

    @property
    def functions(self):
        return self.program.functions

    def compile_chunk(self, size: int):
        """The compiled program of one chunk of `size` updates, from the shapes of the state
        `init` makes (nothing is computed); a later `train` of that size, fresh or resumed,
        runs it."""
        return self.program.compile(size)

    @classmethod
    def build(cls, trainer, record: dict) -> SeedCells:
        """From a run record's `seeds`, `width` and `root_seed`."""
        import jax
        import jax.numpy as jnp

        from pgjax.runtime import experiment

        seeds = record["seeds"]
        layout = experiment.SeedLayout.plan(len(seeds), record["width"], len(jax.devices()))
        hparams = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (len(seeds),)), trainer.config.hparams)
        return cls(trainer, layout, experiment.seed_keys(record["root_seed"], seeds), hparams)

    def abstract_state(self):
        """The `[S]` state's structure (what a checkpoint holds)."""
        import jax

        rows = jax.tree.map(lambda x: x[: self.layout.num_seeds], (self.keys, self.hparams))
        return jax.eval_shape(jax.vmap(self.trainer.init), *rows)

    def place(self, state):
        from pgjax.runtime import experiment

        return experiment.place_seeds(state, self.layout, self.mesh)

    def rows(self, state):
        """`[S]` rows of a padded state, on the first device (checkpoints, evaluation)."""
        from pgjax.runtime import experiment

        return experiment.unpad_seeds(state, self.layout)

    def fetch(self, metrics: dict) -> dict:
        from pgjax.runtime import sharding

        return {k: v[: self.layout.num_seeds] for k, v in sharding.fetch(metrics).items()}

    def train(self, state, done: int, chunks: int, on_chunk) -> object:
        """Train from `state` (`[S]` rows, None: fresh) after `done` updates; the final `[S]` state."""
        from pgjax.runtime.experiment import train_seeds

        state = None if state is None else self.place(state)
        state, _ = train_seeds(self.trainer, self.keys, self.hparams, hparams_batched=True, max_chunks=chunks,
                               on_chunk=on_chunk, state=state, updates_done=done, functions=self.functions,
                               fetch=self.fetch)
        return self.rows(state)

    def check_memory(self, chunks: int, memory_limit: str | int | None) -> dict:
        """Per-device bytes of the run; raises MemoryError above `memory_limit` (bytes or a
        size such as "512MB"; default: half the free RAM shared by the CPU devices, or the
        accelerator's limit).

        First the estimate from shapes alone (state in and out and one chunk's metrics for
        the seeds each device holds), then XLA's count for the compiled program of the
        largest chunk, which adds the temporaries (on an accelerator many times the
        estimate, `benchmarks/README.md`). That program is compiled here, ahead of
        training; the first chunk runs it.
        """
        import jax

        from pgjax.runtime import cells, sharding
        from pgjax.runtime.experiment import chunk_sizes
        from pgjax.runtime.sweep import parse_bytes

        size = max(chunk_sizes(self.trainer.config.num_updates, chunks))
        layout = self.layout
        if isinstance(memory_limit, str):
            memory_limit = parse_bytes(memory_limit)
        limit = cells.memory_limit(self.mesh, memory_limit)

        def refuse(need: int, what: str, compiled: bool = False) -> MemoryError:
            parts = cells.largest_parts(self.trainer, size, need // layout.per_device if compiled else None)
            # Fewer seeds, or seeds spread over more CPU devices, help only where a device holds several.
            fixes = ["lower those"] + (["use fewer seeds"] if layout.num_seeds > 1 else [])
            if layout.per_device > 1 and jax.default_backend() == "cpu":
                fixes.append("spread the seeds over more --host-devices")
            return MemoryError(
                f"{plural(layout.num_seeds, 'seed')} need{'s' if layout.num_seeds == 1 else ''} about "
                f"{need / 1e6:.2f} MB per device ({plural(layout.per_device, 'seed')} on each of {layout.num_devices} "
                f"device(s)) by {what}, more than the limit {limit / 1e6:.2f} MB; the largest parts of one seed: "
                f"{parts}; {', '.join(fixes)}, or raise --memory-limit"
            )

        estimate = self.program.estimated_bytes(size)
        if estimate > limit:
            raise refuse(estimate, "the training state and metrics")
        if sharding.is_writer():  # compiling takes seconds to minutes: say what the wait is
            print(f"pgjax: compiling the training program ({plural(size, 'update')} per chunk, "
                  f"{plural(layout.num_seeds, 'seed')})", flush=True)
        started = time.perf_counter()
        compiled = self.program.compiled_bytes(size)
        if compiled is not None and compiled > limit:
            raise refuse(compiled, f"XLA's count for one chunk of {size} updates, temporaries included", True)
        return {"bytes_per_device": estimate, "compiled_bytes_per_device": compiled, "limit": limit,
                "compile_seconds": time.perf_counter() - started}


class Progress:
    """A tqdm progress bar over the environment steps of all seeds (the default of
    `progress=True`). Any object with these three methods can be passed instead."""

    def start(self, total_steps: int, steps_done: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total_steps, initial=steps_done, unit="step", unit_scale=True, desc="compiling",
                        dynamic_ncols=True)

    def update(self, steps_done: int, last_return: float) -> None:
        self.bar.set_description("training")
        self.bar.set_postfix(ret=f"{last_return:.1f}", refresh=False)
        self.bar.update(steps_done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class TrainingRun:
    """One run folder: its settings (`record`, as config.json keeps them), its config, its
    seeds compiled as one program, and the chunk callbacks (metrics.csv, eval.csv,
    trackers, checkpoints, progress, signals, `stop_after`).

    Build it with `TrainingRun.new` or `TrainingRun.open` (a resume), then `run()`.
    Construction validates everything that can fail before training (the config, the
    tracker packages, the memory limit: the largest chunk is compiled here).
    """

    def __init__(self, algo_name: str, module: Any, config: Any, record: dict, *, run_dir: Path | None = None,
                 out: Path | None = None, memory_limit: str | int | None = None,
                 progress: bool | Any = False, stop_after: int | None = None):
        from pgjax.records.tracking import require

        self.algo_name, self.module, self.config, self.record = algo_name, module, config, record
        self.run_dir, self.resuming, self.out = run_dir, run_dir is not None, out
        self.progress = Progress() if progress is True else (progress or None)
        self.stop_after = stop_after
        self.lock: RunLock | None = None  # held from `open` (a resume) or the new folder on
        require(record["log"])  # a missing tracker package fails before anything compiles
        refused = sampling_refused("--eval-mode stochastic", algo_name, module)
        if record["eval_mode"] == STOCHASTIC and refused:
            raise cfg.ConfigError(refused)
        self.trainer = module.make_trainer(config)
        self.seeds = SeedCells.build(self.trainer, record)
        self.memory = self.seeds.check_memory(record["chunks"], memory_limit)

    @classmethod
    def new(cls, algo_name: str, module: Any, config: Any, settings: dict, *, checkpoints: bool = True,
            out: str | Path | None = None, **options) -> TrainingRun:
        """A run not started yet: `settings` holds the `RUN_SETTINGS` keys (None: default);
        the run folder is made under `out` (default runs/) when `run()` starts."""
        record = new_record(algo_name, config, settings, checkpoints)
        return cls(algo_name, module, config, record, out=None if out is None else Path(out), **options)

    @classmethod
    def open(cls, run_dir: str | Path, *, settings: dict | None = None, overrides: Sequence[str] = (),
             env: str | None = None, algo: str | None = None, no_checkpoint: bool = False,
             **options) -> TrainingRun:
        """The run in `run_dir`, to be resumed with its settings; `settings`, `overrides`,
        `env`, `algo` given again must agree with the run's (a contradiction is refused)."""
        from pgjax.runtime import sharding

        run_dir = Path(run_dir)
        record = read_record(run_dir)
        check_same_settings(record, settings or {}, run_dir, no_checkpoint)
        module, config = resumed_config(record, env, overrides, algo, run_dir)
        lock = RunLock(run_dir).acquire() if sharding.is_writer() else None  # before compiling
        try:
            run = cls(record["algo"], module, config, record, run_dir=run_dir, **options)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        run.lock = lock
        return run

    @property
    def expected(self) -> dict:
        """What the run's checkpoints must match."""
        return {"algo": self.algo_name, "config": cfg.to_dict(self.config),
                "config_defaults": cfg.field_defaults(type(self.config)), "num_seeds": len(self.record["seeds"])}

    @functools.cached_property
    def run_file(self) -> dict:
        """config.json: the run's settings, its config and the versions it started with. Every
        checkpoint keeps a copy, from which a deleted config.json comes back (`runs.recover_run_file`)."""
        return {**self.record, "config": cfg.to_dict(self.config), "versions": self.record.get("versions") or runs.versions()}

    def run(self) -> TrainResult:
        """Restore or start the run folder, train the remaining chunks, summarise. Raises
        ResumeError or TrackingError before training; a signal or a failed write during
        training ends with a `TrainResult` that says how to continue. The run folder's lock
        is released at the end."""
        try:
            return self._run()
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _run(self) -> TrainResult:
        from pgjax.records.tracking import TrackingError

        record, config = self.record, self.config
        meta = {**self.expected, "seeds": record["seeds"], "root_seed": record["root_seed"],
                runs.RUN_FILE_COPY: self.run_file}
        if self.resuming:
            run_dir = self.run_dir
            try:
                _one_process_resumes()
                state, done, wall_before = self._restore()
            except ResumeError as err:
                raise ResumeError(f"cannot resume {run_dir}: {err}") from None
            print(f"pgjax: resuming {run_dir} after {done} of {config.num_updates} updates")
        else:
            run_dir, state, done, wall_before = self._start(), None, 0, 0.0
            self.run_dir = run_dir
        wall_before += self.memory["compile_seconds"]  # the first chunk's compile, done ahead: run time as before
        evaluator = self._evaluator()
        try:
            handler = ChunkHandler(self, done, meta, wall_before, evaluator)
        except TrackingError as err:
            raise TrackingError(f"{err}; nothing trained yet, {continue_with(run_dir)}") from None
        start = time.perf_counter()
        try:
            with Signals(PREFIX) as handler.signals:
                state = self.seeds.train(state, done, record["chunks"], handler)
        except Stopped:
            handler.close()
            print(f"pgjax: stopped after {handler.chunks_run} chunks (--stop-after); continue with --resume {run_dir}")
            return TrainResult(run_dir, "stopped", 0, handler.updates_done)
        except (Interrupted, OSError) as err:  # a signal, or a failed write (CheckpointWriteError, metrics.csv)
            return handler.abort(err)
        try:
            handler.close()
        except OSError as err:
            return handler.abort(err)
        seconds = wall_before + time.perf_counter() - start
        summary = self._summarize(state, seconds, evaluator, handler.eval_seconds if handler.eval_at else None)
        code = 0
        if summary is not None:
            self._plot(summary)
            diverged = {int(s): u for s, u in summary["diverged_at_update"].items() if u is not None}
            if diverged:
                code = DIVERGED_EXIT
                print(f"{PREFIX}: {diverged_message(diverged, run_dir)}; exit code {DIVERGED_EXIT}", file=sys.stderr)
        return TrainResult(run_dir, "finished", code, config.num_updates, state=state, summary=summary)

    def _evaluator(self):
        """The run's evaluation, compiled once (during training and at the end), or None."""
        from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED
        from pgjax.runtime.experiment import SeedEvaluator

        if self.record["eval_episodes"] == 0:
            return None
        return SeedEvaluator(self.trainer, self.seeds.layout, self.record["eval_episodes"], DEFAULT_EVAL_SEED,
                             deterministic=self.record["eval_mode"] == GREEDY)

    def _start(self) -> Path:
        """A new run folder with its config.json, made by process 0 (the others learn its name)."""
        from pgjax.runtime import sharding

        record, config = self.record, self.config
        run_dir = Path(".")
        if sharding.is_writer():
            run_dir = runs.new_run_dir(self.out or Path("runs"), f"{self.algo_name}-{config.env_id}")
            self.lock = RunLock(run_dir).acquire()
            runs.write_json(run_dir / "config.json", self.run_file)
        run_dir = Path(sharding.text_from_writer(str(run_dir)))
        print(f"pgjax: {self.algo_name} on {config.env_id}, seeds {record['seeds']}, "
              f"{config.num_updates} updates x {config.env_steps_per_update} steps -> {run_dir}")
        return run_dir

    def _restore(self):
        """`(state [S] or None, updates_done, wall_seconds)` to continue a run: its newest
        intact checkpoint that metrics.csv covers. Checkpoints past it (damaged, or ahead of
        torn metrics) are deleted, since training rewrites them bit for bit; no checkpoint
        yet (killed while compiling, or no checkpoints) restarts from update 0."""
        from pgjax.records.checkpoint import Checkpointer, CheckpointError

        run_dir, record = self.run_dir, self.record
        checkpointer = Checkpointer(run_dir / runs.CHECKPOINT_DIR)
        removed = checkpointer.remove_partial()
        if removed:
            _note(f"removed the half-written checkpoint(s) {', '.join(removed)}")
        steps = checkpointer.steps()
        covered, torn = runs.metrics_coverage(run_dir / "metrics.csv", record["seeds"])
        if covered is None and steps:
            raise ResumeError(
                f"{run_dir / 'metrics.csv'} is missing while checkpoints exist (updates {', '.join(map(str, steps))}); "
                f"restore the file, or delete {checkpointer.directory} to train again from update 0")
        covered = covered or 0
        if torn:
            _note(f"{run_dir / 'metrics.csv'}: dropping {torn} torn row(s) (a write cut short); "
                  f"complete rows cover {covered} updates")
        missing = self._first_missing_evaluation(max(steps, default=0))
        if missing is not None and missing <= covered:
            # Continue from a checkpoint before it, so that training recomputes it (bit for bit).
            _note(f"{run_dir / runs.EVAL_FILE}: the evaluation after update {missing} is missing or torn; "
                  "continuing from a checkpoint before it to compute it again")
            covered = missing - 1
        if not steps:
            if record["checkpoints"]:
                _note("no checkpoint yet (stopped before the first one): training from update 0 with the run's settings")
            return None, 0, 0.0
        if not any(s <= covered for s in steps):
            _note(f"metrics.csv and {runs.EVAL_FILE} cover {covered} updates, fewer than the first checkpoint "
                  f"({steps[0]}): training again from update 0")
            checkpointer.delete_after(0)
            return None, 0, 0.0
        try:
            state, meta = checkpointer.restore(self.seeds.abstract_state(), self.expected, at_most=covered,
                                               on_skip=lambda err: _note(f"skipping a damaged checkpoint: {err}"))
        except CheckpointError as err:
            raise ResumeError(f"{err}; delete {checkpointer.directory} to train again from update 0") from None
        finally:
            checkpointer.close()
        done = meta["updates_done"]
        dropped = checkpointer.delete_after(done)
        if dropped:
            _note(f"continuing from the checkpoint at update {done}; deleted the later one(s) at update "
                  f"{', '.join(map(str, dropped))} (training rewrites them bit for bit)")
        return state, done, float(meta.get("wall_seconds", 0.0))

    def _first_missing_evaluation(self, up_to: int) -> int | None:
        """The first evaluation point at most `up_to` without a complete row for every seed
        in eval.csv (the file deleted, or its last rows torn), or None."""
        from pgjax.runtime.experiment import evaluation_updates

        record = self.record
        if record["eval_episodes"] == 0:
            return None
        due = sorted(u for u in evaluation_updates(self.config.num_updates, record["chunks"], record["eval_every"])
                     if u <= up_to)
        if not due:
            return None
        present: dict[int, set[int]] = {}
        path = self.run_dir / runs.EVAL_FILE
        if path.exists():
            header, rows, _ = runs._read_rows(path)  # well-formed rows only (torn ones dropped)
            if header is not None and header[:2] == ["seed", "update"]:
                for row in rows:
                    present.setdefault(int(row[1]), set()).add(int(row[0]))
        seeds = set(record["seeds"])
        return next((u for u in due if not seeds <= present.get(u, set())), None)

    def _summarize(self, state, seconds: float, evaluator, eval_seconds: float | None) -> dict | None:
        """summary.json: final training return and divergence per seed (from the whole
        metrics.csv, also after a resume), and the evaluation return per seed. With several
        processes all evaluate; process 0 writes and gets the summary, the others None."""
        import numpy as np

        from pgjax.runtime import sharding
        from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED
        from pgjax.runtime.experiment import first_nonfinite_update

        run_dir, record, config = self.run_dir, self.record, self.config
        seed_ids = record["seeds"]
        episodes = evaluator(state) if evaluator is not None else None  # every process takes part
        if not sharding.is_writer():
            return None
        by_seed = runs.read_metrics(run_dir / "metrics.csv")
        summary = {"wall_seconds": round(seconds, 2),
                   "env_steps_per_seed": config.num_updates * config.env_steps_per_update,
                   "host_devices": self.seeds.layout.num_devices, "vmap_width": self.seeds.layout.width,
                   "final_train_return": {}, "diverged_at_update": {}}
        for seed in seed_ids:
            returns = by_seed[seed]["episode_return"]
            tail = returns[-max(1, config.num_updates // 10):]
            summary["final_train_return"][str(seed)] = float(np.nanmean(tail)) if np.isfinite(tail).any() else None
            finite = ({"finite": by_seed[seed]["finite"][None]} if "finite" in by_seed[seed]
                      else {"loss": by_seed[seed]["loss"][None]})
            summary["diverged_at_update"][str(seed)] = first_nonfinite_update(finite)[0]
        if episodes is not None:
            summary["eval_return_mean"] = {str(s): float(episodes.returns[i].mean()) for i, s in enumerate(seed_ids)}
            summary.update(eval_episodes=record["eval_episodes"], eval_mode=record["eval_mode"],
                           eval_seed=DEFAULT_EVAL_SEED)
        if eval_seconds is not None:  # the cost of evaluating during training, in this process
            summary["eval_seconds_during_training"] = round(eval_seconds, 3)
        runs.write_json(run_dir / "summary.json", summary)
        return summary

    def _plot(self, summary: dict) -> None:
        """learning_curve.png and eval_curve.png; their paths into `summary` (not the file)."""
        from pgjax.reports.plotting import plot_learning_curve

        run_dir, record = self.run_dir, self.record
        title = f"{self.algo_name} on {self.config.env_id}"
        summary["plot"] = plot_learning_curve(runs.read_metrics(run_dir / "metrics.csv"),
                                              run_dir / "learning_curve.png", title)
        if (run_dir / runs.EVAL_FILE).exists():
            summary["eval_plot"] = plot_learning_curve(
                runs.read_metrics(run_dir / runs.EVAL_FILE), run_dir / "eval_curve.png",
                f"{title}: {record['eval_mode']} evaluation, {record['eval_episodes']} episodes",
                metric="eval_return", smoothing=1)


def _one_process_resumes() -> None:
    """A resume runs as one process: restoring across processes is not supported yet (it
    hung in orbax's restore in a test). A run's numbers do not depend on the process or
    device count, so a single-process resume continues it exactly."""
    import jax

    if jax.process_count() > 1:
        raise ResumeError("--resume with several processes is not supported yet; resume it as one process "
                          "(without --coordinator): the numbers do not depend on the process count")


class ChunkHandler:
    """After each chunk: metrics to metrics.csv, the evaluation if due, the state to a
    checkpoint, the progress; then stop if a signal asked to. `abort` leaves metrics.csv
    ending at the last checkpoint."""

    def __init__(self, run: TrainingRun, done: int, meta: dict, wall_before: float, evaluator):
        from pgjax.records.checkpoint import Checkpointer
        from pgjax.runtime import sharding
        from pgjax.runtime.experiment import evaluation_updates

        config, record, run_dir, seeds = run.config, run.record, run.run_dir, run.seeds
        self.config, self.num_seeds, self.run_dir = config, seeds.layout.num_seeds, run_dir
        self.writes = sharding.is_writer()  # with several processes, process 0 alone writes files
        self.writer = runs.MetricsWriter(run_dir / "metrics.csv", meta["seeds"], resume_at=done) if self.writes else None
        self.evaluator = evaluator  # every process evaluates (its seeds); process 0 writes the rows
        self.eval_writer = (runs.MetricsWriter(run_dir / runs.EVAL_FILE, meta["seeds"], resume_at=done)
                            if self.writes else None)
        self.eval_at = (evaluation_updates(config.num_updates, record["chunks"], record["eval_every"])
                        if evaluator is not None else set())
        self.eval_seconds = 0.0  # spent evaluating during training (this process; the first call compiles)
        self.tracker = _open_tracker(run_dir, record if self.writes else {**record, "log": ["csv"]}, meta,
                                     resumed=run.resuming, purge_step=done * config.env_steps_per_update)
        self.meta_checkpoints = record["checkpoints"]
        self.checkpointer = Checkpointer(run_dir / runs.CHECKPOINT_DIR) if record["checkpoints"] and self.writes else None
        self.meta, self.stop_after, self.signals = meta, run.stop_after, None
        self.wall_before, self.start = wall_before, time.perf_counter()
        self.rows = seeds.rows  # padded state -> [S] rows, what a checkpoint holds
        self.chunks_run, self.updates_done, self.last_return = 0, done, float("nan")
        self.diverged: dict[int, int] = _diverged_before(run_dir, meta["seeds"]) if done else {}
        self.progress = run.progress
        if self.progress is not None:
            steps = config.env_steps_per_update * self.num_seeds
            self.progress.start(config.num_updates * steps, done * steps)

    def __call__(self, updates_done: int, state, metrics: dict) -> None:
        import numpy as np

        if self.writer is not None:
            self.writer.append(metrics)  # metrics first: a resume drops rows past its checkpoint
        self.tracker.log_chunk(self.series, metrics)
        if updates_done in self.eval_at:  # before the checkpoint, which then implies its evaluation row
            self._evaluate(updates_done, state)
        self._keep_last_finite(updates_done, metrics)
        if self.meta_checkpoints:
            rows = self.rows(state)  # gathers the rows to every process: all take part
            wall = round(self.wall_before + time.perf_counter() - self.start, 2)
            if self.checkpointer is not None:
                self.checkpointer.save(updates_done, rows, {**self.meta, "wall_seconds": wall})
        self.updates_done = updates_done
        recent = metrics["episode_return"][:, -max(1, metrics["episode_return"].shape[1] // 4):]
        if np.isfinite(recent).any():  # no finished episode yet: nanmean would warn of an empty slice
            self.last_return = float(np.nanmean(recent))
        if self.progress is not None:
            self.progress.update(updates_done * self.config.env_steps_per_update * self.num_seeds, self.last_return)
        self.chunks_run += 1
        if self.stop_after is not None and self.chunks_run >= self.stop_after:
            raise Stopped
        if self.signals is not None:
            if updates_done == self.config.num_updates:  # all trained: finish (summary) rather than stop
                if self.signals.received is not None:
                    _note(f"{signal.Signals(self.signals.received).name} came after the last update: "
                          "finishing the run (evaluation and summary; send it again to stop at once)")
                return
            self.signals.check_everywhere()

    def _keep_last_finite(self, updates_done: int, metrics: dict) -> None:
        """A seed whose parameters or loss became non-finite in this chunk: copy the previous
        chunk's checkpoint (the seed's last finite state) to `FINITE_DIR` before the
        checkpoint rotation deletes it, and say so. The seed trains on as if fine (as a
        diverged sweep cell); the run ends with exit code `DIVERGED_EXIT`."""
        import shutil

        from pgjax.runtime.experiment import first_nonfinite_update

        before = updates_done - next(iter(metrics.values())).shape[1]
        firsts = first_nonfinite_update(metrics, before)
        new = {s: u for s, u in zip(self.meta["seeds"], firsts, strict=True) if u is not None and s not in self.diverged}
        if not new:
            return
        self.diverged.update(new)
        kept = ""
        if self.checkpointer is not None and before > 0:
            self.checkpointer.close()  # the previous chunk's checkpoint is complete on disk
            source = self.run_dir / runs.CHECKPOINT_DIR / str(before)
            target = self.run_dir / FINITE_DIR / str(before)
            if source.is_dir() and not target.exists():
                target.parent.mkdir(exist_ok=True)
                shutil.copytree(source, target.with_name(target.name + ".tmp"))
                target.with_name(target.name + ".tmp").rename(target)
            kept = f"; its last finite state is kept in {target}"
        if self.writes:
            what = ", ".join(f"seed {s} at update {u}" for s, u in sorted(new.items()))
            print(f"{PREFIX}: warning: non-finite parameters or loss: {what}{kept}; training the other seeds on",
                  file=sys.stderr)

    @property
    def series(self) -> list[str]:
        return [f"seed-{s}" for s in self.meta["seeds"]]

    def _evaluate(self, updates_done: int, state) -> None:
        """Every seed's policy on the shared evaluation episodes: a row per seed in eval.csv
        and an eval/ point in the trackers, at the env steps trained so far."""
        import numpy as np

        started = time.perf_counter()
        values = self.evaluator.means(state.params, state.obs_stats)
        self.eval_seconds += time.perf_counter() - started
        env_steps = updates_done * self.config.env_steps_per_update
        rows = {f"eval_{k}": v[:, None] for k, v in values.items()}
        rows["env_steps"] = np.full((self.num_seeds, 1), env_steps)
        if self.eval_writer is not None:
            self.eval_writer.append(rows, updates=[updates_done])
        self.tracker.log_eval(self.series, [env_steps] * self.num_seeds, values)

    def close(self) -> None:
        if self.progress is not None:
            progress, self.progress = self.progress, None
            progress.close()
        try:
            if self.checkpointer is not None:
                checkpointer, self.checkpointer = self.checkpointer, None
                checkpointer.close()
        finally:
            self.tracker.close()

    def abort(self, err: Exception) -> TrainResult:
        """Stop on a signal or a failed write: wait for the pending checkpoint write, cut
        metrics.csv back to the newest checkpoint, say how to continue."""
        from pgjax.records.checkpoint import Checkpointer, CheckpointWriteError

        try:
            self.close()
        except CheckpointWriteError as late:
            err = err if isinstance(err, (CheckpointWriteError, Interrupted)) else late
        if isinstance(err, Interrupted):
            what = f"interrupted by {signal.Signals(err.signum).name}"
        elif isinstance(err, CheckpointWriteError) or not err.filename:
            what = str(err)
        else:
            what = f"writing {err.filename} failed: {err.strerror or err}"
        status, code = ("interrupted", 128 + err.signum) if isinstance(err, Interrupted) else ("failed", 1)
        if not self.writes:  # process 0 keeps the files and says how to continue
            print(f"{PREFIX}: {what}; stopped with process 0", file=sys.stderr)
            return TrainResult(self.run_dir, status, code, self.updates_done, message=what)
        if self.meta_checkpoints:
            kept = Checkpointer(self.run_dir / runs.CHECKPOINT_DIR).latest_step() or 0
            where = (f"kept the checkpoint at update {kept}, metrics.csv up to it" if kept
                     else "no checkpoint yet, a resume starts at update 0")
            try:
                self.writer.truncate(kept)
                self.eval_writer.truncate(kept)
            except OSError as cut:
                where += f" (metrics.csv not cut back: {cut.strerror or cut}; a resume does it)"
        else:
            kept = 0
            where = f"metrics.csv holds {self.writer.updates_written} updates, no checkpoints (a resume starts at update 0)"
        message = f"{what}; {where}; {continue_with(self.run_dir)}"
        print(f"{PREFIX}: {message}", file=sys.stderr)
        return TrainResult(self.run_dir, status, code, kept, message=message)


def _diverged_before(run_dir: Path, seeds: list[int]) -> dict[int, int]:
    """Seeds already non-finite in a resumed run's metrics.csv: their first such update."""
    from pgjax.runtime.experiment import first_nonfinite_update

    by_seed = runs.read_metrics(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else {}
    out = {}
    for seed in seeds:
        rows = by_seed.get(seed)
        if rows:
            (first,) = first_nonfinite_update({k: v[None] for k, v in rows.items()})
            if first is not None:
                out[seed] = first
    return out


def _open_tracker(run_dir: Path, record: dict, meta: dict, resumed: bool, purge_step: int):
    """The run's TensorBoard/W&B sinks (`log`): a series per seed, its config, seed and
    run settings as hyper-parameters. A resumed run purges TensorBoard points from its
    checkpoint on (the resume recomputes them) and continues the same W&B runs."""
    from pgjax.records.tracking import Series, flat_hparams, open_tracker

    common = {"algo": meta["algo"], "root_seed": meta["root_seed"], "num_seeds": meta["num_seeds"],
              **{key: record[key] for key in ("chunks", "eval_every", "eval_episodes", "eval_mode")},
              **flat_hparams(meta["config"], "config.")}
    series = [Series(f"seed-{s}", {**common, "seed": s}) for s in meta["seeds"]]
    return open_tracker(record["log"], run_dir, run_dir.name, series, purge_step=purge_step if resumed else None)


# --- the notebook's entry points ------------------------------------------------------------


def _config_of(config_or_path: Any, algo: str | None, env: str | None, overrides: Sequence[str]):
    """`(algo_name, module, config)` from a config object, a config file or an algorithm name."""
    from pgjax.algos import ALGORITHMS
    from pgjax.runtime import loading

    if config_or_path is None or isinstance(config_or_path, (str, Path)):
        config = loading.load_config(config_or_path, overrides, algo=algo, env=env)
        overrides, env = (), None
    else:
        config = config_or_path
    module = loading.algorithm_of(config)
    name = next(n for n, m in ALGORITHMS.items() if m is module)
    if algo is not None and algo != name:
        raise cfg.ConfigError(f"algo={algo!r} contradicts the {name} config passed first")
    if isinstance(overrides, str):
        raise cfg.ConfigError(f"overrides={overrides!r} must be a list of KEY=VALUE strings, e.g. [{overrides!r}]")
    values = cfg.to_dict(config)
    if env is not None:
        values = cfg.merge(values, ["env_id"], env)
    for text in overrides:
        path, value = cfg.parse_override(text)
        values = cfg.merge(values, path, value)
    return (name, *loading.build_config(name, values))


def train(
    config_or_path: Any = None,
    *,
    seeds: int | Sequence[int] | None = None,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    algo: str | None = None,
    env: str | None = None,
    root_seed: int | None = None,
    chunks: int | None = None,
    width: int | None = None,
    eval_episodes: int | None = None,
    eval_every: int | None = None,
    eval_mode: str | None = None,
    log: str | Sequence[str] | None = None,
    checkpoints: bool = True,
    memory_limit: str | int | None = None,
    progress: bool | Any = False,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a config over seeds in a new run folder under `out` (default runs/), as
    `pgjax train` does: `train("configs/ppo_cartpole.toml", seeds=4, chunks=10)`.

    `config_or_path`: a config (`pgjax.load_config(...)`), a TOML/JSON file or an algorithm
    name (its defaults); `overrides` (`["hparams.gamma=0.9"]`), `env`, `algo` as on the
    command line. `seeds`: a count or a list of seed ids (default seed 0). The other
    settings are those of `pgjax train` (None: its default); `progress=True` shows a bar
    (or pass an object with `start`, `update`, `close`, see `Progress`); `stop_after`
    stops after that many chunks as if killed (continue with `resume`). Returns a
    `TrainResult` (`run_dir`, `state`, `summary`, `exit_code`). Raises ConfigError,
    MemoryError or TrackingError before anything trains.
    """
    from pgjax.records.tracking import parse_sinks

    algo_name, module, config = _config_of(config_or_path, algo, env, overrides)
    settings = {"seeds": _seeds_list(seeds), "root_seed": root_seed, "chunks": chunks, "width": width,
                "eval_episodes": eval_episodes, "eval_every": eval_every, "eval_mode": eval_mode,
                "log": None if log is None else parse_sinks(log)}
    run = TrainingRun.new(algo_name, module, config, settings, checkpoints=checkpoints, out=out,
                          memory_limit=memory_limit, progress=progress, stop_after=stop_after)
    return run.run()


def resume(run_dir: str | Path, *, memory_limit: str | int | None = None, progress: bool | Any = False,
           stop_after: int | None = None) -> TrainResult:
    """Continue the run in `run_dir` from its newest intact checkpoint with every setting it
    was started with, bit for bit as if never stopped (`pgjax train --resume RUN_DIR`).
    A finished run is trained no further: it is summarised again. Returns a `TrainResult`.
    Raises ConfigError, ResumeError (the folder cannot be continued) or RunFileError."""
    run = TrainingRun.open(run_dir, memory_limit=memory_limit, progress=progress, stop_after=stop_after)
    return run.run()


