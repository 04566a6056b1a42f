# %% [markdown]
# # n-step returns and GAE's lambda: two bias-variance dials
#
# A one-step target $r_t + \gamma V(s_{t+1})$ leans on the current value estimate (biased
# while $V$ is wrong, but low variance); a Monte Carlo return $\sum_k \gamma^k r_{t+k}$ does
# not (unbiased, high variance). The n-step return sits between them, and GAE's $\lambda$
# averages all of them. This notebook
#
# 1. reproduces Sutton & Barto (2018, 2nd ed.), **Figure 7.2**: n-step TD prediction on the
#    19-state random walk, RMS error over the first 10 episodes against the step size
#    $\alpha$, for $n = 1, 2, 4, \dots, 512$, with the targets from `pgjax.kernels.returns.n_step_returns`;
# 2. turns GAE's $\lambda$ on a real task: PPO on CartPole with one `vmap` over
#    $\lambda \times$ seeds (learning curves), and the bias and variance of the GAE policy-gradient
#    estimate against $\lambda$ for a fixed policy and critic (`pgjax.algos.diagnostics`).
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
import functools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from pgjax.algos import diagnostics, ppo
from pgjax.kernels import returns
from pgjax.runtime.experiment import seed_keys, train_seeds

plt.rcParams.update({"figure.dpi": 80, "figure.figsize": (6.4, 3.6), "axes.grid": True, "grid.alpha": 0.3})
print("budget:", BUDGET)

# %% [markdown]
# ## 1. The 19-state random walk
#
# States $1..19$, start in the middle (10), step left or right with probability 1/2; stepping
# off the left end (state 0) gives reward $-1$ and ends the episode, off the right end (20)
# $+1$; every other reward is 0, and $\gamma = 1$. The true values are
# $v(s) = s/10 - 1$, from $-0.9$ to $0.9$. This small environment lives here in the notebook:
# it is a `lax.scan` producing one stream of steps per run, with an automatic reset after each
# episode, in the time-major layout pgjax's return functions take (`terminated` marks the ends).

# %%
START, LEFT, RIGHT = 10, 0, 20
TRUE_VALUES = jnp.arange(1, 20) / 10 - 1


@functools.partial(jax.jit, static_argnums=1)
def random_walk(key, num_steps):
    """One stream of `num_steps` steps: (states, next_states, rewards, terminated), each [T]."""
    def step(state, k):
        next_state = state + jnp.where(jax.random.bernoulli(k), 1, -1)
        terminated = (next_state == LEFT) | (next_state == RIGHT)
        reward = jnp.where(next_state == RIGHT, 1.0, 0.0) - jnp.where(next_state == LEFT, 1.0, 0.0)
        return jnp.where(terminated, START, next_state), (state, next_state, reward, terminated)

    return jax.lax.scan(step, START, jax.random.split(key, num_steps))[1]


RUNS = 20 if CI else 100
STREAM = 3000  # steps per run: 10 episodes take ~1000 on average
walks = jax.vmap(random_walk, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), RUNS), STREAM)
states, next_states, rewards, terminated = (x.T for x in walks)  # time-major [T, runs]
episodes = np.asarray(terminated.sum(axis=0))
assert episodes.min() >= 10, "every run needs at least 10 whole episodes in its stream"
print(f"{RUNS} runs of {STREAM} steps: {episodes.min()} to {episodes.max()} episodes per run")

# %% [markdown]
# ## 2. n-step TD with pgjax's n-step returns
#
# n-step TD (Sutton & Barto, sec. 7.1) updates, for $\tau = 0, 1, 2, \dots$ in order,
#
# $$V(S_\tau) \leftarrow V(S_\tau) + \alpha\,[G_{\tau:\tau+n} - V(S_\tau)],\qquad
#   G_{\tau:\tau+n} = \sum_{k<n}\gamma^k R_{\tau+k+1} + \gamma^n V(S_{\tau+n}),$$
#
# with the sum cut at the end of the episode (no bootstrap after a terminal state), and
# $V(S_{\tau+n})$ the value *as it is when the update is made*, so after the updates for
# $\tau' < \tau$. `returns.n_step_returns(rewards, next_values, terminated, truncated, gamma, n)`
# computes $G$ for a whole stream given the next-state values. It is linear in `next_values`,
# so we call it twice per $n$, once with the rewards and zero values (the reward part) and once
# with zero rewards and `next_values` = the one-hot code of the next state (which state's value
# is bootstrapped, with weight $\gamma^n$, or nothing if the episode ended inside the window):
#
# $$G_\tau = \text{reward\_part}_\tau + \text{boot}_\tau \cdot V .$$
#
# The sequential TD updates then only need a dot product with the current $V$. First, the
# identity, on a random $V$:

