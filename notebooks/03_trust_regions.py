# %% [markdown]
# # Trust regions: natural gradients, TRPO and PPO's clip
#
# A vanilla gradient step is the steepest ascent in parameter space, where a small step in
# one parameter can change the policy a lot and in another hardly at all. The natural
# gradient $F^{-1}\nabla J$ (Kakade, 2001; $F$ the Fisher information) is steepest ascent
# when distance is measured by the KL divergence between policies, whatever the
# parametrisation. This notebook
#
# 1. draws both vector fields over the plane of a two-parameter policy (the Fisher-vector
#    product and conjugate gradient of `pgjax.kernels.trust_region`, checked against the explicit
#    Fisher matrix);
# 2. runs VPG, NPG, TRPO and PPO on CartPole with the same rollouts per update, and plots
#    the KL each update moved the policy by, next to the returns;
# 3. plots PPO's clipped objective against the probability ratio for positive and negative
#    advantages (`pgjax.kernels.losses.ppo_clip_loss`).
#
# The test suite runs this notebook with `PGJAX_NOTEBOOK_BUDGET=ci` (tiny budgets, noisy
# figures); the committed copy was run with the full budget.

# %%
import os

BUDGET = os.environ.get("PGJAX_NOTEBOOK_BUDGET", "full")  # "ci": tiny budget for the test suite
if BUDGET not in ("full", "ci"):
    raise ValueError(f"PGJAX_NOTEBOOK_BUDGET={BUDGET!r}: expected 'full' or 'ci'")
CI = BUDGET == "ci"

import functools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from pgjax.algos import npg, ppo, trpo, vpg
from pgjax.algos.rollout import PolicyStep, reset_env_carry, rollout
from pgjax.envs import make_vec_env
from pgjax.kernels import trust_region
from pgjax.kernels.distributions import Categorical
from pgjax.kernels.losses import ppo_clip_loss
from pgjax.reports.plotting import smooth
from pgjax.runtime.experiment import seed_keys

plt.rcParams.update({"figure.dpi": 80, "figure.figsize": (6.4, 3.6), "axes.grid": True, "grid.alpha": 0.3})
print("budget:", BUDGET)

# %% [markdown]
# ## 1. Vanilla and natural gradient on a two-parameter policy
#
# A one-step bandit with three arms paying $r = (1, 0.5, 0)$ and a softmax policy with
# logits $(\theta_1, \theta_2, 0)$: two parameters, a `Categorical` from `pgjax.kernels.distributions`.
# The objective is $J(\theta) = \sum_a \pi_\theta(a)\,r_a$. The Fisher matrix is the Hessian
# of $\theta' \mapsto \mathrm{KL}(\pi_\theta\,\|\,\pi_{\theta'})$ at $\theta' = \theta$;
# `trust_region.fisher_vector_product` computes $Fv$ from that KL without forming $F$, and
# `trust_region.conjugate_gradient` solves $F x = \nabla J$ with two of them (exact in 2-D).
# For a softmax, $F = \mathrm{diag}(p) - pp^\top$ restricted to the free logits: we check.

# %%
REWARDS = jnp.array([1.0, 0.5, 0.0])


def policy(theta, obs=None):
    """The bandit's policy: a Categorical over 3 arms with logits (theta_1, theta_2, 0)."""
    return Categorical(jnp.concatenate([theta, jnp.zeros(1)]))


def objective(theta):
    return jnp.sum(jax.nn.softmax(policy(theta).logits) * REWARDS)


@jax.jit
def gradients(theta):
    """(vanilla gradient, natural gradient F^-1 g, Fisher matrix F) at theta."""
    g = jax.grad(objective)(theta)
    kl = functools.partial(trust_region.mean_kl, policy, theta, obs=jnp.zeros((1,)))
    matvec = functools.partial(trust_region.fisher_vector_product, kl, theta, damping=0.0)
    natural = trust_region.conjugate_gradient(matvec, g, num_iters=2, residual_tol=0.0).x
    fisher = jax.vmap(matvec)(jnp.eye(2))  # columns F e_i, for the check only
    return g, natural, fisher


