"""`pgjax train`: train one config over vmapped seeds in compiled chunks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pgjax import config as cfg
from pgjax.commands import (
    SEEDS_HELP,
    add_config_arguments,
    int_at_least,
    load_config,
    memory_size,
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
            "last checkpoint (exit code 130 or 143). A run in which a seed's parameters or loss became non-finite "
            "trains the other seeds to the end, keeps that seed's last finite checkpoint in finite_checkpoints/ "
            "and exits with code 3. One process at a time trains in a run folder (RUN_DIR/run.lock names it). "
            "On CPU the seeds "
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
                        help="evaluation episodes per seed at the end, in --eval-mode (default 32; eval seed 10000, recorded in "
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
    parser.add_argument("--memory-limit", type=memory_size, default=None,
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
    print("\n".join(cfg.describe(ALGORITHMS[algo_name].config_class)))
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


def _settings(args) -> dict:
    from pgjax.runtime.run_record import RUN_SETTINGS

    return {key: getattr(args, key) for key in RUN_SETTINGS}


def run(args) -> int:
    """Build the run (`pgjax.runtime.run.TrainingRun`: a new one, or `--resume`), train,
    then report."""
    from pgjax.records.tracking import TrackingError
    from pgjax.runtime.run import TrainingRun
    from pgjax.runtime.run_record import ResumeError

    if args.list_fields:
        return _list_fields(args)
    options = {"memory_limit": args.memory_limit, "progress": not args.no_progress, "stop_after": args.stop_after}
    try:
        if args.resume is None:
            algo_name, algorithm, config = load_config(args.algo, args.config, args.env, args.overrides)
            training = TrainingRun.new(algo_name, algorithm, config, _settings(args),
                                       checkpoints=not args.no_checkpoint, out=args.out, **options)
        else:
            if args.config is not None:
                raise cfg.ConfigError("--resume takes the config from RUN_DIR/config.json; drop --config")
            if args.out is not None:
                raise cfg.ConfigError(f"--out {args.out}: a resumed run stays in its folder {args.resume}; drop --out")
            training = TrainingRun.open(args.resume, settings=_settings(args), overrides=args.overrides, env=args.env,
                                        algo=args.algo, no_checkpoint=args.no_checkpoint, **options)
        result = training.run()
    except (cfg.ConfigError, MemoryError, runs.RunFileError, TrackingError, ResumeError) as err:
        return _fail(f"config error: {err}" if isinstance(err, cfg.ConfigError) else str(err))
    if result.status != "finished":
        return result.exit_code
    if result.summary is None:  # another process than 0: that one writes and reports
        print(f"done: this process computed its share of {len(training.record['seeds'])} seeds; "
              f"process 0 writes {result.run_dir}")
        return 0
    _report(result.run_dir, result.summary, result.summary["wall_seconds"], training.record["eval_episodes"])
    return result.exit_code  # DIVERGED_EXIT when a seed diverged


def _per_seed(values: dict) -> str:
    """`{seed: value}` as `seed 0: 20.38, seed 1: -` (4 significant digits; None is `-`)."""
    return ", ".join(f"seed {seed}: {'-' if v is None else f'{v:.4g}'}" for seed, v in values.items())


def _report(run_dir: Path, summary: dict, seconds: float, eval_episodes: int) -> None:
    print(f"done in {seconds:.1f} s; final training return per seed: {_per_seed(summary['final_train_return'])}")
    if "eval_return_mean" in summary:
        print(f"evaluation return per seed ({summary['eval_mode']}, {eval_episodes} episodes, eval seed "
              f"{summary['eval_seed']}): {_per_seed(summary['eval_return_mean'])}")
    print(f"metrics: {run_dir / 'metrics.csv'}\nplot:    {summary['plot']}")
    if "eval_plot" in summary:
        print(f"evaluations during training: {run_dir / runs.EVAL_FILE}, {summary['eval_plot']}")
