"""Algorithms, each a small module with a config, `make_trainer(config)` and `make_train(config)`.

`ALGORITHMS` maps each name to its registry entry (`registry.Algorithm`: config class,
`make_trainer`, `make_train`, family, whether the policy is deterministic, a summary),
built in one place, `registry`. The pieces the algorithms share: the trainer contract every
`make_trainer` returns (`contract`) and its assembly (`_trainer`), rollouts (`rollout`), the
on-policy networks and acting (`actor_critic`) and update skeleton (`_on_policy`), the
off-policy loop (`_off_policy`) with DDPG and TD3's learner (`_deterministic`), and
gradient-estimator diagnostics (`diagnostics`).
"""

from pgjax.algos.registry import ALGORITHMS, Algorithm

__all__ = ["ALGORITHMS", "Algorithm"]