theta = jnp.array([0.3, -1.2])
g, natural, fisher = gradients(theta)
p = jax.nn.softmax(policy(theta).logits)[:2]
np.testing.assert_allclose(fisher, jnp.diag(p) - jnp.outer(p, p), atol=1e-6)
np.testing.assert_allclose(natural, jnp.linalg.solve(fisher, g), rtol=1e-4)
print("F from Fisher-vector products == diag(p) - pp^T; CG direction == F^-1 g")

# %% [markdown]
# Over the plane: the grey shade is $J$ (darker is higher), the arrows show the direction of each field (drawn
# at unit length) and their colour the log of its length, on one colour scale for both.
# The vanilla gradient vanishes on the plateaus where the policy is nearly deterministic
# (bottom left: arm 3, the worst, almost surely; top left: arm 2). The natural gradient is the same vector everywhere: for a softmax,
# $F^{-1}\nabla J = (r_1 - r_3,\ r_2 - r_3) = (1, 0.5)$ whatever $\theta$ (since
# $F x = p\circ x - p\,(p\cdot x)$ and $\nabla J = p \circ (r - J)$), so there is no plateau
# in the geometry the KL defines. Trajectories from a poor start: gradient ascent with a
# fixed step size, and natural steps of a fixed KL size (`trust_region.natural_step`,
# $\delta = 0.05$), whose parameter steps grow as the policy becomes more certain.

# %%
grid = jnp.linspace(-5, 5, 15)
T1, T2 = jnp.meshgrid(grid, grid)
points = jnp.stack([T1.ravel(), T2.ravel()], axis=1)
G, N, _ = jax.vmap(gradients)(points)
np.testing.assert_allclose(N, jnp.broadcast_to(REWARDS[:2] - REWARDS[2], N.shape), atol=1e-3)
fine = jnp.linspace(-5, 5, 101)
J = jax.vmap(jax.vmap(objective))(jnp.stack(jnp.meshgrid(fine, fine), axis=-1))


@functools.partial(jax.jit, static_argnums=(1, 2))
def ascend(theta, natural_steps, num_steps):
    def step(theta, _):
        g, nat, _ = gradients(theta)
        move = trust_region.natural_step(nat, g, 0.05)[0] if natural_steps else 2.0 * g
        return theta + move, theta

    return jax.lax.scan(step, theta, None, length=num_steps)[1]


start = jnp.array([-4.0, -4.5])
paths = {"vanilla gradient, step 2.0": ascend(start, False, 60), "natural gradient, KL 0.05": ascend(start, True, 60)}

log_lengths = {id(f): jnp.log10(jnp.linalg.norm(f, axis=1) + 1e-12) for f in (G, N)}
shade = plt.Normalize(min(float(v.min()) for v in log_lengths.values()), max(float(v.max()) for v in log_lengths.values()))
fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
for ax, field, title in [(axes[0], G, "vanilla gradient $\\nabla J$"), (axes[1], N, "natural gradient $F^{-1}\\nabla J$")]:
    ax.contourf(fine, fine, J, levels=20, cmap="Greys", alpha=0.6)
    length = jnp.linalg.norm(field, axis=1)
    unit = field / jnp.maximum(length, 1e-12)[:, None]
    q = ax.quiver(points[:, 0], points[:, 1], unit[:, 0], unit[:, 1], log_lengths[id(field)],
                  cmap="viridis", norm=shade, scale=22, width=0.004)
    fig.colorbar(q, ax=ax, label="log10 |field|")
    for (name, path), colour in zip(paths.items(), ["C3", "C1"]):
        ax.plot(path[:, 0], path[:, 1], ".-", color=colour, ms=3, lw=1, label=name)
    ax.set(xlabel=r"$\theta_1$ (arm 1, r = 1)", ylabel=r"$\theta_2$ (arm 2, r = 0.5)", title=title,
           xlim=(-5.3, 5.3), ylim=(-5.3, 5.3))
    ax.grid(False)
