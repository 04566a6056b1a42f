"""`pgjax train`: train one config over vmapped seeds in compiled chunks."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from pathlib import Path

from pgjax import config as cfg
from pgjax.commands import (
    SEEDS_HELP,
    add_config_arguments,
    build_config,
    int_at_least,
    load_config,
    output_folder,
    parse_seeds,
)
from pgjax.records import runs
from pgjax.runtime.eval_modes import DEFAULT_MODE, GREEDY, STOCHASTIC


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an algorithm on an environment (gymnax, brax/..., xminigrid/...), or resume a run",
        description=(
            "Train over one or more vmapped seeds in compiled chunks, with a progress bar. "
            "Writes config.json, metrics.csv (per seed, per update), eval.csv (every seed evaluated after every "
            "--eval-every chunks), a checkpoint of the whole training state after every chunk (checkpoints/), "
            "summary.json, learning_curve.png and eval_curve.png into a new run folder; --log tensorboard,wandb "
            "also sends every seed's metrics to TensorBoard or Weights & Biases. Settings come from the algorithm's defaults, then --config FILE "
            "(TOML or JSON), then KEY=VALUE overrides such as hparams.learning_rate=1e-3 or "
            "num_envs=8. `pgjax train --list-fields` shows them all. `pgjax train --resume RUN_DIR` "
            "continues a run from its last intact checkpoint with every setting it was started with, bit for bit "
            "as if never stopped. Ctrl-C or SIGTERM stops after the current chunk (again: at once) and keeps the "
            "last checkpoint (exit code 130 or 143). On CPU the seeds "
            "are sharded over one host device per core (--host-devices); the numbers do not depend on it."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--seeds", type=parse_seeds, default=None, help=f"{SEEDS_HELP}; default 0")
    parser.add_argument("--root-seed", type=int, default=None, help="root PRNG seed; seed s uses fold_in(PRNGKey(root), s)")
    parser.add_argument("--out", type=output_folder("--out"), default=None,
                        help="folder that receives the run folder (default runs/)")
    parser.add_argument("--chunks", type=int_at_least(1, "--chunks"), default=None,
                        help="compiled chunks (progress, metrics, checkpoint after each); default 20, at most one per update")
    parser.add_argument("--eval-episodes", type=int_at_least(0, "--eval-episodes"), default=None,
                        help="greedy evaluation episodes per seed at the end (default 32; eval seed 10000, recorded in "
                             "summary.json); 0 skips")
    parser.add_argument("--eval-every", type=int_at_least(0, "--eval-every"), default=None, metavar="K",
                        help="evaluate every seed after every K-th compiled chunk and after the last (default 1: "
                             "after every chunk, --chunks points per curve; 0: only at the end), on --eval-episodes "
                             "episodes from the evaluation seed shared by all seeds; written to eval.csv, the "
                             "trackers and eval_curve.png")
    parser.add_argument("--eval-mode", default=None, choices=[GREEDY, STOCHASTIC],
                        help=f"actions in every evaluation: the policy's mode (greedy) or sampled (default {DEFAULT_MODE})")
    parser.add_argument("--log", type=_sinks, default=None, metavar="SINKS",
                        help="where metrics go, comma-separated from csv, tensorboard, wandb (default csv; metrics.csv "
                             "is always written). One series per seed, the config as its hyper-parameters; "
                             "tensorboard and wandb need: pip install 'pgjax[track]'")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last intact checkpoint, with every setting of the run "
                             "(a flag that contradicts one is refused)")
    parser.add_argument("--width", type=int_at_least(1, "--width"), default=None,
                        help="seeds per vmap group (default on CPU: ceil(seeds / cores)); a seed's numbers depend on it, "
                             "never on the number of devices")
    parser.add_argument("--memory-limit", default=None,
                        help="bytes per device, e.g. 512MB (default: half the free RAM shared by the CPU devices)")
    parser.add_argument("--no-checkpoint", action="store_true", help="do not write checkpoints")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list-fields", action="store_true", help="print every config field with its default and doc, then exit")
    # Stop after this many chunks as if the process were killed (tests of --resume).
    parser.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)


def _sinks(text: str) -> list[str]:
    from pgjax.records.tracking import TrackingError, parse_sinks

    try:
        return parse_sinks(text)
    except TrackingError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _fail(message: str) -> int:
    print(f"pgjax train: {message}", file=sys.stderr)
    return 1


def _list_fields(args) -> int:
    """Print the fields of the algorithm that `--algo`/`--config` select (ppo if neither),
    with defaults and docs, then the values the file, `--env` and overrides set."""
    from pgjax.algos import ALGORITHMS
    from pgjax.commands import load_config_values

    try:
        algo_name, values = load_config_values(args.algo, args.config, args.env, args.overrides)
    except cfg.ConfigError as err:
        return _fail(f"config error: {err}")
    print(f"# {algo_name}: every config field, its default and what it does")
    print("\n".join(cfg.describe(ALGORITHMS[algo_name].CONFIG)))
    if values:
        print(f"# set by {args.config or 'the command line'}:")
        print("\n".join(f"{key} = {value!r}" for key, value in _flatten(values)))
    return 0


def _flatten(values: dict, prefix: str = ""):
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


# Settings of a run kept in its config.json, with their flags and the defaults of a new run.
RUN_SETTINGS = {"seeds": ("--seeds", [0]), "root_seed": ("--root-seed", 0), "chunks": ("--chunks", 20),
                "width": ("--width", None), "eval_episodes": ("--eval-episodes", 32),
                "eval_every": ("--eval-every", 1), "eval_mode": ("--eval-mode", DEFAULT_MODE),
                "log": ("--log", ["csv"])}
REQUIRED_RECORD = ("algo", "config", "seeds", "root_seed", "chunks")


def _resolve(args):
    """`(run_dir or None, record, algo_name, module, config)` for a new or resumed run."""
    from pgjax.runtime.experiment import default_seed_width

    if args.resume is None:
        algo_name, module, config = load_config(args.algo, args.config, args.env, args.overrides)
        settings = {key: default if getattr(args, key) is None else getattr(args, key)
                    for key, (_, default) in RUN_SETTINGS.items()}
        seeds = settings["seeds"]
        width = settings["width"] or default_seed_width(len(seeds))
        chunks = min(settings["chunks"], config.num_updates)  # a chunk holds at least one update
        if chunks < settings["chunks"]:
            print(f"pgjax train: note: --chunks {settings['chunks']} is more than the {config.num_updates} updates; "
                  f"running {chunks} chunks of one update", file=sys.stderr)
        record = {**settings, "algo": algo_name, "chunks": chunks, "width": min(width, len(seeds)),
                  "checkpoints": not args.no_checkpoint}
        return None, record, algo_name, module, config
    run_dir = args.resume
    if not (run_dir / "config.json").exists():
        raise cfg.ConfigError(f"--resume {str(run_dir)!r}: no config.json there (not a pgjax run folder)")
    if args.config is not None:
        raise cfg.ConfigError("--resume takes the config from RUN_DIR/config.json; drop --config")
    if args.out is not None:
        raise cfg.ConfigError(f"--out {args.out}: a resumed run stays in its folder {run_dir}; drop --out")
    record = runs.read_json(run_dir / "config.json")
    missing = [key for key in REQUIRED_RECORD if not isinstance(record, dict) or key not in record]
    if missing:
        raise runs.RunFileError(f"{run_dir / 'config.json'} is damaged: no {', '.join(missing)}")
    # Runs from before seed groups vmapped all their seeds at once, or before eval_episodes was kept.
    record.setdefault("width", len(record["seeds"]))
    record.setdefault("checkpoints", True)
    _check_same_settings(args, record, run_dir)
    if args.algo is not None and args.algo != record["algo"]:
        raise cfg.ConfigError(f"--algo {args.algo} contradicts algo={record['algo']!r} of the run being resumed")
    values = record["config"]
    if args.env is not None:
        values = cfg.merge(values, ["env_id"], args.env)
    for text in args.overrides:  # allowed, so that a changed setting is reported by the checkpoint check
        path, value = cfg.parse_override(text)
        values = cfg.merge(values, path, value)
    module, config = build_config(record["algo"], values)
    return run_dir, record, record["algo"], module, config


def _check_same_settings(args, record: dict, run_dir: Path) -> None:
    """A flag given with --resume must repeat the run's setting; one that differs is refused.
    Settings the run's config.json lacks (older runs) are taken from the flags or defaults."""
    for key, (flag, default) in RUN_SETTINGS.items():
        given = getattr(args, key)
        if key not in record:
            record[key] = default if given is None else given
        elif given is not None and given != record[key]:
            raise cfg.ConfigError(f"{flag} {given} contradicts {key}={record[key]} of the run being resumed "
                                  f"({run_dir / 'config.json'}); drop {flag}")
    if args.no_checkpoint and record["checkpoints"]:
        raise cfg.ConfigError("--no-checkpoint contradicts the run being resumed, which writes checkpoints; "
                              "drop --no-checkpoint")


