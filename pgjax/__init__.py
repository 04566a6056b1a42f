"""pgjax: policy-gradient reinforcement learning in JAX.

Kernels are plain modules (`pgjax.returns`, `pgjax.losses`, `pgjax.distributions`, ...);
algorithms live in `pgjax.algos` (`from pgjax.algos import ppo`). Importing `pgjax`
itself is cheap: nothing heavy is imported until a submodule is.
"""

__version__ = "0.1.0"

__all__ = [
    "actor_critic", "algos", "animation", "checkpoint", "config", "diagnostics", "distributions",
    "envs", "evaluation", "experiment", "losses", "networks", "noise", "plotting", "replay",
    "returns", "rollout", "runs", "sac_losses", "sharding", "shuffle", "statistics", "sweep",
    "targets", "trust_region", "types", "unrolled_rng",
]