# %%
NUM_STATES = RIGHT + 1  # including the two terminal states, whose value stays 0
never = jnp.zeros_like(terminated)  # no time limit in this task: nothing is truncated


@functools.partial(jax.jit, static_argnums=3)
def n_step_parts(rewards, next_states, terminated, n):
    """reward part [T, runs] and bootstrap weights [T, runs, states] of the n-step returns (gamma = 1)."""
    reward_part = returns.n_step_returns(rewards, jnp.zeros_like(rewards), terminated, never, 1.0, n)
    one_hot = jax.nn.one_hot(next_states, NUM_STATES)
    per_state = lambda x: jnp.broadcast_to(x[..., None], one_hot.shape)
    boot = returns.n_step_returns(jnp.zeros_like(one_hot), one_hot, per_state(terminated), per_state(never), 1.0, n)
    return reward_part, boot


V = jax.random.uniform(jax.random.PRNGKey(1), (NUM_STATES,), minval=-1, maxval=1).at[jnp.array([LEFT, RIGHT])].set(0.0)
for n in (1, 4, 64):
    reward_part, boot = n_step_parts(rewards, next_states, terminated, n)
    direct = returns.n_step_returns(rewards, V[next_states], terminated, never, 1.0, n)
    np.testing.assert_allclose(reward_part + boot @ V, direct, atol=1e-5)
print("reward_part + boot . V == n_step_returns(rewards, V[next_states], ...) for n = 1, 4, 64")

# %% [markdown]
# The error measure of Figure 7.2: after each episode, the RMS error of $V$ over the 19
# states against the true values; averaged over the first 10 episodes and over the runs. Each
# run starts from $V = 0$. Every $\alpha$ and every run is one lane of a `vmap`; the runs share
# their episodes across $\alpha$ and $n$ (common random numbers, so the curves are comparable).

# %%
@jax.jit
def rms_error_first_10_episodes(alpha, states, reward_part, boot, terminated):
    """Online n-step TD on one run's stream; mean RMS error at the ends of its first 10 episodes."""
    def update(values, step):
        state, reward_part, boot = step
        target = reward_part + boot @ values
        values = values.at[state].add(alpha * (target - values[state]))
        return values, jnp.sqrt(jnp.mean((values[1:RIGHT] - TRUE_VALUES) ** 2))

    _, errors = jax.lax.scan(update, jnp.zeros(NUM_STATES), (states, reward_part, boot))
    counted = terminated & (jnp.cumsum(terminated) <= 10)
    return jnp.sum(jnp.where(counted, errors, 0.0)) / 10


over_runs = jax.vmap(rms_error_first_10_episodes, in_axes=(None, 1, 1, 1, 1))
sweep = jax.jit(jax.vmap(over_runs, in_axes=(0, None, None, None, None)))  # [alphas, runs]

ALPHAS = jnp.linspace(0.0, 1.0, 6 if CI else 21)
NS = [2**k for k in range(10)]
errors = {}
for n in NS:
    reward_part, boot = n_step_parts(rewards, next_states, terminated, n)
    errors[n] = np.asarray(sweep(ALPHAS, states, reward_part, boot, terminated)).mean(axis=1)

fig, ax = plt.subplots(figsize=(6.4, 4.4))
for i, n in enumerate(NS):
    ax.plot(ALPHAS, errors[n], color=plt.cm.viridis(i / (len(NS) - 1)), label=f"n={n}")
ax.set(xlabel=r"step size $\alpha$", ylabel=f"average RMS error\n(first 10 episodes, {RUNS} runs)",
       ylim=(0.25, 0.55), title="n-step TD on the 19-state random walk (cf. Sutton & Barto, Fig. 7.2)")
