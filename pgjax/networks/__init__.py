"""Flax networks: a torso (`torsos`: flatten + MLP, or CNN + MLP), heads that return a
distribution, a value or Q values (`heads`), the initialisation every network shares
(`initializers`: orthogonal kernels, the `Network` base) and the GRU core (`recurrent`).
"""

import importlib

__all__ = ["heads", "initializers", "recurrent", "torsos"]


def __getattr__(name: str):  # PEP 562: a module is imported on first use as an attribute
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
