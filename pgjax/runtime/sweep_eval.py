"""Evaluating the kept policies of a sweep's cells, and comparing its grid points.

A sweep cell keeps its final policy (`pgjax.records.cell_policies`). `evaluate_cells` restores the
policies of chosen cells, grouped by static config (one compiled evaluation each), and plays
every cell's policy on the same evaluation episodes (`evaluation.evaluate_states`'s
protocol: start states and action noise from `eval_seed`, greedy or sampled), the cells
sharded over the devices in vmap groups of the sweep's width. Each cell's result is written
to `SWEEP_DIR/eval/cell-NNNNN-<mode>.json`, so evaluations of different cells add up.

`point_summaries` turns those results into one score per cell (its mean evaluation return)
and, per grid point, the IQM, mean and median over its cells (seeds) with percentile
bootstrap intervals (`pgjax.reports.statistics`); `best_point` picks the grid point with the
highest value of a stated statistic (default: the IQM).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from pgjax.records import cell_policies, runs
from pgjax.reports import statistics as st
from pgjax.runtime.eval_modes import mode_name

EVAL_DIR = "eval"  # SWEEP_DIR/eval/cell-NNNNN-<mode>.json


class SweepEvalError(ValueError):
    """A bad cell or grid-point selection, or a cell without a kept policy."""


class Policy(NamedTuple):
    """What `evaluation` needs of a state: parameters and observation statistics."""

    params: Any
    obs_stats: Any


def point_key(overrides: dict) -> str:
    """A grid point's identity: its grid values as canonical JSON."""
    return json.dumps(overrides, sort_keys=True)


