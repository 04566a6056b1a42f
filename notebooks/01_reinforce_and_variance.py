# %% [markdown]
# # REINFORCE from the kernels, and the variance of its gradient
#
# The policy-gradient theorem (Williams, 1992; Sutton & Barto, 2018, ch. 13) says
#
# $$\nabla_\theta J(\theta) = \mathbb{E}_\tau\Big[\sum_t \nabla_\theta \log \pi_\theta(a_t\mid s_t)\,\psi_t\Big]$$
#
# for several choices of the weight $\psi_t$: the total return $R(\tau)$, the reward-to-go
# $G_t$, or $G_t$ minus a baseline $b(s_t)$. This notebook
#
# 1. assembles one REINFORCE update on CartPole from pgjax's pieces (rollout, returns,
#    log-likelihoods, gradient) and checks it is exactly the library's update;
# 2. trains REINFORCE with three choices of $\psi_t$;
# 3. measures, for a fixed policy, the mean and the variance of each estimator with
#    `pgjax.algos.diagnostics`: the same mean with and without a baseline (a baseline adds no bias),
#    the variance falling from total return to reward-to-go to baseline, the group baselines
#    that compare episodes from one start state, and the variance growing with the horizon.
#
# Every number comes from a pgjax function; the notebook only wires them and plots. It runs
# in a few minutes on a 2-core CPU. The test suite runs it with `PGJAX_NOTEBOOK_BUDGET=ci`
# (tiny budgets, so the figures there are noisy); the committed copy was run with the full budget.

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

from pgjax.algos import diagnostics, reinforce, rollout
from pgjax.algos.actor_critic import sample_step
from pgjax.envs import make_vec_env
from pgjax.kernels import losses, returns
from pgjax.runtime.experiment import seed_keys

plt.rcParams.update({"figure.dpi": 80, "figure.figsize": (6.4, 3.4), "axes.grid": True, "grid.alpha": 0.3})
print("budget:", BUDGET)

# %% [markdown]
# ## 1. One batch of whole episodes
#
# `ReinforceConfig` is the library's REINFORCE: `num_envs` episodes per update, each run to
# the horizon (CartPole's 500-step time limit). We only borrow its environment, its networks
# and its initial state; the update itself we assemble by hand below, with no baseline and the
# reward-to-go weighting. `rollout.collect_episodes` resets the environments, runs a `lax.scan`
# rollout with the policy passed in as a function, and returns time-major arrays `[T, N]`
# plus the mask of each environment's first episode (the environments auto-reset; later
# steps are simulated and masked out).

# %%
SEEDS = range(2 if CI else 4)
config = reinforce.ReinforceConfig(weighting="reward_to_go", baseline="none", hidden_sizes=(32, 32))
trainer = reinforce.make_trainer(config)
env, networks, hparams = trainer.env, trainer.networks, config.hparams
# One state per seed (vmapped, as the library trains); we follow seed 0 by hand.
states = jax.jit(jax.vmap(trainer.init, in_axes=(0, None)))(seed_keys(0, SEEDS), hparams)
state = jax.tree.map(lambda x: x[0], states)


@jax.jit
def collect(params, obs_stats, key):
    policy = functools.partial(sample_step, config, env, networks, params, obs_stats)
    return rollout.collect_episodes(env, policy, key, config.num_steps)


_, rollout_key = jax.random.split(state.key)  # the split the library's update makes
traj, mask = collect(state.params, state.obs_stats, rollout_key)
lengths = mask.sum(axis=0)
print("obs", traj.obs.shape, "actions", traj.action.shape, "mask", mask.shape)
print("episode lengths:", lengths.astype(int))

# %%
fig, ax = plt.subplots(figsize=(6.4, 2.4))
ax.imshow(np.asarray(mask[:80].T), aspect="auto", cmap="Greens", interpolation="nearest")
ax.set(xlabel="time step t", ylabel="episode i", title="first-episode mask $m_t^i$ (first 80 steps)")
ax.grid(False)
plt.show()

