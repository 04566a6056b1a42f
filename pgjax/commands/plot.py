"""`pgjax plot`: learning curves (IQM/mean/median across seeds with bootstrap bands) for one
or several runs on one axis, and optionally their final performance with intervals.

A RUN_DIR is a run folder (`metrics.csv`, what `pgjax train` writes), a sweep folder
(`cells/`, what `pgjax sweep` writes: one curve per grid point, its cells' seeds as the
seeds), or a folder holding such folders: every run or grid point found becomes a curve.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pgjax.commands import int_at_least
from pgjax.reports import statistics as st
from pgjax.reports.statistics import MIN_RESAMPLES
from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED, DEFAULT_MODE, GREEDY, STOCHASTIC

# summary.json files from before the evaluation mode was recorded hold a stochastic evaluation.
LEGACY_SUMMARY_MODE = STOCHASTIC


class PlotError(Exception):
    """Bad input for `pgjax plot` (missing folder, unknown metric, ...): exit code 1."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot learning curves with bootstrap confidence bands (PNG + CSV/JSON numbers)",
        description=(
            "Learning curves of one or more runs on one axis: each seed's metric is smoothed, then "
            "the IQM (or mean/median) across seeds is drawn with a percentile bootstrap confidence "
            "band. A RUN_DIR is a run folder (pgjax train), a sweep folder (pgjax sweep: one curve per "
            "grid point) or a folder of those. "
            "Writes OUT.png and OUT.csv (the plotted numbers); with --final also OUT-final.png and "
            "OUT-final.json (final performance per run: per-seed scores, mean/median/IQM with CIs). "
            "Example: pgjax plot runs/ppo-CartPole-v1-* runs/a2c-CartPole-v1-* --final --out cartpole.png"
        ),
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run folder(s) or sweep folder(s)")
    parser.add_argument("--metric", default="episode_return",
                        help="metrics.csv column to plot (default episode_return); eval_return, eval_length or "
                             "eval_truncated plot the evaluations during training (eval.csv, pgjax train --eval-every; a "
                             "sweep's cell files, pgjax sweep --eval-every)")
    parser.add_argument("--stat", default="iqm", choices=["iqm", "mean", "median"], help="statistic across seeds (default iqm)")
    parser.add_argument("--confidence", type=float, default=0.95, help="bootstrap confidence level (default 0.95)")
    parser.add_argument("--resamples", type=int, default=2000,
                        help=f"bootstrap resamples, at least {MIN_RESAMPLES} (default 2000)")
    parser.add_argument("--bootstrap-seed", type=int_at_least(0, "--bootstrap-seed", sys.maxsize, "NumPy's seeds"),
                        default=0, help="seed of the bootstrap resampling (default 0)")
    parser.add_argument("--smoothing", type=int, default=None,
                        help="moving-average window in updates (default: 2%% of the run's updates; 1 = none)")
    parser.add_argument("--labels", default=None, help="comma-separated curve labels, one per curve (run or grid point) found")
    parser.add_argument("--out", type=Path, default=None,
                        help="output PNG (default RUN_DIR/curves-METRIC.png for one run, ./compare-METRIC.png otherwise)")
    parser.add_argument("--final", action="store_true", help="also plot final performance per run with intervals")
    parser.add_argument("--final-source", default="auto", choices=["auto", "eval", "train"],
                        help="final score per seed: 'eval' (pgjax eval results, else the evaluation "
                             "pgjax train ran), 'train' (mean of the metric over the last 10%% of "
                             "updates), 'auto' (eval if available for episode_return, else train)")
    parser.add_argument("--eval-mode", default=DEFAULT_MODE, choices=[GREEDY, STOCHASTIC],
                        help=f"which evaluation results --final uses (default {DEFAULT_MODE}, as pgjax train and "
                             "pgjax eval); runs never mix modes, and a bar from training returns says so")


