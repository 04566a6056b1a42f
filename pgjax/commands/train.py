"""`pgjax train`: train one config over vmapped seeds in compiled chunks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pgjax import config as cfg
from pgjax.commands import add_config_arguments, load_config, parse_seeds


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an algorithm on a gymnax environment",
        description=(
            "Train over one or more vmapped seeds in compiled chunks, with a progress bar. "
            "Writes config.json, metrics.csv (per seed, per update), summary.json and "
            "learning_curve.png into a new run folder. Settings come from the algorithm's "
            "defaults, then --config FILE (TOML or JSON), then KEY=VALUE overrides such as "
            "hparams.learning_rate=1e-3 or num_envs=8. `pgjax train --list-fields` shows them all."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--seeds", type=parse_seeds, default=[0], help="seeds: a count (4), a list (0,5,9) or a range (3:7); default 0")
    parser.add_argument("--root-seed", type=int, default=0, help="root PRNG seed; seed s uses fold_in(PRNGKey(root), s)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="folder that receives the run folder (default runs/)")
    parser.add_argument("--chunks", type=int, default=20, help="compiled chunks (progress/metrics updates); default 20")
    parser.add_argument("--eval-episodes", type=int, default=32, help="evaluation episodes per seed at the end; 0 skips")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list-fields", action="store_true", help="print every config field with its default and doc, then exit")


def run(args) -> int:
    import numpy as np

    from pgjax import runs
    from pgjax.experiment import evaluate_seeds, seed_keys, train_seeds
    from pgjax.plotting import plot_learning_curve

    if args.list_fields:
        from pgjax.algos import ALGORITHMS

        print("\n".join(cfg.describe(ALGORITHMS[args.algo or "ppo"].CONFIG)))
        return 0
    try:
        algo_name, module, config = load_config(args.algo, args.config, args.env, args.overrides)
        trainer = module.make_trainer(config)
    except cfg.ConfigError as err:
        print(f"pgjax train: config error: {err}", file=sys.stderr)
        return 1

    run_dir = runs.new_run_dir(args.out, f"{algo_name}-{config.env_id}")
    runs.write_json(run_dir / "config.json", {
        "algo": algo_name, "config": cfg.to_dict(config), "seeds": args.seeds,
        "root_seed": args.root_seed, "versions": runs.versions(),
    })
    print(f"pgjax: {algo_name} on {config.env_id}, seeds {args.seeds}, "
          f"{config.num_updates} updates x {config.batch_size} steps -> {run_dir}")
    writer = runs.MetricsWriter(run_dir / "metrics.csv", args.seeds)
    total_steps = config.num_updates * config.batch_size
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps * len(args.seeds), unit="step", unit_scale=True, desc="compiling",
                   dynamic_ncols=True)
    last_return = [float("nan")]

    def on_chunk(done, state, metrics):
        writer.append(metrics)
        returns = metrics["episode_return"]
        if np.isfinite(returns).any():
            last_return[0] = float(np.nanmean(returns[:, -max(1, returns.shape[1] // 4):]))
        if bar is not None:
            bar.set_description("training")
            bar.set_postfix(ret=f"{last_return[0]:.1f}", refresh=False)
            bar.update(done * config.batch_size * len(args.seeds) - bar.n)

    start = time.perf_counter()
    keys = seed_keys(args.root_seed, args.seeds)
    state, metrics = train_seeds(trainer, keys, max_chunks=max(1, args.chunks), on_chunk=on_chunk)
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()

    summary = {"wall_seconds": round(seconds, 2), "env_steps_per_seed": total_steps,
               "final_train_return": {}}
    for i, seed in enumerate(args.seeds):
        tail = metrics["episode_return"][i, -max(1, config.num_updates // 10):]
        summary["final_train_return"][str(seed)] = float(np.nanmean(tail)) if np.isfinite(tail).any() else None
    if args.eval_episodes > 0:
        eval_returns, _ = evaluate_seeds(trainer, state, args.eval_episodes)
        eval_returns = np.asarray(eval_returns)
        summary["eval_return_mean"] = {str(s): float(eval_returns[i].mean()) for i, s in enumerate(args.seeds)}
        summary["eval_episodes"] = args.eval_episodes
    runs.write_json(run_dir / "summary.json", summary)
    plot = plot_learning_curve(runs.read_metrics(run_dir / "metrics.csv"), run_dir / "learning_curve.png",
                               f"{algo_name} on {config.env_id}")
    print(f"done in {seconds:.1f} s; final training return per seed: {summary['final_train_return']}")
    if "eval_return_mean" in summary:
        print(f"evaluation return per seed ({args.eval_episodes} episodes): {summary['eval_return_mean']}")
    print(f"metrics: {run_dir / 'metrics.csv'}\nplot:    {plot}")
    return 0
