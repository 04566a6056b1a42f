"""Mapping a policy's Box actions into the environment's bounds."""

from __future__ import annotations

import jax.numpy as jnp

from pgjax.envs.core import ActionSpec
from pgjax.types import Array


def _bounds(spec: ActionSpec, shape: tuple[int, ...]) -> tuple[Array, Array]:
    return (jnp.broadcast_to(jnp.asarray(spec.low), shape), jnp.broadcast_to(jnp.asarray(spec.high), shape))


def clip_action(action: Array, spec: ActionSpec) -> Array:
    """Clip a Box action into `[low, high]` (the policy's own sample is kept for log-probs)."""
    low, high = _bounds(spec, action.shape)
    return jnp.clip(action, low, high)


def rescale_action(action: Array, spec: ActionSpec) -> Array:
    """Map an action in `[-1, 1]` affinely onto `[low, high]`."""
    low, high = _bounds(spec, action.shape)
    return low + 0.5 * (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low)
