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
from pgjax.networks import recurrent
from pgjax.networks.heads import CategoricalActor, GaussianActor, ValueCritic
from pgjax.networks.initializers import init_networks
from pgjax.networks.torsos import TorsoSpec, torso_spec
from pgjax.types import Array, PRNGKey, RunningStats, Transition


class ActorCritic(NamedTuple):
    actor: Any  # flax module: obs -> Categorical | DiagGaussian
    critic: Any  # flax module: obs -> V(obs)


def make_actor_critic(config: Any, env: VecEnv) -> ActorCritic:
    """A categorical or Gaussian actor (by the action space) and a value critic, both on the
    torso `torso_spec` picks for the observations; with `config.core = "gru"` each is a
    `recurrent.RecurrentNetwork` (torso, GRU core) around that head."""
    spec, torso = env.action_spec, torso_spec(config, env.obs_shape)
    if recurrent.is_recurrent(config):
        # The torso and hidden layers come before the GRU core: each head is its output layer alone.
        head_sizes, head_torso = (), TorsoSpec()
    else:
        head_sizes, head_torso = config.hidden_sizes, torso
    if spec.discrete:
        actor = CategoricalActor(spec.num_actions, head_sizes, config.activation, torso=head_torso)
    else:
        actor = GaussianActor(
            spec.num_actions, head_sizes, config.activation, init_log_std=config.init_log_std, torso=head_torso
        )
    critic = ValueCritic(head_sizes, config.activation, torso=head_torso)
    if not recurrent.is_recurrent(config):
        return ActorCritic(actor, critic)
    core = {"hidden_sizes": config.hidden_sizes, "activation": config.activation, "core_size": config.core_size, "torso": torso}
    return ActorCritic(
        recurrent.RecurrentNetwork(actor, "actor", **core), recurrent.RecurrentNetwork(critic, "critic", **core)
    )


def init_actor_critic(networks: ActorCritic, env: VecEnv, key: PRNGKey) -> dict:
    # JAX's own Threefry for the kernels' draws: XLA's CPU compiler stalled (over 30 minutes on
    # one core) on straight-line `unrolled_rng` draws feeding the Newton-Schulz loop for some
    # shapes (hidden_sizes=(16,) on a 1-d observation), and no faster compile was measured
    # from them once the kernels share one loop.
    actor_key, critic_key = jax.random.split(key)
    dummy = jnp.zeros((1, *env.obs_shape), jnp.float32)
    if isinstance(networks.actor, recurrent.RecurrentNetwork):
        size = networks.actor.core_size
        dummy = recurrent.single_steps(dummy, {"actor": jnp.zeros((1, size)), "critic": jnp.zeros((1, size))})
    # One orthogonalisation for both networks: fewer Newton-Schulz loops to compile.
    return init_networks({"actor": (networks.actor, actor_key, (dummy,)), "critic": (networks.critic, critic_key, (dummy,))})


def observe(config: Any, obs_stats: RunningStats, obs: Array) -> Array:
    """What the networks see: raw observations, or normalised ones if `config.normalize_obs`."""
    return normalize_obs(obs_stats, obs) if config.normalize_obs else obs


def to_env_action(env: VecEnv, action: Array) -> Array:
    spec = env.action_spec
    return action if spec.discrete else clip_action(action, spec)


def sample_step(config, env, networks, params, obs_stats, key, obs, hidden=None):
    """Sample `a ~ pi(.|s)` for a rollout, with its log-prob: a `PolicyStep`.

    A feed-forward critic is not called here: algorithms that need `V(s)` for a rollout get
    it afterwards with one batched call over `[T, B]` observations, cheaper than one per
    step. A recurrent policy also takes and returns its `hidden` states: `(PolicyStep,
    hidden)`; the critic's state advances too, as the next rollout's value pass starts from it.
    """
    obs = observe(config, obs_stats, obs)
    dist, new_hidden = _actor_step(networks, params, obs, hidden)
    action = dist.sample(key)
    step = PolicyStep(action, to_env_action(env, action), dist.log_prob(action))
    if hidden is None:
        return step
    _, new_hidden["critic"] = recurrent.step_network(networks.critic, params["critic"], obs, hidden)
    return step, new_hidden


