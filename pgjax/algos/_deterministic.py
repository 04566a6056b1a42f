"""The deterministic-policy-gradient learner behind DDPG and TD3 (a `_off_policy.Learner`).

Critic: `L(phi) = sum_i mean_batch (Q_i(s, a) - y)^2` with
`y = r + gamma (1 - terminated) min_i Q'_i(s', a')` from target networks, where `a' = mu'(s')`
(DDPG: one critic; Lillicrap et al., 2016) or `a' = clip(mu'(s') + clip(eps, -c, c), low, high)`,
`eps ~ N(0, sigma_t^2)` (TD3's target-policy smoothing; Fujimoto et al., 2018). `s'` is the
true next observation, so time-limit truncations bootstrap.
Actor: the deterministic policy gradient, `L(theta) = -mean_batch Q_1(s, mu_theta(s))`, every
`policy_delay`-th update, followed by Polyak updates of all target networks (TD3's delayed
updates; DDPG: every update).
Exploration: `clip(mu(s) + noise * (high - low) / 2, low, high)` with Gaussian or
Ornstein-Uhlenbeck noise; noise sizes are fractions of half the action range.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pgjax.algos._off_policy import Learner, OffPolicyHParams
from pgjax.config import field, hparams_dataclass, non_negative, positive
from pgjax.envs import ActionSpec, VecEnv
from pgjax.kernels import noise as noise_lib
from pgjax.kernels import sac_losses
from pgjax.kernels.replay import Batch
from pgjax.kernels.targets import bellman_target, polyak_update
from pgjax.networks.heads import DeterministicActor, QEnsemble
from pgjax.networks.initializers import init_networks
from pgjax.networks.torsos import torso_spec
from pgjax.types import Array, PRNGKey


@hparams_dataclass
class DPGHParams(OffPolicyHParams):
    """Traced hyper-parameters of DDPG (TD3 adds the target smoothing noise)."""

    actor_learning_rate: float = field(1e-3, "Adam step size of the actor", positive())
    critic_learning_rate: float = field(1e-3, "Adam step size of the critic(s)", positive())
    exploration_noise: float = field(0.1, "exploration noise std (OU: sigma), as a fraction of half the action range", non_negative())
    ou_theta: float = field(0.15, "Ornstein-Uhlenbeck mean reversion per step (exploration='ou' only)", positive())


class Variant(NamedTuple):
    """The static switches that make DDPG or TD3 out of the same learner."""

    num_critics: int  # 1: DDPG; 2: TD3's twin critics (min in the target)
    policy_delay: int  # actor and target updates every this many critic updates
    target_smoothing: bool  # TD3's clipped noise on the target action
    exploration: str  # "gaussian" | "ou"


class Networks(NamedTuple):
    actor: DeterministicActor
    critic: QEnsemble


class DPGState(NamedTuple):
    params: dict  # {"actor": ..., "critic": ...}
    target_params: dict
    actor_opt_state: Any
    critic_opt_state: Any
    updates: Array  # int32: gradient updates done
    actor_loss: Array  # float32: loss of the most recent actor update (0 before the first)


def make_networks(config, env: VecEnv, num_critics: int) -> Networks:
    spec = env.action_spec
    low = tuple(float(x) for x in spec.low.reshape(-1))
    high = tuple(float(x) for x in spec.high.reshape(-1))
    torso = torso_spec(config, env.obs_shape)
    return Networks(
        DeterministicActor(low, high, config.hidden_sizes, config.activation, torso),
        QEnsemble(num_critics, config.hidden_sizes, config.activation, torso=torso),
    )


def _half_range(spec: ActionSpec, shape) -> tuple[Array, Array, Array]:
    low = jnp.broadcast_to(jnp.asarray(spec.low.reshape(-1)), shape)
    high = jnp.broadcast_to(jnp.asarray(spec.high.reshape(-1)), shape)
    return low, high, 0.5 * (high - low)


def _optimizers(hparams):
    return optax.adam(hparams.actor_learning_rate), optax.adam(hparams.critic_learning_rate)


def init(networks: Networks, env: VecEnv, key: PRNGKey, hparams, network_init: tuple[str, float] = ("orthogonal", 0.0)) -> DPGState:
    actor_key, critic_key = jax.random.split(key)  # JAX's own Threefry: see actor_critic.init_actor_critic
    obs = jnp.zeros((1, *env.obs_shape), jnp.float32)
    action = jnp.zeros((1, env.action_spec.num_actions), jnp.float32)
    inits = {"actor": (networks.actor, actor_key, (obs,)), "critic": (networks.critic, critic_key, (obs, action))}
    params = init_networks(inits, *network_init)
    actor_opt, critic_opt = _optimizers(hparams)
    return DPGState(
        params=params,
        target_params=params,
        actor_opt_state=actor_opt.init(params["actor"]),
        critic_opt_state=critic_opt.init(params["critic"]),
        updates=jnp.zeros((), jnp.int32),
        actor_loss=jnp.zeros((), jnp.float32),
    )


def explore_init(env: VecEnv, num_envs: int) -> Array:
    return noise_lib.ou_init((num_envs, env.action_spec.num_actions))


def explore_reset(noise_state: Array, done: Array) -> Array:
    return noise_lib.ou_reset(noise_state, done)


def explore(variant: Variant, networks: Networks, spec: ActionSpec, state: DPGState, noise_state, hparams, key, obs):
    """`clip(mu(s) + noise * half_range, low, high)`; Gaussian or OU noise per environment."""
    mu = networks.actor.apply(state.params["actor"], obs)
    if variant.exploration == "ou":
        noise_state = noise_lib.ou_step(key, noise_state, hparams.ou_theta, hparams.exploration_noise)
        eps = noise_state
    else:
        eps = noise_lib.gaussian_noise(key, mu.shape, hparams.exploration_noise)
    low, high, half = _half_range(spec, mu.shape)
    perturbation = eps * half
    actions = jnp.clip(mu + perturbation, low, high).reshape(mu.shape[:1] + spec.shape)
    return actions, noise_state, {"noise_rms": jnp.sqrt(jnp.mean(perturbation**2))}


def target_actions(variant: Variant, networks: Networks, spec: ActionSpec, target_actor, hparams, key, next_obs) -> Array:
    """`mu'(s')`, plus TD3's clipped Gaussian smoothing noise (in half-range units)."""
    actions = networks.actor.apply(target_actor, next_obs)
    if not variant.target_smoothing:
        return actions
    low, high, half = _half_range(spec, actions.shape)
    eps = jnp.clip(hparams.target_noise * jax.random.normal(key, actions.shape), -hparams.target_noise_clip, hparams.target_noise_clip)
    return jnp.clip(actions + eps * half, low, high)


