# %% [markdown]
# # A seed x learning-rate sweep in one vmap, and honest statistics
#
# Traced hyper-parameters (learning rate, gamma, lambda, clip, coefficients) are inputs of
# pgjax's compiled training function, not constants baked into it. So a grid of
# (learning rate, seed) pairs is one batch: one compilation, one `vmap`, every run on the
# same program. This notebook
#
# 1. trains PPO on CartPole for 4 learning rates x 5 seeds as one vmapped program
#    (`pgjax.runtime.experiment.train_seeds` with a batched `hparams`);
# 2. evaluates every run and summarises each learning rate with the mean, median and the
#    interquartile mean (IQM) across seeds, each with a percentile bootstrap confidence
#    interval (`pgjax.reports.statistics`; Agarwal et al., 2021, recommend the IQM with intervals
#    over a bare mean of a few seeds);
# 3. draws the figures `pgjax plot` makes: learning curves with bootstrap bands and the
#    final-performance interval plot (`pgjax.reports.plotting`).
#
# The test suite runs this notebook with `PGJAX_NOTEBOOK_BUDGET=ci` (tiny budgets, noisy
# figures); the committed copy was run with the full budget.

# %%
import os

BUDGET = os.environ.get("PGJAX_NOTEBOOK_BUDGET", "full")  # "ci": tiny budget for the test suite
if BUDGET not in ("full", "ci"):
    raise ValueError(f"PGJAX_NOTEBOOK_BUDGET={BUDGET!r}: expected 'full' or 'ci'")
CI = BUDGET == "ci"

import dataclasses
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from pgjax.algos import ppo
from pgjax.reports import statistics
from pgjax.runtime.experiment import evaluate_seeds, seed_keys, train_seeds

plt.rcParams.update({"figure.dpi": 80, "figure.figsize": (6.4, 3.6), "axes.grid": True, "grid.alpha": 0.3})
print("budget:", BUDGET)

# %% [markdown]
# ## 1. The grid as one batch
#
# Each run is a (learning rate, seed) pair. The keys come from
# `fold_in(PRNGKey(0), seed)`, so seed 3 starts from the same network and environments
# whatever its learning rate (common random numbers across the grid, and adding seeds later
# never changes existing ones). The `hparams` pytree gets a leading axis of the grid's size
# and its `learning_rate` leaf carries each run's value.

# %%
LEARNING_RATES = [3e-4, 3e-3] if CI else [1e-4, 3e-4, 1e-3, 3e-3]
SEEDS = list(range(2 if CI else 5))
config = ppo.PPOConfig(total_timesteps=2 * 512 if CI else 100_000)  # configs/ppo_cartpole.toml, shorter
trainer = ppo.make_trainer(config)

runs = [(lr, seed) for lr in LEARNING_RATES for seed in SEEDS]
keys = seed_keys(0, [seed for _, seed in runs])
hparams = jax.tree.map(lambda x: jnp.full((len(runs),), x, jnp.float32), config.hparams)
hparams = dataclasses.replace(hparams, learning_rate=jnp.array([lr for lr, _ in runs], jnp.float32))
print(f"{len(runs)} runs: learning rates {LEARNING_RATES} x seeds {SEEDS}; "
      f"{config.num_updates} updates of {config.batch_size} steps each")

start = time.perf_counter()
state, metrics = train_seeds(trainer, keys, hparams, hparams_batched=True, max_chunks=5)
print(f"trained {len(runs)} runs x {config.total_timesteps:,} steps in {time.perf_counter() - start:.0f} s "
      "(compilation included, one program)")
print({name: value.shape for name, value in metrics.items() if name in ("episode_return", "env_steps")})

# %% [markdown]
# ## 2. Final performance with confidence intervals
#
# Every run's final policy plays 32 evaluation episodes (`evaluate_seeds`: the same start
# states for every run, actions sampled from the policy); a run's score is its mean
# evaluation return. For each learning rate, `statistics.summarize` gives mean, median and IQM
# over the seeds with 95% percentile-bootstrap intervals. With 5 seeds the intervals are wide:
# that is the honest answer, and the reason to report them.

