"""The pieces every on-policy algorithm shares: actor and critic networks built for an
environment, their parameters, sampling actions for a rollout, acting for evaluation,
fitting the value function.

Functions take the algorithm's config (an `OnPolicyConfig`) first so algorithms can bind
them with `functools.partial` and stay free of nested closures.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pgjax.algos.rollout import PolicyStep
from pgjax.envs import VecEnv, clip_action, normalize_obs, update_running_stats
from pgjax.kernels import returns
from pgjax.kernels.reward_scaling import RewardScaling, scale_rewards
from pgjax.networks.cores import Carry, Core, make_core
from pgjax.networks.heads import CategoricalActor, GaussianActor, ValueCritic
from pgjax.networks.initializers import init_networks
from pgjax.networks.torsos import torso_spec
from pgjax.types import Array, PRNGKey, RunningStats, Transition


class ActorCritic(NamedTuple):
    actor: Any  # flax module: obs -> Categorical | DiagGaussian (through the core)
    critic: Any  # flax module: obs -> V(obs) (through the core)
    core: Core  # how both are stepped and unrolled, and the carry they thread (pgjax.networks.cores)


def make_actor_critic(config: Any, env: VecEnv) -> ActorCritic:
    """A categorical or Gaussian actor (by the action space) and a value critic, both on the
    torso `torso_spec` picks for the observations, each wrapped by the core `config.core`
    names (`cores.make_core`: the head itself for `"none"`, a `RecurrentNetwork` for `"gru"`).
    A config whose class sets `policy_aux_value_head = True` (PPG) gives the actor an
    auxiliary value head (`heads.CategoricalActor`)."""
    spec, torso, core = env.action_spec, torso_spec(config, env.obs_shape), make_core(config)
    aux_value = getattr(config, "policy_aux_value_head", False)
    if spec.discrete:
        def actor_head(sizes, head_torso):
            return CategoricalActor(spec.num_actions, sizes, config.activation, torso=head_torso, aux_value=aux_value)
    else:
        def actor_head(sizes, head_torso):
            return GaussianActor(
                spec.num_actions, sizes, config.activation, init_log_std=config.init_log_std, torso=head_torso,
                aux_value=aux_value,
            )

    def critic_head(sizes, head_torso):
        return ValueCritic(sizes, config.activation, torso=head_torso)

    return ActorCritic(
        core.network(actor_head, "actor", config.hidden_sizes, config.activation, torso),
        core.network(critic_head, "critic", config.hidden_sizes, config.activation, torso),
        core,
    )


def init_actor_critic(networks: ActorCritic, env: VecEnv, key: PRNGKey, init: str = "orthogonal", bias_init_max: float = 0.0) -> dict:
    """Both networks' parameters, initialised as `init` and `bias_init_max` say (`init_networks`)."""
    # JAX's own Threefry for the kernels' draws: XLA's CPU compiler stalled (over 30 minutes on
    # one core) on straight-line `unrolled_rng` draws feeding the Newton-Schulz loop for some
    # shapes (hidden_sizes=(16,) on a 1-d observation), and no faster compile was measured
    # from them once the kernels share one loop.
    actor_key, critic_key = jax.random.split(key)
    dummy = networks.core.init_input(jnp.zeros((1, *env.obs_shape), jnp.float32))
    # One orthogonalisation for both networks: fewer Newton-Schulz loops to compile.
    inits = {"actor": (networks.actor, actor_key, (dummy,)), "critic": (networks.critic, critic_key, (dummy,))}
    return init_networks(inits, init, bias_init_max)


def initial_carry(networks: ActorCritic, num_envs: int) -> Carry:
    """Both networks' carry before the first step of `num_envs` environments (`()` without memory)."""
    return networks.core.init_carry(num_envs)


def observe(config: Any, obs_stats: RunningStats, obs: Array) -> Array:
    """What the networks see: raw observations, or normalised ones if `config.normalize_obs`."""
    return normalize_obs(obs_stats, obs) if config.normalize_obs else obs


def to_env_action(env: VecEnv, action: Array) -> Array:
    spec = env.action_spec
    return action if spec.discrete else clip_action(action, spec)


def sample_step(config, env, networks, params, obs_stats, key, obs, carry=()):
    """Sample `a ~ pi(.|s)` for a rollout, with its log-prob: `(PolicyStep, carry)`.

    Both networks' carry advances one step (the critic's too: the next rollout's value pass
    starts from it). A feed-forward critic's step leaves its empty carry as it is and its
    value is unused, so the compiled rollout drops it (metrics unchanged, checked): algorithms that need `V(s)` get it afterwards with one batched call over
    `[T, B]` observations (`rollout_values`), cheaper than one per step.
    """
    obs = observe(config, obs_stats, obs)
    dist, carry = _actor_step(networks, params, obs, carry)
    action = dist.sample(key)
    step = PolicyStep(action, to_env_action(env, action), dist.log_prob(action))
    carry, _ = networks.core.step(networks.critic, params["critic"], carry, obs)
    return step, carry


def _actor_step(networks, params, obs, carry):
    """The actor's distribution at (observed) `obs` and the carry with the actor's advanced."""
    carry, dist = networks.core.step(networks.actor, params["actor"], carry, obs)
    return dist, carry