def critic_targets(variant, networks, spec, target_params, hparams, key, batch: Batch) -> Array:
    """`y = r + gamma (1 - terminated) min_i Q'_i(s', a')`, `[batch]`."""
    next_actions = target_actions(variant, networks, spec, target_params["actor"], hparams, key, batch.next_obs)
    next_q = networks.critic.apply(target_params["critic"], batch.next_obs, next_actions).min(axis=0)
    return bellman_target(batch.reward, batch.terminated, next_q, hparams.gamma)


def _critic_loss(networks, critic_params, obs, actions, targets):
    """`sum_k mean_b (Q_k(s, a) - y)^2`, TD3's loss without the 1/2 (Fujimoto et al., 2018):
    twice `sac_losses.critic_loss`, a doubling that is exact in floating point."""
    q = networks.critic.apply(critic_params, obs, actions)  # [num_critics, N]
    loss, _ = sac_losses.critic_loss(q, targets)
    return 2.0 * loss, q


def _actor_loss(networks, critic_params, actor_params, obs):
    actions = networks.actor.apply(actor_params, obs)
    return -jnp.mean(networks.critic.apply(critic_params, obs, actions)[0])


def _actor_and_targets(networks, hparams, obs, params, target_params, actor_opt_state):
    """The delayed part: one actor step through the (updated) first critic, then Polyak."""
    actor_opt, _ = _optimizers(hparams)
    loss, grads = jax.value_and_grad(functools.partial(_actor_loss, networks, params["critic"]))(params["actor"], obs)
    updates, actor_opt_state = actor_opt.update(grads, actor_opt_state, params["actor"])
    params = {"actor": optax.apply_updates(params["actor"], updates), "critic": params["critic"]}
    return params, polyak_update(params, target_params, hparams.tau), actor_opt_state, loss


def _skip(previous_loss, obs, params, target_params, actor_opt_state):
    return params, target_params, actor_opt_state, previous_loss


def update(variant: Variant, networks: Networks, spec: ActionSpec, state: DPGState, hparams, key, batch: Batch, step=None):
    """One critic step; every `policy_delay`-th update also an actor step and target updates.

    Which updates: those with `(step + 1) % policy_delay == 0`, `step` the update's index
    in its metrics row (the loop's, unbatched; rows are whole delay periods, so this is
    the run's count too), or the state's own counter `state.updates` if `step` is None
    (for calls outside the loop). Keyed on `step`, the `lax.cond` stays a branch under
    `vmap` instead of a `select` that computes the actor step on every update."""
    actions = batch.action.reshape(batch.action.shape[0], -1)
    targets = critic_targets(variant, networks, spec, state.target_params, hparams, key, batch)
    _, critic_opt = _optimizers(hparams)
    (critic_loss, q), grads = jax.value_and_grad(
        functools.partial(_critic_loss, networks), has_aux=True
    )(state.params["critic"], batch.obs, actions, targets)
    updates, critic_opt_state = critic_opt.update(grads, state.critic_opt_state, state.params["critic"])
    params = {"actor": state.params["actor"], "critic": optax.apply_updates(state.params["critic"], updates)}

    delayed = functools.partial(_actor_and_targets, networks, hparams)
    operands = (batch.obs, params, state.target_params, state.actor_opt_state)
    if variant.policy_delay == 1:
        params, target_params, actor_opt_state, actor_loss = delayed(*operands)
    else:
        count = state.updates if step is None else step
        due = (count + 1) % variant.policy_delay == 0
        params, target_params, actor_opt_state, actor_loss = jax.lax.cond(
            due, delayed, functools.partial(_skip, state.actor_loss), *operands
        )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss,
        "q_mean": jnp.mean(q),
        "target_q_mean": jnp.mean(targets),
    }
    new_state = DPGState(params, target_params, actor_opt_state, critic_opt_state, state.updates + 1, actor_loss)
    return new_state, metrics


def act(networks: Networks, spec: ActionSpec, params, key, obs, deterministic=False) -> Array:
    """The actor's action (deterministic either way: exploration noise is not the policy)."""
    mu = networks.actor.apply(params["actor"], obs)
    return mu.reshape(mu.shape[:-1] + spec.shape)


def make_learner(
    variant: Variant, networks: Networks, env: VecEnv, network_init: tuple[str, float] = ("orthogonal", 0.0)
) -> Learner:
    """DDPG's or TD3's learner; `network_init` is the config's `(init, bias_init_max)`."""
    spec = env.action_spec
    return Learner(
        init=functools.partial(init, networks, env, network_init=network_init),
        explore_init=functools.partial(explore_init, env),
        explore=functools.partial(explore, variant, networks, spec),
        explore_reset=explore_reset,
        update=functools.partial(update, variant, networks, spec),
        act=functools.partial(act, networks, spec),
    )
