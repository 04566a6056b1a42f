"""`pgjax train`: train one config over vmapped seeds in compiled chunks."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pgjax import config as cfg
from pgjax.commands import add_config_arguments, build_config, load_config, parse_seeds


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
            "continues a run from its last checkpoint, bit for bit as if never stopped."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--seeds", type=parse_seeds, default=[0], help="seeds: a count (4), a list (0,5,9) or a range (3:7); default 0")
    parser.add_argument("--root-seed", type=int, default=0, help="root PRNG seed; seed s uses fold_in(PRNGKey(root), s)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="folder that receives the run folder (default runs/)")
    parser.add_argument("--chunks", type=int, default=20, help="compiled chunks (progress, metrics, checkpoint after each); default 20")
    parser.add_argument("--eval-episodes", type=int, default=32, help="evaluation episodes per seed at the end; 0 skips")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint (config, seeds and chunks from RUN_DIR)")
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
    from pgjax import runs

    if args.resume is None:
        algo_name, module, config = load_config(args.algo, args.config, args.env, args.overrides)
        record = {"algo": algo_name, "seeds": args.seeds, "root_seed": args.root_seed, "chunks": max(1, args.chunks)}
        return None, record, algo_name, module, config
    run_dir = args.resume
    if not (run_dir / "config.json").exists():
        raise cfg.ConfigError(f"--resume {str(run_dir)!r}: no config.json there (not a pgjax run folder)")
    if args.config is not None:
        raise cfg.ConfigError("--resume takes the config from RUN_DIR/config.json; drop --config")
    record = runs.read_json(run_dir / "config.json")
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
    import jax
    import numpy as np

    from pgjax import runs
    from pgjax.checkpoint import Checkpointer, CheckpointError
    from pgjax.experiment import (
        compile_seed_functions,
        evaluate_seeds,
        first_nonfinite_update,
        seed_keys,
        train_seeds,
    )
    from pgjax.plotting import plot_learning_curve

    if args.list_fields:
        return _list_fields(args)
    try:
        run_dir, record, algo_name, module, config = _resolve(args)
        trainer = module.make_trainer(config)
    except cfg.ConfigError as err:
        return _fail(f"config error: {err}")
    seeds, chunks = record["seeds"], record["chunks"]
    keys = seed_keys(record["root_seed"], seeds)
    functions = compile_seed_functions(trainer)
    expected = {"algo": algo_name, "config": cfg.to_dict(config), "num_seeds": len(seeds)}
    state, done = None, 0
    if run_dir is not None:
        checkpointer = Checkpointer(run_dir / "checkpoints")
        try:
            abstract = jax.eval_shape(functions[0], keys, config.hparams)
            state, meta = checkpointer.restore(abstract, expected)
        except CheckpointError as err:
            checkpointer.close()
            return _fail(f"cannot resume {run_dir}: {err}")
        done = meta["updates_done"]
        print(f"pgjax: resuming {run_dir} after {done} of {config.num_updates} updates")
    else:
        run_dir = runs.new_run_dir(args.out, f"{algo_name}-{config.env_id}")
        runs.write_json(run_dir / "config.json", {**record, "config": cfg.to_dict(config), "versions": runs.versions()})
        checkpointer = None if args.no_checkpoint else Checkpointer(run_dir / "checkpoints")
        print(f"pgjax: {algo_name} on {config.env_id}, seeds {seeds}, "
              f"{config.num_updates} updates x {config.env_steps_per_update} steps -> {run_dir}")
    writer = runs.MetricsWriter(run_dir / "metrics.csv", seeds, resume_at=done if done else None)
    total_steps = config.num_updates * config.env_steps_per_update
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps * len(seeds), initial=done * config.env_steps_per_update * len(seeds), unit="step",
                   unit_scale=True, desc="compiling", dynamic_ncols=True)
    last_return = [float("nan")]
    chunks_run = [0]
    meta = {**expected, "seeds": seeds, "root_seed": record["root_seed"]}

    def on_chunk(updates_done, state, metrics):
        writer.append(metrics)  # metrics first: a resume drops rows past its checkpoint
        if checkpointer is not None:
            checkpointer.save(updates_done, state, meta)
        returns = metrics["episode_return"]
        if np.isfinite(returns).any():
            last_return[0] = float(np.nanmean(returns[:, -max(1, returns.shape[1] // 4):]))
        if bar is not None:
            bar.set_description("training")
            bar.set_postfix(ret=f"{last_return[0]:.1f}", refresh=False)
            bar.update(updates_done * config.env_steps_per_update * len(seeds) - bar.n)
        chunks_run[0] += 1
        if args.stop_after is not None and chunks_run[0] >= args.stop_after:
            raise _Stopped

    start = time.perf_counter()
    try:
        state, _ = train_seeds(trainer, keys, max_chunks=chunks, on_chunk=on_chunk, state=state,
                               updates_done=done, functions=functions)
    except _Stopped:
        print(f"pgjax: stopped after {chunks_run[0]} chunks (--stop-after); continue with --resume {run_dir}")
        return 0
    finally:
        if bar is not None:
            bar.close()
        if checkpointer is not None:
            checkpointer.close()
    seconds = time.perf_counter() - start

    by_seed = runs.read_metrics(run_dir / "metrics.csv")  # the whole run, also after a resume
    summary = {"wall_seconds": round(seconds, 2), "env_steps_per_seed": total_steps,
               "final_train_return": {}, "diverged_at_update": {}}
    for seed in seeds:
        returns = by_seed[seed]["episode_return"]
        tail = returns[-max(1, config.num_updates // 10):]
        summary["final_train_return"][str(seed)] = float(np.nanmean(tail)) if np.isfinite(tail).any() else None
        finite = {"finite": by_seed[seed]["finite"][None]} if "finite" in by_seed[seed] else {"loss": by_seed[seed]["loss"][None]}
        summary["diverged_at_update"][str(seed)] = first_nonfinite_update(finite)[0]
    if args.eval_episodes > 0:
        eval_returns, _ = evaluate_seeds(trainer, state, args.eval_episodes)
        eval_returns = np.asarray(eval_returns)
        summary["eval_return_mean"] = {str(s): float(eval_returns[i].mean()) for i, s in enumerate(seeds)}
        summary["eval_episodes"] = args.eval_episodes
    runs.write_json(run_dir / "summary.json", summary)
    plot = plot_learning_curve(by_seed, run_dir / "learning_curve.png", f"{algo_name} on {config.env_id}")
    print(f"done in {seconds:.1f} s; final training return per seed: {summary['final_train_return']}")
    diverged = {s: u for s, u in summary["diverged_at_update"].items() if u is not None}
    if diverged:
        print(f"warning: non-finite parameters or loss from update (per seed): {diverged}", file=sys.stderr)
    if "eval_return_mean" in summary:
        print(f"evaluation return per seed ({args.eval_episodes} episodes): {summary['eval_return_mean']}")
    print(f"metrics: {run_dir / 'metrics.csv'}\nplot:    {plot}")
    return 0
