"""Soft actor-critic (Haarnoja et al., 2018a, 2018b), continuous and discrete actions.

A maximum-entropy actor-critic on the shared off-policy loop (`_off_policy`): twin soft-Q
critics with Polyak target copies, an actor trained on `alpha log pi - min Q`, and the
temperature `alpha` tuned toward a target entropy (or fixed). The action space picks the
variant:

- Box actions: a tanh-squashed Gaussian actor with a state-dependent std, trained with the
  reparameterisation trick; actions are rescaled from [-1, 1] to the Box, which is what the
  critics see and the buffer stores. Target entropy `scale * (-|A|)`.
- Discrete actions: a categorical actor and critics with one output per action; every
  expectation over actions (soft value, actor loss, temperature loss) is in closed form
  (Christodoulou, 2019). Target entropy `scale * log|A|`, a fraction of the maximum.

With `value_network = true` it is the original formulation (Haarnoja et al., 2018a): a
separate soft state-value network `V` regresses on `E[min Q - alpha log pi]`, the critics
regress on `r + gamma (1 - terminated) V'(s')` from V's Polyak target, and the critics
have no target copies of their own.

Every step bootstraps through time-limit truncations (the buffer's `next_obs` is the true
final observation); only `terminated` stops the return. The kernels are in
`pgjax.kernels.sac_losses`; this module wires them into a `Learner`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pgjax.algos._off_policy import (
    Learner,
    OffPolicyConfig,
    OffPolicyHParams,
    make_off_policy_trainer,
)
from pgjax.algos._trainer import train_function
from pgjax.algos.contract import Trainer
from pgjax.config import (
    ConfigError,
    config_dataclass,
    field,
    hparams_dataclass,
    make_env,
    positive,
)
from pgjax.envs import ActionSpec, VecEnv, rescale_action
from pgjax.kernels import sac_losses as L
from pgjax.kernels.distributions import categorical_entropy
from pgjax.kernels.replay import Batch
from pgjax.kernels.targets import bellman_target, polyak_update
from pgjax.networks.heads import CategoricalActor, GaussianActor, QEnsemble, ValueCritic
from pgjax.networks.initializers import init_networks
from pgjax.networks.torsos import torso_spec
from pgjax.types import Array, PRNGKey

# --- configuration -------------------------------------------------------------------------


@hparams_dataclass
class SACHParams(OffPolicyHParams):
    """Traced hyper-parameters: vmap over them to sweep without recompiling."""

    actor_learning_rate: float = field(3e-4, "Adam step size of the actor", positive())
    critic_learning_rate: float = field(3e-4, "Adam step size of the critics (and of V with value_network)", positive())
    alpha_learning_rate: float = field(3e-4, "Adam step size of log(alpha) (autotune_alpha only)", positive())
    init_alpha: float = field(1.0, "initial temperature; the fixed one if autotune_alpha is false", positive())
    target_entropy_scale: float = field(
        1.0, "target entropy = scale * (-|A|) for Box actions, scale * log|A| (a fraction of the maximum) for discrete", positive()
    )


@config_dataclass
class SACConfig(OffPolicyConfig):
    """Static SAC settings (shared off-policy ones in `OffPolicyConfig`): changing one recompiles."""

    num_critics: int = field(2, "soft-Q critics; targets and the actor use their minimum", positive())
    autotune_alpha: bool = field(True, "learn log(alpha) toward the target entropy; false keeps alpha = init_alpha")
    value_network: bool = field(False, "original SAC (2018a): a soft state-value network V and its Polyak target give the Q targets")
    log_std_min: float = field(-5.0, "lower clamp of the Gaussian actor's log-std (Box actions)")
    log_std_max: float = field(2.0, "upper clamp of the Gaussian actor's log-std (Box actions)")
    hparams: SACHParams = field(SACHParams(), "traced hyper-parameters")

    def validate(self) -> None:
        super().validate()
        if self.log_std_min >= self.log_std_max:
            raise ConfigError(
                f"log_std_min={self.log_std_min} must be below log_std_max={self.log_std_max}."
            )


# --- networks and state --------------------------------------------------------------------


class Networks(NamedTuple):
    actor: Any  # GaussianActor (state-dependent std, squashed here) | CategoricalActor
    critic: QEnsemble  # [num_critics, B] at given actions, or [num_critics, B, A]
    value: ValueCritic | None  # only with value_network


class SACState(NamedTuple):
    """The learner's part of the training state."""

    params: dict  # online networks: {"actor", "critic"} (+ "value")
    target_params: dict  # {"critic"}, or {"value"} with value_network
    log_alpha: Array  # float32 scalar
    opt_states: dict  # one Adam state per entry of params, plus "alpha"


