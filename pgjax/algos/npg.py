"""Natural Policy Gradient (Kakade, 2001) with GAE and a fitted value function.

Each update collects one rollout, estimates advantages with GAE (Schulman et al., 2016),
and moves the policy along the natural gradient by the step that fills the KL radius
`delta = hparams.max_kl` under the quadratic model of the KL:

    theta <- theta + sqrt(2 delta / g^T F^-1 g) F^-1 g,   g = grad_theta mean(r_theta A),

with `F^-1 g` from `cfg.cg_iters` conjugate-gradient iterations on Fisher-vector products
of the mean KL (`pgjax.kernels.trust_region`). The value function is then regressed on the
lambda-returns with `value_iters` Adam steps, as VPG does (`actor_critic.fit_value_function`).
TRPO (`pgjax.algos.trpo`) is this update with a KL-checked line search on the step:
`update` takes the step rule as its first argument so both share everything else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.algos._on_policy import RolloutState, actor_critic_trainer, collect_rollout, initial_core, rollout_metrics
from pgjax.algos._trainer import train_function
from pgjax.algos.actor_critic import fit_value_function, gae_batch, scale_rollout_rewards, update_obs_stats
from pgjax.algos.contract import Trainer
from pgjax.config import (
    OnPolicyConfig,
    config_dataclass,
    discount_field,
    field,
    gae_lambda_field,
    hparams_dataclass,
    non_negative,
    positive,
    reward_scale_field,
    unit_interval,
)
from pgjax.kernels.losses import entropy_bonus, importance_surrogate, normalize_advantages
from pgjax.kernels.trust_region import (
    conjugate_gradient,
    fisher_vector_product,
    mean_kl,
    natural_step,
    subsample,
    tree_vdot,
)
from pgjax.types import Array


@hparams_dataclass
class NPGHParams:
    """Traced hyper-parameters: vmap over them (max_kl, damping, ...) without recompiling."""

    max_kl: float = field(0.01, "KL radius delta of the natural step (mean KL(old || new) per state)", positive())
    damping: float = field(0.1, "damping added to the Fisher matrix: (F + damping I) x = g", non_negative())
    cg_residual_tol: float = field(1e-10, "conjugate gradient stops improving once r.r is below this", non_negative())
    value_learning_rate: float = field(1e-3, "Adam step size of the value-function regression", positive())
    gamma: float = discount_field()
    gae_lambda: float = gae_lambda_field(0.97)
    reward_scale: float = reward_scale_field("GAE")


@config_dataclass
class NPGConfig(OnPolicyConfig):
    """Static NPG settings (shared on-policy ones in `OnPolicyConfig`): changing one recompiles."""

    cg_iters: int = field(10, "conjugate-gradient iterations (Fisher-vector products) per update", non_negative())
    fvp_fraction: float = field(1.0, "fraction of the rollout the Fisher-vector products use", unit_interval())
    value_iters: int = field(80, "full-batch value-regression steps per update", positive())
    normalize_advantages: bool = field(True, "standardise advantages over the rollout")
    hparams: NPGHParams = field(NPGHParams(), "traced hyper-parameters")

    supports_recurrent_core = False  # the Fisher-vector products subsample single steps

    @property
    def fvp_batch_size(self) -> int:
        return max(1, round(self.fvp_fraction * self.batch_size))


@struct.dataclass(kw_only=True)
class NPGState(RolloutState):
    """`RolloutState` and the critic's optimiser state (NPG's and TRPO's)."""

    critic_opt_state: optax.OptState


class PolicyProblem(NamedTuple):
    """The trust-region subproblem of one update, for a step rule to solve."""

    params: Any  # theta_old (actor)
    surrogate: Callable  # theta -> mean(r_theta A)
    kl: Callable  # theta -> mean KL(pi_old || pi_theta) over the whole rollout


def critic_optimizer(hparams: NPGHParams) -> optax.GradientTransformation:
    return optax.adam(hparams.value_learning_rate)


def _rollout_batch(config, networks, hparams, params, obs_stats, traj):
    """VPG's flat GAE batch (`V(next_obs)` bootstraps truncations); advantages standardised
    here once for the whole rollout if `normalize_advantages` (targets keep the raw ones).
    NPG takes no sequential core (`supports_recurrent_core`): its carry is the empty initial one."""
    carry = networks.core.init_carry(traj.reward.shape[1])
    batch = gae_batch(config, networks, hparams, params, obs_stats, traj, carry)
    if config.normalize_advantages:
        batch = batch._replace(advantage=normalize_advantages(batch.advantage))
    return batch


