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

Its parts: the settings in config.json (`run_record`), the folder's lock (`run_lock`), the
seeds as one compiled program (`seed_cells`), the work after each chunk (`chunk_handler`),
where a resume continues (`run_restore`), the summary (`run_summary`) and what a run gives
back (`run_result`).
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgjax import config as cfg
from pgjax.records import runs
from pgjax.runtime.chunk_handler import ChunkHandler, Progress, Stopped
from pgjax.runtime.eval_modes import GREEDY, STOCHASTIC, sampling_refused
from pgjax.runtime.resumable import Interrupted, Signals, continue_with
from pgjax.runtime.run_lock import RunLock
from pgjax.runtime.run_record import (
    PREFIX,
    ResumeError,
    check_same_settings,
    new_record,
    read_record,
    resumed_config,
    seeds_list,
)
from pgjax.runtime.run_restore import NOTHING_SPENT, restore_everywhere
from pgjax.runtime.run_result import DIVERGED_EXIT, TrainResult, diverged_message
from pgjax.runtime.run_settings import check_switches, out_folder, run_folder
from pgjax.runtime.run_summary import plot, summarize
from pgjax.runtime.seed_cells import SeedCells


class TrainingRun:
    """One run folder: its settings (`record`, as config.json keeps them), its config, its
    seeds compiled as one program, and the chunk callbacks (metrics.csv, eval.csv,
    trackers, checkpoints, progress, signals, `stop_after`).

    Build it with `TrainingRun.new` or `TrainingRun.open` (a resume), then `run()`.
    Construction validates everything that can fail before training (the config, the
    tracker packages, the memory limit: the largest chunk is compiled here).
    """

    def __init__(self, algo_name: str, algorithm: Any, config: Any, record: dict, *, run_dir: Path | None = None,
                 out: Path | None = None, memory_limit: str | int | None = None,
                 progress: bool | Any = False, stop_after: int | None = None):
        from pgjax.records.tracking import require

        self.algo_name, self.algorithm, self.config, self.record = algo_name, algorithm, config, record
        self.run_dir, self.resuming, self.out = run_dir, run_dir is not None, out
        self.progress = Progress() if progress is True else (progress or None)
        self.stop_after = stop_after
        self.lock: RunLock | None = None  # held from `open` (a resume) or the new folder on
        self.made: Path | None = None  # the run folder `_start` made (removed if interrupted before training)
        require(record["log"])  # a missing tracker package fails before anything compiles
        refused = sampling_refused("--eval-mode stochastic", algorithm)
        if record["eval_mode"] == STOCHASTIC and refused:
            raise cfg.ConfigError(refused)
        self.trainer = algorithm.make_trainer(config)
        self.seeds = SeedCells.build(self.trainer, record)
        self.memory = self.seeds.check_memory(record["chunks"], memory_limit)

    @classmethod
    def new(cls, algo_name: str, algorithm: Any, config: Any, settings: dict, *, checkpoints: bool = True,
            out: str | Path | None = None, **options) -> TrainingRun:
        """A run not started yet: `settings` holds the `RUN_SETTINGS` keys (None: default);
        the run folder is made under `out` (default runs/) when `run()` starts."""
        out = out_folder(out)  # before new_record's notes: a refused folder is the one line printed
        record = new_record(algo_name, config, settings, checkpoints)
        return cls(algo_name, algorithm, config, record, out=out, **options)

    @classmethod
    def open(cls, run_dir: str | Path, *, settings: dict | None = None, overrides: Sequence[str] = (),
             env: str | None = None, algo: str | None = None, no_checkpoint: bool = False,
             **options) -> TrainingRun:
        """The run in `run_dir`, to be resumed with its settings; `settings`, `overrides`,
        `env`, `algo` given again must agree with the run's (a contradiction is refused)."""
        from pgjax.runtime.agreement import decided_by_writer

        run_dir = run_folder(run_dir)
        # Process 0 reads the folder and decides for every process (the others need not see it).
        found = decided_by_writer(lambda: {"record": read_record(run_dir), "run_dir": str(run_dir)},
                                  f"the settings of {run_dir}", (cfg.ConfigError, runs.RunFileError))
        record, run_dir = found["record"], Path(found["run_dir"])
        check_same_settings(record, settings or {}, run_dir, no_checkpoint)
        algorithm, config = resumed_config(record, env, overrides, algo, run_dir)
        held = []  # process 0's lock, taken before compiling
        decided_by_writer(lambda: held.append(RunLock(run_dir).acquire()), f"the lock of {run_dir}", (ResumeError,))
        lock = held[0] if held else None
        try:
            run = cls(record["algo"], algorithm, config, record, run_dir=run_dir, **options)
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
        signals = Signals(PREFIX)
        try:  # until `signals` is set, Ctrl-C is a KeyboardInterrupt: nothing trained, nothing to keep
            if self.resuming:
                run_dir = self.run_dir
                try:
                    state, done, spent = restore_everywhere(self)
                except ResumeError as err:
                    raise ResumeError(f"cannot resume {run_dir}: {err}") from None
                print(f"pgjax: resuming {run_dir} after {done} of {config.num_updates} updates")
            else:
                run_dir, state, done, spent = self._start(), None, 0, NOTHING_SPENT
                self.run_dir = run_dir
            # This start's compile of the first chunk, done ahead, is run time spent compiling.
            compiled = self.memory["compile_seconds"]
            spent = {**spent, "wall_seconds": spent["wall_seconds"] + compiled,
                     "compile_seconds": spent["compile_seconds"] + compiled}
            evaluator = self._evaluator()
            try:
                handler = ChunkHandler(self, done, meta, spent, evaluator)
            except TrackingError as err:
                raise TrackingError(f"{err}; nothing trained yet, {continue_with(run_dir)}") from None
            handler.signals = signals.__enter__()
        except KeyboardInterrupt:
            signals.__exit__(None, None, None)
            self._discard_made_folder()
            raise
        try:
            try:
                signals.check_everywhere()  # a signal while starting (held with several processes) stops all here
                state = self.seeds.train(state, done, record["chunks"], handler)
            finally:
                signals.__exit__(None, None, None)
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
        summary = summarize(self, state, handler.spent(), evaluator, bool(handler.eval_at))
        code = 0
        if summary is not None:
            plot(self, summary)
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
            run_dir = self.made = runs.new_run_dir(self.out or Path("runs"), f"{self.algo_name}-{config.env_id}")
            self.lock = RunLock(run_dir).acquire()
            runs.write_json(run_dir / "config.json", self.run_file)
        run_dir = Path(sharding.text_from_writer(str(run_dir)))
        print(f"pgjax: {self.algo_name} on {config.env_id}, seeds {record['seeds']}, "
              f"{config.num_updates} updates x {config.env_steps_per_update} steps -> {run_dir}")
        return run_dir

    def _discard_made_folder(self) -> None:
        """Remove the run folder `_start` made, before anything trained in it (a half-written
        folder would list as a run that never ran)."""
        if self.made is None:
            return
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        shutil.rmtree(self.made, ignore_errors=True)
        self.made = None