class _Stopped(Exception):
    pass


class _Interrupted(Exception):
    """SIGINT or SIGTERM: the run stops with exit code 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """While training, the first SIGINT/SIGTERM asks to stop after the current chunk (its
    metrics and checkpoint are written first); a second one stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum, frame):
        if self.received is not None:
            raise _Interrupted(signum)
        self.received = signum
        print(f"\npgjax train: {signal.Signals(signum).name} received: stopping after this chunk "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def check(self) -> None:
        if self.received is not None:
            raise _Interrupted(self.received)

    def check_everywhere(self) -> None:
        """`check`, with several processes after agreeing: a signal to any one stops all
        after the same chunk (they must run the same launches)."""
        import jax

        if jax.process_count() > 1:
            import numpy as np
            from jax.experimental import multihost_utils

            received = multihost_utils.process_allgather(np.array([self.received or 0]))
            self.received = self.received or (int(np.max(received)) or None)
        self.check()


def _note(message: str) -> None:
    print(f"pgjax train: note: {message}", file=sys.stderr)


def resume_command(run_dir: Path) -> str:
    return f"pgjax train --resume {shlex.quote(str(run_dir))}"


def run(args) -> int:
    """Resolve the config, lay the seeds out on the devices, restore or start the run
    folder, train in chunks, then summarise and report."""
    from pgjax.reports.plotting import plot_learning_curve

    if args.list_fields:
        return _list_fields(args)
    from pgjax.records.tracking import TrackingError, require

    try:
        run_dir, record, algo_name, module, config = _resolve(args)
        require(record["log"])  # a missing tracker package fails before anything compiles
        if record["eval_mode"] == STOCHASTIC and getattr(module, "DETERMINISTIC_POLICY", False):
            raise cfg.ConfigError(f"--eval-mode stochastic: {algo_name}'s policy is deterministic (its exploration "
                                  "noise is a training device), so it would repeat the greedy numbers; drop it")
        trainer = module.make_trainer(config)
        seeds = _Seeds.build(trainer, record)
        memory = _check_memory(trainer, seeds, record["chunks"], args.memory_limit)
    except (cfg.ConfigError, MemoryError, runs.RunFileError, TrackingError) as err:
        return _fail(f"config error: {err}" if isinstance(err, cfg.ConfigError) else str(err))
    expected = {"algo": algo_name, "config": cfg.to_dict(config), "num_seeds": len(record["seeds"])}
    meta = {**expected, "seeds": record["seeds"], "root_seed": record["root_seed"]}
    if run_dir is not None:
        try:
            _one_process_resumes()
            state, done, wall_before = _restore(run_dir, trainer, seeds, expected, record)
        except _ResumeError as err:
            return _fail(f"cannot resume {run_dir}: {err}")
        print(f"pgjax: resuming {run_dir} after {done} of {config.num_updates} updates")
    else:
        run_dir, state, done, wall_before = _start(args, record, algo_name, config), None, 0, 0.0
    wall_before += memory["compile_seconds"]  # the first chunk's compile, done ahead: run time as before
    evaluator = _evaluator(trainer, seeds, record)
    try:
        handler = _ChunkHandler(args, config, seeds, run_dir, done, record, meta, wall_before, evaluator)
    except TrackingError as err:
        return _fail(f"{err}; nothing trained yet, continue with: {resume_command(run_dir)}")
    start = time.perf_counter()
    try:
        with _Signals() as handler.signals:
            state = seeds.train(state, done, record["chunks"], handler)
    except _Stopped:
        handler.close()
        print(f"pgjax: stopped after {handler.chunks_run} chunks (--stop-after); continue with --resume {run_dir}")
        return 0
    except (_Interrupted, OSError) as err:  # a signal, or a failed write (CheckpointWriteError, metrics.csv)
        return handler.abort(err)
    try:
        handler.close()
    except OSError as err:
        return handler.abort(err)
    seconds = wall_before + time.perf_counter() - start
    summary = _summarize(run_dir, trainer, seeds, state, record, seconds, evaluator,
                         handler.eval_seconds if handler.eval_at else None)
    if summary is None:  # another process than 0: that one writes and reports
        print(f"done: this process computed its share of {len(record['seeds'])} seeds; process 0 writes {run_dir}")
        return 0
    title = f"{algo_name} on {config.env_id}"
    summary["plot"] = plot_learning_curve(runs.read_metrics(run_dir / "metrics.csv"), run_dir / "learning_curve.png",
                                          title)
    if (run_dir / runs.EVAL_FILE).exists():
        summary["eval_plot"] = plot_learning_curve(
            runs.read_metrics(run_dir / runs.EVAL_FILE), run_dir / "eval_curve.png",
            f"{title}: {record['eval_mode']} evaluation, {record['eval_episodes']} episodes", metric="eval_return",
            smoothing=1)
    _report(run_dir, summary, seconds, record["eval_episodes"])
    return 0


def _evaluator(trainer, seeds: _Seeds, record: dict):
    """The run's evaluation, compiled once (during training and at the end), or None."""
    from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED
    from pgjax.runtime.experiment import SeedEvaluator

    if record["eval_episodes"] == 0:
        return None
    return SeedEvaluator(trainer, seeds.layout, record["eval_episodes"], DEFAULT_EVAL_SEED,
                         deterministic=record["eval_mode"] == GREEDY)


class _ResumeError(Exception):
    pass


class _Seeds:
    """The seeds of a run laid out on the devices (`experiment.SeedLayout`): placed keys and
    hparams, the sharded init/run, and the conversion of results back to `[S]` rows."""

    def __init__(self, trainer, layout, keys, hparams):
        from pgjax.runtime import experiment

        self.trainer, self.layout = trainer, layout
        self.mesh = experiment.seed_mesh(layout)
        self.functions = experiment.seed_functions(trainer, self.mesh, layout.width)
        self.keys, self.hparams = experiment.place_seeds((keys, hparams), layout, self.mesh)

    def compile_chunk(self, size: int):
        """The compiled program of one chunk of `size` updates, from the shapes of the state
        `init` makes (nothing is computed); a later `run` of that size, fresh or resumed,
        reuses it (`experiment.seed_functions`' `init` gives no weakly typed leaves)."""
        import jax

        from pgjax.runtime import sharding

        init, run = self.functions
        state = sharding.abstract_cells(jax.eval_shape(init, self.keys, self.hparams), self.mesh)
        return run.program(size).lower(state, self.hparams).compile()

    @classmethod
    def build(cls, trainer, record: dict) -> _Seeds:
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

    def train(self, state, done: int, chunks: int, handler) -> object:
        """Train from `state` (`[S]` rows, None: fresh) after `done` updates; the final `[S]` state."""
        from pgjax.runtime.experiment import train_seeds

        state = None if state is None else self.place(state)
        state, _ = train_seeds(self.trainer, self.keys, self.hparams, hparams_batched=True, max_chunks=chunks,
                               on_chunk=handler, state=state, updates_done=done, functions=self.functions,
                               fetch=self.fetch)
        return self.rows(state)


def _check_memory(trainer, seeds: _Seeds, chunks: int, memory_limit: str | None) -> dict:
    """Per-device bytes of the run; raises MemoryError above `--memory-limit` (default: half
    the free RAM shared by the CPU devices, or the accelerator's limit).

    First the estimate from shapes alone (state in and out and one chunk's metrics for the
    seeds each device holds), then XLA's count for the compiled program of the largest chunk,
    which adds the temporaries: on an H200 PPO's MinAtar CNN at 64 seeds needs 15.2 GB by
    XLA's count against 0.83 GB estimated. That program is compiled here, ahead of training;
    the first chunk reuses the compilation.
    """
    from pgjax.runtime import sharding, sweep
    from pgjax.runtime.experiment import chunk_sizes

    size = max(chunk_sizes(trainer.config.num_updates, chunks))
    layout = seeds.layout
    limit = sweep.parse_bytes(memory_limit) if memory_limit else sharding.smallest_over_processes(
        sweep.default_memory_limit(list(seeds.mesh.devices.flat)))

    def refuse(need: int, what: str) -> MemoryError:
        return MemoryError(
            f"{layout.num_seeds} seeds need about {need / 1e6:.2f} MB per device ({layout.per_device} seeds on each "
            f"of {layout.num_devices} device(s)) by {what}, more than the limit {limit / 1e6:.2f} MB; "
            "use fewer seeds, more --host-devices, or raise --memory-limit"
        )

    estimate = sweep.launch_bytes_estimate(sweep.cell_bytes(trainer, size), layout.per_device)
    if estimate > limit:
        raise refuse(estimate, "their training state and metrics")
    if sharding.is_writer():  # compiling takes seconds to minutes: say what the wait is
        print(f"pgjax: compiling the training program ({size} updates per chunk, {layout.num_seeds} seeds)", flush=True)
    started = time.perf_counter()
    compiled = sweep.compiled_bytes(seeds.compile_chunk(size))
    if compiled is not None and compiled > limit:
        raise refuse(compiled, f"XLA's count for one chunk of {size} updates, temporaries included")
    return {"bytes_per_device": estimate, "compiled_bytes_per_device": compiled, "limit": limit,
            "compile_seconds": time.perf_counter() - started}


def _restore(run_dir: Path, trainer, seeds: _Seeds, expected: dict, record: dict):
    """`(state [S] or None, updates_done, wall_seconds)` to continue a run: its newest intact
    checkpoint that metrics.csv covers. Checkpoints past it (damaged, or ahead of torn
    metrics) are deleted, since training rewrites them bit for bit; no checkpoint yet
    (killed while compiling, or --no-checkpoint) restarts from update 0."""
    from pgjax.records.checkpoint import Checkpointer, CheckpointError

    checkpointer = Checkpointer(run_dir / runs.CHECKPOINT_DIR)
    removed = checkpointer.remove_partial()
    if removed:
        _note(f"removed the half-written checkpoint(s) {', '.join(removed)}")
    steps = checkpointer.steps()
    covered, torn = runs.metrics_coverage(run_dir / "metrics.csv", record["seeds"])
    if covered is None and steps:
        raise _ResumeError(
            f"{run_dir / 'metrics.csv'} is missing while checkpoints exist (updates {', '.join(map(str, steps))}); "
            f"restore the file, or delete {checkpointer.directory} to train again from update 0")
    covered = covered or 0
    if torn:
        _note(f"{run_dir / 'metrics.csv'}: dropping {torn} torn row(s) (a write cut short); "
              f"complete rows cover {covered} updates")
    if not steps:
        if record["checkpoints"]:
            _note("no checkpoint yet (stopped before the first one): training from update 0 with the run's settings")
        return None, 0, 0.0
    if not any(s <= covered for s in steps):
        _note(f"metrics.csv covers {covered} updates, fewer than the first checkpoint ({steps[0]}): "
              "training again from update 0")
        checkpointer.delete_after(0)
        return None, 0, 0.0
    try:
        state, meta = checkpointer.restore(seeds.abstract_state(), expected, at_most=covered,
                                           on_skip=lambda err: _note(f"skipping a damaged checkpoint: {err}"))
    except CheckpointError as err:
        raise _ResumeError(f"{err}; delete {checkpointer.directory} to train again from update 0") from None
    finally:
        checkpointer.close()
    done = meta["updates_done"]
    dropped = checkpointer.delete_after(done)
    if dropped:
        _note(f"continuing from the checkpoint at update {done}; deleted the later one(s) at update "
              f"{', '.join(map(str, dropped))} (training rewrites them bit for bit)")
    return state, done, float(meta.get("wall_seconds", 0.0))


def _one_process_resumes() -> None:
    """`--resume` runs as one process: restoring across processes is not supported yet (it
    hung in orbax's restore in a test). A run's numbers do not depend on the process or
    device count, so a single-process resume continues it exactly."""
    import jax

    if jax.process_count() > 1:
        raise _ResumeError("--resume with several processes is not supported yet; resume it as one process "
                           "(without --coordinator): the numbers do not depend on the process count")


def _start(args, record: dict, algo_name: str, config) -> Path:
    """A new run folder with its config.json, made by process 0 (the others learn its name)."""
    from pgjax.runtime import sharding

    run_dir = Path(".")
    if sharding.is_writer():
        run_dir = runs.new_run_dir(args.out or Path("runs"), f"{algo_name}-{config.env_id}")
        runs.write_json(run_dir / "config.json", {**record, "config": cfg.to_dict(config), "versions": runs.versions()})
    run_dir = Path(sharding.text_from_writer(str(run_dir)))
    print(f"pgjax: {algo_name} on {config.env_id}, seeds {record['seeds']}, "
          f"{config.num_updates} updates x {config.env_steps_per_update} steps -> {run_dir}")
    return run_dir


class _ChunkHandler:
    """After each chunk: metrics to metrics.csv, the state to a checkpoint, the progress bar;
    then stop if a signal asked to. `abort` leaves metrics.csv ending at the last checkpoint."""

    def __init__(self, args, config, seeds: _Seeds, run_dir: Path, done: int, record: dict, meta: dict,
                 wall_before: float, evaluator):
        from pgjax.records.checkpoint import Checkpointer
        from pgjax.runtime import sharding
        from pgjax.runtime.experiment import evaluation_updates

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
                                     resumed=args.resume is not None, purge_step=done * config.env_steps_per_update)
        self.meta_checkpoints = record["checkpoints"]
        self.checkpointer = Checkpointer(run_dir / runs.CHECKPOINT_DIR) if record["checkpoints"] and self.writes else None
        self.meta, self.stop_after, self.signals = meta, args.stop_after, None
        self.wall_before, self.start = wall_before, time.perf_counter()
        self.rows = seeds.rows  # padded state -> [S] rows, what a checkpoint holds
        self.chunks_run, self.last_return, self.bar = 0, float("nan"), None
        if not args.no_progress:
            from tqdm import tqdm

            steps = config.env_steps_per_update * self.num_seeds
            self.bar = tqdm(total=config.num_updates * steps, initial=done * steps, unit="step", unit_scale=True,
                            desc="compiling", dynamic_ncols=True)

    def __call__(self, updates_done: int, state, metrics: dict) -> None:
        import numpy as np

        if self.writer is not None:
            self.writer.append(metrics)  # metrics first: a resume drops rows past its checkpoint
        self.tracker.log_chunk(self.series, metrics)
        if updates_done in self.eval_at:  # before the checkpoint, which then implies its evaluation row
            self._evaluate(updates_done, state)
        if self.meta_checkpoints:
            rows = self.rows(state)  # gathers the rows to every process: all take part
            wall = round(self.wall_before + time.perf_counter() - self.start, 2)
            if self.checkpointer is not None:
                self.checkpointer.save(updates_done, rows, {**self.meta, "wall_seconds": wall})
        returns = metrics["episode_return"]
        if np.isfinite(returns).any():
            self.last_return = float(np.nanmean(returns[:, -max(1, returns.shape[1] // 4):]))
        if self.bar is not None:
            self.bar.set_description("training")
            self.bar.set_postfix(ret=f"{self.last_return:.1f}", refresh=False)
            self.bar.update(updates_done * self.config.env_steps_per_update * self.num_seeds - self.bar.n)
        self.chunks_run += 1
        if self.stop_after is not None and self.chunks_run >= self.stop_after:
            raise _Stopped
        if self.signals is not None:
            self.signals.check_everywhere()

    @property
    def series(self) -> list[str]:
        return [f"seed-{s}" for s in self.meta["seeds"]]

    def _evaluate(self, updates_done: int, state) -> None:
        """Every seed's policy on the shared evaluation episodes: a row per seed in eval.csv
        and an eval/ point in the trackers, at the env steps trained so far."""
        import numpy as np

        started = time.perf_counter()
        episodes = self.evaluator.placed(state.params, state.obs_stats)
        self.eval_seconds += time.perf_counter() - started
        env_steps = updates_done * self.config.env_steps_per_update
        values = {"return": episodes.returns.mean(axis=1), "length": episodes.lengths.mean(axis=1),
                  "truncated": episodes.truncated.mean(axis=1)}
        rows = {f"eval_{k}": v[:, None] for k, v in values.items()}
        rows["env_steps"] = np.full((self.num_seeds, 1), env_steps)
        if self.eval_writer is not None:
            self.eval_writer.append(rows, updates=[updates_done])
        self.tracker.log_eval(self.series, [env_steps] * self.num_seeds, values)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        try:
            if self.checkpointer is not None:
                checkpointer, self.checkpointer = self.checkpointer, None
                checkpointer.close()
        finally:
            self.tracker.close()

    def abort(self, err: Exception) -> int:
        """Stop on a signal or a failed write: wait for the pending checkpoint write, cut
        metrics.csv back to the newest checkpoint, say how to continue. The exit code."""
        from pgjax.records.checkpoint import Checkpointer, CheckpointWriteError

        try:
            self.close()
        except CheckpointWriteError as late:
            err = err if isinstance(err, (CheckpointWriteError, _Interrupted)) else late
        if isinstance(err, _Interrupted):
            what = f"interrupted by {signal.Signals(err.signum).name}"
        elif isinstance(err, CheckpointWriteError) or not err.filename:
            what = str(err)
        else:
            what = f"writing {err.filename} failed: {err.strerror or err}"
        if not self.writes:  # process 0 keeps the files and says how to continue
            print(f"pgjax train: {what}; stopped with process 0", file=sys.stderr)
            return 128 + err.signum if isinstance(err, _Interrupted) else 1
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
            where = f"metrics.csv holds {self.writer.updates_written} updates, no checkpoints (a resume starts at update 0)"
        print(f"pgjax train: {what}; {where}; continue with: {resume_command(self.run_dir)}", file=sys.stderr)
        return 128 + err.signum if isinstance(err, _Interrupted) else 1


def _open_tracker(run_dir: Path, record: dict, meta: dict, resumed: bool, purge_step: int):
    """The run's TensorBoard/W&B sinks (`--log`): a series per seed, its config, seed and
    run settings as hyper-parameters. A resumed run purges TensorBoard points from its
    checkpoint on (the resume recomputes them) and continues the same W&B runs."""
    from pgjax.records.tracking import Series, flat_hparams, open_tracker

    common = {"algo": meta["algo"], "root_seed": meta["root_seed"], "num_seeds": meta["num_seeds"],
              **{key: record[key] for key in ("chunks", "eval_every", "eval_episodes", "eval_mode")},
              **flat_hparams(meta["config"], "config.")}
    series = [Series(f"seed-{s}", {**common, "seed": s}) for s in meta["seeds"]]
    return open_tracker(record["log"], run_dir, run_dir.name, series, purge_step=purge_step if resumed else None)


def _summarize(run_dir: Path, trainer, seeds: _Seeds, state, record: dict, seconds: float, evaluator,
               eval_seconds: float | None) -> dict:
    """summary.json: final training return and divergence per seed (from the whole metrics.csv,
    also after a resume), and the evaluation return per seed. With several processes all
    evaluate; process 0 writes and gets the summary, the others None."""
    import numpy as np

    from pgjax.runtime import sharding
    from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED
    from pgjax.runtime.experiment import first_nonfinite_update

    seed_ids = record["seeds"]
    config = trainer.config
    episodes = evaluator(state) if evaluator is not None else None  # every process takes part
    if not sharding.is_writer():
        return None
    by_seed = runs.read_metrics(run_dir / "metrics.csv")
    summary = {"wall_seconds": round(seconds, 2), "env_steps_per_seed": config.num_updates * config.env_steps_per_update,
               "host_devices": seeds.layout.num_devices, "vmap_width": seeds.layout.width,
               "final_train_return": {}, "diverged_at_update": {}}
    for seed in seed_ids:
        returns = by_seed[seed]["episode_return"]
        tail = returns[-max(1, config.num_updates // 10):]
        summary["final_train_return"][str(seed)] = float(np.nanmean(tail)) if np.isfinite(tail).any() else None
        finite = {"finite": by_seed[seed]["finite"][None]} if "finite" in by_seed[seed] else {"loss": by_seed[seed]["loss"][None]}
        summary["diverged_at_update"][str(seed)] = first_nonfinite_update(finite)[0]
    if episodes is not None:
        summary["eval_return_mean"] = {str(s): float(episodes.returns[i].mean()) for i, s in enumerate(seed_ids)}
        summary.update(eval_episodes=record["eval_episodes"], eval_mode=record["eval_mode"], eval_seed=DEFAULT_EVAL_SEED)
    if eval_seconds is not None:  # the cost of evaluating during training, in this process
        summary["eval_seconds_during_training"] = round(eval_seconds, 3)
    runs.write_json(run_dir / "summary.json", summary)
    return summary


def _report(run_dir: Path, summary: dict, seconds: float, eval_episodes: int) -> None:
    print(f"done in {seconds:.1f} s; final training return per seed: {summary['final_train_return']}")
    diverged = {s: u for s, u in summary["diverged_at_update"].items() if u is not None}
    if diverged:
        print(f"warning: non-finite parameters or loss from update (per seed): {diverged}", file=sys.stderr)
    if "eval_return_mean" in summary:
        print(f"evaluation return per seed ({summary['eval_mode']}, {eval_episodes} episodes, eval seed "
              f"{summary['eval_seed']}): {summary['eval_return_mean']}")
    print(f"metrics: {run_dir / 'metrics.csv'}\nplot:    {summary['plot']}")
    if "eval_plot" in summary:
        print(f"evaluations during training: {run_dir / runs.EVAL_FILE}, {summary['eval_plot']}")
