"""Reading results: statistics across seeds (`statistics`), learning-curve and
final-performance plots (`plotting`) and animated episodes (`animation`).
"""

import importlib

__all__ = ["animation", "plotting", "statistics"]


def __getattr__(name: str):  # PEP 562: a module is imported on first use as an attribute
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