class Source(NamedTuple):
    """One curve's data: a run folder, or one grid point of a sweep (its cells are the seeds)."""

    path: Path  # the run folder, or the sweep folder
    label: str  # default label
    by_seed: dict  # seed -> metric name -> [U] array, as `runs.read_metrics` returns
    is_run: bool  # a run folder (may hold evaluation results), not a sweep grid point
    diverged: int = 0  # sweep cells flagged diverged (non-finite values are dropped pointwise)
    cells: tuple = ()  # sweep grid point: (seed, cell number) of each of its cells
    protocol: dict | None = None  # evaluations during training (eval.csv): mode, episodes, eval seed


PROTOCOL_KEYS = ("mode", "episodes", "eval_seed")


def protocol_label(protocol: dict | None) -> str:
    """`"greedy, 32 episodes, eval seed 10000"`: how an evaluation was run (`?` where unknown)."""
    p = protocol or {}

    def known(key):
        return "?" if p.get(key) is None else p[key]

    return f"{known('mode')}, {known('episodes')} episodes, eval seed {known('eval_seed')}"


def training_eval_protocol(run_dir: Path) -> dict:
    """The protocol of the evaluations `pgjax train` ran (eval.csv, summary.json): mode and
    episodes from config.json, the seed from summary.json (training always uses the default)."""
    def read(name):
        try:
            return json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            return {}

    config, summary = read("config.json"), read("summary.json")
    return {"mode": summary.get("eval_mode", config.get("eval_mode")),
            "episodes": summary.get("eval_episodes", config.get("eval_episodes")),
            "eval_seed": summary.get("eval_seed", DEFAULT_EVAL_SEED)}


def find_sources(path: Path, metric: str = "episode_return") -> list[Source]:
    """The curves under `path`: a run folder (metrics.csv; eval.csv for an `eval_` metric,
    the evaluations during training), a sweep folder (sweep.json and cells/, one curve per
    grid point), or a folder holding any of those (sorted)."""
    from pgjax.records import runs

    if (path / "metrics.csv").is_file():  # a run folder: a deleted config.json back from a checkpoint's copy
        runs.recover_run_file(path, "pgjax plot", required=False)
    if metric.startswith("eval_") and (path / runs.EVAL_FILE).is_file():
        return [Source(path, run_label(path), runs.read_metrics(path / runs.EVAL_FILE), True,
                       protocol=training_eval_protocol(path))]
    if not path.exists():
        raise PlotError(f"run folder {path} does not exist")
    if not path.is_dir():
        raise PlotError(f"{path} is not a folder: give a run folder (with metrics.csv) or a sweep folder")
    if (path / "metrics.csv").exists() and not (path / "metrics.csv").is_file():
        raise PlotError(f"{path / 'metrics.csv'} is not a file (a folder?): the run's metrics are lost there")
    if (path / "metrics.csv").is_file():
        if metric.startswith("eval_"):  # no eval.csv (checked above): no evaluations during training
            raise PlotError(f"--metric {metric}: {path} has no {runs.EVAL_FILE}, so no evaluations during training "
                            "(pgjax train --eval-episodes N > 0 writes it); plot a training metric, or pgjax eval "
                            f"{path} for its final policy")
        return [Source(path, run_label(path), runs.read_metrics(path / "metrics.csv"), True)]
    if (path / "cells").is_dir():
        return sweep_sources(path, metric)
    below = sorted(({p.parent for p in path.rglob("metrics.csv")} | {p.parent.parent for p in path.rglob("cells/cell-*.json")})
                   - {path})  # (path's own metrics.csv, if any, is not a file: refused above)
    if not below:
        raise PlotError(f"no metrics.csv or sweep cells in {path} or its subfolders: is it a pgjax run folder?")
    return [source for folder in below for source in find_sources(folder, metric)]


