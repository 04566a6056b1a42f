"""Rollouts over a batch of environments with `lax.scan`, the policy passed in as a function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from pgjax.envs import VecEnv, init_episode_stats, update_episode_stats
from pgjax.kernels.returns import first_episode_mask
from pgjax.kernels.unrolled_rng import unrolled_key
from pgjax.networks.recurrent import reset_hidden
from pgjax.types import Array, EpisodeStats, PRNGKey, Transition


class PolicyStep(NamedTuple):
    """What a policy function returns for a batch of observations."""

    action: Array  # what the learner stores and scores (e.g. an unclipped Gaussian sample)
    env_action: Array  # what the environment receives (e.g. clipped to the Box)
    log_prob: Array  # log pi(action | obs), [B]


PolicyFn = Callable[[PRNGKey, Array], PolicyStep]  # a memoryless policy
# What `rollout` steps: a policy that threads its carry (`pgjax.networks.cores`).
CarryingPolicyFn = Callable[[PRNGKey, Array, Any], tuple[PolicyStep, Any]]


def carrying(policy_fn: PolicyFn | CarryingPolicyFn) -> CarryingPolicyFn:
    """`policy_fn` as `(key, obs, carry) -> (PolicyStep, carry)`. A function that takes a
    third argument (`actor_critic.sample_step`) already threads its carry; a memoryless
    `PolicyFn(key, obs) -> PolicyStep` (a test's or script's policy) passes it through."""
    try:
        inspect.signature(policy_fn).bind(None, None, None)
    except TypeError:
        return lambda key, obs, carry: (policy_fn(key, obs), carry)
    return policy_fn


class EnvCarry(NamedTuple):
    """Environment-side state carried from one rollout to the next."""

    env_state: Any
    obs: Array  # [B, *obs_shape], raw (unnormalised) observations
    episode_stats: EpisodeStats
    hidden: Any = ()  # the policy's carry (pgjax.networks.cores); () without memory


def reset_env_carry(env: VecEnv, key: PRNGKey, hidden: Any = (), group_size: int = 1) -> EnvCarry:
    """Fresh episodes in every environment (and the policy's initial carry `hidden`); with
    `group_size > 1`, each group of that many consecutive environments starts from one state."""
    env_state, obs = env.reset(key)
    if group_size > 1:
        env_state, obs = share_start_states(env, (env_state, obs), group_size)
    return EnvCarry(env_state, obs, init_episode_stats(env.num_envs), hidden)


def share_start_states(env: VecEnv, reset: Any, group_size: int) -> Any:
    """Copy the first environment of each group of `group_size` consecutive ones into the rest.

    `reset` is what `env.reset` returned (`(env_state, obs)`), every leaf batched `[B, ...]`:
    the copies are the same state pytree, so the group's episodes start identically and part
    only by their own random draws (the policy's, and the environment's through its step keys).
    """
    if env.num_envs % group_size:
        raise ValueError(f"num_envs={env.num_envs} is not a multiple of group_size={group_size}")
    for leaf in jax.tree.leaves(reset):
        if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != env.num_envs:
            raise ValueError(f"{env.env_id}: a reset state leaf of shape {list(jnp.shape(leaf))} is not batched "
                             f"over the {env.num_envs} environments, so start states cannot be shared")
    leaders = (jnp.arange(env.num_envs) // group_size) * group_size
    return jax.tree.map(lambda leaf: leaf[leaders], reset)


def rollout(
    env: VecEnv, policy_fn: PolicyFn | CarryingPolicyFn, carry: EnvCarry, key: PRNGKey, num_steps: int
) -> tuple[EnvCarry, Transition]:
    """Run `num_steps` steps of `policy_fn` in every environment.

    Returns the carry to continue from and a time-major `Transition` batch `[T, B, ...]`
    holding raw observations, the true next observations, both episode-end flags and the
    statistics of every episode that finished. The policy's carry `carry.hidden` is reset
    after every step that ends an episode (`terminated | truncated`).
    """
    policy_fn = carrying(policy_fn)

    def step(carry: EnvCarry, step_key: PRNGKey):
        policy_key, env_key = jax.random.split(step_key)
        policy_step, hidden = policy_fn(policy_key, carry.obs, carry.hidden)
        env_state, timestep = env.step(env_key, carry.env_state, policy_step.env_action)
        episode_stats, (done, finished_return, finished_length) = update_episode_stats(
            carry.episode_stats, timestep
        )
        transition = Transition(
            obs=carry.obs,
            action=policy_step.action,
            reward=timestep.reward,
            terminated=timestep.terminated,
            truncated=timestep.truncated,
            next_obs=timestep.next_obs,
            log_prob=policy_step.log_prob,
            episode_done=done,
            episode_return=finished_return,
            episode_length=finished_length,
        )
        hidden = reset_hidden(hidden, timestep.terminated | timestep.truncated)
        return EnvCarry(env_state, timestep.obs, episode_stats, hidden), transition

    # Same random bits as `key` itself; each step's tiny draws run as straight-line code
    # instead of one Threefry loop each (see `pgjax.kernels.unrolled_rng`).
    return jax.lax.scan(step, carry, jax.random.split(unrolled_key(key), num_steps))


def collect_episodes(
    env: VecEnv, policy_fn: PolicyFn | CarryingPolicyFn, key: PRNGKey, num_steps: int, hidden: Any = (),
    group_size: int = 1,
) -> tuple[Transition, Array]:
    """Reset every environment (the policy's carry to `hidden`) and run `num_steps`
    steps: `(transitions [T, N], first-episode mask [T, N])`.

    With `num_steps` the episode horizon, each column holds one whole episode; the steps the
    auto-reset simulates after it are masked out (`returns.first_episode_mask`). With
    `group_size = K > 1`, columns `gK .. gK + K - 1` start from one reset state
    (`share_start_states`): K episodes per start state, each scored once.
    """
    reset_key, run_key = jax.random.split(key)
    carry = reset_env_carry(env, reset_key, hidden, group_size)
    _, transitions = rollout(env, policy_fn, carry, run_key, num_steps)
    return transitions, first_episode_mask(transitions.terminated, transitions.truncated)


def first_episode_metrics(transitions: Transition, mask: Array) -> dict[str, Array]:
    """Undiscounted return and length of each column's first episode (`mask`), averaged over
    the N episodes, their count and the fraction the time limit cut."""
    truncated = jnp.sum(transitions.truncated * mask, axis=0)
    return {
        "episode_return": jnp.mean(jnp.sum(transitions.reward * mask, axis=0)),
        "episode_length": jnp.mean(jnp.sum(mask, axis=0)),
        "episodes": jnp.asarray(mask.shape[1], jnp.float32),
        "truncated_fraction": jnp.mean(truncated),
    }


def finished_episode_metrics(transitions: Transition) -> dict[str, Array]:
    """Mean return and length over every episode that finished in a rollout, and their count.

    The means are nan when no episode finished (plots skip them; averages use the count).
    """
    done = transitions.episode_done.astype(jnp.float32)
    count = done.sum()
    safe = jnp.maximum(count, 1.0)
    return {
        "episode_return": jnp.where(count > 0, (transitions.episode_return * done).sum() / safe, jnp.nan),
        "episode_length": jnp.where(count > 0, (transitions.episode_length * done).sum() / safe, jnp.nan),
        "episodes": count,
    }
