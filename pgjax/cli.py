"""The `pgjax` command line: `pgjax train [--config FILE] [KEY=VALUE ...]`.

Exit codes: 0 success, 2 bad command-line usage (argparse), 1 bad configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pgjax import config as cfg


def _parse_seeds(text: str) -> list[int]:
    """`'4'` -> seeds 0..3; `'0,5,9'` -> those seeds; `'3:7'` -> 3..6."""
    try:
        if ":" in text:
            lo, hi = (int(t) for t in text.split(":"))
            seeds = list(range(lo, hi))
        elif "," in text:
            seeds = [int(t) for t in text.split(",")]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: use a count (4), a list (0,5,9) or a range (3:7)")
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: need at least one distinct non-negative seed")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    from pgjax.algos import ALGORITHMS

    parser = argparse.ArgumentParser(prog="pgjax", description="Policy-gradient RL in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
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
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    train.add_argument("--algo", default=None, choices=sorted(ALGORITHMS), help="algorithm (default: the config's, else ppo)")
    train.add_argument("--config", type=Path, default=None, help="TOML or JSON config file, e.g. configs/ppo_cartpole.toml")
    train.add_argument("--env", default=None, help="gymnax environment id (same as env_id=...)")
    train.add_argument("--seeds", type=_parse_seeds, default=[0], help="seeds: a count (4), a list (0,5,9) or a range (3:7); default 0")
    train.add_argument("--root-seed", type=int, default=0, help="root PRNG seed; seed s uses fold_in(PRNGKey(root), s)")
    train.add_argument("--out", type=Path, default=Path("runs"), help="folder that receives the run folder (default runs/)")
    train.add_argument("--chunks", type=int, default=20, help="compiled chunks (progress/metrics updates); default 20")
    train.add_argument("--eval-episodes", type=int, default=32, help="evaluation episodes per seed at the end; 0 skips")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--list-fields", action="store_true", help="print every config field with its default and doc, then exit")
    return parser


def load_config(algo_name: str | None, config_file: Path | None, env: str | None, overrides: list[str]):
    """Resolve the algorithm and build its config strictly. Raises ConfigError."""
    from pgjax.algos import ALGORITHMS
    from pgjax.envs import check_env_id

    values = cfg.read_file(config_file) if config_file is not None else {}
    file_algo = values.pop("algo", None)
    if algo_name and file_algo and algo_name != file_algo:
        raise cfg.ConfigError(f"--algo {algo_name} contradicts algo = {file_algo!r} in {config_file}")
    algo_name = algo_name or file_algo or "ppo"
    if algo_name not in ALGORITHMS:
        raise cfg.ConfigError(f"algo={algo_name!r} is unknown; choose one of {', '.join(sorted(ALGORITHMS))}")
    if env is not None:
        values["env_id"] = env
    for text in overrides:
        path, value = cfg.parse_override(text)
        values = cfg.merge(values, path, value)
    module = ALGORITHMS[algo_name]
    config = cfg.from_dict(module.CONFIG, values)
    try:
        check_env_id(config.env_id)
    except ValueError as err:
        raise cfg.ConfigError(str(err)) from None
    return algo_name, module, config


def cmd_train(args) -> int:
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return cmd_train(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