def rollout_values(config, networks, params, obs_stats, traj, carry) -> tuple[Any, Array, Array]:
    """`(inputs, V(s_t), V(s_{t+1}))` for a rollout `[T, B, ...]`, the critic run from `carry`
    (the carry at the rollout's start).

    `inputs` is what the networks saw (normalised if `config.normalize_obs`; whole sequences
    `recurrent.Sequences` for a sequential core); `V(s_{t+1})` is taken at `traj.next_obs`, the
    true final observation where an episode ended, with the carry before the reset.
    """
    both = observe(config, obs_stats, jnp.stack([traj.obs, traj.next_obs]))
    return networks.core.rollout_values(networks.critic, params["critic"], carry, both, traj.terminated | traj.truncated)


def flatten_rollout(networks: ActorCritic, batch: Any) -> Any:
    """Time-major rollout arrays `[T, B, ...]` as update rows (`core.rows`): `[T*B, ...]`
    steps, or `[B, T, ...]` whole sequences for a sequential core."""
    return networks.core.rows(batch)


class GAEBatch(NamedTuple):
    """A rollout flattened to `[T*B, ...]` with GAE advantages, ready for minibatching."""

    obs: Array  # what the networks saw (normalised if normalize_obs)
    action: Array
    log_prob: Array  # log pi_old(action | obs) at collection
    value: Array  # V_old(obs)
    advantage: Array  # GAE(gamma, lambda)
    target: Array  # lambda-returns A + V_old, the value regression target


def gae_batch(config, networks, hparams, params, obs_stats, traj: Transition, carry) -> GAEBatch:
    """GAE (`hparams.gamma`, `hparams.gae_lambda`, rewards times `hparams.reward_scale`) on a
    rollout `[T, B]`, bootstrapping truncations from `V(next_obs)`, flattened to `[T*B]`
    (a sequential core: `[B, T]` sequences from `carry`, the carry at the rollout's start)."""
    obs, values, next_values = rollout_values(config, networks, params, obs_stats, traj, carry)
    advantages = returns.gae(
        traj.reward * hparams.reward_scale, values, next_values,
        traj.terminated, traj.truncated, hparams.gamma, hparams.gae_lambda,
    )
    return flatten_rollout(networks, GAEBatch(obs, traj.action, traj.log_prob, values, advantages, advantages + values))


def scale_rollout_rewards(config, hparams, scaling: RewardScaling | None, traj: Transition,
                          mask: Array | None = None) -> tuple[Transition, RewardScaling | None]:
    """The rollout with its rewards divided by the running std of the discounted return
    (`reward_scaling.scale_rewards`, discount `hparams.gamma`) if `config.scale_rewards`, and
    the new scaling state; unchanged otherwise. Episode statistics stay in raw rewards."""
    if not config.scale_rewards:
        return traj, scaling
    rewards, scaling = scale_rewards(scaling, traj.reward, traj.terminated, traj.truncated, hparams.gamma, mask)
    return traj._replace(reward=rewards), scaling


def update_obs_stats(config, obs_stats: RunningStats, traj: Transition) -> RunningStats:
    """Fold a rollout's raw observations into the running statistics if `config.normalize_obs`.

    Called after the update, so every network call of one iteration saw the same statistics.
    """
    if not config.normalize_obs:
        return obs_stats
    return update_running_stats(obs_stats, traj.obs.reshape(-1, *traj.obs.shape[2:]))


def act_step(config, env, networks, params, obs_stats, key, obs, deterministic, carry):
    """Environment actions for evaluation (the mode if deterministic, else a sample) and
    the carry after the step: `(actions, carry)`."""
    dist, carry = _actor_step(networks, params, observe(config, obs_stats, obs), carry)
    return to_env_action(env, dist.mode() if deterministic else dist.sample(key)), carry


def act(config, env, networks, params, obs_stats, key, obs, deterministic=False, *carry):
    """The trainer's `act`: `act_step`'s `(actions, carry)` when given the policy's `carry`;
    without one, the actions alone of a step from the initial carry (a memoryless policy's
    every step, a policy with memory's first)."""
    if carry:
        return act_step(config, env, networks, params, obs_stats, key, obs, deterministic, *carry)
    start = initial_carry(networks, obs.shape[0])
    return act_step(config, env, networks, params, obs_stats, key, obs, deterministic, start)[0]


def fit_value_function(
    critic: Any,
    optimizer: optax.GradientTransformation,
    critic_params: Any,
    opt_state: Any,
    obs: Array,
    targets: Array,
    num_iters: int,
    weights: Array | None = None,
) -> tuple[Any, Any, dict]:
    """Regress `V(obs)` on `targets` with `num_iters` full-batch steps of `optimizer`.

    Minimises `1/2 sum_i w_i (V(s_i) - y_i)^2 / sum_i w_i` (weights mask padded steps;
    default all ones), as the value step of VPG/REINFORCE (Schulman et al., 2016, sec. 5).
    `obs [N, ...]`, `targets [N]`. Returns new params, optimiser state and the loss before
    and after fitting.
    """
    weights = jnp.ones_like(targets) if weights is None else weights
    targets = jax.lax.stop_gradient(targets)

    def loss_fn(p):
        error = critic.apply(p, obs) - targets
        return 0.5 * jnp.sum(weights * error**2) / jnp.maximum(jnp.sum(weights), 1.0)

    def step(carry, _):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    (critic_params, opt_state), losses = jax.lax.scan(step, (critic_params, opt_state), None, length=num_iters)
    return critic_params, opt_state, {"value_loss": losses[0], "value_loss_after": loss_fn(critic_params)}