# %% [markdown]
# ## 2. Returns
#
# `returns.reward_to_go` is `returns.discounted_returns` on the masked rewards:
# $G_t = \sum_{t'\ge t}\gamma^{t'-t} m_{t'} r_{t'}$. Its value at $t=0$ is the episode's
# discounted return $R(\tau)$, the weight of the `total` estimator.

# %%
gamma = hparams.gamma
rewards_to_go = returns.reward_to_go(traj.reward, mask, gamma)
# Check against a direct sum for the first episode.
r0 = np.asarray(traj.reward[:, 0] * mask[:, 0], np.float64)
direct = np.array([sum(gamma ** (k - t) * r0[k] for k in range(t, len(r0))) for t in range(len(r0))])
np.testing.assert_allclose(rewards_to_go[:, 0], direct, rtol=1e-5, atol=1e-4)
never = jnp.zeros_like(mask, bool)  # the mask already ends each episode
np.testing.assert_allclose(rewards_to_go, returns.discounted_returns(traj.reward * mask, never, never, gamma) * mask)
total = returns.episode_weights(traj.reward, mask, gamma, "total")
np.testing.assert_allclose(total[0], rewards_to_go[0], rtol=1e-6)

fig, ax = plt.subplots()
for i in range(4):
    n = int(lengths[i])
    ax.plot(np.arange(n), rewards_to_go[:n, i], label=f"episode {i}: $G_t$")
    ax.hlines(total[0, i], 0, n - 1, colors=f"C{i}", linestyles=":", lw=1)
ax.set(xlabel="t", ylabel="weight", title=r"reward-to-go $G_t$ (solid) vs total return $R(\tau)$ (dotted)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 3. Log-likelihoods
#
# The actor maps observations to a `Categorical` over CartPole's two actions;
# $\log\pi(a\mid s)$ = `logits[a] - logsumexp(logits)`. Re-scoring the stored actions with the
# same parameters gives back the log-probabilities the rollout recorded.

# %%
dist = networks.actor.apply(state.params["actor"], traj.obs)
log_probs = dist.log_prob(traj.action)
np.testing.assert_allclose(log_probs, traj.log_prob, atol=1e-5)
print("logits", dist.logits.shape, "log-probs", log_probs.shape)
print("mean log pi(a|s) over the episodes' steps:", float((log_probs * mask).sum() / mask.sum()))

# %% [markdown]
# ## 4. The gradient and one update
#
# `losses.episode_policy_loss` is $L(\theta) = -\frac1N\sum_i\sum_t m_t^i \log\pi_\theta(a_t^i\mid s_t^i)\,\psi_t^i$
# with $\psi$ held constant: a sum over each episode's steps averaged over episodes, so
# $-\nabla L$ is the Monte Carlo estimate of $\nabla J$. One Adam step on it is one REINFORCE
# update. The library's `trainer.run(state, hparams, 1)` (here vmapped over the seeds, as in
# training) makes the same update from the same state: the parameters agree.

# %%
def loss_fn(actor_params, psi):
    log_probs = networks.actor.apply(actor_params, traj.obs).log_prob(traj.action)
    return losses.episode_policy_loss(log_probs, psi, mask)[0]


grads = jax.grad(loss_fn)(state.params["actor"], rewards_to_go)
optimizer = reinforce.make_policy_optimizer(hparams)  # Adam(learning_rate)
updates, _ = optimizer.update(grads, state.policy_opt_state, state.params["actor"])
by_hand = jax.tree.map(lambda p, u: p + u, state.params["actor"], updates)

run_seeds = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None)), static_argnums=2)
library_states, _ = run_seeds(states, hparams, 1)
library_actor = jax.tree.map(lambda x: x[0], library_states.params["actor"])
gaps = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), by_hand, library_actor)
print("largest parameter difference, by hand vs library:", max(jax.tree.leaves(gaps)))
assert max(jax.tree.leaves(gaps)) < 1e-5
print("gradient norm:", float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))))

