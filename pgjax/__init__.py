"""pgjax: policy-gradient reinforcement learning in JAX.

The package is grouped by kind; a lower layer never imports a higher one (`tests/test_layout.py`):

- `pgjax.types`: data containers (`TimeStep`, `Transition`, `RunningStats`, ...).
- `pgjax.kernels`: pure jnp kernels (returns, losses, distributions, trust region, SAC targets,
  noise, reward scaling, replay); no flax modules, no environments.
- `pgjax.envs`: batched environments behind one interface, `register_env`, `make_env`.
- `pgjax.networks`: flax torsos, heads, initialisers and the recurrent core.
- `pgjax.config`: frozen static configs and traced hyper-parameters.
- `pgjax.algos`: one module per algorithm (`from pgjax.algos import ppo`), the registry
  `ALGORITHMS` (one `Algorithm` entry per name), the shared rollout, actor-critic and
  off-policy pieces, and the trainer contract (`pgjax.algos.contract`).
- `pgjax.records` (checkpoints, run folders, trackers) and `pgjax.reports` (statistics, plots,
  animations).
- `pgjax.runtime`: training over seeds, sweeps, evaluation, sharding, the compile cache, and
  config loading (`load_config`, `make_trainer`).
- `pgjax.commands`: the `pgjax` command line (parse, call the library, print).

`pgjax.load_config` builds a validated config from an algorithm name or a config file and
`pgjax.make_trainer(config)` the algorithm's `Trainer`. Importing `pgjax` itself is cheap: the
names in `__all__` are imported on first use as attributes (`import pgjax;
pgjax.kernels.returns.gae(...)`), through the module `__getattr__` (PEP 562).

On CPU, `pgjax.use_host_devices()` right after `import jax` (before any computation)
splits the CPU into one JAX device per core, so seeds and sweep cells sharded over the
devices run in parallel (the `pgjax` commands do this by default). `pgjax.enable_compile_cache()`
keeps compiled programs on disk for the next run (`pgjax.runtime.compile_cache`; the commands do
it by default), and `pgjax.records.tracking` sends metrics to TensorBoard or Weights & Biases.
"""

import importlib

__version__ = "0.1.0"

# subpackages and top-level modules, imported on first use
_MODULES = ("algos", "config", "envs", "kernels", "networks", "records", "reports", "runtime", "types")
# public function -> (the module defining it, its name there)
_FUNCTIONS = {
    "load_config": ("runtime.loading", "load_config"),
    "make_trainer": ("runtime.loading", "make_trainer"),
    "register_env": ("envs", "register_env"),
    "make_env": ("envs", "make_vec_env"),
    "use_host_devices": ("runtime.sharding", "use_host_devices"),
    "initialize_processes": ("runtime.sharding", "initialize_processes"),
    "enable_compile_cache": ("runtime.compile_cache", "enable_compile_cache"),
    "train": ("runtime.run", "train"),
    "resume": ("runtime.run", "resume"),
}

# Built from the two tables above, so it cannot drift from what __getattr__ serves.
__all__ = sorted([*_MODULES, *_FUNCTIONS])  # noqa: PLE0605


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FUNCTIONS:
        module, attribute = _FUNCTIONS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
