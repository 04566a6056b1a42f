"""`pgjax plot`: learning curves (IQM/mean/median across seeds with bootstrap bands) for one
or several runs on one axis, and optionally their final performance with intervals.

A RUN_DIR is a folder with `metrics.csv` (what `pgjax train` writes), or a folder whose
subfolders hold such runs (a sweep, or a folder of runs): each run found becomes a curve.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

EVAL_FILES = ("eval_greedy.json", "eval_stochastic.json")  # written by `pgjax eval`
TAIL_FRACTION = 0.1  # the training score of a seed: mean of its last 10% of updates


class PlotError(Exception):
    """Bad input for `pgjax plot` (missing folder, unknown metric, ...): exit code 1."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot learning curves with bootstrap confidence bands (PNG + CSV/JSON numbers)",
        description=(
            "Learning curves of one or more runs on one axis: each seed's metric is smoothed, then "
            "the IQM (or mean/median) across seeds is drawn with a percentile bootstrap confidence "
            "band. A RUN_DIR holds metrics.csv (pgjax train) or subfolders that do (a sweep). "
            "Writes OUT.png and OUT.csv (the plotted numbers); with --final also OUT-final.png and "
            "OUT-final.json (final performance per run: per-seed scores, mean/median/IQM with CIs). "
            "Example: pgjax plot runs/ppo-CartPole-v1-* runs/a2c-CartPole-v1-* --final --out cartpole.png"
        ),
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run folder(s) or sweep folder(s)")
    parser.add_argument("--metric", default="episode_return", help="metrics.csv column to plot (default episode_return)")
    parser.add_argument("--stat", default="iqm", choices=["iqm", "mean", "median"], help="statistic across seeds (default iqm)")
    parser.add_argument("--confidence", type=float, default=0.95, help="bootstrap confidence level (default 0.95)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    parser.add_argument("--smoothing", type=int, default=None,
                        help="moving-average window in updates (default: 2%% of the run's updates; 1 = none)")
    parser.add_argument("--labels", default=None, help="comma-separated curve labels, one per run found")
    parser.add_argument("--out", type=Path, default=None,
                        help="output PNG (default RUN_DIR/curves-METRIC.png for one run, ./compare-METRIC.png otherwise)")
    parser.add_argument("--final", action="store_true", help="also plot final performance per run with intervals")
    parser.add_argument("--final-source", default="auto", choices=["auto", "eval", "train"],
                        help="final score per seed: 'eval' (pgjax eval results, else the evaluation "
                             "pgjax train ran), 'train' (mean of the metric over the last 10%% of "
                             "updates), 'auto' (eval if available for episode_return, else train)")


def find_runs(path: Path) -> list[Path]:
    """`path` itself if it holds metrics.csv, else every folder below it that does (sorted)."""
    if not path.exists():
        raise PlotError(f"run folder {path} does not exist")
    if not path.is_dir():
        raise PlotError(f"{path} is not a folder: give a run folder (with metrics.csv) or a sweep folder")
    if (path / "metrics.csv").is_file():
        return [path]
    found = sorted(p.parent for p in path.rglob("metrics.csv"))
    if not found:
        raise PlotError(f"no metrics.csv in {path} or its subfolders: is it a pgjax run folder?")
    return found


def run_label(run_dir: Path) -> str:
    """`algo env_id` from config.json, else the folder name."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        return f"{saved['algo']} {saved['config']['env_id']}"
    except (OSError, KeyError, ValueError):
        return run_dir.name


def labels_for(runs: list[Path], given: str | None) -> list[str]:
    if given is not None:
        labels = [s.strip() for s in given.split(",")]
        if len(labels) != len(runs):
            raise PlotError(f"--labels has {len(labels)} labels for {len(runs)} runs found: "
                            + ", ".join(str(r) for r in runs))
        return labels
    labels = [run_label(r) for r in runs]
    if len(set(labels)) < len(labels):  # e.g. a sweep over one algo and env: name by folder
        common = Path(*_common_parts(runs))
        labels = [str(r.relative_to(common)) if r != common else r.name for r in runs]
    return labels


def _common_parts(paths: list[Path]) -> tuple[str, ...]:
    parts = [p.resolve().parts for p in paths]
    common = []
    for items in zip(*parts):
        if len(set(items)) > 1:
            break
        common.append(items[0])
    return tuple(common)


def train_tail_scores(by_seed: dict, metric: str) -> dict[int, float]:
    """Each seed's mean of `metric` over its last 10% of updates (nan if none finite)."""
    out = {}
    for seed, cols in sorted(by_seed.items()):
        values = cols[metric]
        tail = values[-max(1, int(len(values) * TAIL_FRACTION)):]
        tail = tail[np.isfinite(tail)]
        out[seed] = float(tail.mean()) if tail.size else float("nan")
    return out


def eval_scores(run_dir: Path) -> tuple[dict[int, float], str] | None:
    """Per-seed mean evaluation return: from `pgjax eval` files, else `pgjax train`'s summary."""
    for name in EVAL_FILES:
        path = run_dir / name
        if path.is_file():
            saved = json.loads(path.read_text())
            return {int(s): float(v["mean_return"]) for s, v in saved["per_seed"].items()}, name
    summary = run_dir / "summary.json"
    if summary.is_file():
        saved = json.loads(summary.read_text())
        if saved.get("eval_return_mean"):
            return {int(s): float(v) for s, v in saved["eval_return_mean"].items()}, "summary.json eval_return_mean"
    return None