# %% [markdown]
# ## 5. Training with three weightings
#
# The same update, repeated, is REINFORCE: we call the library's `run` (vmapped over 4 seeds)
# one update at a time. Three weightings (`weighting` and `baseline` are static settings, so
# each is its own compiled program): total return with no baseline, reward-to-go with no
# baseline (the update of section 4), reward-to-go minus a learned value $V(s_t)$. Curves
# are the mean over seeds of the average return of each update's 8 episodes, with the
# min-max band. (`pgjax.runtime.experiment.train_seeds` does the same in compiled chunks.)

# %%
VARIANTS = {
    "total return": {"weighting": "total", "baseline": "none"},
    "reward-to-go": {"weighting": "reward_to_go", "baseline": "none"},
    "reward-to-go - V(s)": {"weighting": "reward_to_go", "baseline": "value"},
}
if CI:
    VARIANTS = {"reward-to-go": VARIANTS["reward-to-go"]}
NUM_UPDATES = 2 if CI else 50  # 8 episodes x 500 simulated steps each


def train(settings):
    """`NUM_UPDATES` updates for every seed; returns per-update mean returns [S, U] and the states after each."""
    if settings == {"weighting": config.weighting, "baseline": config.baseline}:
        run, seeds_state = run_seeds, states  # the program compiled in section 4
    else:
        variant = reinforce.make_trainer(dataclasses.replace(config, **settings))
        run = jax.jit(jax.vmap(variant.run, in_axes=(0, None, None)), static_argnums=2)
        seeds_state = jax.jit(jax.vmap(variant.init, in_axes=(0, None)))(seed_keys(0, SEEDS), hparams)
    returns_, history = [], []
    for _ in range(NUM_UPDATES):
        seeds_state, metrics = run(seeds_state, hparams, 1)
        returns_.append(np.asarray(metrics["episode_return"][:, 0]))
        history.append(seeds_state)
    return np.stack(returns_, axis=1), history


curves, histories = {}, {}
for name, settings in VARIANTS.items():
    curves[name], histories[name] = train(settings)
    print(f"{name:>22}: mean return over the last 5 updates {curves[name][:, -5:].mean():.0f}")

steps = np.arange(1, NUM_UPDATES + 1) * config.batch_size
fig, ax = plt.subplots()
for name, ret in curves.items():
    line, = ax.plot(steps, ret.mean(0), label=name)
    ax.fill_between(steps, ret.min(0), ret.max(0), color=line.get_color(), alpha=0.15)
ax.set(xlabel="simulated environment steps", ylabel="episode return",
       title=f"REINFORCE on CartPole-v1, {len(SEEDS)} seeds")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 6. Estimator diagnostics: same mean, different variance
#
# `diagnostics.gradient_diagnostics` fixes a policy (and a critic), draws many independent
# batches of 8 episodes and computes from each batch every estimator on the same episodes.
# With $\gamma=1$ the total-return and reward-to-go estimators, with or without a baseline,
# estimate the same gradient (past rewards only add zero-mean noise; a baseline that does not
# depend on the action adds none). We take the policy at initialisation, horizon 200 (a
# random policy never gets that far, so nothing is truncated), and a critic fit to that
# policy's Monte Carlo returns by a short run of the value regression.

# %%
from pgjax.algos.actor_critic import fit_value_function

H = 200
NUM_BATCHES = 40 if CI else 400
short_env = make_vec_env("CartPole-v1", 64, max_episode_steps=H)


