"""Twin Delayed DDPG (Fujimoto et al., 2018).

DDPG with three changes against overestimation: twin critics and the minimum of their
targets, `y = r + gamma (1 - terminated) min_i Q'_i(s', a')`; target-policy smoothing,
`a' = clip(mu'(s') + clip(eps, -c, c), low, high)`; delayed actor and target updates
(every `policy_delay` critic updates). The loop is `pgjax.algos._off_policy`, the learner
`pgjax.algos._deterministic`.
"""

from __future__ import annotations

import math

from pgjax.algos import _deterministic as dpg
from pgjax.algos._off_policy import OffPolicyConfig, make_off_policy_trainer
from pgjax.algos._trainer import train_function
from pgjax.algos.contract import Trainer
from pgjax.config import (
    ConfigError,
    config_dataclass,
    field,
    hparams_dataclass,
    make_env,
    non_negative,
    one_of,
    positive,
)


@hparams_dataclass
class TD3HParams(dpg.DPGHParams):
    """Traced hyper-parameters: vmap over them to sweep without recompiling."""

    target_noise: float = field(0.2, "std of the target-policy smoothing noise, fraction of half the action range", non_negative())
    target_noise_clip: float = field(0.5, "smoothing noise is clipped to +-this (fraction of half the action range)", non_negative())


@config_dataclass
class TD3Config(OffPolicyConfig):
    """Static TD3 settings (shared off-policy ones in `OffPolicyConfig`)."""

    action_space = "continuous"

    exploration: str = field("gaussian", "exploration noise: independent Gaussian or Ornstein-Uhlenbeck", one_of("gaussian", "ou"))
    num_critics: int = field(2, "critics in the ensemble; the target takes their minimum", positive())
    policy_delay: int = field(2, "actor and target-network updates every this many critic updates", positive())
    hparams: TD3HParams = field(TD3HParams(), "traced hyper-parameters")

    @property
    def row_alignment(self) -> int:
        # Rows of a whole number of delay periods: the learner's delayed step is keyed on the
        # update's index within its row (see `_off_policy`, `update`'s `step`).
        return self.policy_delay // math.gcd(self.policy_delay, self.updates_per_step)

    def validate(self) -> None:
        super().validate()
        if self.num_steps % self.row_alignment:
            suggestion = self.row_alignment * max(1, round(self.num_steps / self.row_alignment)) * self.num_envs
            raise ConfigError(
                f"log_interval={self.log_interval} makes metrics rows of {self.num_steps} iterations x "
                f"updates_per_step={self.updates_per_step} critic updates, not a whole number of "
                f"policy_delay={self.policy_delay} periods (every row must start a period); "
                f"use e.g. log_interval={suggestion}, or 0 (automatic)."
            )


def make_trainer(config: TD3Config) -> Trainer:
    """Build TD3's functions for `config` (validated here, before anything compiles)."""
    config.validate()
    env = make_env(config, config.num_envs)
    variant = dpg.Variant(config.num_critics, config.policy_delay, target_smoothing=True, exploration=config.exploration)
    networks = dpg.make_networks(config, env, variant.num_critics)
    return make_off_policy_trainer(config, env, dpg.make_learner(variant, networks, env, (config.init, config.bias_init_max)), networks)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