def sweep_sources(sweep_dir: Path, metric: str = "episode_return") -> list[Source]:
    """One source per grid point of a `pgjax sweep` folder; its cells (one per seed) are the
    seeds. An `eval_` metric reads each cell's evaluations during training (`sweep --eval-every`)."""
    from pgjax.records import runs
    from pgjax.runtime.sweep import cell_record_paths
    from pgjax.runtime.sweep_eval import point_label

    records = [runs.read_json(p) for p in cell_record_paths(sweep_dir)]
    if not records:
        raise PlotError(f"sweep folder {sweep_dir} has no finished cells yet (cells/ is empty)")
    evaluated = metric.startswith("eval_")
    if evaluated:
        missing = [r["cell"] for r in records if "eval_metrics" not in r]
        if missing:
            raise PlotError(f"--metric {metric}: cells {', '.join(map(str, missing))} of {sweep_dir} were not evaluated "
                            "during training (sweep without --eval-every K); pgjax eval "
                            f"{sweep_dir} evaluates their final policies (pgjax plot --final)")
    points: dict[str, list[dict]] = {}
    for record in records:
        points.setdefault(json.dumps(record["overrides"], sort_keys=True), []).append(record)
    sources = []
    for cells in points.values():
        first = cells[0]
        label = point_label(first["overrides"]) if first["overrides"] else f"{first['algo']} {first['config']['env_id']}"
        by_seed = {
            int(c["seed"]): {k: np.array([np.nan if v is None else v for v in vals], float)
                             for k, vals in c["eval_metrics" if evaluated else "metrics"].items()}
            for c in cells
        }
        protocol = {k: first["eval_protocol"].get(k) for k in PROTOCOL_KEYS} if evaluated else None
        sources.append(Source(sweep_dir, label, by_seed, False, sum(bool(c.get("diverged")) for c in cells),
                              tuple((int(c["seed"]), int(c["cell"])) for c in cells), protocol))
    return sources