@jax.jit
def fit_critic(params, key):
    """Regress V on the Monte Carlo returns (gamma = 1) of 64 episodes of this policy."""
    policy = functools.partial(sample_step, config, short_env, networks, params, state.obs_stats)
    traj, mask = rollout.collect_episodes(short_env, policy, key, H)
    targets = returns.reward_to_go(traj.reward, mask, 1.0)
    optimizer = reinforce.make_value_optimizer(hparams)
    critic, _, fit = fit_value_function(
        networks.critic, optimizer, params["critic"], optimizer.init(params["critic"]),
        traj.obs.reshape(-1, 4), targets.reshape(-1), 500, weights=mask.reshape(-1),
    )
    return critic, fit


critic, fit = fit_critic(state.params, jax.random.PRNGKey(2))
print(f"value loss {float(fit['value_loss']):.1f} -> {float(fit['value_loss_after']):.1f}")

DIAG = {"env_id": "CartPole-v1", "num_batches": NUM_BATCHES, "episodes_per_batch": 8, "gamma": 1.0,
        "gae_lambdas": (0.0, 0.5, 0.9, 0.97, 1.0)}
estimates = diagnostics.gradient_estimates(
    networks, state.params["actor"], critic, key=jax.random.PRNGKey(3), horizon=H, **DIAG
)
stats = {name: diagnostics.summarize(values) for name, values in estimates.items()}
for name, s in stats.items():
    print(f"{name:>24}: total variance {float(s.total_variance):9.1f}   |mean| {float(jnp.linalg.norm(s.mean)):6.2f}")

# %%
unbiased = ["total", "reward_to_go", "reward_to_go_batch_mean", "reward_to_go_value"]
labels = {"total": r"$R(\tau)$", "reward_to_go": "$G_t$", "reward_to_go_batch_mean": "$G_t - \\bar G_t$ (batch)",
          "reward_to_go_value": "$G_t - V(s_t)$"}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.bar(range(len(unbiased)), [float(stats[n].total_variance) for n in unbiased], color=[f"C{i}" for i in range(4)])
ax1.set_xticks(range(len(unbiased)), [labels[n] for n in unbiased], fontsize=8)
ax1.set(yscale="log", ylabel="trace of covariance of one batch's estimate", title="variance (log scale)")
reference = np.asarray(stats["total"].mean)
for i, name in enumerate(unbiased[1:], start=1):
    ax2.errorbar(reference, np.asarray(stats[name].mean), yerr=2 * np.asarray(stats[name].standard_error),
                 fmt="o", ms=2.5, lw=0.6, color=f"C{i}", label=labels[name], alpha=0.7)
lim = np.abs(reference).max() * 1.1
ax2.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
ax2.set(xlabel=r"mean estimate with $R(\tau)$ (per parameter)", ylabel="mean estimate", title="means agree (±2 s.e.)")
ax2.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The means lie on the diagonal within their error bars: subtracting a baseline, or dropping
# the rewards that came before the action, changes no expectation. The variances do change,
# by large factors, and that is what separates the learning curves above.
#
# To make "no bias" quantitative, compare each estimator with the total-return one batch by
# batch (they share episodes). For the per-batch differences $d_b = g_b - g_b^{R(\tau)}$ over
# $B$ batches, $\mathbb{E}\|\bar d\|^2 = \|\text{bias}\|^2 + \operatorname{tr}\mathrm{Cov}(d)/B$, so
# the ratio $\|\bar d\|^2 / (\operatorname{tr}\mathrm{Cov}(d)/B)$ is about 1 for an unbiased
# estimator (it fluctuates: the coordinates of $d$ are strongly correlated, so it behaves like a
# chi-square with few degrees of freedom over their number) and grows with $B$ for a biased one.
# GAE with $\lambda<1$ replaces the rest of the return by the critic's $V(s_{t+1})$ and is biased
# wherever the critic is wrong; $\lambda = 1$ is $G_t - V(s_t)$ here (nothing is truncated).

# %%
def bias_ratio(name, source=estimates):
    d = np.asarray(source[name] - source["total"], np.float64)
    noise = d.var(axis=0, ddof=1).sum() / d.shape[0]
    return float(np.sum(d.mean(axis=0) ** 2) / noise)