axes[0].legend(fontsize=7, loc="upper left")
plt.tight_layout()
plt.show()

fig, ax = plt.subplots(figsize=(6.4, 2.8))
for (name, path), colour in zip(paths.items(), ["C3", "C1"]):
    ax.plot(jax.vmap(objective)(path), color=colour, label=name)
ax.set(xlabel="step", ylabel="J (expected reward)", title="from a poor start")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 2. VPG, NPG, TRPO and PPO on CartPole: KL per update and returns
#
# The four algorithms collect the same amount of experience per update (8 environments x
# 256 steps) and share GAE ($\gamma = 0.99$, $\lambda = 0.97$ for VPG/NPG/TRPO, PPO's own
# 0.95) and a 64x64 network. VPG takes one Adam step on the surrogate; NPG the natural step
# that fills a KL radius $\delta = 0.01$ under the quadratic model; TRPO the same step,
# shrunk by a line search until the measured KL is within $\delta$ and the surrogate
# improves; PPO several epochs of clipped minibatch steps. We call each library trainer's
# `run` one update at a time (vmapped over seeds) and measure, after every update, the mean
# KL(old || new) over a fixed set of 4096 CartPole states with `trust_region.mean_kl`.

# %%
SEEDS = range(1 if CI else 4)
NUM_UPDATES = 3 if CI else 100
BATCH = {"num_envs": 8, "num_steps": 256, "total_timesteps": 8 * 256 * max(NUM_UPDATES, 1)}
ALGOS = {
    "VPG": vpg.make_trainer(vpg.VPGConfig(**BATCH)),
    "NPG": npg.make_trainer(npg.NPGConfig(**BATCH)),
    "TRPO": trpo.make_trainer(trpo.TRPOConfig(**BATCH)),
    "PPO": ppo.make_trainer(ppo.PPOConfig(**BATCH, num_minibatches=8)),
}
if CI:
    ALGOS = {name: ALGOS[name] for name in ("TRPO", "PPO")}

# Probe states: 4096 observations visited by a uniformly random policy (a time-major rollout).
probe_env = make_vec_env("CartPole-v1", 64)


def random_action(key, obs):
    action = jax.random.randint(key, obs.shape[:1], 0, 2)
    return PolicyStep(action, action, jnp.zeros(obs.shape[:1]))


_, probe_traj = rollout(probe_env, random_action, reset_env_carry(probe_env, jax.random.PRNGKey(7)),
                        jax.random.PRNGKey(8), 64)
probe_obs = probe_traj.obs.reshape(-1, 4)
print("probe states:", probe_obs.shape)

# %%
results = {}
for name, trainer in ALGOS.items():
    hparams = trainer.config.hparams
    init = jax.jit(jax.vmap(trainer.init, in_axes=(0, None)))
    run = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None)), static_argnums=2)
    kl = jax.jit(jax.vmap(functools.partial(trust_region.mean_kl, trainer.networks.actor.apply, obs=probe_obs)))
    state = init(seed_keys(0, SEEDS), hparams)
    kls, rets = [], []
    for _ in range(NUM_UPDATES):
        old_actor = state.params["actor"]
        state, metrics = run(state, hparams, 1)
        kls.append(np.asarray(kl(old_actor, state.params["actor"])))
        rets.append(np.asarray(metrics["episode_return"][:, 0]))
    results[name] = (np.stack(kls, 1), np.stack(rets, 1))
    print(f"{name:>5}: median KL per update {np.median(results[name][0]):.4f}, "
          f"max {results[name][0].max():.4f}; mean return over the last 10 updates {np.nanmean(results[name][1][:, -10:]):.0f}")