def make_networks(config: SACConfig, env: VecEnv) -> Networks:
    spec, torso = env.action_spec, torso_spec(config, env.obs_shape)
    sizes, act = config.hidden_sizes, config.activation
    if spec.discrete:
        actor = CategoricalActor(spec.num_actions, sizes, act, torso=torso)
        critic = QEnsemble(config.num_critics, sizes, act, num_actions=spec.num_actions, torso=torso)
    else:
        actor = GaussianActor(
            spec.num_actions, sizes, act, state_dependent_std=True,
            log_std_min=config.log_std_min, log_std_max=config.log_std_max, torso=torso,
        )
        critic = QEnsemble(config.num_critics, sizes, act, torso=torso)
    value = ValueCritic(sizes, act, torso=torso) if config.value_network else None
    return Networks(actor, critic, value)


def target_entropy(spec: ActionSpec, hparams: SACHParams) -> Array:
    """`scale * (-|A|)` (Box; Haarnoja et al., 2018b) or `scale * log|A|` (discrete)."""
    default = np.log(spec.num_actions) if spec.discrete else -float(spec.num_actions)
    return hparams.target_entropy_scale * default


def _optimizers(hparams: SACHParams) -> dict:
    # Adam on each network's parameters flattened into one vector: the same element-wise
    # update with fewer, larger ops per gradient step.
    return {
        "actor": optax.flatten(optax.adam(hparams.actor_learning_rate)),
        "critic": optax.flatten(optax.adam(hparams.critic_learning_rate)),
        "value": optax.flatten(optax.adam(hparams.critic_learning_rate)),
        "alpha": optax.adam(hparams.alpha_learning_rate),
    }


def init(config: SACConfig, networks: Networks, env: VecEnv, key: PRNGKey, hparams: SACHParams) -> SACState:
    actor_key, critic_key, value_key = jax.random.split(key, 3)  # JAX's own Threefry: see actor_critic.init_actor_critic
    spec = env.action_spec
    obs = jnp.zeros((1, *env.obs_shape), jnp.float32)
    critic_inputs = (obs,) if spec.discrete else (obs, jnp.zeros((1, spec.num_actions), jnp.float32))
    inits = {"actor": (networks.actor, actor_key, (obs,)), "critic": (networks.critic, critic_key, critic_inputs)}
    if config.value_network:
        inits["value"] = (networks.value, value_key, (obs,))
    params = init_networks(inits, config.init, config.bias_init_max)  # one orthogonalisation for all networks: fewer loops to compile
    if config.value_network:
        target_params = {"value": params["value"]}
    else:
        target_params = {"critic": params["critic"]}
    log_alpha = jnp.log(jnp.asarray(hparams.init_alpha, jnp.float32))
    optimizers = _optimizers(hparams)
    opt_states = {name: optimizers[name].init(p) for name, p in params.items()}
    opt_states["alpha"] = optimizers["alpha"].init(log_alpha)
    return SACState(params, target_params, log_alpha, opt_states)


# --- the policy ----------------------------------------------------------------------------


def _flat(actions: Array) -> Array:
    return actions.reshape(actions.shape[0], -1)


def sample_actions(networks: Networks, spec: ActionSpec, actor_params, key: PRNGKey, obs: Array) -> tuple[Array, Array]:
    """Box: reparameterised `(env actions [B, |A|], log pi [B])`, rescaled from [-1, 1] to the Box."""
    dist = networks.actor.apply(actor_params, obs)
    squashed, log_probs = L.sample_tanh_gaussian(key, dist.mean, dist.log_std)
    # log pi is the density of the squashed action in [-1, 1], before the fixed affine rescale
    # (the target entropy refers to it, as in SB3 and CleanRL).
    return rescale_action(squashed, _flat_spec(spec)), log_probs


