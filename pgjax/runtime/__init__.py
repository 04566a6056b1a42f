"""Running training: a run folder started or resumed (`run`: `train`, `resume`; its parts
`run_record`, `run_settings`, `run_lock`, `seed_cells`, `chunk_handler`, `run_restore`, `run_summary`,
`run_result`), trainers over seeds in compiled chunks (`experiment`) as one compiled-cells
program (`cells`), sweeps over hyper-parameter grids (`sweep`, `sweep_eval`), evaluation
(`evaluation`, `eval_modes`), cells sharded over devices (`sharding`) and process 0's
decisions sent to every process (`agreement`), stopping on signals and resuming
(`resumable`), the persistent compilation cache (`compile_cache`) and configs by algorithm
name or file (`loading`).
"""

import importlib

__all__ = ["agreement", "cells", "chunk_handler", "compile_cache", "eval_modes", "evaluation", "experiment", "loading",
           "resumable", "run", "run_lock", "run_record", "run_restore", "run_result", "run_settings", "run_summary",
           "seed_cells", "sharding", "sweep", "sweep_eval"]


def __getattr__(name: str):  # PEP 562: a module is imported on first use as an attribute
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
