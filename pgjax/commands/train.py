"""`pgjax train`: train one config over vmapped seeds in compiled chunks."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pgjax import config as cfg
from pgjax import runs
from pgjax.commands import (
    SEEDS_HELP,
    add_config_arguments,
    build_config,
    int_at_least,
    load_config,
    output_folder,
    parse_seeds,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an algorithm on a gymnax environment (or resume a run)",
        description=(
            "Train over one or more vmapped seeds in compiled chunks, with a progress bar. "
            "Writes config.json, metrics.csv (per seed, per update), a checkpoint of the whole "
            "training state after every chunk (checkpoints/), summary.json and learning_curve.png "
            "into a new run folder. Settings come from the algorithm's defaults, then --config FILE "
            "(TOML or JSON), then KEY=VALUE overrides such as hparams.learning_rate=1e-3 or "
            "num_envs=8. `pgjax train --list-fields` shows them all. `pgjax train --resume RUN_DIR` "
            "continues a run from its last checkpoint, bit for bit as if never stopped. On CPU the seeds "
            "are sharded over one host device per core (--host-devices); the numbers do not depend on it."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--seeds", type=parse_seeds, default=[0], help=SEEDS_HELP)
    parser.add_argument("--root-seed", type=int, default=0, help="root PRNG seed; seed s uses fold_in(PRNGKey(root), s)")
    parser.add_argument("--out", type=output_folder("--out"), default=Path("runs"),
                        help="folder that receives the run folder (default runs/)")
    parser.add_argument("--chunks", type=int_at_least(1, "--chunks"), default=20,
                        help="compiled chunks (progress, metrics, checkpoint after each); default 20, at most one per update")
    parser.add_argument("--eval-episodes", type=int_at_least(0, "--eval-episodes"), default=32,
                        help="greedy evaluation episodes per seed at the end (eval seed 10000, recorded in "
                             "summary.json); 0 skips")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint (config, seeds and chunks from RUN_DIR)")
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


def _resolve(args):
    """`(run_dir or None, record, algo_name, module, config)` for a new or resumed run."""
    from pgjax.experiment import default_seed_width

    if args.resume is None:
        algo_name, module, config = load_config(args.algo, args.config, args.env, args.overrides)
        width = args.width or default_seed_width(len(args.seeds))
        chunks = min(args.chunks, config.num_updates)  # a chunk holds at least one update
        if chunks < args.chunks:
            print(f"pgjax train: note: --chunks {args.chunks} is more than the {config.num_updates} updates; "
                  f"running {chunks} chunks of one update", file=sys.stderr)
        record = {"algo": algo_name, "seeds": args.seeds, "root_seed": args.root_seed, "chunks": chunks,
                  "width": min(width, len(args.seeds))}
        return None, record, algo_name, module, config
    run_dir = args.resume
    if not (run_dir / "config.json").exists():
        raise cfg.ConfigError(f"--resume {str(run_dir)!r}: no config.json there (not a pgjax run folder)")
    if args.config is not None:
        raise cfg.ConfigError("--resume takes the config from RUN_DIR/config.json; drop --config")
    if args.width is not None:
        raise cfg.ConfigError("--resume keeps the run's vmap width (a seed's numbers depend on it); drop --width")
    record = runs.read_json(run_dir / "config.json")
    # Runs from before seed groups vmapped all their seeds at once.
    record.setdefault("width", len(record["seeds"]))
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


class _Stopped(Exception):
    pass


def run(args) -> int:
    """Resolve the config, lay the seeds out on the devices, restore or start the run
    folder, train in chunks, then summarise and report."""
    from pgjax.checkpoint import Checkpointer
    from pgjax.plotting import plot_learning_curve

    if args.list_fields:
        return _list_fields(args)
    try:
        run_dir, record, algo_name, module, config = _resolve(args)
        trainer = module.make_trainer(config)
        seeds = _Seeds.build(trainer, record)
        _check_memory(trainer, seeds, record["chunks"], args.memory_limit)
    except (cfg.ConfigError, MemoryError) as err:
        return _fail(f"config error: {err}" if isinstance(err, cfg.ConfigError) else str(err))
    expected = {"algo": algo_name, "config": cfg.to_dict(config), "num_seeds": len(record["seeds"])}
    meta = {**expected, "seeds": record["seeds"], "root_seed": record["root_seed"]}
    if run_dir is not None:
        try:
            state, done, checkpointer = _restore(run_dir, trainer, seeds, expected)
        except _ResumeError as err:
            return _fail(f"cannot resume {run_dir}: {err}")
        print(f"pgjax: resuming {run_dir} after {done} of {config.num_updates} updates")
    else:
        run_dir, state, done = _start(args, record, algo_name, config), None, 0
        checkpointer = None if args.no_checkpoint else Checkpointer(run_dir / runs.CHECKPOINT_DIR)
    handler = _ChunkHandler(args, config, seeds, run_dir, done, checkpointer, meta)
    start = time.perf_counter()
    try:
        state = seeds.train(state, done, record["chunks"], handler)
    except _Stopped:
        print(f"pgjax: stopped after {handler.chunks_run} chunks (--stop-after); continue with --resume {run_dir}")
        return 0
    finally:
        handler.close()
    seconds = time.perf_counter() - start
    summary = _summarize(run_dir, trainer, seeds, state, record["seeds"], seconds, args.eval_episodes)
    summary["plot"] = plot_learning_curve(runs.read_metrics(run_dir / "metrics.csv"), run_dir / "learning_curve.png",
                                          f"{algo_name} on {config.env_id}")
    _report(run_dir, summary, seconds, args.eval_episodes)
    return 0


class _ResumeError(Exception):
    pass


class _Seeds:
    """The seeds of a run laid out on the devices (`experiment.SeedLayout`): placed keys and
    hparams, the sharded init/run, and the conversion of results back to `[S]` rows."""

    def __init__(self, trainer, layout, keys, hparams):
        from pgjax import experiment

        self.trainer, self.layout = trainer, layout
        self.mesh = experiment.seed_mesh(layout)
        self.functions = experiment.seed_functions(trainer, self.mesh, layout.width)
        self.keys, self.hparams = experiment.place_seeds((keys, hparams), layout, self.mesh)

    @classmethod
    def build(cls, trainer, record: dict) -> _Seeds:
        import jax
        import jax.numpy as jnp

        from pgjax import experiment

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
        from pgjax import experiment

        return experiment.place_seeds(state, self.layout, self.mesh)

    def rows(self, state):
        """`[S]` rows of a padded state, on the first device (checkpoints, evaluation)."""
        from pgjax import experiment

        return experiment.unpad_seeds(state, self.layout)

    def fetch(self, metrics: dict) -> dict:
        from pgjax import sharding

        return {k: v[: self.layout.num_seeds] for k, v in sharding.fetch(metrics).items()}

    def train(self, state, done: int, chunks: int, handler) -> object:
        """Train from `state` (`[S]` rows, None: fresh) after `done` updates; the final `[S]` state."""
        from pgjax.experiment import train_seeds

        state = None if state is None else self.place(state)
        state, _ = train_seeds(self.trainer, self.keys, self.hparams, hparams_batched=True, max_chunks=chunks,
                               on_chunk=handler, state=state, updates_done=done, functions=self.functions,
                               fetch=self.fetch)
        return self.rows(state)


def _check_memory(trainer, seeds: _Seeds, chunks: int, memory_limit: str | None) -> dict:
    """Per-device bytes of the run (state in and out, one chunk's metrics, for the seeds each
    device holds); raises MemoryError above `--memory-limit` (default: half the free RAM
    shared by the CPU devices, or the accelerator's limit)."""
    from pgjax import sweep
    from pgjax.experiment import chunk_sizes

    per_seed = sweep.cell_bytes(trainer, max(chunk_sizes(trainer.config.num_updates, chunks)))
    need = sweep.launch_bytes_estimate(per_seed, seeds.layout.per_device)
    limit = sweep.parse_bytes(memory_limit) if memory_limit else sweep.default_memory_limit(list(seeds.mesh.devices.flat))
    if need > limit:
        layout = seeds.layout
        raise MemoryError(
            f"{layout.num_seeds} seeds need about {need / 1e6:.2f} MB per device ({layout.per_device} seeds on each of "
            f"{layout.num_devices} device(s)), more than the limit {limit / 1e6:.2f} MB; "
            "use fewer seeds, more --host-devices, or raise --memory-limit"
        )
    return {"bytes_per_device": need, "limit": limit}


def _restore(run_dir: Path, trainer, seeds: _Seeds, expected: dict):
    """`(state [S], updates_done, checkpointer)` from the run folder's last checkpoint."""
    from pgjax.checkpoint import Checkpointer, CheckpointError

    checkpointer = Checkpointer(run_dir / runs.CHECKPOINT_DIR)
    try:
        state, meta = checkpointer.restore(seeds.abstract_state(), expected)
    except CheckpointError as err:
        checkpointer.close()
        raise _ResumeError(str(err)) from None
    return state, meta["updates_done"], checkpointer


def _start(args, record: dict, algo_name: str, config) -> Path:
    """A new run folder with its config.json."""
    run_dir = runs.new_run_dir(args.out, f"{algo_name}-{config.env_id}")
    runs.write_json(run_dir / "config.json", {**record, "config": cfg.to_dict(config), "versions": runs.versions()})
    print(f"pgjax: {algo_name} on {config.env_id}, seeds {record['seeds']}, "
          f"{config.num_updates} updates x {config.env_steps_per_update} steps -> {run_dir}")
    return run_dir


class _ChunkHandler:
    """After each chunk: metrics to metrics.csv, the state to a checkpoint, the progress bar."""

    def __init__(self, args, config, seeds: _Seeds, run_dir: Path, done: int, checkpointer, meta: dict):
        self.config, self.num_seeds = config, seeds.layout.num_seeds
        self.writer = runs.MetricsWriter(run_dir / "metrics.csv", meta["seeds"], resume_at=done if done else None)
        self.checkpointer, self.meta, self.stop_after = checkpointer, meta, args.stop_after
        self.rows = seeds.rows  # padded state -> [S] rows, what a checkpoint holds
        self.chunks_run, self.last_return, self.bar = 0, float("nan"), None
        if not args.no_progress:
            from tqdm import tqdm

            steps = config.env_steps_per_update * self.num_seeds
            self.bar = tqdm(total=config.num_updates * steps, initial=done * steps, unit="step", unit_scale=True,
                            desc="compiling", dynamic_ncols=True)

    def __call__(self, updates_done: int, state, metrics: dict) -> None:
        import numpy as np

        self.writer.append(metrics)  # metrics first: a resume drops rows past its checkpoint
        if self.checkpointer is not None:
            self.checkpointer.save(updates_done, self.rows(state), self.meta)
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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.checkpointer is not None:
            self.checkpointer.close()


def _summarize(run_dir: Path, trainer, seeds: _Seeds, state, seed_ids: list[int], seconds: float,
               eval_episodes: int) -> dict:
    """summary.json: final training return and divergence per seed (from the whole metrics.csv,
    also after a resume), and the evaluation return per seed."""
    import numpy as np

    from pgjax.eval_modes import DEFAULT_EVAL_SEED, DEFAULT_MODE, GREEDY
    from pgjax.experiment import evaluate_layout, first_nonfinite_update

    config = trainer.config
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
    if eval_episodes > 0:
        episodes = evaluate_layout(trainer, state, seeds.layout, eval_episodes, DEFAULT_EVAL_SEED,
                                   deterministic=DEFAULT_MODE == GREEDY)
        summary["eval_return_mean"] = {str(s): float(episodes.returns[i].mean()) for i, s in enumerate(seed_ids)}
        summary.update(eval_episodes=eval_episodes, eval_mode=DEFAULT_MODE, eval_seed=DEFAULT_EVAL_SEED)
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
