"""Flax networks: a torso (`torsos`: flatten + MLP, or CNN + MLP, registered by name), a
core that threads a carry (`cores`: the protocol and its registry; `recurrent`: the GRU;
`mingru`: minGRU, a parallel-scan recurrence), heads that return a distribution, a value or
Q values (`heads`), and the initialisation every network shares (`initializers`: orthogonal
kernels, the `Network` base).
"""

import importlib

__all__ = ["cores", "heads", "initializers", "mingru", "recurrent", "torsos"]


def __getattr__(name: str):  # PEP 562: a module is imported on first use as an attribute
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