def final_scores(run_dir: Path, by_seed: dict, metric: str, source: str) -> tuple[dict[int, float], str]:
    if source != "train" and metric == "episode_return":
        found = eval_scores(run_dir)
        if found is not None:
            return found
    if source == "eval":
        raise PlotError(f"--final-source eval: {run_dir} has no evaluation results for {metric} "
                        f"(run `pgjax eval {run_dir}`; evaluation scores exist only for episode_return)")
    return train_tail_scores(by_seed, metric), f"training {metric}, mean of the last 10% of updates"


def default_out(runs_given: list[Path], metric: str) -> Path:
    if len(runs_given) == 1 and (runs_given[0] / "metrics.csv").is_file():
        return runs_given[0] / f"curves-{metric}.png"
    return Path(f"compare-{metric}.png")


def run(args) -> int:
    try:
        return _plot(args)
    except PlotError as err:
        print(f"pgjax plot: {err}", file=sys.stderr)
        return 1


def _plot(args) -> int:
    from pgjax import plotting

    if not 0.0 < args.confidence < 1.0:
        raise PlotError(f"--confidence {args.confidence} must be in (0, 1)")
    if args.resamples < 1 or (args.smoothing is not None and args.smoothing < 1):
        raise PlotError("--resamples and --smoothing must be positive integers")
    found = [run_dir for path in args.run_dirs for run_dir in find_runs(path)]
    labels = labels_for(found, args.labels)
    out = args.out or default_out(args.run_dirs, args.metric)
    # Everything is computed (and every input error found) before any file is written.
    curves, metrics = collect_curves(args, found, labels)
    final = collect_final(args, found, labels, metrics) if args.final else None

    stat = plotting.STAT_LABELS[args.stat]
    seeds = sorted({len(m) for m in metrics})
    band = f"{stat} over {'/'.join(map(str, seeds))} seeds; band: {args.confidence:.0%} percentile bootstrap CI"
    png = plotting.plot_curves(curves, out, args.metric.replace("_", " "), args.metric.replace("_", " "), band)
    table = png.with_suffix(".csv")
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "label", "env_steps", args.stat, "low", "high", "num_seeds"])
        for run_dir, curve in zip(found, curves):
            for row in zip(curve.env_steps, curve.estimate, curve.low, curve.high, curve.num_seeds):
                writer.writerow([str(run_dir), curve.label, int(row[0]), *(f"{v:.7g}" for v in row[1:4]), int(row[4])])
    print(f"curves: {png}\nnumbers: {table}")
    if final is not None:
        write_final(args, png, labels, final)
    return 0


def collect_curves(args, found: list[Path], labels: list[str]):
    """`(curves, metrics)`: each run's aggregate curve and its raw per-seed metrics."""
    from pgjax import plotting, runs

    curves, metrics = [], []
    for run_dir, label in zip(found, labels):
        by_seed = runs.read_metrics(run_dir / "metrics.csv")
        try:
            curves.append(plotting.learning_curve(
                by_seed, args.metric, args.stat, args.smoothing, args.confidence, args.resamples,
                label=label, seed=args.bootstrap_seed))
        except KeyError as err:
            raise PlotError(f"{run_dir / 'metrics.csv'}: {err.args[0]}") from None
        except ValueError as err:
            raise PlotError(f"{run_dir / 'metrics.csv'}: {err}") from None
        metrics.append(by_seed)
    return curves, metrics


def collect_final(args, found: list[Path], labels: list[str], metrics: list[dict]) -> list[dict]:
    """Per run: the final score of each seed, and mean/median/IQM with bootstrap intervals."""
    from pgjax import statistics as st

    results = []
    for run_dir, label, by_seed in zip(found, labels, metrics):
        scores, source = final_scores(run_dir, by_seed, args.metric, args.final_source)
        summary = st.summarize(list(scores.values()), args.confidence, args.resamples, args.bootstrap_seed)
        if summary["n"] == 0:
            raise PlotError(f"{run_dir}: no seed has a finite final {args.metric}")
        results.append({"run": str(run_dir), "label": label, "source": source,
                        "per_seed": {str(s): v for s, v in scores.items()}, **summary})
    return results


def write_final(args, png: Path, labels: list[str], results: list[dict]) -> None:
    from pgjax import plotting, runs
    from pgjax import statistics as st

    stat, name = plotting.STAT_LABELS[args.stat], args.stat
    intervals = [st.Interval(r[name], r[f"{name}_low"], r[f"{name}_high"]) for r in results]
    final_png = png.with_name(png.stem + "-final.png")
    xlabel = f"final {args.metric.replace('_', ' ')} ({stat}, {args.confidence:.0%} bootstrap CI)"
    plotting.plot_final(labels, intervals, final_png, xlabel, "per-seed scores: " + "; ".join(sorted({r["source"] for r in results})))
    final_json = final_png.with_suffix(".json")
    runs.write_json(final_json, {"metric": args.metric, "statistic": name, "runs": results})
    print(f"final: {final_png}\nnumbers: {final_json}")
    for r in results:
        print(f"  {r['label']}: {stat} {r[name]:.4g} [{r[name + '_low']:.4g}, {r[name + '_high']:.4g}] "
              f"over {r['n']} seeds ({r['source']})")
