"""`pgjax sweep`: seeds x hyper-parameter grid, batched and sharded, resumable."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from pgjax import config as cfg
from pgjax.commands import (
    SEEDS_HELP,
    add_config_arguments,
    int_at_least,
    load_config_values,
    memory_size,
    output_folder,
    parse_seeds,
)
from pgjax.runtime.eval_modes import DEFAULT_MODE, GREEDY, STOCHASTIC


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of hyper-parameters x seeds as one sharded, resumable batch",
        description=(
            "Every combination of the --grid values, for every seed. Grid keys under hparams. are "
            "traced (one compiled program, one vmapped batch); other keys change shapes and form "
            "groups compiled once each. Cells are sharded over all devices, split into launches "
            "that fit --memory-limit, and written one file each to SWEEP_DIR/cells/ as they finish. "
            "`--resume SWEEP_DIR` skips finished cells, with every setting of the sweep (a flag that "
            "contradicts one is refused); the results equal an uninterrupted sweep's. Ctrl-C or SIGTERM stops "
            "after the current chunk (again: at once), keeps the finished cells and exits with 130 or 143."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="a grid axis, e.g. hparams.learning_rate=1e-4,3e-4 or 'hidden_sizes=[[32],[64,64]]' (repeatable)")
    parser.add_argument("--seeds", type=parse_seeds, default=None, help=f"per grid point, {SEEDS_HELP}")
    parser.add_argument("--root-seed", type=int, default=None,
                        help="root PRNG seed (default 0); seed s uses fold_in(PRNGKey(root), s)")
    parser.add_argument("--out", type=output_folder("--out"), default=None, help="folder that receives the sweep folder (default runs/)")
    parser.add_argument("--resume", type=Path, default=None, metavar="SWEEP_DIR",
                        help="finish the sweep in SWEEP_DIR with every setting it was started with")
    parser.add_argument("--width", type=int_at_least(1, "--width"), default=None,
                        help="cells per vmap group (default 8); results are bit-identical for a given width "
                             "whatever the devices or memory chunks")
    parser.add_argument("--memory-limit", type=memory_size, default=None,
                        help="bytes per device for one launch, e.g. 512MB (default: the device's, or half the free RAM)")
    parser.add_argument("--chunks", type=int_at_least(1, "--chunks"), default=None,
                        help="compiled chunks of updates per launch (progress, evaluation points); default 10")
    parser.add_argument("--eval-every", type=int_at_least(0, "--eval-every"), default=None, metavar="K",
                        help="evaluate every cell after every K-th compiled chunk and after the last, on --eval-episodes "
                             "episodes from the evaluation seed shared by all cells, into its cell file (pgjax plot "
                             "SWEEP_DIR --metric eval_return draws them); default 0: no evaluation during training "
                             "(pgjax eval SWEEP_DIR evaluates the kept final policies)")
    parser.add_argument("--eval-episodes", type=int_at_least(1, "--eval-episodes"), default=None,
                        help="episodes per evaluation with --eval-every (default 32; eval seed 10000)")
    parser.add_argument("--eval-mode", default=None, choices=[GREEDY, STOCHASTIC],
                        help=f"actions in the evaluations: the policy's mode (greedy) or sampled (default {DEFAULT_MODE})")
    parser.add_argument("--log", type=_sinks, default=None, metavar="SINKS",
                        help="where metrics go besides the cell files, comma-separated from csv, tensorboard, wandb "
                             "(default: csv, or the sweep's own when resumed). One series per cell, its grid values "
                             "and config as hyper-parameters; tensorboard and wandb need: pip install 'pgjax[track]'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--save-state", action="store_true",
                        help="also keep each cell's whole final training state (cells/cell-N.state.npz); every cell "
                             "keeps its policy (cells/cell-N.policy.npz) for pgjax eval in any case")


def _sinks(text: str) -> list[str]:
    from pgjax.records.tracking import TrackingError, parse_sinks

    try:
        return parse_sinks(text)
    except TrackingError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _open_tracker(sweep_dir: Path, spec: dict, sinks: list[str]):
    """The sweep's tracker and its `on_metrics`/`on_eval`/`on_cell` hooks: a series per cell,
    opened at its launch's first chunk and finished when its cell file is written."""
    from pgjax.records.tracking import Series, flat_hparams, open_tracker
    from pgjax.runtime import sharding

    tracker = open_tracker(sinks if sharding.is_writer() else ["csv"], sweep_dir, sweep_dir.name)

    def series(cell) -> Series:
        grid = flat_hparams({"grid": cell.overrides})
        return Series(cell.name, {"algo": spec["algo"], "cell": cell.index, "group": cell.group, "seed": cell.seed,
                                  "root_seed": spec["root_seed"], "vmap_width": spec["width"], **grid,
                                  **flat_hparams(cfg.to_dict(cell.config), "config.")})

    def on_metrics(cells, metrics):
        tracker.open(series(c) for c in cells)
        tracker.log_chunk([c.name for c in cells], metrics)

    def on_eval(cells, env_steps, values):
        tracker.log_eval([c.name for c in cells], [env_steps] * len(cells), values)

    return tracker, on_metrics, on_eval, lambda cell: tracker.finish([cell.name])


