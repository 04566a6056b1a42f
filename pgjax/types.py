"""Named containers shared across pgjax. Arrays in per-step containers are time-major."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import jax

if TYPE_CHECKING:  # envs imports this module; the annotation only names VecEnv
    from pgjax.envs import VecEnv

Array = jax.Array
PRNGKey = jax.Array


class TimeStep(NamedTuple):
    """What a batched environment step returns, one row per environment.

    `obs` is the observation the agent acts on next (already reset where an episode ended);
    `next_obs` is the true observation reached by this step, which differs from `obs`
    exactly where `terminated | truncated`. Bootstrapping after a time limit uses it.
    """

    obs: Array  # [B, *obs_shape]
    reward: Array  # [B]
    terminated: Array  # [B] bool, a true terminal state: bootstrap with zero
    truncated: Array  # [B] bool, cut by a time limit: bootstrap with V(next_obs)
    next_obs: Array  # [B, *obs_shape]


class EpisodeStats(NamedTuple):
    """Running return and length of the episode each environment is in."""

    episode_return: Array  # [B] float32
    episode_length: Array  # [B] int32


class Transition(NamedTuple):
    """One step of a rollout; a rollout stacks them to `[T, B, ...]`."""

    obs: Array
    action: Array
    reward: Array
    terminated: Array
    truncated: Array
    next_obs: Array
    log_prob: Array
    # Statistics of episodes that finished at this step (valid where `episode_done`).
    episode_done: Array
    episode_return: Array
    episode_length: Array


class RunningStats(NamedTuple):
    """Running mean and variance of observations (parallel Welford/Chan merge)."""

    mean: Array
    var: Array
    count: Array  # float32 scalar


class TrainOutput(NamedTuple):
    """What `train(key, hparams)` returns: the final state and per-update metrics."""

    state: Any  # the algorithm's state (a NamedTuple with `params` and `obs_stats`)
    metrics: dict[str, Array]  # name -> [num_updates] (plus leading seed/grid axes under vmap)


# --- the trainer contract: the functions every algorithm's `make_trainer` returns ------------
# Protocols name the call signatures, as optax's GradientTransformation names init/update.
# `state` is the algorithm's own state NamedTuple and `hparams` its frozen hparams dataclass
# (traced: vmap over both); `num_updates` is static (a new value recompiles).


class AlgorithmConfig(Protocol):
    """What the trainer and the tools read from any algorithm's static config."""

    env_id: str
    hparams: Any  # the algorithm's default traced hyper-parameters

    @property
    def num_updates(self) -> int: ...  # updates of `run` over the whole budget

    @property
    def env_steps_per_update(self) -> int: ...

    def validate(self) -> None: ...  # raises pgjax.config.ConfigError


class InitFn(Protocol):
    def __call__(self, key: PRNGKey, hparams: Any) -> Any:
        """The state before the first update (parameters, optimisers, environments, key, counters)."""


class RunFn(Protocol):
    def __call__(self, state: Any, hparams: Any, num_updates: int) -> tuple[Any, dict[str, Array]]:
        """`num_updates` updates in one `lax.scan`: the new state and metrics `[num_updates]`.
        `run(run(s, hp, a)[0], hp, b)` equals `run(s, hp, a + b)` bit for bit."""


class TrainFn(Protocol):
    def __call__(self, key: PRNGKey, hparams: Any = None) -> TrainOutput:
        """`init` then `run` over `config.num_updates` (with `config.hparams` if none given)."""


class ActFn(Protocol):
    def __call__(
        self, params: Any, obs_stats: RunningStats, key: PRNGKey, obs: Array, deterministic: bool = False
    ) -> Array:
        """Environment actions for `obs [B, *obs_shape]`: the policy's mode if deterministic, else a sample."""


class Trainer(NamedTuple):
    """An algorithm's pure functions for one static config (what `make_trainer` returns).

    Every algorithm's state has `params` (the online networks' parameters, a dict with an
    "actor" entry) and `obs_stats`, which `act` takes.
    """

    config: AlgorithmConfig
    env: VecEnv  # the batched environment the run trains on
    networks: Any  # the algorithm's flax modules, a NamedTuple with `actor` (and `critic`, ...)
    init: InitFn
    run: RunFn
    train: TrainFn
    act: ActFn