# %%
steps = np.arange(1, NUM_UPDATES + 1) * 8 * 256
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for i, (name, (kls, rets)) in enumerate(results.items()):
    colour = f"C{i}"
    ax1.plot(steps, np.median(kls, 0), color=colour, label=name)
    ax1.fill_between(steps, kls.min(0), kls.max(0), color=colour, alpha=0.12)
    curve = np.stack([smooth(r, 5) for r in rets])
    ax2.plot(steps, np.nanmean(curve, 0), color=colour, label=name)
    ax2.fill_between(steps, np.nanmin(curve, 0), np.nanmax(curve, 0), color=colour, alpha=0.12)
ax1.axhline(0.01, color="k", ls=":", lw=1, label=r"$\delta = 0.01$")
ax1.set(yscale="log", xlabel="environment steps", ylabel="KL(old || new), probe states",
        title=f"KL per update (median, min-max over {len(SEEDS)} seeds)")
ax2.set(xlabel="environment steps", ylabel="training episode return", title="returns (mean, min-max)")
ax1.legend(fontsize=8)
ax2.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The KL is measured on fixed probe states (visited by a random policy), not on each
# update's own rollout where NPG and TRPO control it, so it can sit above or below $\delta$.
# What it shows: NPG and TRPO move the policy by a steady KL (median about 0.005 per update
# on these states) and solve CartPole (return 500) within about 60,000 steps. VPG's single
# Adam step (learning rate 3e-4) moves the policy by about 1e-5 per update, hundreds of
# times less, and it is still near 60 after 200,000 steps: a reasonable step in parameter
# space can be a tiny one in policy space, which is why the trust-region methods measure
# their steps by the KL. PPO starts with updates of 0.003 to 0.01 and learns nearly as fast
# at first, then its KL per update falls by orders of magnitude, because the shipped settings
# anneal its learning rate linearly to zero over the run (`anneal_lr`); on this short budget
# with these rollouts it levels off near 300. That is a statement about this budget, not about
# PPO: with its shipped config (4 x 128 rollouts, 5e5 steps) it reaches 500 (README table).

# %% [markdown]
# ## 3. PPO's clipped objective against the probability ratio
#
# PPO maximises $\min\big(r A,\ \mathrm{clip}(r, 1-\epsilon, 1+\epsilon) A\big)$ with
# $r = \pi_\theta(a|s)/\pi_{\mathrm{old}}(a|s)$ (Schulman et al., 2017, eq. 7; Figure 1 there).
# `ppo_clip_loss` returns minus its mean; one sample per ratio value, $\epsilon = 0.2$. The
# objective is flat (zero gradient: the sample no longer pushes) once the ratio has moved
# past $1+\epsilon$ in the direction the advantage favours, and keeps its slope when the ratio
# has moved the wrong way.

# %%
ratios = jnp.linspace(0.01, 2.0, 400)


def clipped_objective(ratio, advantage):
    log_prob = jnp.log(ratio)[None]
    return -ppo_clip_loss(log_prob, jnp.zeros(1), jnp.full((1,), advantage), 0.2)[0]


fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
for ax, advantage in zip(axes, (1.0, -1.0)):
    values = jax.vmap(clipped_objective, in_axes=(0, None))(ratios, advantage)
    slopes = jax.vmap(jax.grad(clipped_objective), in_axes=(0, None))(ratios, advantage)
    ax.plot(ratios, values, lw=2, label=r"$L^{CLIP}$")
    ax.plot(ratios, ratios * advantage, "k:", lw=1, label="unclipped $rA$")
    ax.plot(ratios, slopes, color="C3", lw=1, alpha=0.8, label=r"$\partial L^{CLIP}/\partial r$")
    for edge in (0.8, 1.2):
        ax.axvline(edge, color="grey", lw=0.6, ls="--")
    ax.set(xlabel=r"ratio $r = \pi_\theta / \pi_{old}$", title=f"advantage A = {advantage:+g}")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