compared = unbiased[1:] + [f"gae_{lam:g}" for lam in DIAG["gae_lambdas"]]
ratios = [bias_ratio(name) for name in compared]
fig, ax = plt.subplots()
ax.bar(range(len(compared)), ratios, color=["C1", "C2", "C3"] + ["C4"] * len(DIAG["gae_lambdas"]))
ax.axhline(1.0, color="k", ls=":", lw=1, label="expected for an unbiased estimator")
ax.set_xticks(range(len(compared)), [name.replace("reward_to_go", "G") for name in compared], fontsize=7, rotation=20)
ax.set(yscale="log", ylabel=r"$\|\bar d\|^2 / (\mathrm{tr\,Cov}(d)/B)$",
       title=f"difference from the total-return estimator, {NUM_BATCHES} batches")
ax.legend(fontsize=8)
plt.show()
for name, ratio in zip(compared, ratios):
    print(f"{name:>24}: {ratio:8.2f}")

# %% [markdown]
# Measured with 400 batches: 1.2, 1.4 and 0.95 for the three unbiased weightings, as
# expected; 2.9 for GAE(0) and 2.0 for GAE(0.5): with this (imperfect) critic their bias is
# detectable, though small next to the noise of a single batch; $\lambda \ge 0.9$ is not
# distinguishable from unbiased at this number of batches. Notebook 02 turns this into the
# bias-variance dial of $\lambda$.

# %% [markdown]
# ### Group baselines: several episodes from one start state
#
# REINFORCE's `baseline = "leave_one_out"` (RLOO; Kool et al., 2019) and `"group_norm"` (GRPO;
# Shao et al., 2024) compare each episode with the others started from the same state:
# `group_size = K` copies each reset state into K environments. For one group's returns,
# $b_k = \frac{1}{K-1}\sum_{j\ne k} R_j$, unbiased because the other episodes do not depend on
# episode $k$; $A_k = (R_k - \bar R)/(\mathrm{std}\,R + \epsilon)$ is biased (and on another
# scale). `gradient_estimates(..., group_size=4)` draws every batch as 2 groups of 4 episodes
# (still 8 per batch) and adds these estimators, with the total return and with the
# reward-to-go. The fair comparison is with the independent episodes above at the same batch
# size: grouping alone can raise the variance (a batch sees fewer start states), and the
# baseline has to pay that back.

# %%
GROUP_SIZE = 4
grouped = diagnostics.gradient_estimates(
    networks, state.params["actor"], critic, key=jax.random.PRNGKey(3), horizon=H, group_size=GROUP_SIZE, **DIAG
)
grouped_stats = {name: diagnostics.summarize(values) for name, values in grouped.items()}
sources = {"independent": stats, "grouped": grouped_stats}
bars = [("independent", "total", r"$R(\tau)$"), ("grouped", "total", r"$R(\tau)$, grouped"),
        ("grouped", "total_leave_one_out", r"$R(\tau)$ - RLOO"), ("independent", "reward_to_go", "$G_t$"),
        ("grouped", "reward_to_go", "$G_t$, grouped"), ("grouped", "reward_to_go_leave_one_out", "$G_t$ - RLOO"),
        ("independent", "reward_to_go_batch_mean", "$G_t$ - batch"), ("independent", "reward_to_go_value", "$G_t - V$")]
variances = [float(sources[source][name].total_variance) for source, name, _ in bars]
fig, ax = plt.subplots(figsize=(9, 3.6))
ax.bar(range(len(bars)), variances, color=["C0" if source == "independent" else "C1" for source, _, _ in bars])
ax.set_xticks(range(len(bars)), [label for _, _, label in bars], fontsize=7, rotation=20)
ax.set(yscale="log", ylabel="trace of covariance", title=f"8 episodes per batch: independent (blue) or {8 // GROUP_SIZE} "
       f"groups of {GROUP_SIZE} (orange)")
