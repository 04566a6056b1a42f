"""`pgjax eval`: evaluate the saved policies of a run on fixed evaluation episodes.

The run's checkpoint (`RUN_DIR/checkpoints/`, written by `pgjax train`) is restored into the
algorithm's training state, and every training seed's policy plays the same episodes (start
states and action noise from `--eval-seed`), greedily (the policy's mode) by default or
stochastically, in one compiled loop, the seeds sharded over the devices (host devices on
CPU, see `pgjax.runtime.sharding`) in the run's vmap groups. Results go to
`RUN_DIR/eval_greedy.json` or `RUN_DIR/eval_stochastic.json`.

A sweep folder (`pgjax sweep`) is evaluated from its cells' kept policies: every cell, the
cells `--cell` names, or those of the grid points `--point` picks (`pgjax.runtime.sweep_eval`);
each cell's result goes to `SWEEP_DIR/eval/cell-NNNNN-<mode>.json` and a summary per grid
point (IQM over its seeds with a bootstrap CI, the best point marked) to
`SWEEP_DIR/eval_<mode>.json`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from pgjax.commands import int_at_least, output_file, seed_number
from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED, mode_name, sampling_refused


class EvalError(Exception):
    """Bad input for `pgjax eval` (missing run folder or checkpoint, bad option): exit code 1."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a run's saved policies (greedy or stochastic), optionally save a GIF",
        description=(
            "Restore the latest checkpoint of RUN_DIR and play --episodes episodes with every "
            "training seed's policy, all seeds on the same evaluation episodes (start states and "
            "action noise from --eval-seed), in one compiled vectorised loop. Each episode ends at "
            "a terminal state or at the time limit and is counted once. Writes "
            "RUN_DIR/eval_greedy.json (or eval_stochastic.json): per-seed returns, lengths and "
            "truncation flags, and the mean, median and IQM over seeds with bootstrap CIs. "
            "--gif PATH also saves an animation of one episode. A sweep folder (pgjax sweep) is evaluated "
            "from its cells' kept policies (all, --cell N,.. or --point KEY=VALUE): SWEEP_DIR/eval/ per cell and "
            "SWEEP_DIR/eval_<mode>.json per grid point (IQM over seeds with a bootstrap CI, the best point named). "
            "Example: pgjax eval runs/ppo-CartPole-v1-20250101-120000 --episodes 64 --gif cartpole.gif"
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (pgjax train) or a sweep folder (pgjax sweep)")
    parser.add_argument("--cell", type=_cell_numbers, default=None, metavar="N[,N...]",
                        help="sweep folder: evaluate these cells (cells/cell-N.json); default: every finished cell")
    parser.add_argument("--point", action="append", default=[], metavar="KEY=VALUE",
                        help="sweep folder: evaluate the cells (all seeds) of the grid points with this grid value "
                             "(repeatable, e.g. --point hparams.learning_rate=1e-3)")
    parser.add_argument("--episodes", type=int_at_least(1, "--episodes"), default=32,
                        help="evaluation episodes per seed (default 32)")
    parser.add_argument("--stochastic", action="store_true",
                        help="evaluate with actions sampled from the policy (results in eval_stochastic.json); "
                             "without it the policy's mode is taken, as in pgjax train's summary.json. Refused for "
                             "DDPG/TD3, whose policy is deterministic")
    parser.add_argument("--eval-seed", type=seed_number("--eval-seed"), default=DEFAULT_EVAL_SEED,
                        help=f"seed of the evaluation episodes (default {DEFAULT_EVAL_SEED})")
    parser.add_argument("--max-steps", type=int_at_least(1, "--max-steps"), default=None,
                        help="replace the environment's time limit")
    parser.add_argument("--step", type=int, default=None, help="checkpoint to evaluate, in updates done (default: latest)")
    parser.add_argument("--out", type=output_file("--out"), default=None, help="results JSON (default RUN_DIR/eval_<mode>.json)")
    parser.add_argument("--gif", type=output_file("--gif", (".gif",)), default=None, metavar="PATH",
                        help="save an animated GIF (PATH ending in .gif) of one episode")
    parser.add_argument("--gif-seed", type=int, default=None, help="training seed whose policy the GIF shows (default: the first)")
    parser.add_argument("--gif-episode", type=int, default=0, help="which evaluation episode the GIF shows (default 0)")
    parser.add_argument("--gif-frames", type=int_at_least(1, "--gif-frames"), default=100, help="at most this many frames, evenly spaced (default 100)")


def _cell_numbers(text: str) -> list[int]:
    import argparse

    try:
        cells = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        cells = []
    if not cells or min(cells) < 0 or len(set(cells)) != len(cells):
        raise argparse.ArgumentTypeError(f"--cell {text!r}: give distinct cell numbers >= 0, e.g. 3 or 0,4,8")
    return cells


class LoadedRun(NamedTuple):
    """A run restored from its checkpoint: the state has a leading seed axis."""

    algo: str
    config: Any
    trainer: Any
    state: Any
    seeds: list[int]
    updates_done: int
    width: int  # seeds per vmap group, the run's (config.json); evaluation uses it too


def load_run(run_dir: str | Path, step: int | None = None) -> LoadedRun:
    """Restore the training state of every seed of a run folder from its checkpoint.

    The algorithm, config and seeds come from the checkpoint's metadata (and the run's
    `config.json`); the state is restored into the structure `init` gives for that config,
    so a checkpoint of another algorithm or config fails with a message naming the field.
    """
    from pgjax.records import checkpoint, runs

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise EvalError(f"run folder {run_dir} does not exist")
    if not run_dir.is_dir():
        raise EvalError(f"{run_dir} is a file, not a run folder (pgjax train's folder, with checkpoints/)")
    if is_sweep(run_dir):
        raise EvalError(f"{run_dir} is a sweep folder: evaluate it with `pgjax eval {run_dir}` (optionally --cell N "
                        "or --point KEY=VALUE), or pgjax.runtime.sweep_eval.evaluate_cells from Python")
    ckpt_dir = run_dir / runs.CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        inside = sorted(p.parent.name for p in run_dir.glob(f"*/{runs.CHECKPOINT_DIR}"))
        if inside:  # a folder of runs (as pgjax plot takes): name them
            raise EvalError(f"{run_dir} is not a run folder but holds {len(inside)} ({', '.join(inside[:3])}"
                            f"{', ...' if len(inside) > 3 else ''}): evaluate one, e.g. pgjax eval {run_dir / inside[0]}")
        raise EvalError(f"no checkpoint in {run_dir}: {ckpt_dir} is missing (pgjax train saves checkpoints there)")
    saved = {}
    runs.recover_run_file(run_dir, "pgjax eval", required=False)  # a deleted config.json, from a checkpoint's copy
    if (run_dir / "config.json").is_file():
        try:
            saved = runs.read_json(run_dir / "config.json")
        except runs.RunFileError as err:
            raise EvalError(str(err)) from None
    checkpointer = checkpoint.Checkpointer(ckpt_dir)
    try:
        available = checkpointer.steps()
        if not available:
            raise EvalError(f"no checkpoint in {ckpt_dir} (the run stopped before its first checkpoint)")
        if step is not None and step not in available:
            raise EvalError(f"--step {step}: no such checkpoint in {ckpt_dir} (available: "
                            f"{', '.join(map(str, available))})")
        # Without --step: the newest intact checkpoint, each damaged one skipped with a note.
        candidates = [step] if step is not None else available[::-1]
        for k, candidate in enumerate(candidates):
            try:
                loaded = _restore_step(checkpointer, candidate, saved)
                break
            except checkpoint.CorruptCheckpointError as err:
                if k == len(candidates) - 1:
                    kind = "the checkpoint" if step is not None else "no intact checkpoint left"
                    raise EvalError(f"{kind}: {err}") from None
                print(f"pgjax eval: note: skipping a damaged checkpoint: {err}", file=sys.stderr)
    finally:
        checkpointer.close()
    config, trainer, state, meta, seeds = loaded
    # Runs from before seed groups vmapped all their seeds at once.
    width = int(saved.get("width", len(seeds)))
    return LoadedRun(meta["algo"], config, trainer, state, seeds, int(meta["updates_done"]), width)


def _restore_step(checkpointer, step: int, saved: dict):
    """`(config, trainer, state, meta, seeds)` from one checkpoint; `CorruptCheckpointError` if damaged."""
    import jax

    from pgjax import config as cfg
    from pgjax.commands import build_config
    from pgjax.records import checkpoint
    from pgjax.runtime.experiment import seed_keys

    meta = checkpointer.read_meta(step)
    try:
        algorithm, config = build_config(meta["algo"], meta["config"])
    except cfg.ConfigError as err:
        raise EvalError(f"checkpoint config does not load: {err}") from None
    seeds = list(meta.get("seeds") or saved.get("seeds") or range(meta["num_seeds"]))
    trainer = algorithm.make_trainer(config)
    keys = seed_keys(int(meta.get("root_seed", saved.get("root_seed", 0))), seeds)
    abstract = jax.eval_shape(jax.vmap(trainer.init, in_axes=(0, None)), keys, config.hparams)
    expected = {"algo": meta["algo"], "config": cfg.to_dict(config), "config_defaults": cfg.field_defaults(type(config)),
                "num_seeds": len(seeds)}
    try:
        state, meta = checkpointer.restore(abstract, expected, meta["updates_done"])
    except checkpoint.CorruptCheckpointError:
        raise
    except checkpoint.CheckpointError as err:
        raise EvalError(f"checkpoint in {checkpointer.directory} does not restore: {err}") from None
    return config, trainer, state, meta, seeds


def is_sweep(path: Path) -> bool:
    return (path / "sweep.json").is_file() or (path / "cells").is_dir()


def run(args) -> int:
    try:
        return _eval(args)
    except EvalError as err:
        print(f"pgjax eval: {err}", file=sys.stderr)
        return 1


def _check_args(args) -> None:
    run_dir = Path(args.run_dir)
    if args.out is None and run_dir.is_dir() and not os.access(run_dir, os.W_OK | os.X_OK):
        raise EvalError(f"{run_dir} is not writable, so the results cannot go there: give --out FILE")
    if not 0 <= args.gif_episode < args.episodes:
        raise EvalError(f"--gif-episode {args.gif_episode} must be in [0, {args.episodes}) (--episodes {args.episodes})")


def _saved_algo(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "config.json").read_text())["algo"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no readable config.json: load_run reports what is wrong


def _check_stochastic(algo: str | None) -> None:
    """Refuse `--stochastic` for an algorithm whose policy is deterministic (DDPG, TD3)."""
    from pgjax.algos import ALGORITHMS

    refused = sampling_refused("--stochastic", ALGORITHMS[algo]) if algo in ALGORITHMS else None
    if refused:
        raise EvalError(refused)


def _eval(args) -> int:
    import jax
    import numpy as np

    from pgjax.records import runs
    from pgjax.reports import statistics as st
    from pgjax.runtime import sharding
    from pgjax.runtime.experiment import SeedLayout, evaluate_layout

    _check_args(args)
    if is_sweep(Path(args.run_dir)):
        return _eval_sweep(args)
    if args.cell is not None or args.point:
        raise EvalError(f"--cell/--point select the cells of a sweep folder; {args.run_dir} is a run folder")
    if args.stochastic:  # before restoring anything, from the run's config.json where it has one
        _check_stochastic(_saved_algo(Path(args.run_dir)))
    loaded = load_run(args.run_dir, args.step)
    gif_seed = loaded.seeds[0] if args.gif_seed is None else args.gif_seed
    if gif_seed not in loaded.seeds:
        raise EvalError(f"--gif-seed {gif_seed} is not a seed of this run (seeds: {loaded.seeds})")
    mode = mode_name(not args.stochastic)
    if args.stochastic:
        _check_stochastic(loaded.algo)
    # Seeds sharded over the devices in the run's vmap groups: the same numbers on any count.
    layout = SeedLayout.plan(len(loaded.seeds), loaded.width, len(jax.devices()))
    episodes = evaluate_layout(loaded.trainer, loaded.state, layout, args.episodes, args.eval_seed,
                               deterministic=not args.stochastic, max_episode_steps=args.max_steps)
    returns, lengths, truncated = (np.asarray(a) for a in episodes)
    per_seed = {
        str(seed): {
            "mean_return": float(returns[i].mean()),
            "std_return": float(returns[i].std()),
            "mean_length": float(lengths[i].mean()),
            "truncated_fraction": float(truncated[i].mean()),
            "returns": returns[i].tolist(),
            "lengths": lengths[i].tolist(),
            "truncated": truncated[i].tolist(),
        }
        for i, seed in enumerate(loaded.seeds)
    }
    max_steps = args.max_steps or int(loaded.trainer.env.max_episode_steps)
    result = {
        "algo": loaded.algo, "env_id": loaded.config.env_id, "mode": mode, "episodes_per_seed": args.episodes,
        "eval_seed": args.eval_seed, "max_episode_steps": max_steps, "checkpoint_updates": loaded.updates_done,
        "seeds": loaded.seeds, "per_seed": per_seed,
        "across_seeds": st.summarize(returns.mean(axis=1)),  # one score per seed: its mean return
        "versions": runs.versions(),
    }
    out = args.out or Path(args.run_dir) / f"eval_{mode}.json"
    if not sharding.is_writer():  # several processes: process 0 writes and reports
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json(out, result)

    print(f"pgjax eval: {loaded.algo} on {loaded.config.env_id}, checkpoint after {loaded.updates_done} updates, "
          f"{mode}, {args.episodes} episodes per seed (eval seed {args.eval_seed})")
    for seed, r in per_seed.items():
        print(f"  seed {seed}: return {r['mean_return']:.2f} +- {r['std_return']:.2f}, "
              f"length {r['mean_length']:.1f}, truncated {r['truncated_fraction']:.0%}")
    agg = result["across_seeds"]
    print(f"  across {agg['n']} seeds: IQM {agg['iqm']:.2f} [{agg['iqm_low']:.2f}, {agg['iqm_high']:.2f}], "
          f"mean {agg['mean']:.2f} [{agg['mean_low']:.2f}, {agg['mean_high']:.2f}], median {agg['median']:.2f} "
          f"(95% bootstrap CIs)")
    print(f"results: {out}")
    if args.gif is not None:
        index = loaded.seeds.index(gif_seed)
        path, ret = save_gif(loaded, index, args)
        print(f"animation: {path} (seed {gif_seed}, episode {args.gif_episode}, return {ret:.2f})")
    return 0


def _eval_sweep(args) -> int:
    """Evaluate the kept policies of a sweep's cells; per-cell files and a per-grid-point summary."""
    from pgjax import config as cfg
    from pgjax.records import runs
    from pgjax.runtime import sharding
    from pgjax.runtime import sweep_eval as se
    from pgjax.runtime.sweep import read_cells

    sweep_dir = Path(args.run_dir)
    for flag, value in (("--step", args.step), ("--gif", args.gif), ("--out", args.out)):
        if value is not None:
            raise EvalError(f"{flag} applies to run folders; a sweep is evaluated into {sweep_dir}/eval/ "
                            f"(train a cell as a run for {flag})")
    try:
        spec = runs.read_json(sweep_dir / "sweep.json")
        records = read_cells(sweep_dir)
        point = {".".join(path): value for path, value in map(cfg.parse_override, args.point)}
        chosen = se.select_cells(records, args.cell, point or None)
    except (runs.RunFileError, se.SweepEvalError, cfg.ConfigError) as err:
        raise EvalError(str(err)) from None
    if not chosen:
        raise EvalError(f"{sweep_dir} has no finished cells yet")
    if args.stochastic:
        _check_stochastic(spec.get("algo"))
    try:
        results = se.evaluate_cells(sweep_dir, chosen, int(spec.get("width", 8)), args.episodes, args.eval_seed,
                                    deterministic=not args.stochastic, max_episode_steps=args.max_steps,
                                    write=sharding.is_writer())
    except se.SweepEvalError as err:
        raise EvalError(str(err)) from None
    if not sharding.is_writer():  # several processes: process 0 writes and reports
        return 0
    mode = mode_name(not args.stochastic)
    everything = list(se.read_cell_evals(sweep_dir, mode).values())  # earlier evaluations of other cells too
    protocol = {(r["episodes"], r["eval_seed"], r["max_episode_steps"]) for r in everything}
    if len(protocol) > 1:
        print(f"pgjax eval: note: {sweep_dir}/eval/ holds {mode} results of different protocols (episodes, eval "
              f"seed, time limit: {sorted(protocol)}); the summary covers the cells evaluated now only",
              file=sys.stderr)
        everything = results
    summaries = se.point_summaries(everything)
    best = se.best_point(summaries, "iqm")
    out = sweep_dir / f"eval_{mode}.json"
    runs.write_json(out, {"algo": spec.get("algo"), "mode": mode, "episodes_per_cell": args.episodes,
                          "eval_seed": args.eval_seed, "score": "mean evaluation return of each cell (seed)",
                          "best_by": "iqm", "best": summaries[best]["overrides"], "points": summaries,
                          "versions": runs.versions()})
    print(f"pgjax eval: {len(results)} cell(s) of {sweep_dir}, {mode}, {args.episodes} episodes per cell "
          f"(eval seed {args.eval_seed})")
    for r in results:
        print(f"  cell {r['cell']} ({se.point_label(r['overrides'])}, seed {r['seed']}): return "
              f"{r['mean_return']:.2f} +- {r['std_return']:.2f}")
    for i, p in enumerate(summaries):
        mark = "  <- best by IQM" if i == best and len(summaries) > 1 else ""
        print(f"  grid point {p['label']}: IQM {p['iqm']:.2f} [{p['iqm_low']:.2f}, {p['iqm_high']:.2f}] over "
              f"{p['n']} seeds (95% bootstrap CI){mark}")
    print(f"results: {sweep_dir / se.EVAL_DIR}/, summary: {out}")
    return 0


def save_gif(loaded: LoadedRun, index: int, args) -> tuple[Path, float]:
    """Record evaluation episode `args.gif_episode` of seed `index` and write it as a GIF."""
    import jax
    import numpy as np

    from pgjax.reports.animation import save_episode_gif
    from pgjax.runtime.evaluation import eval_env, policy_act_fn, record_episode

    env = eval_env(loaded.trainer, args.episodes, args.max_steps)
    params, obs_stats = jax.tree.map(lambda x: x[index], (loaded.state.params, loaded.state.obs_stats))
    act = policy_act_fn(loaded.trainer, params, obs_stats, not args.stochastic)
    record = jax.jit(lambda key: record_episode(env, act, key, args.gif_episode))(jax.random.PRNGKey(args.eval_seed))
    length = int(record.length)
    rewards = np.asarray(record.rewards[:length])
    mode = mode_name(not args.stochastic)
    title = f"{loaded.algo} {loaded.config.env_id} ({mode})"
    path = save_episode_gif(loaded.config.env_id, np.asarray(record.observations[: length + 1]), rewards,
                            args.gif, max_frames=args.gif_frames, title=title)
    return path, float(rewards.sum())