def _spec(args) -> tuple[Path | None, dict]:
    """`(SWEEP_DIR or None, sweep.json's contents)`: the resumed sweep's, or a new one's from
    the flags. Raises ConfigError for a flag that contradicts the resumed sweep."""
    from pgjax.runtime import sweep as sw
    from pgjax.runtime.eval_modes import sampling_refused
    from pgjax.runtime.experiment import check_seeds
    from pgjax.runtime.loading import algorithm

    given = {key: getattr(args, key) for key in sw.SWEEP_SETTINGS}
    if args.resume is not None:
        if args.config is not None or args.overrides or args.grid or args.env or args.algo:
            raise cfg.ConfigError("--resume takes everything from SWEEP_DIR/sweep.json; drop the config arguments")
        if args.out is not None:
            raise cfg.ConfigError(f"--out {args.out}: a resumed sweep stays in its folder {args.resume}; drop --out")
        return args.resume, sw.resumed_spec(args.resume, given)
    settings = {key: default if given[key] is None else given[key] for key, (_, default) in sw.SWEEP_SETTINGS.items()}
    try:
        check_seeds(settings["root_seed"], settings["seeds"])
    except ValueError as exc:
        raise cfg.ConfigError(str(exc)) from None
    algo, values = load_config_values(args.algo, args.config, args.env, args.overrides)
    refused = sampling_refused("--eval-mode stochastic", algorithm(algo))
    if settings["eval_mode"] == STOCHASTIC and refused:
        raise cfg.ConfigError(refused)
    if not settings["eval_every"] and (args.eval_episodes is not None or args.eval_mode is not None):
        print("pgjax sweep: note: --eval-episodes and --eval-mode set the evaluations of --eval-every K; "
              "without it the cells are not evaluated during training", file=sys.stderr)
    return None, {"algo": algo, "base": values, "grid": sw.parse_grid(args.grid, args.overrides), **settings,
                  "save_state": args.save_state, "log": args.log or ["csv"]}


def narrow_width_note(platform: str, width: int, widest_group: int) -> str | None:
    """Why a sweep on an accelerator wants a wider `--width`, or None.

    A group's cells run `width` at a time, one vmap after another. On CPU that costs little
    (one group per core); an accelerator runs a wider vmap nearly as fast as a narrow one
    (on an H200, 64 PPO CartPole seeds trained 7x faster as one vmap of 64 than in vmaps of 8).
    """
    if platform == "cpu" or widest_group <= width:
        return None
    return (f"on {platform} the cells run --width {width} at a time; a wider vmap costs an accelerator little "
            f"(64 PPO cells: 7x faster in one vmap of 64 than in 8s on an H200), so consider --width {widest_group} "
            "if it fits memory (a cell's numbers depend on the width)")


def _platform() -> str:
    import jax

    return jax.default_backend()


def jax_process_index() -> int:
    import jax

    return jax.process_index()