plt.show()
for (source, name, _), variance in zip(bars, variances):
    print(f"{source:>11} {name:>26}: total variance {variance:9.1f}")
for name in ["total_leave_one_out", "reward_to_go_leave_one_out", "total_group_norm", "reward_to_go_group_norm"]:
    print(f"{name:>26}: bias ratio vs the grouped total-return estimator {bias_ratio(name, grouped):8.2f}")

# %% [markdown]
# The leave-one-out baseline is free (no critic) and unbiased: its bias ratio against the
# total-return estimator on the same grouped episodes is about 1, like the other unbiased
# weightings above. It helps most where it was proposed, on the total return, where it
# removes the part of $R(\tau)$ that the group's start state predicts. With the reward-to-go
# the batch mean over independent episodes, or a critic, does as well or better here. The
# group-normalised estimator has a large bias ratio by construction: it divides by each
# group's spread, so its mean is a rescaled gradient, not $\nabla J$.

# %% [markdown]
# ## 7. Variance grows with the horizon
#
# The total-return estimator multiplies every score term by the sum of all rewards: both the
# number of terms and the size of the weight grow with the horizon $H$. The reward-to-go
# drops the past, and a baseline removes the part of $G_t$ that the state already predicts.
# A random policy falls over in ~20 steps, so we measure a partly trained policy (a
# reward-to-go run from section 5 when its return first passed 100) with episodes truncated at
# $H$ steps, for increasing $H$ (one compilation per $H$).

# %%
history = histories["reward-to-go"]
chosen = next((s for r, s in zip(curves["reward-to-go"][0], history) if r > 100), history[-1])
actor = jax.tree.map(lambda x: x[0], chosen.params["actor"])  # seed 0
# Each H is its own compilation; the test run only repeats section 6's H.
HORIZONS = (H,) if CI else (10, 25, 50, 100, 200, 400)
by_horizon = diagnostics.variance_vs_horizon(
    networks, actor, critic, horizons=HORIZONS, key=jax.random.PRNGKey(4), **DIAG
)
table = diagnostics.total_variances(by_horizon)
fig, ax = plt.subplots()
for name, label in [("total", r"$R(\tau)$"), ("reward_to_go", "$G_t$"), ("reward_to_go_batch_mean", r"$G_t - \bar G_t$"),
                    ("reward_to_go_value", "$G_t - V(s_t)$, critic of sec. 6")]:
    ax.loglog(HORIZONS, table[name], "o-", label=label)
ax.set(xlabel="horizon H (steps)", ylabel="total variance of one batch's estimate", title="variance vs horizon")
ax.legend(fontsize=8)
plt.show()
for h, row in zip(HORIZONS, zip(*table.values())):
    print(f"H={h:4d}: " + "  ".join(f"{n}={v:10.1f}" for n, v in zip(table, row)))

# %% [markdown]
# While this policy's episodes outlast the horizon, every reward is +1 and $R(\tau) = H$
# multiplies a sum of $H$ score terms: the total estimator's variance grows roughly like
# $H^3$ (compare the table: about x16 from $H=10$ to $25$, $2.5^3 \approx 16$). Once episodes
# end before $H$ it levels off. The reward-to-go is 2.5 to 4 times lower at every $H$. The
# batch-mean baseline is exactly zero at $H=10$ (all 8 episodes alive with identical $G_t$,
# so the baseline removes the whole weight; not drawn on the log axis) and stays lowest
# throughout. The value baseline is NOT better here: its critic was fit to the random-init
# policy's returns, not to this policy's, and a badly matched baseline can add variance (at
# $H = 10$ it is above even the total return). This is why REINFORCE with the total return
# learns slowest in section 5, and why practical methods weight by the reward-to-go minus a
# baseline that is refit to the current policy.