def surrogate(networks, batch, actor_params) -> Array:
    """`L(theta) = mean(pi_theta(a|s) / pi_old(a|s) A)` on the rollout (`losses.importance_surrogate`)."""
    log_probs = networks.actor.apply(actor_params, batch.obs).log_prob(batch.action)
    return importance_surrogate(log_probs, batch.log_prob, batch.advantage)


def natural_gradient_step(config, networks, hparams, actor_params, batch, key) -> tuple[Any, PolicyProblem, dict]:
    """The full natural step `sqrt(2 delta / g^T x) x`, `x ~ (F + damping I)^-1 g` by CG."""
    surrogate_fn = functools.partial(surrogate, networks, batch)
    gradient = jax.grad(surrogate_fn)(actor_params)
    fvp_obs = subsample(key, batch.obs, config.fvp_batch_size)
    fvp_kl = functools.partial(mean_kl, networks.actor.apply, actor_params, obs=fvp_obs)
    matvec = functools.partial(fisher_vector_product, fvp_kl, actor_params, damping=hparams.damping)
    cg = conjugate_gradient(matvec, gradient, config.cg_iters, hparams.cg_residual_tol)
    step, g_f_inv_g = natural_step(cg.x, gradient, hparams.max_kl)
    problem = PolicyProblem(
        actor_params, surrogate_fn, functools.partial(mean_kl, networks.actor.apply, actor_params, obs=batch.obs)
    )
    metrics = {
        "grad_norm": optax.tree.norm(gradient),
        "cg_residual": cg.residual_norm,
        "cg_iterations": cg.iterations,
        "g_f_inv_g": g_f_inv_g,
        "step_norm": jnp.sqrt(tree_vdot(step, step)),
    }
    return step, problem, metrics


def fixed_step(config, hparams, problem: PolicyProblem, step) -> tuple[Any, dict]:
    """NPG's rule: take the whole natural step; report the KL and surrogate change it made."""
    new = jax.tree.map(jnp.add, problem.params, step)
    improvement = problem.surrogate(new) - problem.surrogate(problem.params)
    return new, {"kl": problem.kl(new), "surrogate_improvement": improvement}


def update(step_rule, config, env, networks, hparams, state: NPGState, _):
    """One iteration: rollout, GAE, natural direction, `step_rule`, `value_iters` value steps."""
    key, rollout_key, fvp_key = jax.random.split(state.key, 3)
    env_carry, traj = collect_rollout(config, env, networks, state, rollout_key)
    traj, reward_scaling = scale_rollout_rewards(config, hparams, state.reward_scaling, traj)
    batch = _rollout_batch(config, networks, hparams, state.params, state.obs_stats, traj)

    step, problem, step_metrics = natural_gradient_step(
        config, networks, hparams, state.params["actor"], batch, fvp_key
    )
    actor_params, rule_metrics = step_rule(config, hparams, problem, step)
    critic_params, critic_opt_state, value_metrics = fit_value_function(
        networks.critic, critic_optimizer(hparams), state.params["critic"], state.critic_opt_state,
        batch.obs, batch.target, config.value_iters,
    )
    obs_stats = update_obs_stats(config, state.obs_stats, traj)

    update = state.update + 1
    _, entropy_metrics = entropy_bonus(networks.actor.apply(state.params["actor"], batch.obs).entropy())
    metrics = {
        **step_metrics,
        **rule_metrics,
        **value_metrics,
        **entropy_metrics,
        "loss": -(problem.surrogate(actor_params)),  # the policy objective after the step
        **rollout_metrics(config, update, traj, batch),
    }
    params = {"actor": actor_params, "critic": critic_params}
    new_state = NPGState(params=params, critic_opt_state=critic_opt_state, env=env_carry, obs_stats=obs_stats,
                         key=key, update=update, reward_scaling=reward_scaling)
    return new_state, metrics


def init(config, env, networks, key, hparams) -> NPGState:
    core = initial_core(config, env, networks, key)
    return NPGState.from_core(core, critic_opt_state=critic_optimizer(hparams).init(core.params["critic"]))


def build_trainer(config, step_rule) -> Trainer:
    """The trainer for a natural-gradient method whose step rule is `step_rule` (NPG, TRPO)."""
    return actor_critic_trainer(config, init, functools.partial(update, step_rule))


def make_trainer(config: NPGConfig) -> Trainer:
    """Build NPG's functions for `config` (validated here, before anything compiles)."""
    return build_trainer(config, fixed_step)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
