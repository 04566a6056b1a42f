"""Simple Policy Optimization (Xie et al., 2025): PPO with the ratio clip replaced by a penalty.

Each update is PPO's (`pgjax.algos.ppo`: rollout, GAE, `update_epochs` passes of shuffled
minibatch Adam steps, the same value loss, entropy bonus and config) with the clipped
surrogate replaced by SPO's objective (Xie et al., 2025, `f_spo` of sec. 5.1; `losses.spo_loss`):

    max  mean( r A - |A| / (2 eps) (r - 1)^2 ),    r = pi_theta(a|s) / pi_old(a|s).

Per sample it is a concave parabola in `r` with its maximum on the trust-region boundary
`r = 1 + sign(A) eps`: a ratio pushed past the boundary is pulled back, where PPO's clip
only stops pushing it. Metrics: PPO's, without the clip fraction, and the ratio deviation
(`ratio_outside_frac`, `ratio_excess_mean`, `ratio_deviation_max`) at the same `eps`.
"""

from __future__ import annotations

import functools

from pgjax.algos._on_policy import actor_critic_trainer
from pgjax.algos._trainer import train_function
from pgjax.algos.contract import Trainer
from pgjax.algos.ppo import MinibatchActorCriticHParams, PPOConfig, init_state, surrogate_update
from pgjax.config import config_dataclass, field, hparams_dataclass, positive
from pgjax.kernels.losses import spo_loss
from pgjax.types import Array


@hparams_dataclass
class SPOHParams(MinibatchActorCriticHParams):
    """Traced hyper-parameters: vmap over them (ratio_eps, learning_rate, ...) without recompiling."""

    ratio_eps: float = field(0.2, "trust-region width eps: the penalty holds r = pi/pi_old near [1-eps, 1+eps]",
                             positive())


@config_dataclass
class SPOConfig(PPOConfig):
    """Static settings: PPO's (epochs, minibatches, annealing, value clipping) with SPO's hparams."""

    hparams: SPOHParams = field(SPOHParams(), "traced hyper-parameters")


def penalty_objective(hparams: SPOHParams, log_probs, old_log_probs, advantages) -> tuple[Array, dict]:
    """SPO's policy term: `losses.spo_loss` at `hparams.ratio_eps`."""
    return spo_loss(log_probs, old_log_probs, advantages, hparams.ratio_eps)


def make_trainer(config: SPOConfig) -> Trainer:
    """Build SPO's functions for `config` (validated here, before anything compiles)."""
    return actor_critic_trainer(config, init_state, functools.partial(surrogate_update, penalty_objective))


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
