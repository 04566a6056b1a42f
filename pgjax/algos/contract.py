"""The trainer contract: what every algorithm's `make_trainer(config)` returns.

`Trainer` bundles an algorithm's pure functions for one static config (`init`, `run`,
`train`, `act`) with the environment and networks they close over; `train` returns a
`TrainOutput`. The data containers the functions exchange live in `pgjax.types`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from pgjax.envs import VecEnv
from pgjax.types import Array, PRNGKey, RunningStats


class TrainOutput(NamedTuple):
    """What `train(key, hparams)` returns: the final state and per-update metrics."""

    state: Any  # the algorithm's state, a pytree of named fields with `params` and `obs_stats`
    metrics: dict[str, Array]  # name -> [num_updates] (plus leading seed/grid axes under vmap)


# --- the trainer contract: the functions every algorithm's `make_trainer` returns ------------
# Protocols name the call signatures, as optax's GradientTransformation names init/update.
# `state` is the algorithm's own state (on-policy: an `OnPolicyState` subclass; off-policy: a
# NamedTuple), fields named, and `hparams` its frozen hparams dataclass
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