def format_value(value) -> str:
    """A grid value for people: floats with at most 6 significant digits (`0.1 + 0.2` is
    `0.3`, a float32 `0.99` is `0.99`), everything else as written."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def point_label(overrides: dict) -> str:
    return ", ".join(f"{k.removeprefix('hparams.')}={format_value(v)}" for k, v in sorted(overrides.items())) or "(no grid)"


def select_cells(records: Sequence[dict], cells: Sequence[int] | None = None,
                 point: dict | None = None) -> list[dict]:
    """The records of the cells numbered `cells`, or of every cell whose grid values include
    `point` (`{"hparams.learning_rate": 0.001}`; keys may be a subset of the grid), or all.
    `SweepEvalError` naming what does not exist."""
    if cells is not None and point:
        raise SweepEvalError("choose cells by number (--cell) or by grid values (--point), not both")
    if cells is not None:
        by_index = {r["cell"]: r for r in records}
        missing = [c for c in cells if c not in by_index]
        if missing:
            raise SweepEvalError(f"--cell {','.join(map(str, missing))}: no such finished cell (finished: "
                                 f"{_ranges(sorted(by_index))})")
        return [by_index[c] for c in cells]
    if point:
        grid_keys = sorted({k for r in records for k in r["overrides"]})
        unknown = [k for k in point if k not in grid_keys]
        if unknown:
            raise SweepEvalError(f"--point {unknown[0]}: not a grid key of this sweep (grid keys: "
                                 f"{', '.join(grid_keys) or 'none'})")
        chosen = [r for r in records if all(_same(r["overrides"][k], v) for k, v in point.items())]
        if not chosen:
            values = {k: sorted({json.dumps(r["overrides"][k]) for r in records}) for k in point}
            given = " ".join(f"{k}={format_value(v)}" for k, v in sorted(point.items()))  # as typed: full keys
            raise SweepEvalError(f"--point {given}: no finished cell has these values (values: "
                                 + "; ".join(f"{k}: {', '.join(v)}" for k, v in values.items()) + ")")
        return chosen
    return list(records)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return json.dumps(a) == json.dumps(b)


def _ranges(values: list[int]) -> str:
    return f"{values[0]}..{values[-1]}" if values and values == list(range(values[0], values[-1] + 1)) else \
        ", ".join(map(str, values)) or "none"


def load_policies(sweep_dir: str | Path, records: Sequence[dict]) -> list[tuple[Any, list[dict], Policy]]:
    """`(trainer, records, Policy with a leading cell axis)` per static config among `records`.

    Each cell's config (its record) builds the trainer; its policy file is read into the
    structure that config's `init` gives. `SweepEvalError` for a cell without a policy file
    (a sweep from before policies were kept) or one that does not match its config."""
    from pgjax.runtime.loading import build_config

    groups: dict[str, list[dict]] = {}
    for record in records:
        static = {k: v for k, v in record["config"].items() if k != "hparams"}
        groups.setdefault(json.dumps([record["algo"], static], sort_keys=True), []).append(record)
    out = []
    for members in groups.values():
        algorithm, config = build_config(members[0]["algo"], members[0]["config"])
        trainer = algorithm.make_trainer(config)
        state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0), config.hparams)
        like = cell_policies.policy_tree(state)
        trees = []
        for record in members:
            if not record.get("policy"):
                raise SweepEvalError(f"cell {record['cell']} kept no policy (swept before pgjax kept them): "
                                     "run the sweep again to evaluate it")
            try:
                trees.append(cell_policies.read_tree(Path(sweep_dir) / "cells" / record["policy"], like))
            except cell_policies.CellFileError as err:
                raise SweepEvalError(str(err)) from None
        stacked = jax.tree.map(lambda *xs: np.stack(xs), *trees)
        out.append((trainer, members, Policy(stacked["params"], stacked["obs_stats"])))
    return out


def evaluate_cells(
    sweep_dir: str | Path,
    records: Sequence[dict],
    width: int,
    num_episodes: int = 32,
    eval_seed: int = 10_000,
    deterministic: bool = True,
    max_episode_steps: int | None = None,
    write: bool = True,
) -> list[dict]:
    """Evaluate the kept policy of every cell in `records`; one result dict per cell (in the
    order of `records`), also written to `SWEEP_DIR/eval/cell-NNNNN-<mode>.json` if `write`."""
    from pgjax.runtime.experiment import SeedLayout, evaluate_layout

    mode = mode_name(deterministic)
    results = {}
    for trainer, members, policy in load_policies(sweep_dir, records):
        layout = SeedLayout.plan(len(members), width, len(jax.devices()))
        episodes = evaluate_layout(trainer, policy, layout, num_episodes, eval_seed, deterministic, max_episode_steps)
        for i, record in enumerate(members):
            returns = np.asarray(episodes.returns[i], float)
            results[record["cell"]] = {
                "cell": record["cell"], "seed": record["seed"], "overrides": record["overrides"],
                "algo": record["algo"], "env_id": record["config"]["env_id"], "mode": mode,
                "episodes": num_episodes, "eval_seed": eval_seed,
                "max_episode_steps": int(max_episode_steps or trainer.env.max_episode_steps),
                "mean_return": float(returns.mean()), "std_return": float(returns.std()),
                "returns": returns.tolist(), "lengths": np.asarray(episodes.lengths[i]).tolist(),
                "truncated": np.asarray(episodes.truncated[i]).tolist(),
            }
    ordered = [results[r["cell"]] for r in records]
    if write:
        folder = Path(sweep_dir) / EVAL_DIR
        folder.mkdir(exist_ok=True)
        for result in ordered:
            runs.write_json(folder / eval_file_name(result["cell"], mode), {**result, "versions": runs.versions()})
    return ordered


def eval_file_name(cell: int, mode: str) -> str:
    return f"cell-{cell:05d}-{mode}.json"


def read_cell_evals(sweep_dir: str | Path, mode: str) -> dict[int, dict]:
    """Every written evaluation of `mode` in `SWEEP_DIR/eval/`, by cell number."""
    folder = Path(sweep_dir) / EVAL_DIR
    out = {}
    for path in sorted(folder.glob(f"cell-*-{mode}.json")) if folder.is_dir() else []:
        result = runs.read_json(path)
        out[int(result["cell"])] = result
    return out


def point_summaries(results: Sequence[dict], confidence: float = 0.95, num_resamples: int = 2000,
                    seed: int = 0) -> list[dict]:
    """Per grid point (in order of first appearance): its cells, each cell's score (mean
    evaluation return) and `statistics.summarize` over those scores (IQM, mean, median with
    percentile bootstrap CIs)."""
    points: dict[str, list[dict]] = {}
    for result in results:
        points.setdefault(point_key(result["overrides"]), []).append(result)
    out = []
    for cells in points.values():
        scores = [c["mean_return"] for c in cells]
        out.append({"overrides": cells[0]["overrides"], "label": point_label(cells[0]["overrides"]),
                    "cells": [c["cell"] for c in cells], "seeds": [c["seed"] for c in cells], "scores": scores,
                    **st.summarize(scores, confidence, num_resamples, seed)})
    return out


def best_point(summaries: Sequence[dict], statistic: str = "iqm") -> int:
    """The index of the summary with the highest `statistic` (ties: the first)."""
    values = [s[statistic] if s[statistic] is not None and np.isfinite(s[statistic]) else -np.inf for s in summaries]
    return int(np.argmax(values))