ax.legend(fontsize=7, ncol=2)
plt.show()
best = {n: (float(ALPHAS[np.argmin(e)]), float(e.min())) for n, e in errors.items()}
print("best alpha and error per n:", {n: (round(a, 2), round(e, 3)) for n, (a, e) in best.items()})

# %% [markdown]
# As in the book: one-step TD ($n=1$) needs a large step size and still does worse than
# intermediate $n$ (best 0.35 at $\alpha = 0.8$); $n = 4$ reaches the lowest error (0.26 at
# $\alpha = 0.4$, as in Figure 7.2), $n = 2$ and $8$ come close; large $n$ (close to Monte
# Carlo, since an episode lasts ~100 steps) only does well with a small $\alpha$ and degrades
# fast as $\alpha$ grows, its targets being the noisiest.

# %% [markdown]
# ## 3. GAE's lambda on CartPole: learning curves
#
# GAE (Schulman et al., 2016) averages the n-step advantages with weights $(1-\lambda)\lambda^{n-1}$:
# $\lambda = 0$ is the one-step TD error, $\lambda = 1$ the Monte Carlo return minus $V(s_t)$.
# $\lambda$ is a traced hyper-parameter of pgjax's PPO, so one compiled program trains every
# ($\lambda$, seed) pair as one lane of a `vmap`: `pgjax.runtime.experiment.train_seeds` with a batched
# `hparams`. Everything else is the shipped CartPole configuration (`configs/ppo_cartpole.toml`)
# on a shorter budget.

# %%
LAMBDAS = [0.0, 1.0] if CI else [0.0, 0.5, 0.8, 0.95, 1.0]
SEEDS = range(1 if CI else 4)
config = ppo.PPOConfig(total_timesteps=2 * 512 if CI else 150_000)  # defaults = configs/ppo_cartpole.toml
trainer = ppo.make_trainer(config)

grid = len(LAMBDAS) * len(SEEDS)
lambda_per_run = jnp.repeat(jnp.asarray(LAMBDAS, jnp.float32), len(SEEDS))
hparams = jax.tree.map(lambda x: jnp.full((grid,), x, jnp.float32), config.hparams)
hparams = dataclasses.replace(hparams, gae_lambda=lambda_per_run)
keys = seed_keys(0, list(SEEDS) * len(LAMBDAS))  # seed s has the same key whatever its lambda

snapshots = []
final_state, metrics = train_seeds(
    trainer, keys, hparams, hparams_batched=True, max_chunks=10,
    on_chunk=lambda done, state, m: snapshots.append((done, state)),
)
curves = metrics["episode_return"].reshape(len(LAMBDAS), len(SEEDS), -1)
steps = metrics["env_steps"][0]

# %%
from pgjax.reports.plotting import smooth

fig, ax = plt.subplots()
for i, lam in enumerate(LAMBDAS):
    per_seed = np.stack([smooth(c, 5) for c in curves[i]])
    line, = ax.plot(steps, np.nanmean(per_seed, 0), label=f"λ = {lam:g}", color=plt.cm.plasma(i / len(LAMBDAS)))
    ax.fill_between(steps, np.nanmin(per_seed, 0), np.nanmax(per_seed, 0), color=line.get_color(), alpha=0.12)
ax.set(xlabel="environment steps", ylabel="training episode return",
       title=f"PPO on CartPole-v1: mean and min-max over {len(SEEDS)} seeds")
ax.legend(fontsize=8)
plt.show()
for i, lam in enumerate(LAMBDAS):
    area = np.nanmean(curves[i])
    print(f"lambda={lam:<4g}  mean return over training {area:6.1f}   final (last 5 updates) {np.nanmean(curves[i][:, -5:]):6.1f}")

# %% [markdown]
# With 150,000 steps, $\lambda = 0.95$ (PPO's default) and $\lambda = 1$ learn fastest and
# $\lambda = 0$ and $0.5$ slowest: their advantages lean on a critic that is still poor, so
# they are most biased exactly when it matters, early in training. Four seeds per $\lambda$
# leave wide bands (min-max): the order of the two best is not resolved by this budget.

