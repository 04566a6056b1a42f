"""Compiled, vectorised evaluation of a policy: one episode per environment copy.

Each of the `num_envs` copies runs its FIRST episode only: it ends at a terminal state or
at the time limit (truncation), whichever comes first, and steps after that end (the
auto-reset environment has started a new episode) are masked out, so every episode is
counted exactly once. The same `key` gives the same start states and the same action
noise, so policies (e.g. the final policies of several training seeds) are compared on
identical evaluation episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from pgjax.config import make_env
from pgjax.envs import VecEnv
from pgjax.kernels.unrolled_rng import unrolled_key
from pgjax.networks.cores import make_core
from pgjax.networks.recurrent import reset_hidden
from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED, DEFAULT_MODE, GREEDY
from pgjax.types import Array, PRNGKey

ActFn = Callable[[PRNGKey, Array], Array]  # (key, obs [B, ...]) -> environment actions [B, ...]


class RecurrentActFn(NamedTuple):
    """A policy with memory, usable wherever an `ActFn` is: its carry starts at
    `initial(num_envs)` and is reset after every step that ends an episode."""

    step: Callable[[PRNGKey, Array, Any], tuple[Array, Any]]  # (key, obs, carry) -> (actions, carry)
    initial: Callable[[int], Any]  # num_envs -> carry


def _with_memory(act_fn: ActFn | RecurrentActFn, num_envs: int) -> tuple[Callable, Any]:
    """`(step, carry)` with `step(key, obs, carry) -> (actions, carry)`; a memoryless `ActFn`
    carries the empty carry `()`, so its loops carry nothing extra and stay as they were."""
    if isinstance(act_fn, RecurrentActFn):
        return act_fn.step, act_fn.initial(num_envs)
    return (lambda key, obs, carry: (act_fn(key, obs), carry)), ()


class Episodes(NamedTuple):
    """The first episode of each environment copy (leading seed axes under vmap)."""

    returns: Array  # [..., E] float32, undiscounted sum of rewards
    lengths: Array  # [..., E] int32, steps taken
    truncated: Array  # [..., E] bool, ended by the time limit rather than a terminal state


class _Carry(NamedTuple):
    t: Array
    env_state: Any
    obs: Array
    returns: Array
    lengths: Array
    truncated: Array
    alive: Array
    hidden: Any = ()  # the policy's carry (() without memory)


def run_episodes(env: VecEnv, act_fn: ActFn, key: PRNGKey) -> Episodes:
    """Run the first episode of each of `env.num_envs` copies to its end.

    A `lax.while_loop` that stops as soon as every copy's episode has ended, and at the
    latest after `env.max_episode_steps` steps (by then every episode has terminated or
    been truncated). Step `t` uses key `split(run_key, max_episode_steps)[t]`.
    """
    reset_key, run_key = jax.random.split(key)
    # Straight-line Threefry (`pgjax.kernels.unrolled_rng`): the same bits, without a compiled loop
    # per draw in every step of the evaluation loop.
    step_keys = jax.random.split(unrolled_key(run_key), env.max_episode_steps)
    env_state, obs = env.reset(reset_key)
    act_step, hidden = _with_memory(act_fn, env.num_envs)

    def cond(c: _Carry):
        return (c.t < env.max_episode_steps) & jnp.any(c.alive)

    def body(c: _Carry) -> _Carry:
        act_key, env_key = jax.random.split(step_keys[c.t])
        action, hidden = act_step(act_key, c.obs, c.hidden)
        env_state, ts = env.step(env_key, c.env_state, action)
        ended = ts.terminated | ts.truncated
        return _Carry(
            t=c.t + 1,
            env_state=env_state,
            obs=ts.obs,
            returns=c.returns + jnp.where(c.alive, ts.reward, 0.0),
            lengths=c.lengths + c.alive.astype(jnp.int32),
            truncated=jnp.where(c.alive & ended, ts.truncated, c.truncated),
            alive=c.alive & ~ended,
            hidden=reset_hidden(hidden, ended),
        )

    b = env.num_envs
    init = _Carry(jnp.int32(0), env_state, obs, jnp.zeros((b,), jnp.float32), jnp.zeros((b,), jnp.int32),
                  jnp.zeros((b,), bool), jnp.ones((b,), bool), hidden)
    final = jax.lax.while_loop(cond, body, init)
    return Episodes(final.returns, final.lengths, final.truncated)


def evaluate(env: VecEnv, act_fn: ActFn, key: PRNGKey) -> tuple[Array, Array]:
    """`(returns [B], lengths [B])` of the first episode of each copy (see `run_episodes`)."""
    episodes = run_episodes(env, act_fn, key)
    return episodes.returns, episodes.lengths


def evaluate_states(
    trainer: Any,
    state: Any,
    num_episodes: int = 32,
    eval_seed: int = DEFAULT_EVAL_SEED,
    deterministic: bool = DEFAULT_MODE == GREEDY,
    max_episode_steps: int | None = None,
) -> Episodes:
    """Evaluate the policy in each training state of a seed-batched `state`, compiled.

    `state` is a training-state pytree with a leading seed axis (what `train_seeds` or a
    checkpoint holds); only `state.params` and `state.obs_stats` are used, through
    `trainer.act`. Every seed plays the same `num_episodes` episodes: the start states and
    action noise come from `PRNGKey(eval_seed)`, independent of the training seed.
    `deterministic` acts with the policy's mode (greedy), otherwise samples.
    Returns `Episodes` with arrays `[S, num_episodes]`. Each call compiles; build a
    `StateEvaluator` to evaluate several states or evaluation seeds with one compilation.
    """
    return StateEvaluator(trainer, num_episodes, deterministic, max_episode_steps)(state, eval_seed)


class StateEvaluator:
    """`evaluate_states` for one trainer and setting, as an object that owns its compiled
    `(key, params [S], obs_stats [S]) -> Episodes [S, E]` program: calls with another
    state or evaluation seed reuse it, and it goes when the evaluator goes (no process-wide
    cache keeps trainers and programs alive)."""

    def __init__(self, trainer: Any, num_episodes: int = 32, deterministic: bool = DEFAULT_MODE == GREEDY,
                 max_episode_steps: int | None = None):
        env = eval_env(trainer, num_episodes, max_episode_steps)

        def one_seed(key, params, obs_stats):
            return run_episodes(env, policy_act_fn(trainer, params, obs_stats, deterministic), key)

        self._program = jax.jit(jax.vmap(one_seed, in_axes=(None, 0, 0)))

    def __call__(self, state: Any, eval_seed: int = DEFAULT_EVAL_SEED) -> Episodes:
        """`Episodes [S, num_episodes]` of the policies in the `[S]` rows of `state`."""
        return self._program(jax.random.PRNGKey(eval_seed), state.params, state.obs_stats)


def eval_env(trainer: Any, num_episodes: int, max_episode_steps: int | None = None) -> VecEnv:
    """`num_episodes` copies of the trainer's environment (its time limit unless replaced).

    An evaluation reports episodes as they ended: one cut by the time limit is truncated even
    where the config tells the learner it terminated (`time_limit = "terminate"`)."""
    return make_env(trainer.config, num_episodes, max_episode_steps, time_limit="truncate")


def policy_act_fn(trainer: Any, params: Any, obs_stats: Any, deterministic: bool) -> ActFn | RecurrentActFn:
    """The trained policy as an `ActFn` (greedy if `deterministic`); a `RecurrentActFn`
    threading the carry for a policy whose core has memory (`sequential`, e.g. `core="gru"`)."""
    core = make_core(trainer.config)
    if core.sequential:

        def step(key, obs, carry):
            return trainer.act(params, obs_stats, key, obs, deterministic, carry)

        return RecurrentActFn(step, core.init_carry)

    def act(key, obs):
        return trainer.act(params, obs_stats, key, obs, deterministic)

    return act


class Recording(NamedTuple):
    """One evaluation episode, step by step, for rendering."""

    observations: Array  # [T + 1, *obs_shape]: start, then the observation after each step
    rewards: Array  # [T]
    length: Array  # int32: steps before the episode ended (entries after it are padding)
    truncated: Array  # bool


def record_episode(env: VecEnv, act_fn: ActFn, key: PRNGKey, index: int = 0) -> Recording:
    """Record episode `index` of `run_episodes(env, act_fn, key)`: the same steps, keys and return.

    The observation after the final step is the true final observation (`next_obs`), not
    the auto-reset one. Runs a fixed `env.max_episode_steps` scan (the output has a fixed
    shape); entries after `length` are padding.
    """
    reset_key, run_key = jax.random.split(key)
    env_state, obs = env.reset(reset_key)
    act_step, hidden = _with_memory(act_fn, env.num_envs)

    def step(carry, step_key):
        env_state, obs, alive, truncated, hidden = carry
        act_key, env_key = jax.random.split(step_key)
        action, hidden = act_step(act_key, obs, hidden)
        env_state, ts = env.step(env_key, env_state, action)
        ended = ts.terminated[index] | ts.truncated[index]
        truncated = jnp.where(alive & ended, ts.truncated[index], truncated)
        out = (ts.next_obs[index], jnp.where(alive, ts.reward[index], 0.0), alive)
        hidden = reset_hidden(hidden, ts.terminated | ts.truncated)
        return (env_state, ts.obs, alive & ~ended, truncated, hidden), out

    carry = (env_state, obs, jnp.asarray(True), jnp.asarray(False), hidden)
    (_, _, _, truncated, _), (next_obs, rewards, alive) = jax.lax.scan(
        step, carry, jax.random.split(unrolled_key(run_key), env.max_episode_steps)
    )
    observations = jnp.concatenate([obs[index][None], next_obs])
    return Recording(observations, rewards, jnp.sum(alive.astype(jnp.int32)), truncated)
