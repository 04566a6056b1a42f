"""pgjax: policy-gradient reinforcement learning in JAX.

Kernels are plain modules (`pgjax.returns`, `pgjax.losses`, `pgjax.distributions`, ...);
algorithms live in `pgjax.algos` (`from pgjax.algos import ppo`). Importing `pgjax`
itself is cheap: nothing heavy is imported until a submodule is.

On CPU, `pgjax.use_host_devices()` right after `import jax` (before any computation)
splits the CPU into one JAX device per core, so seeds and sweep cells sharded over the
devices run in parallel (the `pgjax` commands do this by default).
"""

__version__ = "0.1.0"

__all__ = [
    "actor_critic", "algos", "animation", "checkpoint", "config", "diagnostics", "distributions",
    "envs", "evaluation", "experiment", "losses", "networks", "noise", "plotting", "replay",
    "returns", "rollout", "runs", "sac_losses", "sharding", "shuffle", "statistics", "sweep",
    "targets", "trust_region", "types", "unrolled_rng", "use_host_devices",
]


def use_host_devices(count: int | None = None) -> int:
    """One JAX CPU device per usable core (or `count`); see `pgjax.sharding.use_host_devices`."""
    from pgjax.sharding import use_host_devices as use

    return use(count)
