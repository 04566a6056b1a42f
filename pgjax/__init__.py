"""pgjax: policy-gradient reinforcement learning in JAX.

Kernels are plain modules (`pgjax.returns`, `pgjax.losses`, `pgjax.distributions`, ...);
algorithms live in `pgjax.algos` (`from pgjax.algos import ppo`); `pgjax.load_config`
builds a validated config from an algorithm name or a config file. Importing `pgjax`
itself is cheap: each module in `__all__` is imported on first use as an attribute
(`import pgjax; pgjax.returns.gae(...)`), through the module `__getattr__` (PEP 562).

On CPU, `pgjax.use_host_devices()` right after `import jax` (before any computation)
splits the CPU into one JAX device per core, so seeds and sweep cells sharded over the
devices run in parallel (the `pgjax` commands do this by default). `pgjax.enable_compile_cache()`
keeps compiled programs on disk for the next run (`pgjax.compile_cache`; the commands do it by
default), and `pgjax.tracking` sends metrics to TensorBoard or Weights & Biases.
"""

import importlib

__version__ = "0.1.0"

_MODULES = (
    "actor_critic", "algos", "animation", "cell_policies", "checkpoint", "compile_cache", "config", "diagnostics",
    "distributions", "envs", "eval_modes", "evaluation", "experiment", "kernel_inputs", "loading", "losses", "networks",
    "noise", "plotting", "recurrent", "replay", "returns", "reward_scaling", "rollout", "runs", "sac_losses", "sharding",
    "shuffle", "statistics", "sweep", "sweep_eval", "targets", "tracking", "trust_region", "types", "unrolled_rng",
)
# public function -> the module defining it
_FUNCTIONS = {"load_config": "loading", "register_env": "envs", "use_host_devices": "sharding",
              "initialize_processes": "sharding", "enable_compile_cache": "compile_cache"}

# Built from the two tables above, so it cannot drift from what __getattr__ serves.
__all__ = sorted([*_MODULES, *_FUNCTIONS])  # noqa: PLE0605


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"{__name__}.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