# --- the notebook's entry points ------------------------------------------------------------


def _config_of(config_or_path: Any, algo: str | None, env: str | None, overrides: Sequence[str]):
    """`(algo_name, algorithm, config)` from a config object, a config file or an algorithm name."""
    from pgjax.runtime import loading

    if config_or_path is None or isinstance(config_or_path, (str, Path)):
        config = loading.load_config(config_or_path, overrides, algo=algo, env=env)
        overrides, env = (), None
    else:
        config = config_or_path
    name = loading.algorithm_of(config).name
    if algo is not None and algo != name:
        raise cfg.ConfigError(f"algo={algo!r} contradicts the {name} config passed first")
    if isinstance(overrides, str):
        raise cfg.ConfigError(f"overrides={overrides!r} must be a list of KEY=VALUE strings, e.g. [{overrides!r}]")
    values = cfg.to_dict(config)
    if env is not None:
        values = cfg.merge(values, ["env_id"], env)
    for path, value in cfg.parse_overrides(overrides):
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

    check_switches(checkpoints=checkpoints, progress=progress)
    algo_name, algorithm, config = _config_of(config_or_path, algo, env, overrides)
    settings = {"seeds": seeds_list(seeds), "root_seed": root_seed, "chunks": chunks, "width": width,
                "eval_episodes": eval_episodes, "eval_every": eval_every, "eval_mode": eval_mode,
                "log": None if log is None else parse_sinks(log)}
    run = TrainingRun.new(algo_name, algorithm, config, settings, checkpoints=checkpoints, out=out,
                          memory_limit=memory_limit, progress=progress, stop_after=stop_after)
    return run.run()


def resume(run_dir: str | Path, *, memory_limit: str | int | None = None, progress: bool | Any = False,
           stop_after: int | None = None) -> TrainResult:
    """Continue the run in `run_dir` from its newest intact checkpoint with every setting it
    was started with, bit for bit as if never stopped (`pgjax train --resume RUN_DIR`).
    A finished run is trained no further: it is summarised again. Returns a `TrainResult`.
    Raises ConfigError, ResumeError (the folder cannot be continued) or RunFileError."""
    check_switches(progress=progress)
    run = TrainingRun.open(run_dir, memory_limit=memory_limit, progress=progress, stop_after=stop_after)
    return run.run()