def _actor_step(networks, params, obs, hidden):
    """The actor's distribution at (observed) `obs` and, if recurrent, the hidden states
    with the actor's advanced (else None)."""
    if hidden is None:
        return networks.actor.apply(params["actor"], obs), None
    dist, actor_hidden = recurrent.step_network(networks.actor, params["actor"], obs, hidden)
    return dist, {**hidden, "actor": actor_hidden}


def rollout_values(config, networks, params, obs_stats, traj, hidden=None) -> tuple[Any, Array, Array]:
    """`(obs, V(s_t), V(s_{t+1}))` for a rollout `[T, B, ...]` in one batched critic call.

    `obs` is what the networks saw (normalised if `config.normalize_obs`); `V(s_{t+1})` is
    taken at `traj.next_obs`, the true final observation where an episode ended. With a
    recurrent critic (`hidden`: the state at the rollout's start) `obs` is the rollout as
    `recurrent.Sequences` and `V(s_{t+1})` uses the hidden state before the reset.
    """
    both = observe(config, obs_stats, jnp.stack([traj.obs, traj.next_obs]))
    if hidden is None:
        values, next_values = networks.critic.apply(params["critic"], both)
        return both[0], values, next_values
    seq = recurrent.sequences_from_rollout(both[0], traj.terminated | traj.truncated, hidden)
    values, next_values = recurrent.values_and_next_values(
        networks.critic, params["critic"], seq, jnp.swapaxes(both[1], 0, 1)
    )
    return seq, jnp.swapaxes(values, 0, 1), jnp.swapaxes(next_values, 0, 1)


def flatten_rollout(batch: Any) -> Any:
    """Time-major rollout arrays `[T, B, ...]` as update rows: `[T*B, ...]` steps, or, when
    `batch.obs` is `recurrent.Sequences` (already batch-major), `[B, T, ...]` sequences."""
    if isinstance(batch.obs, recurrent.Sequences):
        return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch._replace(obs=None))._replace(obs=batch.obs)
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), batch)


class GAEBatch(NamedTuple):
    """A rollout flattened to `[T*B, ...]` with GAE advantages, ready for minibatching."""

    obs: Array  # what the networks saw (normalised if normalize_obs)
    action: Array
    log_prob: Array  # log pi_old(action | obs) at collection
    value: Array  # V_old(obs)
    advantage: Array  # GAE(gamma, lambda)
    target: Array  # lambda-returns A + V_old, the value regression target


def gae_batch(config, networks, hparams, params, obs_stats, traj: Transition, hidden=None) -> GAEBatch:
    """GAE (`hparams.gamma`, `hparams.gae_lambda`, rewards times `hparams.reward_scale`) on a
    rollout `[T, B]`, bootstrapping truncations from `V(next_obs)`, flattened to `[T*B]`
    (recurrent: `[B, T]` sequences from `hidden`, the state at the rollout's start)."""
    obs, values, next_values = rollout_values(config, networks, params, obs_stats, traj, hidden)
    advantages = returns.gae(
        traj.reward * hparams.reward_scale, values, next_values,
        traj.terminated, traj.truncated, hparams.gamma, hparams.gae_lambda,
    )
    return flatten_rollout(GAEBatch(obs, traj.action, traj.log_prob, values, advantages, advantages + values))


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


def act(config, env, networks, params, obs_stats, key, obs, deterministic=False, hidden=None):
    """Environment actions for evaluation: the mode if deterministic, else a sample.

    A recurrent policy takes its `hidden` state and returns `(actions, hidden)`.
    """
    dist, hidden = _actor_step(networks, params, observe(config, obs_stats, obs), hidden)
    action = to_env_action(env, dist.mode() if deterministic else dist.sample(key))
    return action if hidden is None else (action, hidden)


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