# %% [markdown]
# ## 4. The dial itself: bias and variance of the GAE gradient against lambda
#
# Learning curves mix the estimator's quality with everything else PPO does. To see the
# dial directly, fix one policy and its critic (seed 0 of the $\lambda=0.95$ run, part-way
# through training) and let `diagnostics.gradient_estimates` draw many independent batches
# of 8 whole episodes; from each batch it computes the policy-gradient estimate with every
# weighting, on the same episodes. With `discount_weighting=True` the GAE advantages are
# multiplied by $\gamma^t$ so that, like the total-return estimator, they target
# $\nabla\,\mathbb{E}[\sum_t\gamma^t r_t]$. The total-return estimator is unbiased for it, so
# for each $\lambda$ the per-batch difference $d = g_{\mathrm{GAE}(\lambda)} - g_{R(\tau)}$
# estimates the bias: $\|\mathbb{E}[d]\|^2 \approx \sum_p(\bar d_p^2 - \widehat{\mathrm{Var}}(d_p)/B)$.
# The variance is the trace of the covariance of one batch's estimate.

# %%
DIAL = [0.0, 1.0] if CI else [0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0]
NUM_BATCHES = 20 if CI else 300
reference_run = LAMBDAS.index(0.95) * len(SEEDS) if 0.95 in LAMBDAS else 0
_, mid_state = snapshots[0]  # after the first chunk of updates
take = lambda tree: jax.tree.map(lambda x: x[reference_run], tree)
estimates = diagnostics.gradient_estimates(
    trainer.networks, take(mid_state.params["actor"]), take(mid_state.params["critic"]),
    env_id="CartPole-v1", key=jax.random.PRNGKey(5), num_batches=NUM_BATCHES, episodes_per_batch=8,
    gamma=config.hparams.gamma, gae_lambdas=DIAL, discount_weighting=True,
)


def squared_bias(name):
    d = np.asarray(estimates[name] - estimates["total"], np.float64)
    return max(0.0, float(np.sum(d.mean(0) ** 2 - d.var(0, ddof=1) / d.shape[0])))


variance = {name: float(diagnostics.summarize(v).total_variance) for name, v in estimates.items()}
bias = [np.sqrt(squared_bias(f"gae_{lam:g}")) for lam in DIAL]
gae_variance = [variance[f"gae_{lam:g}"] for lam in DIAL]

fig, ax1 = plt.subplots()
ax1.plot(DIAL, bias, "o-", color="C3", label="bias  $\\|E[g_{GAE}] - \\nabla J\\|$")
ax1.set(xlabel=r"GAE $\lambda$", ylabel="bias (norm)", title="GAE(λ): bias falls, variance rises")
ax1.tick_params(axis="y", colors="C3")
ax2 = ax1.twinx()
ax2.plot(DIAL, gae_variance, "s-", color="C0", label="variance of one batch's estimate")
ax2.axhline(variance["total"], color="C0", ls=":", lw=1, label="variance with $R(\\tau)$")
ax2.set_yscale("log")
ax2.tick_params(axis="y", colors="C0")
ax2.grid(False)
lines = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
ax1.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper center")
plt.show()
for lam, b, v in zip(DIAL, bias, gae_variance):
    print(f"lambda={lam:<5g} bias {b:8.3f}   variance {v:10.2f}")
print(f"total return R(tau): variance {variance['total']:.2f}; mean-gradient norm "
      f"{float(jnp.linalg.norm(estimates['total'].mean(0))):.3f}")

# %% [markdown]
# The dial, measured: at $\lambda = 0$ the bias (norm about 100) is nearly as large as the
# gradient itself (norm about 130), while the variance is thousands of times smaller than
# with $\lambda = 1$. Raising $\lambda$ trades one for the other; the last few hundredths
# before 1 remove most of the bias and multiply the variance by about 20. At $\lambda = 1$
# the bias estimate is clipped at 0 (indistinguishable from zero at this number of batches:
# the estimator is $\gamma^t(G_t - V(s_t))$, unbiased up to the rare time-limit cut), and the
# variance is still about 20 times below the total return's. PPO's 0.95 sits where the
# variance is about 20 times below GAE(1)'s and a quarter of the bias is gone: a good setting
# when, as here, the critic is mediocre and the batches are small.
