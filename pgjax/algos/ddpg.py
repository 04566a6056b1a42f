"""Deep Deterministic Policy Gradient (Lillicrap et al., 2016).

A deterministic tanh actor scaled to the action bounds, one Q critic trained on the
Bellman target of target networks (`y = r + gamma (1 - terminated) Q'(s', mu'(s'))`, true
next observation, so time limits bootstrap), the actor trained by the deterministic policy
gradient through the critic, Polyak-averaged targets, Gaussian or Ornstein-Uhlenbeck
exploration noise. The loop (replay, warm-up, several envs, updates per step) is
`pgjax.algos._off_policy`; the learner is `pgjax.algos._deterministic`.
"""

from __future__ import annotations

from pgjax.algos import _deterministic as dpg
from pgjax.algos._off_policy import OffPolicyConfig, make_off_policy_trainer
from pgjax.algos._trainer import train_function
from pgjax.algos.contract import Trainer
from pgjax.config import config_dataclass, field, hparams_dataclass, make_env, one_of


@hparams_dataclass
class DDPGHParams(dpg.DPGHParams):
    """Traced hyper-parameters: vmap over them to sweep without recompiling."""


@config_dataclass
class DDPGConfig(OffPolicyConfig):
    """Static DDPG settings (shared off-policy ones in `OffPolicyConfig`)."""

    action_space = "continuous"

    exploration: str = field("gaussian", "exploration noise: independent Gaussian or Ornstein-Uhlenbeck", one_of("gaussian", "ou"))
    hparams: DDPGHParams = field(DDPGHParams(), "traced hyper-parameters")


def make_trainer(config: DDPGConfig) -> Trainer:
    """Build DDPG's functions for `config` (validated here, before anything compiles)."""
    config.validate()
    env = make_env(config, config.num_envs)
    variant = dpg.Variant(num_critics=1, policy_delay=1, target_smoothing=False, exploration=config.exploration)
    networks = dpg.make_networks(config, env, variant.num_critics)
    return make_off_policy_trainer(config, env, dpg.make_learner(variant, networks, env, (config.init, config.bias_init_max)), networks)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
