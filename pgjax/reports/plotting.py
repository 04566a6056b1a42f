"""Learning curves and final-performance plots (PNG), and the numbers behind them.

A curve aggregates seeds pointwise: each seed's metric is smoothed (a trailing moving
average), then at every plotted point the chosen statistic across seeds (IQM by default)
and its percentile bootstrap interval come from `pgjax.reports.statistics`. The numbers are
returned (and written as CSV/JSON by `pgjax plot`) so a figure can be redrawn elsewhere.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pgjax.reports import statistics as st

STAT_LABELS = {"iqm": "IQM", "mean": "mean", "median": "median"}


def pyplot():
    """matplotlib.pyplot, on the headless Agg backend unless a backend was chosen.

    Jupyter kernels set `MPLBACKEND` (inline figures), and so can a user; otherwise (CLI
    runs on CI machines and over ssh) figures only go to files, and Agg needs no display.
    """
    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average that skips nan (updates in which no episode finished)."""
    values = np.asarray(values, float)
    out = np.full_like(values, np.nan)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        chunk = chunk[np.isfinite(chunk)]
        if chunk.size:
            out[i] = chunk.mean()
    return out


def auto_window(num_updates: int) -> int:
    """The default smoothing window: 2% of the updates, at least 1."""
    return max(1, round(0.02 * num_updates))


class Curve(NamedTuple):
    """One run's aggregate learning curve: arrays `[points]`."""

    label: str
    env_steps: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    num_seeds: np.ndarray  # seeds with a finite value at each point


def seed_matrix(by_seed: dict[int, dict[str, np.ndarray]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """`(env_steps [U], values [S, U])` from `runs.read_metrics` output.

    Seeds with fewer updates (a run stopped early) are padded with nan; `env_steps` comes
    from the longest seed. Raises KeyError listing the metrics available.
    """
    if not by_seed:
        raise ValueError("no metrics rows")
    columns = next(iter(by_seed.values()))
    if metric not in columns:
        names = ", ".join(sorted(set(columns) - {"update", "seed"}))
        raise KeyError(f"unknown metric {metric!r}; available metrics: {names}")
    longest = max(by_seed.values(), key=lambda cols: len(cols[metric]))
    values = np.full((len(by_seed), len(longest[metric])), np.nan)
    for i, (_, cols) in enumerate(sorted(by_seed.items())):
        values[i, : len(cols[metric])] = cols[metric]
    return np.asarray(longest["env_steps"], float), values


def learning_curve(
    by_seed: dict[int, dict[str, np.ndarray]],
    metric: str = "episode_return",
    statistic: str = "iqm",
    smoothing: int | None = None,
    confidence: float = 0.95,
    num_resamples: int = 1000,
    max_points: int = 200,
    label: str = "",
    seed: int = 0,
) -> Curve:
    """Smooth each seed, then the statistic across seeds and its bootstrap interval.

    `smoothing` is the moving-average window in updates; None picks 2% of the run (at
    least 1), the same share of env steps for runs with few long or many short updates.
    At most `max_points` evenly spaced updates are kept (always the last one).
    """
    env_steps, values = seed_matrix(by_seed, metric)
    smoothing = auto_window(len(env_steps)) if smoothing is None else smoothing
    smoothed = np.stack([smooth(row, smoothing) for row in values])
    keep = np.unique(np.linspace(0, len(env_steps) - 1, min(max_points, len(env_steps))).round().astype(int))
    estimate, low, high = st.curve_statistics(
        smoothed[:, keep], st.STATISTICS[statistic], confidence, num_resamples, seed
    )
    num_seeds = np.isfinite(smoothed[:, keep]).sum(axis=0)
    return Curve(label, env_steps[keep], estimate, low, high, num_seeds)


def plot_curves(
    curves: list[Curve],
    path: str | Path,
    title: str = "",
    ylabel: str = "episode return",
    band_label: str = "",
    seed_lines: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """Draw curves with their interval bands on one axis, against environment steps."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for x, y in seed_lines or []:
        ax.plot(x, y, lw=0.7, alpha=0.35, color="0.5")
    for i, curve in enumerate(curves):
        color = f"C{i % 10}"
        ax.fill_between(curve.env_steps, curve.low, curve.high, alpha=0.2, color=color, lw=0)
        ax.plot(curve.env_steps, curve.estimate, lw=2.0, color=color, label=curve.label or None)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f"\n{band_label}" if band_label else ""), fontsize=10)
    ax.grid(alpha=0.3)
    if any(c.label for c in curves):
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_final(
    labels: list[str], intervals: list[st.Interval], path: str | Path, xlabel: str, title: str = ""
) -> Path:
    """Point estimates with interval bars, one row per run (as rliable's interval plots).
    A long title or x label is wrapped, and the figure grows to hold it (never clipped)."""
    import textwrap

    plt = pyplot()
    title, xlabel = (textwrap.fill(text, 80) for text in (title, xlabel))
    extra = 0.18 * (title.count("\n") + xlabel.count("\n") + (1 if title else 0))
    fig, ax = plt.subplots(figsize=(7, 1.1 + 0.45 * len(labels) + extra), dpi=110)
    rows = np.arange(len(labels))[::-1]
    for row, interval, i in zip(rows, intervals, range(len(labels))):
        color = f"C{i % 10}"
        ax.plot([interval.low, interval.high], [row, row], lw=6, alpha=0.35, color=color,
                solid_capstyle="butt")
        ax.plot([interval.estimate], [row], "|", ms=16, mew=2.5, color=color)
    ax.set_yticks(rows, labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path) -> Path:
    """Write the figure to `path` (no suffix: `path.png`, the file matplotlib writes) and return
    the path of the file written."""
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_learning_curve(
    by_seed: dict[int, dict[str, np.ndarray]],
    path: str | Path,
    title: str,
    metric: str = "episode_return",
    smoothing: int | None = None,
) -> Path:
    """One run: a thin line per seed and the IQM across seeds with its 95% bootstrap band."""
    curve = learning_curve(by_seed, metric, "iqm", smoothing, label=f"IQM of {len(by_seed)} seeds")
    env_steps, values = seed_matrix(by_seed, metric)
    smoothing = auto_window(len(env_steps)) if smoothing is None else smoothing
    with warnings.catch_warnings():  # all-nan stretches (no episode finished yet) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        lines = [(env_steps, smooth(row, smoothing)) for row in values]
    band = "band: 95% percentile bootstrap CI over seeds" if len(by_seed) > 1 else ""
    return plot_curves([curve], path, title, metric.replace("_", " "), band, seed_lines=lines)
