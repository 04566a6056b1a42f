"""The loop every off-policy actor-critic shares (DDPG, TD3, SAC): act, store, sample, learn.

One *update* of `Trainer.run` (one `lax.scan` step) is one *iteration*:

1. every one of the `num_envs` environments takes one step with the learner's
   exploration actions (`learner.explore`); the `num_envs` transitions go into the replay
   buffer (`pgjax.kernels.replay`: terminated and truncated kept apart, `next_obs` the true final
   observation of an episode), exploration state is reset where episodes ended
   (`learner.explore_reset`), and the running observation statistics are updated (used
   only if `normalize_obs`);
2. `updates_per_step` gradient updates follow, each on its own uniformly sampled batch
   of `batch_size` transitions (`learner.update`).

The first `learning_starts` environment steps (rounded up to whole steps of all
environments) take uniformly random actions and only fill the buffer; they happen in
`init`, so every iteration of `run` learns and `run` has no branch on the step count.
`run(state, hp, a)` then `run(state, hp, b)` equals `run(state, hp, a + b)` bit for bit,
because the whole state (learner, buffer, environments, exploration noise, statistics,
key, counter) is one pytree.

Plug-in interface
-----------------
An algorithm writes a `Learner`: six functions with its static pieces (config, networks,
action bounds) bound by `functools.partial`, and calls
`make_off_policy_trainer(config, env, learner, networks)` (`networks`, its flax modules,
become `Trainer.networks`; the learner and the replay buffer are bound into init and run):

    init(key, hparams) -> learner_state
        A pytree (e.g. a NamedTuple) with a `params` field: the dict of online network
        parameters that `act` uses (e.g. {"actor": ..., "critic": ...}); it also holds
        target parameters, optimiser states, temperature, update counters.
    explore_init(num_envs) -> explore_state
        Per-environment exploration state (an OU noise array), or any fixed pytree.
    explore(learner_state, explore_state, hparams, key, obs [B, ...]) -> (actions, explore_state, metrics)
        Environment actions `[B, *action_shape]` within the action space (int32 for
        Discrete) for the observations the networks see (normalised if `normalize_obs`);
        metrics is a flat dict of scalars (e.g. the exploration noise's size).
    explore_reset(explore_state, done [B]) -> explore_state
        Reset what must not cross an episode boundary (e.g. OU noise).
    update(learner_state, hparams, key, batch: replay.Batch [batch_size], step) -> (learner_state, metrics)
        One gradient update. `batch.obs`/`batch.next_obs` are normalised if
        `normalize_obs`; `batch.reward` is already multiplied by `hparams.reward_scale`.
        `step` (int32 scalar) is the update's index within its metrics row, `0 ..
        num_steps * updates_per_step - 1`: the loop makes it from the scans' indices, so
        it is the same for every seed and a `vmap` never batches it. A schedule keyed on
        it (TD3's delayed actor step) stays a real `lax.cond` under `vmap`, where one keyed
        on a counter in the (batched) state becomes a `select` that computes both branches.
        Such a learner sets its config's `row_alignment` so rows start in phase.
        Metrics are a flat dict of scalars; the iteration reports their nan-mean over its
        updates. Keep metrics named like "*loss" finite (the trainer's divergence check
        reads them): report e.g. the most recent delayed actor loss, not nan.
    act(params, key, obs, deterministic) -> environment actions (evaluation, CLI)

The algorithm's hyper-parameters subclass `OffPolicyHParams` (gamma, tau, reward_scale)
and its config subclasses `OffPolicyConfig`, adding an `hparams` field; set the class
attribute `action_space` to "continuous" or "discrete" if it only supports one kind
(validate() then rejects a mismatched `env_id` with a clear message).

One "update" of `run` (a metrics row, a checkpoint and chunk unit) is `config.num_steps`
iterations, set by `log_interval`. Its metrics (`summarise_iterations`): the learner's and
the explorer's averaged over the iterations, `episode_return`/`episode_length` over the
episodes that finished in the row (nan if none), `episodes` (how many), and at its end
`buffer_size` and `env_steps` (including the warm-up steps).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from pgjax.algos._trainer import assemble_trainer
from pgjax.algos.actor_critic import observe
from pgjax.algos.contract import Trainer
from pgjax.algos.rollout import EnvCarry, finished_episode_metrics, reset_env_carry
from pgjax.config import (
    ENV_ID_DOC,
    ConfigError,
    EnvKwargs,
    check_environment,
    check_int32,
    config_dataclass,
    countable,
    discount_field,
    env_kwargs_field,
    field,
    hparams_dataclass,
    make_env,
    network_config,
    positive,
    reward_scale_field,
    time_limit_field,
    unit_interval,
)
from pgjax.envs import (
    ActionSpec,
    VecEnv,
    init_running_stats,
    normalize_obs,
    update_episode_stats,
    update_running_stats,
)
from pgjax.kernels import unrolled_rng
from pgjax.kernels.replay import Batch, Replay, example_item, make_replay
from pgjax.types import Array, PRNGKey, RunningStats

# --- configuration -------------------------------------------------------------------------

# `log_interval = 0` (automatic): at most about this many metrics rows a run. A row a step made
# off-policy metrics the bulk of a run's output (1e6 SAC steps: ~250 MB of sweep-cell JSON).
_AUTO_ROWS = 1000
_EPISODE_METRICS = ("episode_return", "episode_length", "episodes")


@hparams_dataclass
class OffPolicyHParams:
    """Traced hyper-parameters every off-policy algorithm has (subclass to add more)."""

    gamma: float = discount_field()
    tau: float = field(0.005, "Polyak step of the target networks: target <- tau online + (1 - tau) target", unit_interval())
    reward_scale: float = reward_scale_field("the Bellman target")


@config_dataclass
class OffPolicyConfig(network_config((256, 256), "relu")):
    """Static settings shared by off-policy algorithms (subclasses add theirs and `hparams`);
    the network's come from `network_config`."""

    # "any", "continuous" or "discrete": which action spaces the algorithm supports.
    action_space: ClassVar[str] = "any"

    env_id: str = field("Pendulum-v1", ENV_ID_DOC)
    env_kwargs: EnvKwargs = env_kwargs_field()
    time_limit: str = time_limit_field()
    num_envs: int = field(1, "environments stepped in parallel; each iteration stores num_envs transitions", positive())
    total_timesteps: int = field(20_000, "environment steps over the whole run (all environments together)", countable())
    learning_starts: int = field(1_000, "environment steps of uniformly random actions before learning starts", (lambda v: v >= 0, ">= 0"))
    buffer_size: int = field(100_000, "replay buffer capacity in transitions", countable())
    batch_size: int = field(256, "transitions per gradient update (sampled uniformly from the buffer)", positive())
    updates_per_step: int = field(1, "gradient updates after each step of the num_envs environments", positive())
    normalize_obs: bool = field(False, "running observation normalisation (stats saved in the state)")
    log_interval: int = field(
        0,
        "environment steps (all environments together) summarised in one metrics row, a multiple of num_envs; "
        "0: automatic, at most about 1000 rows a run. The learning steps are rounded down to whole rows",
        (lambda v: v >= 0, ">= 0 (0: automatic)"),
    )

    @property
    def warmup_iterations(self) -> int:
        """Steps of all environments with random actions, done in `init`."""
        return -(-self.learning_starts // self.num_envs)

    @property
    def learning_iterations(self) -> int:
        """Iterations (one step of every environment, then `updates_per_step` gradient updates)
        that the budget leaves after the warm-up."""
        return (self.total_timesteps - self.warmup_iterations * self.num_envs) // self.num_envs

    @property
    def num_steps(self) -> int:
        """Iterations summarised in one metrics row: what `run` counts as one update (as
        `num_steps` of an on-policy rollout, the steps of each environment per update)."""
        if self.log_interval:
            return max(1, self.log_interval // self.num_envs)
        automatic = max(1, self.learning_iterations // _AUTO_ROWS)
        return -(-automatic // self.row_alignment) * self.row_alignment

    @property
    def row_alignment(self) -> int:
        """Iterations a metrics row must be a multiple of, so that every row starts at the
        same phase of the learner's update schedule (1: no schedule). The automatic
        `log_interval` rounds up to it; a config that overrides it refuses a `log_interval`
        off it in its `validate`."""
        return 1

    @property
    def num_updates(self) -> int:
        """Metrics rows of `run` over the budget, each `num_steps` iterations."""
        return self.learning_iterations // self.num_steps

    @property
    def env_steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    def validate(self) -> None:
        self.validate_network()
        if self.buffer_size < self.batch_size:
            raise ConfigError(
                f"buffer_size={self.buffer_size} is smaller than batch_size={self.batch_size}: "
                "the buffer must hold at least one batch; raise buffer_size or lower batch_size."
            )
        if self.buffer_size < self.num_envs:
            raise ConfigError(
                f"buffer_size={self.buffer_size} is smaller than num_envs={self.num_envs}: "
                "one step of all environments must fit in the buffer."
            )
        if self.learning_starts < self.batch_size:
            raise ConfigError(
                f"learning_starts={self.learning_starts} is smaller than batch_size={self.batch_size}: the first "
                "update would sample a batch from fewer transitions (repeating them); raise learning_starts to at "
                f"least {self.batch_size} or lower batch_size."
            )
        if self.learning_iterations < 1:
            raise ConfigError(
                f"total_timesteps={self.total_timesteps} leaves no learning step after "
                f"learning_starts={self.learning_starts} random steps with num_envs={self.num_envs}; "
                "raise total_timesteps or lower learning_starts."
            )
        if self.log_interval % self.num_envs:
            raise ConfigError(
                f"log_interval={self.log_interval} is not a multiple of num_envs={self.num_envs}: a metrics row "
                f"summarises whole steps of all environments; use e.g. {max(1, self.log_interval // self.num_envs) * self.num_envs}."
            )
        if self.num_updates < 1:
            raise ConfigError(
                f"log_interval={self.log_interval} is longer than the {self.learning_iterations * self.num_envs} "
                "learning steps the budget leaves: lower log_interval (0: automatic) or raise total_timesteps."
            )
        check_int32("the gradient updates (total_timesteps - learning_starts) / num_envs * updates_per_step",
                    self.learning_iterations * self.updates_per_step, "lower updates_per_step or total_timesteps")
        check_environment(self)
        if self.action_space != "any":
            check_action_space(self, self.action_space, type(self).__name__)


def check_action_space(config, required: str, who: str) -> None:
    """Raise a ConfigError if the actions of `config`'s environment are not `required` ('continuous'/'discrete')."""
    spec = make_env(config, 1).action_spec
    kind = "discrete" if spec.discrete else "continuous"
    if kind != required:
        example = "Pendulum-v1" if required == "continuous" else "CartPole-v1"
        raise ConfigError(
            f"env_id={config.env_id!r} has {kind} actions, but {who} needs {required} "
            f"({'Box' if required == 'continuous' else 'Discrete'}) actions; "
            f"use an environment such as {example!r}."
        )


# --- the learner interface and the state ---------------------------------------------------


class LearnerInit(Protocol):
    def __call__(self, key: PRNGKey, hparams: Any) -> Any:
        """The learner state: online `params` (a dict), targets, optimiser states, counters."""


class ExploreInit(Protocol):
    def __call__(self, num_envs: int) -> Any:
        """Per-environment exploration state (e.g. OU noise), or any fixed pytree."""


class Explore(Protocol):
    def __call__(
        self, learner_state: Any, explore_state: Any, hparams: Any, key: PRNGKey, obs: Array
    ) -> tuple[Array, Any, dict[str, Array]]:
        """`(environment actions [B, ...], explore_state, metrics)` for the observations the networks see."""


class ExploreReset(Protocol):
    def __call__(self, explore_state: Any, done: Array) -> Any:
        """Reset what must not cross an episode boundary where `done [B]`."""


class LearnerUpdate(Protocol):
    def __call__(
        self, learner_state: Any, hparams: Any, key: PRNGKey, batch: Batch, step: Array
    ) -> tuple[Any, dict[str, Array]]:
        """One gradient update on a prepared replay batch: the new learner state and scalar metrics."""


class LearnerAct(Protocol):
    def __call__(self, params: Any, key: PRNGKey, obs: Array, deterministic: bool) -> Array:
        """Environment actions for evaluation and the CLI."""


class Learner(NamedTuple):
    """An algorithm's side of the loop (see the module docstring for each signature)."""

    init: LearnerInit
    explore_init: ExploreInit
    explore: Explore
    explore_reset: ExploreReset
    update: LearnerUpdate
    act: LearnerAct


class OffPolicyState(NamedTuple):
    """Everything a run needs to continue: save it and the run resumes bit for bit."""

    learner: Any  # the algorithm's state; `learner.params` are the online networks
    buffer: Any  # replay buffer state (flashbax)
    env: EnvCarry
    explore: Any  # per-environment exploration state (e.g. OU noise)
    obs_stats: RunningStats
    key: PRNGKey
    update: Array  # int32 scalar: updates (metrics rows of `config.num_steps` iterations) done

    @property
    def params(self):
        return self.learner.params


class Parts(NamedTuple):
    """The static pieces the loop's `init` and `iteration` take (bound into `Trainer.init`/`run`)."""

    learner: Learner
    replay: Replay


# --- pieces of one iteration ----------------------------------------------------------------


def random_actions(spec: ActionSpec, key: PRNGKey, num_envs: int) -> Array:
    """Uniform actions over the action space for `num_envs` environments."""
    if spec.discrete:
        return jax.random.randint(key, (num_envs,), 0, spec.num_actions)
    shape = (num_envs, *spec.shape)
    low = jnp.broadcast_to(jnp.asarray(spec.low), shape)
    high = jnp.broadcast_to(jnp.asarray(spec.high), shape)
    return jax.random.uniform(key, shape, minval=low, maxval=high)


class _Finished(NamedTuple):
    """Episodes that ended at one step (the fields `finished_episode_metrics` reads)."""

    episode_done: Array
    episode_return: Array
    episode_length: Array


def env_step(env: VecEnv, carry: EnvCarry, key: PRNGKey, actions: Array) -> tuple[EnvCarry, Batch, _Finished]:
    """Step every environment; the transitions to store and the episodes that ended."""
    env_state, timestep = env.step(key, carry.env_state, actions)
    stats, (done, finished_return, finished_length) = update_episode_stats(carry.episode_stats, timestep)
    batch = Batch(
        obs=carry.obs, action=actions, reward=timestep.reward, terminated=timestep.terminated,
        truncated=timestep.truncated, next_obs=timestep.next_obs,
    )
    return EnvCarry(env_state, timestep.obs, stats), batch, _Finished(done, finished_return, finished_length)


def _warmup_step(config, env, replay, carry, key):
    """One random-action step of every environment, stored (the `learning_starts` phase)."""
    env_carry, buffer, obs_stats = carry
    action_key, env_key = jax.random.split(key)
    actions = random_actions(env.action_spec, action_key, env.num_envs)
    env_carry, batch, _ = env_step(env, env_carry, env_key, actions)
    if config.normalize_obs:
        obs_stats = update_running_stats(obs_stats, batch.obs)
    return (env_carry, replay.add(buffer, batch), obs_stats), None


def _init(config, env, parts: Parts, key: PRNGKey, hparams) -> OffPolicyState:
    # Straight-line Threefry for the environment side of the loop (the same bits; see
    # pgjax.kernels.unrolled_rng): each environment step draws a few tiny arrays, each a while loop on
    # JAX's implementation (SAC trains 1.23x faster). The learner's keys (replay sampling, its
    # losses' draws) go back to JAX's Threefry: unrolled they made SAC's program compile 40%
    # longer and trained no measurably faster.
    state_key, learner_key, env_key, warmup_key = jax.random.split(unrolled_rng.unrolled_key(key), 4)
    spec = env.action_spec
    buffer = parts.replay.init(example_item(env.obs_shape, spec.shape, spec.discrete))
    carry = (reset_env_carry(env, env_key), buffer, init_running_stats(env.obs_shape))
    warmup = functools.partial(_warmup_step, config, env, parts.replay)
    (env_carry, buffer, obs_stats), _ = jax.lax.scan(
        warmup, carry, jax.random.split(warmup_key, config.warmup_iterations)
    )
    return OffPolicyState(
        learner=parts.learner.init(unrolled_rng.like(learner_key, key), hparams),  # networks draw on JAX's Threefry
        buffer=buffer,
        env=env_carry,
        explore=parts.learner.explore_init(env.num_envs),
        obs_stats=obs_stats,
        key=unrolled_rng.like(state_key, key),  # stored as JAX's own Threefry key
        update=jnp.zeros((), jnp.int32),
    )


def _prepare_batch(config, hparams, obs_stats: RunningStats, batch: Batch) -> Batch:
    """What the learner trains on: normalised observations (if enabled), scaled rewards."""
    if config.normalize_obs:
        batch = batch._replace(obs=normalize_obs(obs_stats, batch.obs), next_obs=normalize_obs(obs_stats, batch.next_obs))
    return batch._replace(reward=batch.reward * hparams.reward_scale)


def _gradient_update(config, parts: Parts, hparams, buffer, obs_stats, first_step, learner_state, key_and_index):
    key, index = key_and_index
    sample_key, learn_key = jax.random.split(key)
    batch = _prepare_batch(config, hparams, obs_stats, parts.replay.sample(buffer, sample_key))
    return parts.learner.update(learner_state, hparams, learn_key, batch, first_step + index)


def _iteration(config, env, parts: Parts, hparams, state: OffPolicyState, index: Array):
    """Iteration `index` of a row: one step of every environment, then `updates_per_step`
    gradient updates (numbered `index * updates_per_step + j` within the row)."""
    key, act_key, env_key, update_key = jax.random.split(unrolled_rng.unrolled_key(state.key), 4)
    learner = parts.learner
    seen = observe(config, state.obs_stats, state.env.obs)
    actions, explore, explore_metrics = learner.explore(state.learner, state.explore, hparams, act_key, seen)
    env_carry, batch, finished = env_step(env, state.env, env_key, actions)
    explore = learner.explore_reset(explore, finished.episode_done)
    buffer = parts.replay.add(state.buffer, batch)
    obs_stats = update_running_stats(state.obs_stats, batch.obs) if config.normalize_obs else state.obs_stats

    first_step = index * config.updates_per_step
    step = functools.partial(_gradient_update, config, parts, hparams, buffer, obs_stats, first_step)
    indices = jnp.arange(config.updates_per_step, dtype=jnp.int32)
    update_keys = jax.random.split(unrolled_rng.like(update_key, state.key), config.updates_per_step)
    learner_state, learn_metrics = jax.lax.scan(step, state.learner, (update_keys, indices))
    metrics = {
        **{name: jnp.nanmean(values) for name, values in learn_metrics.items()},
        **explore_metrics,
        **finished_episode_metrics(finished),
    }
    key = unrolled_rng.like(key, state.key)
    new_state = OffPolicyState(learner_state, buffer, env_carry, explore, obs_stats, key, state.update)
    return new_state, metrics


def summarise_iterations(metrics: dict[str, Array]) -> dict[str, Array]:
    """One metrics row from `[K]` per-iteration metrics: `episodes` summed, `episode_return` and
    `episode_length` averaged over the episodes that ended (nan if none did), every other
    metric nan-averaged over the iterations (a learner's metric is itself the mean of its
    `updates_per_step` updates)."""
    episodes = metrics["episodes"]
    count = episodes.sum()
    row = {name: jnp.nanmean(values) for name, values in metrics.items() if name not in _EPISODE_METRICS}
    for name in ("episode_return", "episode_length"):
        total = jnp.where(episodes > 0, metrics[name] * episodes, 0.0).sum()
        row[name] = jnp.where(count > 0, total / jnp.maximum(count, 1.0), jnp.nan)
    row["episodes"] = count
    return row


def _update(config, env, parts: Parts, hparams, state: OffPolicyState, _):
    """One metrics row: `config.num_steps` iterations in a `lax.scan`, summarised."""
    iteration = functools.partial(_iteration, config, env, parts, hparams)
    # The iteration indices come from the scan, not the state: unbatched under `vmap`.
    state, per_iteration = jax.lax.scan(iteration, state, jnp.arange(config.num_steps, dtype=jnp.int32))
    update = state.update + 1
    metrics = {
        **summarise_iterations(per_iteration),
        "buffer_size": parts.replay.size(state.buffer),
        "env_steps": (update * config.num_steps + config.warmup_iterations) * config.num_envs,
    }
    return state._replace(update=update), metrics


def _act(config, learner: Learner, params, obs_stats, key, obs, deterministic=False) -> Array:
    return learner.act(params, key, observe(config, obs_stats, obs), deterministic)


def make_off_policy_trainer(config: OffPolicyConfig, env: VecEnv, learner: Learner, networks: Any) -> Trainer:
    """`Trainer(init, run, train, act)` for an off-policy `learner` on `env` (see module doc)."""
    parts = Parts(learner, make_replay(config.buffer_size, config.batch_size, config.num_envs))
    act = functools.partial(_act, config, learner)
    return assemble_trainer(config, env, networks, _init, _update, act, pieces=parts)