def run(args) -> int:
    from pgjax.records import runs
    from pgjax.records.tracking import TrackingError, require
    from pgjax.runtime import sharding
    from pgjax.runtime import sweep as sw
    from pgjax.runtime.resumable import Interrupted, continue_with

    try:
        sweep_dir, spec = _spec(args)
        sinks = args.log or spec.get("log", ["csv"])  # a resumed sweep keeps its sinks unless --log is given
        require(sinks)
        groups = sw.plan(spec["algo"], spec["base"], spec["grid"], spec["seeds"])  # validates every cell
        limit = sw.parse_bytes(args.memory_limit) if args.memory_limit else None
    except (cfg.ConfigError, TrackingError) as err:
        if isinstance(err, TrackingError):
            print(f"pgjax sweep: {err}", file=sys.stderr)
            return 1
        print(f"pgjax sweep: config error: {err}", file=sys.stderr)
        return 1
    except runs.RunFileError as err:
        print(f"pgjax sweep: {err}", file=sys.stderr)
        return 1
    num_cells = sum(len(g.cells) for g in groups)
    with sw.removed_if_no_cell_finished() as launch:  # Ctrl-C or a refusal before any cell finished
        if sweep_dir is None:  # process 0 makes the folder; other processes (if any) learn its name
            if sharding.is_writer():
                sweep_dir = launch.made = runs.new_run_dir(args.out or Path("runs"),
                                                           f"sweep-{spec['algo']}-{groups[0].config.env_id}")
                runs.write_json(sweep_dir / "sweep.json", {**spec, "versions": runs.versions()})
            sweep_dir = Path(sharding.text_from_writer(str(sweep_dir)))
        settings = sw.SweepSettings(width=spec["width"], max_chunks=spec["chunks"], memory_limit=limit,
                                    save_state=bool(spec.get("save_state")) or args.save_state,
                                    eval_every=spec["eval_every"], eval_episodes=spec["eval_episodes"],
                                    eval_mode=spec["eval_mode"])
        fewest = min(g.config.num_updates for g in groups)
        if spec["chunks"] > fewest:  # `experiment.chunk_sizes` never makes an empty chunk
            print(f"pgjax sweep: note: --chunks {spec['chunks']} is more than the {fewest} updates of a group; "
                  "such groups run chunks of one update", file=sys.stderr)
        note = narrow_width_note(_platform(), spec["width"], max(len(g.cells) for g in groups))
        if note and args.resume is None and sharding.is_writer():
            print(f"pgjax sweep: note: {note}", file=sys.stderr)
        total_steps = sum(len(g.cells) * g.config.num_updates * g.config.env_steps_per_update for g in groups)
        print(f"pgjax sweep: {spec['algo']}, {num_cells} cells in {len(groups)} compiled group(s) -> {sweep_dir}")
        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=total_steps, unit="step", unit_scale=True, desc="sweep", dynamic_ncols=True)
        tracker, on_metrics, on_eval, on_cell = _open_tracker(sweep_dir, spec, sinks)
        start = time.perf_counter()
        try:
            stats = sw.run_sweep(sweep_dir, spec["algo"], groups, spec["root_seed"], settings,
                                 on_progress=(lambda steps: bar.update(steps)) if bar is not None else None,
                                 on_metrics=on_metrics if tracker else None, on_eval=on_eval if tracker else None,
                                 on_cell=on_cell)
        except TrackingError as err:
            print(f"pgjax sweep: {err}; finished cells are kept, {continue_with(sweep_dir, 'sweep')}", file=sys.stderr)
            return 1
        except MemoryError as err:
            if launch.made is not None and sw.no_cell_finished(launch.made):
                launch.discard = True  # removed as the launch ends, after the tracker has closed its files
                print(f"pgjax sweep: {err} (no cell finished; {sweep_dir} removed)", file=sys.stderr)
            else:
                print(f"pgjax sweep: {err} (finished cells are kept: raise --memory-limit and "
                      f"{continue_with(sweep_dir, 'sweep')})", file=sys.stderr)
            return 1
        except Interrupted as err:
            if bar is not None:  # the bar's line ends before the message
                bar.close()
                bar = None
            what = f"interrupted by {signal.Signals(err.signum).name}"
            if not sharding.is_writer():  # process 0 keeps the files and says how to continue
                print(f"pgjax sweep: {what}; stopped with process 0", file=sys.stderr)
                return 128 + err.signum
            finished = len(sw.cell_record_paths(sweep_dir))
            print(f"pgjax sweep: {what}; {finished} of {num_cells} cells finished and kept in {sweep_dir / 'cells'}; "
                  f"{continue_with(sweep_dir, 'sweep')}", file=sys.stderr)
            return 128 + err.signum
        finally:
            tracker.close()
            if bar is not None:
                bar.close()
    if not sharding.is_writer():
        print(f"done: process {jax_process_index()} computed its share of {stats['cells_run']} cells; process 0 "
              "writes the files")
        return 0
    records = sw.read_cells(sweep_dir)
    table = sw.write_results_table(sweep_dir, records) if sharding.is_writer() else None
    diverged = [r["cell"] for r in records if r["diverged"]]
    for g in stats["groups"]:
        print(f"group {g['group']} {g['static'] or ''}: {g['cells_per_launch']} cells per launch, about "
              f"{g['bytes_per_device'] / 1e6:.1f} MB per device (limit {g['limit'] / 1e6:.0f} MB)")
    print(f"done in {time.perf_counter() - start:.1f} s: {stats['cells_run']} cells run, "
          f"{stats['cells_skipped']} already done, {stats['launches']} launches; results: {table}")
    if diverged:
        print(f"diverged cells (non-finite parameters or loss): {diverged}", file=sys.stderr)
    return 0
