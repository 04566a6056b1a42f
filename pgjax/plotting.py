"""Learning-curve plots (PNG) from per-seed metrics."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: runs on CI machines and over ssh
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


def plot_learning_curve(
    by_seed: dict[int, dict[str, np.ndarray]],
    path: str | Path,
    title: str,
    metric: str = "episode_return",
    smoothing: int = 10,
) -> Path:
    """One thin line per seed and the mean over seeds with a min-max band, against env steps."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    curves = []
    for seed, cols in sorted(by_seed.items()):
        x, y = cols["env_steps"], smooth(cols[metric], smoothing)
        ax.plot(x, y, lw=0.8, alpha=0.45, label=f"seed {seed}" if len(by_seed) <= 8 else None)
        curves.append(y)
    if len(curves) > 1:
        stack = np.vstack(curves)
        with warnings.catch_warnings():  # all-nan columns (no episode finished yet) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = np.nanmean(stack, 0), np.nanmin(stack, 0), np.nanmax(stack, 0)
        ax.fill_between(x, low, high, alpha=0.15, color="C0")
        ax.plot(x, mean, lw=2.0, color="C0", label=f"mean of {len(curves)} seeds")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
