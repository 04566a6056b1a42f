"""The algorithm registry: one `Algorithm` entry per algorithm, built in one place.

The command line, the config loaders, sweeps, evaluation and the tests read what they need
of an algorithm from its entry (`ALGORITHMS[name]`), never from module attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from pgjax.algos import a2c, ddpg, npg, ppg, ppo, ppo_kl, reinforce, sac, spo, td3, trpo, vmpo, vpg
from pgjax.algos.contract import Trainer, TrainFn

FAMILIES = ("on_policy", "off_policy")


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One registered algorithm: its name, config class, trainer factories and traits."""

    name: str  # `--algo NAME`, `algo = "NAME"` in config files and run folders
    config_class: type  # the static config `make_trainer` takes; the loaders build it
    make_trainer: Callable[[Any], Trainer]  # config -> Trainer (init, run, train, act)
    make_train: Callable[[Any], TrainFn]  # config -> train(key, hparams=None): make_trainer(config).train
    family: Literal["on_policy", "off_policy"]  # the config's base: `OnPolicyConfig` or `OffPolicyConfig`
    deterministic_policy: bool  # True: no sampled actions (DDPG, TD3), so sampled evaluation is refused
    summary: str  # one line for listings

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"Algorithm {self.name!r}: family={self.family!r} must be one of {FAMILIES}")


ON, OFF = FAMILIES

ALGORITHMS: dict[str, Algorithm] = {
    entry.name: entry
    for entry in (
        # the on-policy line, in the textbook order
        Algorithm("reinforce", reinforce.ReinforceConfig, reinforce.make_trainer, reinforce.make_train, ON, False,
                  "REINFORCE: Monte Carlo returns, optional baselines (leave-one-out, group-normalised)"),
        Algorithm("vpg", vpg.VPGConfig, vpg.make_trainer, vpg.make_train, ON, False,
                  "vanilla policy gradient with GAE and a fitted value"),
        Algorithm("a2c", a2c.A2CConfig, a2c.make_trainer, a2c.make_train, ON, False,
                  "advantage actor-critic, n-step or GAE advantages"),
        Algorithm("npg", npg.NPGConfig, npg.make_trainer, npg.make_train, ON, False,
                  "natural policy gradient: conjugate gradient on Fisher-vector products"),
        Algorithm("trpo", trpo.TRPOConfig, trpo.make_trainer, trpo.make_train, ON, False,
                  "TRPO: the natural step with a KL-checked line search"),
        Algorithm("ppo", ppo.PPOConfig, ppo.make_trainer, ppo.make_train, ON, False,
                  "PPO with the clipped surrogate"),
        Algorithm("ppo_kl", ppo_kl.PPOKLConfig, ppo_kl.make_trainer, ppo_kl.make_train, ON, False,
                  "PPO with an adaptive KL penalty (dual ascent on the multiplier)"),
        Algorithm("ppg", ppg.PPGConfig, ppg.make_trainer, ppg.make_train, ON, False,
                  "PPG: PPO's policy phase, then value distillation into the policy network"),
        Algorithm("spo", spo.SPOConfig, spo.make_trainer, spo.make_train, ON, False,
                  "SPO: PPO with a quadratic ratio penalty instead of the clip"),
        Algorithm("vmpo", vmpo.VMPOConfig, vmpo.make_trainer, vmpo.make_train, ON, False,
                  "V-MPO: top-half E-step, weighted maximum likelihood M-step, KL multipliers"),
        # off-policy actor-critics on a replay buffer; DDPG's and TD3's exploration noise is
        # a training device, not part of the policy
        Algorithm("ddpg", ddpg.DDPGConfig, ddpg.make_trainer, ddpg.make_train, OFF, True,
                  "DDPG: deterministic policy gradient with one critic"),
        Algorithm("td3", td3.TD3Config, td3.make_trainer, td3.make_train, OFF, True,
                  "TD3: twin critics, delayed actor updates, target-policy smoothing"),
        Algorithm("sac", sac.SACConfig, sac.make_trainer, sac.make_train, OFF, False,
                  "SAC: entropy-regularised actor-critic, Box or Discrete actions (picked by the environment)"),
    )
}