def _flat_spec(spec: ActionSpec) -> ActionSpec:
    return ActionSpec(spec.discrete, spec.num_actions, (spec.num_actions,), spec.low.reshape(-1), spec.high.reshape(-1))


def explore_init(num_envs: int) -> Array:
    return jnp.zeros((), jnp.float32)  # SAC explores by sampling its own policy: nothing to carry


def explore_reset(explore_state: Array, done: Array) -> Array:
    return explore_state


def explore(networks: Networks, spec: ActionSpec, state: SACState, explore_state, hparams, key, obs):
    """Environment actions sampled from the current policy."""
    return act(networks, spec, state.params, key, obs, False), explore_state, {}


def act(networks: Networks, spec: ActionSpec, params, key, obs, deterministic=False) -> Array:
    """A sample of the policy, or its mode (`tanh(mean)` rescaled; the most likely category)."""
    dist = networks.actor.apply(params["actor"], obs)
    if spec.discrete:
        return (dist.mode() if deterministic else dist.sample(key)).astype(jnp.int32)
    if deterministic:
        actions = rescale_action(jnp.tanh(dist.mean), _flat_spec(spec))
    else:
        actions, _ = sample_actions(networks, spec, params["actor"], key, obs)
    return actions.reshape(actions.shape[:1] + spec.shape)


# --- one gradient update -------------------------------------------------------------------


def _policy_terms(networks, spec, actor_params, critic_params, key, obs) -> tuple[Array, Array]:
    """What a soft value at `obs` needs under the current actor: `(Q [K, B, A], logits [B, A])`
    for discrete actions (the expectation is exact), `(Q [K, B], log pi [B])` at one
    reparameterised sample for Box actions."""
    if spec.discrete:
        return networks.critic.apply(critic_params, obs), networks.actor.apply(actor_params, obs).logits
    actions, log_probs = sample_actions(networks, spec, actor_params, key, obs)
    return networks.critic.apply(critic_params, obs, actions), log_probs


def _soft_values(networks, spec, actor_params, critic_params, alpha, key, obs) -> Array:
    """`E_pi[min Q(s, .) - alpha log pi(.|s)]` under the current actor (`L.soft_state_value`). `[B]`."""
    q_values, policy = _policy_terms(networks, spec, actor_params, critic_params, key, obs)
    soft_value = L.discrete_soft_state_value if spec.discrete else L.soft_state_value
    return soft_value(q_values, policy, alpha)


def critic_targets(config, networks, spec, state: SACState, hparams, key, batch: Batch) -> Array:
    """`y = r + gamma (1 - terminated) V(s')` at the true next observations, where `V(s')` is
    the soft value under the target critics (`L.soft_q_target`), or V's target network with
    `value_network`."""
    if config.value_network:
        next_values = networks.value.apply(state.target_params["value"], batch.next_obs)
        return bellman_target(batch.reward, batch.terminated, next_values, hparams.gamma)
    next_q_values, next_policy = _policy_terms(
        networks, spec, state.params["actor"], state.target_params["critic"], key, batch.next_obs
    )
    soft_q_target = L.discrete_soft_q_target if spec.discrete else L.soft_q_target
    return soft_q_target(
        batch.reward, batch.terminated, next_q_values, next_policy, jnp.exp(state.log_alpha), hparams.gamma
    )


def _q_at(networks, spec, critic_params, obs, actions) -> Array:
    """`Q_k(s, a)` for the stored actions, `[num_critics, B]`."""
    if spec.discrete:
        q = networks.critic.apply(critic_params, obs)  # [K, B, A]
        index = jnp.broadcast_to(actions.astype(jnp.int32)[None, :, None], (q.shape[0], q.shape[1], 1))
        return jnp.take_along_axis(q, index, axis=-1)[..., 0]
    return networks.critic.apply(critic_params, obs, _flat(actions))


def _critic_loss(networks, spec, critic_params, batch: Batch, targets: Array):
    return L.critic_loss(_q_at(networks, spec, critic_params, batch.obs, batch.action), targets)


