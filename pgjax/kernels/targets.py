"""Target networks and Bellman targets shared by the off-policy actor-critics.

- Polyak averaging (Lillicrap et al., 2016): `theta' <- tau theta + (1 - tau) theta'`.
- One-step Bellman target: `y = r + gamma (1 - terminated) Q'(s', a')`, where `s'` is the
  TRUE next observation, so a step cut by a time limit (truncated) still bootstraps and
  only a real termination stops the return (Pardo et al., 2018).
"""

from __future__ import annotations

import chex
import jax

from pgjax.types import Array


def polyak_update(online, target, tau: Array):
    """`tau * online + (1 - tau) * target`, leaf by leaf (tau = 1 copies the online net)."""
    return jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, online, target)


def bellman_target(rewards: Array, terminated: Array, next_values: Array, gamma: Array) -> Array:
    """`r + gamma * (1 - terminated) * next_values`; all `[N]` (truncated steps bootstrap).

    `next_values` is `Q'(s', a')` (DDPG), `min_i Q'_i(s', a')` (TD3) or the soft value
    `min_i Q'_i(s', a') - alpha log pi(a'|s')` (SAC), evaluated at the true next
    observation. The result is a constant target: gradients are stopped.
    """
    chex.assert_equal_shape([rewards, terminated, next_values])
    discounts = gamma * (1.0 - terminated.astype(next_values.dtype))
    return jax.lax.stop_gradient(rewards + discounts * next_values)