def run_label(run_dir: Path) -> str:
    """`algo env_id` from config.json, else the folder name."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        return f"{saved['algo']} {saved['config']['env_id']}"
    except (OSError, KeyError, ValueError):
        return run_dir.name


def labels_for(sources: list[Source], given: str | None) -> list[str]:
    """`--labels`, else the default labels; where those repeat, the folder tells them apart."""
    if given is not None:
        labels = [s.strip() for s in given.split(",")]
        if len(labels) != len(sources):
            raise PlotError(f"--labels has {len(labels)} labels for {len(sources)} curves found: "
                            + ", ".join(f"{s.path} ({s.label})" for s in sources))
        return labels
    labels = [s.label for s in sources]
    if len(set(labels)) < len(labels):  # e.g. several runs of one algo and env: name by folder
        paths = [s.path.resolve() for s in sources]
        common = Path(*_common_parts(paths)) if len(set(paths)) > 1 else paths[0].parent
        labels = [str(p.relative_to(common)) if s.is_run else f"{p.relative_to(common)} {s.label}"
                  for p, s in zip(paths, sources)]
    return labels


def _common_parts(paths: list[Path]) -> tuple[str, ...]:
    common = []
    for items in zip(*(p.parts for p in paths)):
        if len(set(items)) > 1:
            break
        common.append(items[0])
    return tuple(common)


def train_tail_scores(by_seed: dict, metric: str) -> dict[int, float]:
    """Each seed's mean of `metric` over its last 10% of updates (nan if none finite)."""
    out = {}
    for seed, cols in sorted(by_seed.items()):
        values = cols[metric]
        tail = values[-max(1, len(values) // 10):]
        tail = tail[np.isfinite(tail)]
        out[seed] = float(tail.mean()) if tail.size else float("nan")
    return out


def eval_scores(run_dir: Path, mode: str = DEFAULT_MODE) -> tuple[dict[int, float], str, dict] | None:
    """Per-seed mean evaluation return in `mode` ("greedy" or "stochastic"), where it came
    from and its protocol (mode, episodes, eval seed): from `pgjax eval`'s
    `eval_<mode>.json`, else `pgjax train`'s summary.json if it evaluated in that mode."""
    path = run_dir / f"eval_{mode}.json"
    if path.is_file():
        saved = _read_json(path)
        protocol = {"mode": saved.get("mode", mode), "episodes": saved.get("episodes_per_seed"),
                    "eval_seed": saved.get("eval_seed")}
        return {int(s): float(v["mean_return"]) for s, v in saved["per_seed"].items()}, path.name, protocol
    summary = run_dir / "summary.json"
    if summary.is_file():
        saved = _read_json(summary)
        if saved.get("eval_return_mean") and saved.get("eval_mode", LEGACY_SUMMARY_MODE) == mode:
            protocol = {"mode": mode, "episodes": saved.get("eval_episodes"), "eval_seed": saved.get("eval_seed")}
            return ({int(s): float(v) for s, v in saved["eval_return_mean"].items()}, "summary.json eval_return_mean",
                    protocol)
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PlotError(f"{path} is not readable JSON ({err}); delete it or rerun what wrote it") from None


def sweep_eval_scores(source: Source, mode: str) -> tuple[dict[int, float], str, dict] | None:
    """Per-seed mean evaluation return of a sweep grid point's cells in `mode` (`pgjax eval
    SWEEP_DIR` writes them to eval/), if every cell of the point has one, with their protocol.
    Cells evaluated with different protocols (episodes, eval seed, time limit) are not pooled
    into one statistic: a `PlotError` names them and the command that evaluates them alike."""
    from pgjax.records import runs
    from pgjax.runtime.sweep_eval import read_cell_evals

    try:
        found = read_cell_evals(source.path, mode)
    except runs.RunFileError as err:
        raise PlotError(f"{err}; delete it or run pgjax eval {source.path} again") from None
    if not source.cells or any(cell not in found for _, cell in source.cells):
        return None
    protocols: dict[tuple, list[int]] = {}
    for _, cell in source.cells:
        r = found[cell]
        protocols.setdefault((r.get("episodes"), r.get("eval_seed"), r.get("max_episode_steps")), []).append(cell)
    if len(protocols) > 1:
        listed = "; ".join(f"cells {', '.join(map(str, cells))}: {episodes} episodes, eval seed {seed}"
                           + (f", time limit {limit}" if limit is not None else "")
                           for (episodes, seed, limit), cells in protocols.items())
        raise PlotError(f"{source.path} grid point {source.label}: its cells' {mode} evaluations used different "
                        f"protocols ({listed}), so one statistic over them would mix them; evaluate them alike with "
                        f"`pgjax eval {source.path}{' --stochastic' if mode == STOCHASTIC else ''} --episodes N "
                        "--eval-seed S`")
    (episodes, seed, _), = protocols
    protocol = {"mode": mode, "episodes": episodes, "eval_seed": seed}
    return {seed: float(found[cell]["mean_return"]) for seed, cell in source.cells}, f"eval/cell-*-{mode}.json", protocol


def final_scores(source: Source, metric: str, choice: str,
                 mode: str = DEFAULT_MODE) -> tuple[dict[int, float], str, str, dict | None]:
    """Each seed's final score, where it came from, its kind (`"<mode> evaluation"` or
    `"training"`) and the evaluation protocol (None for training scores), see
    --final-source and --eval-mode."""
    if choice != "train" and metric == "episode_return":
        found = eval_scores(source.path, mode) if source.is_run else sweep_eval_scores(source, mode)
        if found is not None:
            scores, origin, protocol = found
            return scores, origin, f"{mode} evaluation", protocol
    if choice == "eval":
        other = STOCHASTIC if mode == GREEDY else GREEDY
        hint = (f"it has {other} results only: add --eval-mode {other}, or run `pgjax eval {source.path}"
                f"{' --stochastic' if mode == STOCHASTIC else ''}`"
                if source.is_run and eval_scores(source.path, other) else f"run `pgjax eval {source.path}"
                f"{' --stochastic' if mode == STOCHASTIC else ''}`")
        what = "" if source.is_run else f" for every cell of grid point {source.label}"
        raise PlotError(f"--final-source eval: {source.path} has no {mode} evaluation results{what} for {metric} "
                        f"({hint}; evaluation scores exist only for episode_return)")
    return (train_tail_scores(source.by_seed, metric), f"training {metric}, mean of the last 10% of updates", "training",
            None)


def default_out(paths: list[Path], metric: str) -> Path:
    if len(paths) == 1 and ((paths[0] / "metrics.csv").is_file() or (paths[0] / "cells").is_dir()):
        return paths[0] / f"curves-{metric}.png"
    return Path(f"compare-{metric}.png")


IMAGE_SUFFIXES = (".png", ".pdf", ".svg")


def output_path(out: Path) -> Path:
    """The figure's file: `--out x` is `x.png` (said so, as written); another suffix than an
    image format's is refused; the folder must be writable (a read-only run folder is named)."""
    import os

    from pgjax.commands import _unwritable

    if not out.suffix:
        out = out.with_name(out.name + ".png")
    elif out.suffix.lower() not in IMAGE_SUFFIXES:
        raise PlotError(f"--out {out}: the file name must end in {', '.join(IMAGE_SUFFIXES)} (or have no suffix: .png)")
    if out.is_dir():
        raise PlotError(f"--out {out}: is a folder; give a file name")
    folder = out.parent if out.parent.exists() else None
    reason = (None if os.access(folder, os.W_OK | os.X_OK) else f"{folder} is not writable") if folder else _unwritable(out)
    if reason:
        raise PlotError(f"cannot write {out} ({reason}); give --out a file in a writable folder")
    return out


def run(args) -> int:
    from pgjax.records.runs import RunFileError

    try:
        return _plot(args)
    except (PlotError, RunFileError) as err:  # RunFileError: a damaged metrics.csv, eval.csv or cell file
        print(f"pgjax plot: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the disk filled or the folder became read-only while writing
        print(f"pgjax plot: cannot write the figures or tables: {err.strerror or err} ({err.filename or ''}); "
              "give --out a file in a writable folder", file=sys.stderr)
        return 1


def _plot(args) -> int:
    from pgjax.reports import plotting

    if not 0.0 < args.confidence < 1.0:
        raise PlotError(f"--confidence {args.confidence} must be in (0, 1)")
    problem = st.resamples_problem(args.resamples)
    if problem is not None:
        raise PlotError(f"--resamples {args.resamples} {problem}")
    if args.smoothing is not None and args.smoothing < 1:
        raise PlotError(f"--smoothing {args.smoothing} must be a positive whole number (1 = no smoothing)")
    sources = [source for path in args.run_dirs for source in find_sources(path, args.metric)]
    labels = labels_for(sources, args.labels)
    out = output_path(args.out or default_out(args.run_dirs, args.metric))
    evaluations = [s.protocol for s in sources if s.protocol is not None]
    shared = sorted({protocol_label(p) for p in evaluations})
    if len(shared) > 1:  # evaluations of different protocols on one axis: each curve says which
        labels = [f"{label} [{protocol_label(s.protocol)}]" if s.protocol is not None else label
                  for label, s in zip(labels, sources)]
    # Everything is computed (and every input error found) before any file is written.
    curves = collect_curves(args, sources, labels)
    final = collect_final(args, sources, labels) if args.final else None

    stat = plotting.STAT_LABELS[args.stat]
    seeds = sorted({len(s.by_seed) for s in sources})
    band = f"{stat} over {'/'.join(map(str, seeds))} seeds; band: {args.confidence:.0%} percentile bootstrap CI"
    title = args.metric.replace("_", " ")
    if len(shared) == 1:
        title += f" (evaluation: {shared[0]})"
    png = plotting.plot_curves(curves, out, title, args.metric.replace("_", " "), band)
    table = png.with_suffix(".csv")
    protocol_columns = ["eval_mode", "eval_episodes", "eval_seed"] if evaluations else []
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "label", "env_steps", args.stat, "low", "high", "num_seeds", *protocol_columns])
        for source, curve in zip(sources, curves):
            protocol = [(source.protocol or {}).get(k) for k in PROTOCOL_KEYS] if protocol_columns else []
            for row in zip(curve.env_steps, curve.estimate, curve.low, curve.high, curve.num_seeds):
                writer.writerow([str(source.path), curve.label, int(row[0]), *(f"{v:.7g}" for v in row[1:4]), int(row[4]),
                                 *protocol])
    print(f"curves: {png}\nnumbers: {table}")
    for source, label in zip(sources, labels):
        if source.diverged:
            print(f"  {label}: {source.diverged} of {len(source.by_seed)} cells diverged; their non-finite "
                  "values are left out point by point", file=sys.stderr)
    if final is not None:
        write_final(args, png, labels, final)
    return 0


def collect_curves(args, sources: list[Source], labels: list[str]):
    """Each source's aggregate curve (`plotting.learning_curve`)."""
    from pgjax.reports import plotting

    curves = []
    for source, label in zip(sources, labels):
        try:
            curves.append(plotting.learning_curve(
                source.by_seed, args.metric, args.stat, args.smoothing, args.confidence, args.resamples,
                label=label, seed=args.bootstrap_seed))
        except KeyError as err:
            raise PlotError(f"{source.path} ({source.label}): {err.args[0]}") from None
        except ValueError as err:
            raise PlotError(f"{source.path} ({source.label}): {err}") from None
    return curves


def collect_final(args, sources: list[Source], labels: list[str]) -> list[dict]:
    """Per source: the final score of each seed, and mean/median/IQM with bootstrap intervals."""
    results = []
    for source, label in zip(sources, labels):
        scores, origin, kind, protocol = final_scores(source, args.metric, args.final_source, args.eval_mode)
        summary = st.summarize(list(scores.values()), args.confidence, args.resamples, args.bootstrap_seed)
        if summary["n"] == 0:
            raise PlotError(f"{source.path} ({label}): no seed has a finite final {args.metric}")
        results.append({"run": str(source.path), "label": label, "source": origin, "kind": kind,
                        "protocol": protocol, "protocol_label": None if protocol is None else protocol_label(protocol),
                        "sweep_point": None if source.is_run else source.label,
                        "per_seed": {str(s): v for s, v in scores.items()}, **summary})
    mark_best_points(results, args.stat)
    return results


def mark_best_points(results: list[dict], stat: str) -> None:
    """In each sweep with several grid points, `best: True` on the point with the highest
    `stat` of its final scores (the others False); a sweep whose points mix evaluation and
    training scores is not ranked (None)."""
    by_sweep: dict[str, list[dict]] = {}
    for r in results:
        if r["sweep_point"] is not None:
            by_sweep.setdefault(r["run"], []).append(r)
    for points in by_sweep.values():
        comparable = len(points) > 1 and len({(p["kind"], p["protocol_label"]) for p in points}) == 1
        values = [p[stat] if p[stat] is not None else -np.inf for p in points]
        for i, p in enumerate(points):
            p["best"] = (i == int(np.argmax(values))) if comparable else None


def write_final(args, png: Path, labels: list[str], results: list[dict]) -> None:
    from pgjax.records import runs
    from pgjax.reports import plotting

    stat, name = plotting.STAT_LABELS[args.stat], args.stat
    intervals = [st.Interval(r[name], r[f"{name}_low"], r[f"{name}_high"]) for r in results]
    final_png = png.with_name(png.stem + "-final.png")
    # A bar's kind: "training", or its evaluation protocol (mode, episodes, eval seed).
    kinds = [r["kind"] if r["protocol"] is None else f"evaluation: {r['protocol_label']}" for r in results]
    if len(set(kinds)) > 1:  # different kinds or protocols on one axis: every bar says which it is
        labels = [f"{label} [{kind}]" for label, kind in zip(labels, kinds)]
    labels = [f"* {label} (best {name})" if r.get("best") else label for label, r in zip(labels, results)]
    what = kinds[0] if len(set(kinds)) == 1 else "per-bar kind in brackets"
    xlabel = f"final {args.metric.replace('_', ' ')}, {what} ({stat}, {args.confidence:.0%} bootstrap CI)"
    plotting.plot_final(labels, intervals, final_png, xlabel, "per-seed scores: " + "; ".join(sorted({r["source"] for r in results})))
    final_json = final_png.with_suffix(".json")
    protocols = sorted({r["protocol_label"] for r in results if r["protocol"] is not None})
    runs.write_json(final_json, {"metric": args.metric, "statistic": name, "eval_mode": args.eval_mode,
                                 "eval_protocols": protocols,
                                 "best_by": f"highest {name} of the final scores, per sweep", "runs": results})
    print(f"final: {final_png}\nnumbers: {final_json}")
    for r, kind in zip(results, kinds):
        print(f"  {r['label']}: {stat} {r[name]:.4g} [{r[name + '_low']:.4g}, {r[name + '_high']:.4g}] "
              f"over {r['n']} seeds ({kind}; from {r['source']}){'  <- best grid point by ' + stat if r.get('best') else ''}")
