"""A uniform replay buffer that lives in the training state (flashbax's item buffer).

The buffer's state is a pytree (storage arrays, write index, full flag), so it is saved
with the rest of the training state and works under `jit` and `vmap`; the functions are
static and built once per config by `make_replay`. Each stored item is one environment
step (`Batch`): `terminated` and `truncated` are kept apart, and `next_obs` is the TRUE
observation the step reached (gymnax's `final_observation` on the last step of an
episode, not the reset observation), so a target can bootstrap through a time limit
and stop only at a real termination.

Why flashbax (InstaDeep, `make_item_buffer`): a maintained, jit/vmap-safe circular
buffer whose items are independent, which is exactly what we need because every item
carries its own `next_obs` (flashbax's flat buffer instead pairs consecutive steps, which
gives the reset observation after an auto-reset). One wrinkle: its `sample` broadcasts a
`[B, 1]` index against a `[1]` range, which strict rank promotion (our tests' setting)
rejects, so `sample` allows rank promotion locally around that one call.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from pgjax.types import Array, PRNGKey


class Batch(NamedTuple):
    """Transitions `(s, a, r, s')` with both episode-end flags; leading axis = items."""

    obs: Array  # [N, *obs_shape]
    action: Array  # [N, *action_shape] environment actions (int32 for Discrete)
    reward: Array  # [N]
    terminated: Array  # [N] bool: bootstrap with zero
    truncated: Array  # [N] bool: bootstrap from Q(next_obs, .)
    next_obs: Array  # [N, *obs_shape], the true next observation (final one at episode ends)


class Replay(NamedTuple):
    """The buffer's static functions (build with `make_replay`; the state goes in the train state)."""

    init: Any  # (example: Batch of ONE item, no leading axis) -> buffer state
    add: Any  # (buffer state, Batch [num_envs, ...]) -> buffer state
    sample: Any  # (buffer state, key) -> Batch [batch_size, ...], uniform over filled slots
    size: Any  # (buffer state) -> int32 number of filled slots
    capacity: int


def make_replay(capacity: int, batch_size: int, add_size: int) -> Replay:
    """A circular buffer of `capacity` items, adding `add_size` and sampling `batch_size` at a time.

    Sampling is uniform with replacement over the filled slots only (the oldest items are
    overwritten once full). It needs at least one item in the buffer: add before sampling.
    """
    import flashbax  # imported here so `import pgjax.kernels.replay` stays light

    for name, value in (("capacity", capacity), ("batch_size", batch_size), ("add_size", add_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if capacity < batch_size or capacity < add_size:
        raise ValueError(
            f"capacity={capacity} must be at least batch_size={batch_size} and add_size={add_size}"
        )
    buffer = flashbax.make_item_buffer(
        max_length=capacity, min_length=1, sample_batch_size=batch_size, add_batches=True
    )

    def sample(state, key: PRNGKey) -> Batch:
        with jax.numpy_rank_promotion("allow"):  # flashbax broadcasts [B, 1] + [1] inside
            return buffer.sample(state, key).experience

    def size(state) -> Array:
        return jnp.where(state.is_full, capacity, state.current_index).astype(jnp.int32)

    return Replay(init=buffer.init, add=buffer.add, sample=sample, size=size, capacity=capacity)


def example_item(obs_shape: tuple[int, ...], action_shape: tuple[int, ...], discrete: bool) -> Batch:
    """One zero item with the dtypes and shapes a buffer for this environment stores."""
    return Batch(
        obs=jnp.zeros(obs_shape, jnp.float32),
        action=jnp.zeros(action_shape, jnp.int32 if discrete else jnp.float32),
        reward=jnp.zeros((), jnp.float32),
        terminated=jnp.zeros((), bool),
        truncated=jnp.zeros((), bool),
        next_obs=jnp.zeros(obs_shape, jnp.float32),
    )