def _actor_loss(networks, spec, critic_params, alpha, key, obs, actor_params):
    """The actor loss and the per-state entropy estimates the temperature loss uses."""
    if spec.discrete:
        logits = networks.actor.apply(actor_params, obs).logits
        loss, metrics = L.discrete_actor_loss(networks.critic.apply(critic_params, obs), logits, alpha)
        return loss, (metrics, categorical_entropy(jax.lax.stop_gradient(logits)))
    actions, log_probs = sample_actions(networks, spec, actor_params, key, obs)
    loss, metrics = L.actor_loss(networks.critic.apply(critic_params, obs, actions), log_probs, alpha)
    return loss, (metrics, -jax.lax.stop_gradient(log_probs))


def _value_step(config, networks, spec, state, params, opt_states, hparams, key, obs):
    """SAC v1: V(s) toward `E_pi[min Q - alpha log pi]` with the current critics."""
    targets = _soft_values(networks, spec, params["actor"], params["critic"], jnp.exp(state.log_alpha), key, obs)
    (_, metrics), grads = jax.value_and_grad(
        lambda value_params: L.value_loss(networks.value.apply(value_params, obs), targets), has_aux=True
    )(params["value"])
    return _apply(_optimizers(hparams)["value"], "value", grads, params, opt_states), metrics


def _apply(optimizer, name: str, grads, params: dict, opt_states: dict) -> tuple[dict, dict]:
    updates, opt_state = optimizer.update(grads, opt_states[name], params[name])
    return {**params, name: optax.apply_updates(params[name], updates)}, {**opt_states, name: opt_state}


def update(config: SACConfig, networks: Networks, spec: ActionSpec, state: SACState, hparams, key, batch: Batch, step=None):
    """Critics (and V), then the actor through the updated critics, then alpha, then Polyak
    (every update: SAC has no schedule, so the loop's `step` is not used)."""
    target_key, value_key, actor_key = jax.random.split(key, 3)
    optimizers = _optimizers(hparams)
    params, opt_states = state.params, state.opt_states
    alpha = jnp.exp(state.log_alpha)

    targets = critic_targets(config, networks, spec, state, hparams, target_key, batch)
    (_, critic_metrics), grads = jax.value_and_grad(
        functools.partial(_critic_loss, networks, spec), has_aux=True
    )(params["critic"], batch, targets)
    params, opt_states = _apply(optimizers["critic"], "critic", grads, params, opt_states)
    metrics = dict(critic_metrics)
    if config.value_network:
        (params, opt_states), value_metrics = _value_step(
            config, networks, spec, state, params, opt_states, hparams, value_key, batch.obs
        )
        metrics.update(value_metrics)

    actor_loss_fn = functools.partial(_actor_loss, networks, spec, params["critic"], alpha, actor_key, batch.obs)
    (_, (actor_metrics, entropies)), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(params["actor"])
    params, opt_states = _apply(optimizers["actor"], "actor", grads, params, opt_states)
    metrics.update(actor_metrics)

    log_alpha = state.log_alpha
    if config.autotune_alpha:
        (_, alpha_metrics), grad = jax.value_and_grad(L.temperature_loss, has_aux=True)(
            log_alpha, entropies, target_entropy(spec, hparams)
        )
        updates, opt_states["alpha"] = optimizers["alpha"].update(grad, opt_states["alpha"], log_alpha)
        log_alpha = optax.apply_updates(log_alpha, updates)
        metrics.update(alpha_metrics)
    metrics["alpha"] = alpha  # the temperature this update used

    online = {name: params[name] for name in state.target_params}
    target_params = polyak_update(online, state.target_params, hparams.tau)
    return SACState(params, target_params, log_alpha, opt_states), metrics


# --- assembly ------------------------------------------------------------------------------


def make_learner(config: SACConfig, networks: Networks, env: VecEnv) -> Learner:
    spec = env.action_spec
    return Learner(
        init=functools.partial(init, config, networks, env),
        explore_init=explore_init,
        explore=functools.partial(explore, networks, spec),
        explore_reset=explore_reset,
        update=functools.partial(update, config, networks, spec),
        act=functools.partial(act, networks, spec),
    )


def make_trainer(config: SACConfig) -> Trainer:
    """Build SAC's functions for `config` (validated here, before anything compiles)."""
    config.validate()
    env = make_env(config, config.num_envs)
    networks = make_networks(config, env)
    return make_off_policy_trainer(config, env, make_learner(config, networks, env), networks)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
