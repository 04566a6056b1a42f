"""Cores: what sits between a network's torso and its head, registered by name in `CORES`.

A network is `torso -> core -> head`. Every core threads a carry, the memory it keeps from
one environment step to the next: a feed-forward network carries an empty one (`()`), as
flax's RNN cells and Stoix's recurrent actors do, so the algorithms call one signature
whatever the core and never test whether there is a hidden state. A core is a small static
(frozen, hashable) object that builds an actor-critic's networks and runs them:

    init_carry(batch)                    -> carry of both networks, before any step
    step(network, params, carry, obs)    -> (carry, out): one step, obs [B, ...]
    reset(carry, done [B])               -> carry where an episode just ended
    rollout_values(critic, params, carry, both [2, T, B, ...], done [T, B])
                                         -> (inputs, V(s_t) [T, B], V(s_{t+1}) [T, B])

plus `network` (wrap a head), `init_input`, `sequence_inputs`, `apply_time_major` and `rows`
(how an update lays out its batch: single steps `[T*B]`, or whole environment sequences
`[B, T]` for a core whose networks unroll in time, `sequential = True`).

The carry is reset to its initial value after every step that ends an episode
(`terminated | truncated`); a truncated step still bootstraps from the critic's value of the
final observation, computed with the carry BEFORE that reset (`rollout_values`).

Adding a core is one file (its flax module and a class with the methods above; see
`pgjax.networks.recurrent.GRU`, or `pgjax.networks.mingru.MinGRU`, which keeps the GRU core's
carry and swaps its network) and one line: `register_core(name, cls)`. The config's
`core` field accepts every registered name and `core_size` sets `cls(size=core_size)`; a core
with more settings builds itself with a classmethod `from_config(config)` (minGRU's reads
`core_gate_init` and `core_timescale`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import flax.linen as nn
import jax

from pgjax.networks.mingru import MinGRU
from pgjax.networks.recurrent import GRU
from pgjax.networks.torsos import TorsoSpec
from pgjax.types import Array

Carry = Any  # a pytree; () for a feed-forward network
HeadFn = Callable[[tuple[int, ...], TorsoSpec], nn.Module]  # (hidden_sizes, torso) -> head module


class Core(Protocol):
    """The methods every core provides (see the module docstring)."""

    sequential: ClassVar[bool]  # networks unroll over whole environment sequences
    size: int

    def network(self, head: HeadFn, name: str, hidden_sizes: tuple[int, ...], activation: str,
                torso: TorsoSpec) -> nn.Module: ...
    def init_carry(self, batch: int) -> Carry: ...
    def init_input(self, obs: Array) -> Any: ...
    def step(self, network: nn.Module, params: Any, carry: Carry, obs: Array) -> tuple[Carry, Any]: ...
    def reset(self, carry: Carry, done: Array) -> Carry: ...
    def sequence_inputs(self, obs: Array, done: Array, carry: Carry) -> Any: ...
    def apply_time_major(self, network: nn.Module, params: Any, inputs: Any) -> Any: ...
    def rollout_values(self, critic: nn.Module, params: Any, carry: Carry, both: Array,
                       done: Array) -> tuple[Any, Array, Array]: ...
    def rows(self, tree: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class FeedForward:
    """Core `"none"`: no memory. The network is the head with the torso and MLP inside it
    (parameters `MLP_0`, `Dense_0`, ...), called on observations of any leading shape; update
    rows are single steps `[T*B]`."""

    size: int = 0  # unused
    sequential: ClassVar[bool] = False

    def network(self, head: HeadFn, name: str, hidden_sizes, activation, torso) -> nn.Module:
        return head(tuple(hidden_sizes), torso)

    def init_carry(self, batch: int) -> Carry:
        return ()

    def init_input(self, obs: Array) -> Any:
        return obs

    def step(self, network, params, carry, obs):
        return carry, network.apply(params, obs)

    def reset(self, carry, done):
        return carry

    def sequence_inputs(self, obs, done, carry):
        return obs

    def apply_time_major(self, network, params, inputs):
        return network.apply(params, inputs)

    def rollout_values(self, critic, params, carry, both, done):
        # One batched call over [2, T, B] observations: cheaper than a call per step.
        values, next_values = critic.apply(params, both)
        return both[0], values, next_values

    def rows(self, tree):
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), tree)


CORES: dict[str, type] = {}


def register_core(name: str, core: type) -> None:
    """Make `core` (a class with the `Core` methods and a `size` field) available as
    `config.core = name`; `make_core` builds it with `core.from_config(config)` if it has one,
    else with `size=config.core_size`."""
    CORES[name] = core


register_core("none", FeedForward)
register_core("gru", GRU)
register_core("mingru", MinGRU)


def make_core(config: Any) -> Core:
    """The core `config.core` names (`"none"` for configs without cores, e.g. off-policy)."""
    name = getattr(config, "core", "none")
    if name not in CORES:
        raise ValueError(f"core={name!r} is unknown; use one of {', '.join(map(repr, CORES))}")
    cls = CORES[name]
    if hasattr(cls, "from_config"):  # a core with settings beyond its size (minGRU's gate init)
        return cls.from_config(config)
    return cls(size=getattr(config, "core_size", 0))