# %%
eval_returns, _ = evaluate_seeds(trainer, state, num_episodes=32)
scores = np.asarray(eval_returns).mean(axis=1).reshape(len(LEARNING_RATES), len(SEEDS))
summaries = {lr: statistics.summarize(scores[i], num_resamples=2000) for i, lr in enumerate(LEARNING_RATES)}
print(f"{'learning rate':>13} | {'seeds':<34} | {'mean [95% CI]':>22} | {'IQM [95% CI]':>22}")
for lr, s in summaries.items():
    row = " ".join(f"{v:5.0f}" for v in scores[LEARNING_RATES.index(lr)])
    print(f"{lr:>13g} | {row:<34} | {s['mean']:6.1f} [{s['mean_low']:6.1f}, {s['mean_high']:6.1f}] "
          f"| {s['iqm']:6.1f} [{s['iqm_low']:6.1f}, {s['iqm_high']:6.1f}]")

# %%
fig, ax = plt.subplots()
for i, lr in enumerate(LEARNING_RATES):
    ax.scatter(np.full(len(SEEDS), i) + np.linspace(-0.12, 0.12, len(SEEDS)), scores[i], s=14, color="0.4", zorder=3)
    s = summaries[lr]
    ax.errorbar(i + 0.25, s["iqm"], yerr=[[s["iqm"] - s["iqm_low"]], [s["iqm_high"] - s["iqm"]]], fmt="o",
                color="C0", capsize=4, label="IQM, 95% bootstrap CI" if i == 0 else None)
    ax.errorbar(i + 0.35, s["mean"], yerr=[[s["mean"] - s["mean_low"]], [s["mean_high"] - s["mean"]]], fmt="s",
                color="C1", capsize=4, label="mean, 95% bootstrap CI" if i == 0 else None)
ax.set_xticks(range(len(LEARNING_RATES)), [f"{lr:g}" for lr in LEARNING_RATES])
ax.set(xlabel="learning rate", ylabel="evaluation return (mean of 32 episodes)",
       title="PPO on CartPole-v1: every seed (grey) and the aggregates")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 3. The figures `pgjax plot` draws
#
# `pgjax plot RUN_OR_SWEEP_DIR ...` reads `metrics.csv` files and calls the functions below:
# `plotting.learning_curve` smooths each seed, then takes the IQM across seeds at every point
# with a bootstrap band (`statistics.curve_statistics`); `plotting.plot_curves` draws them;
# `plotting.plot_final` draws the final-score intervals. Here they get the sweep's metrics
# directly, one curve per learning rate, and write PNG files that we display.

# %%
from pgjax.reports import plotting

out_dir = Path(tempfile.mkdtemp(prefix="pgjax-sweep-"))
returns_by_run = metrics["episode_return"].reshape(len(LEARNING_RATES), len(SEEDS), -1)
env_steps = metrics["env_steps"][0]
curves = []
for i, lr in enumerate(LEARNING_RATES):
    by_seed = {seed: {"env_steps": env_steps, "episode_return": returns_by_run[i, j]} for j, seed in enumerate(SEEDS)}
    curves.append(plotting.learning_curve(by_seed, statistic="iqm", smoothing=5, label=f"lr = {lr:g}"))
curve_png = plotting.plot_curves(curves, out_dir / "learning_curves.png", title="PPO on CartPole-v1",
                                 ylabel="training episode return", band_label="IQM across seeds, 95% bootstrap band")
intervals = [statistics.bootstrap_ci(scores[i], statistics.iqm) for i in range(len(LEARNING_RATES))]
final_png = plotting.plot_final([f"lr = {lr:g}" for lr in LEARNING_RATES], intervals, out_dir / "final.png",
                                xlabel="evaluation return: IQM over seeds, 95% bootstrap CI")
display(Image(filename=curve_png, width=560))
display(Image(filename=final_png, width=480))
