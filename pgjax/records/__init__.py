"""What a run leaves on disk: checkpoints (`checkpoint`), run folders with configs, metrics
and summaries (`runs`), trackers (`tracking`: TensorBoard, Weights & Biases), the kept
policies of sweep cells (`cell_policies`) and typed PRNG keys as stored data (`prng_keys`).
"""

import importlib

__all__ = ["cell_policies", "checkpoint", "prng_keys", "runs", "tracking"]


def __getattr__(name: str):  # PEP 562: a module is imported on first use as an attribute
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
