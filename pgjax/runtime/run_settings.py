"""The rules a training run's settings meet, checked before anything compiles.

`pgjax train` checks its flags while parsing them; `pgjax.train` and `pgjax.resume` take the
same settings as Python values, so they meet the same rules here: one `ConfigError` line
naming the setting, the value and what is allowed, never a raw `TypeError` later or a bad
value silently taken as the default (`chunks=0`, `width=0`).
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

from pgjax import config as cfg
from pgjax.records import runs
from pgjax.runtime.eval_modes import GREEDY, STOCHASTIC

# setting -> (smallest value, its flag on the command line)
COUNTS = {"chunks": (1, "--chunks"), "width": (1, "--width"), "eval_episodes": (0, "--eval-episodes"),
          "eval_every": (0, "--eval-every")}


def _whole(value: Any) -> bool:
    """A whole number: a Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def seeds_list(seeds: Any) -> list[int] | None:
    """`seeds` as `pgjax.train` takes it: None (seed 0), a count (`4`: seeds 0..3) or seed ids
    (`[0, 5, 9]`), as a list of ids. Anything else, a string included, is one line."""
    if seeds is None:
        return None
    allowed = "a count such as 4 (seeds 0..3) or a list of distinct seed ids such as [0, 5, 9]"
    if _whole(seeds):
        if seeds < 1:
            raise cfg.ConfigError(f"seeds={seeds}: a count must be >= 1 (or give a list of seed ids)")
        return list(range(int(seeds)))
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):  # '3' is not three seeds
        raise cfg.ConfigError(f"seeds={seeds!r}: expected {allowed}")
    ids = list(seeds)
    if not all(_whole(s) for s in ids):
        raise cfg.ConfigError(f"seeds={seeds!r}: expected {allowed}")
    ids = [int(s) for s in ids]
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise cfg.ConfigError(f"seeds={ids}: need at least one distinct non-negative seed")
    return ids


def check_settings(settings: dict) -> None:
    """Refuse a run setting (`run_record.RUN_SETTINGS` keys; None: the default) of the wrong
    type or out of range, as the command line's flags are."""
    root_seed = settings.get("root_seed")
    if root_seed is not None and not _whole(root_seed):
        raise cfg.ConfigError(f"root_seed={root_seed!r}: expected a whole number in [0, 2**32) (--root-seed)")
    for key, (minimum, flag) in COUNTS.items():
        value = settings.get(key)
        if value is not None and (not _whole(value) or value < minimum):
            raise cfg.ConfigError(f"{key}={value!r}: must be an integer >= {minimum} ({flag})")
    mode = settings.get("eval_mode")
    if mode is not None and mode not in (GREEDY, STOCHASTIC):
        raise cfg.ConfigError(f"eval_mode={mode!r}: must be {GREEDY!r} or {STOCHASTIC!r} (--eval-mode)")


def out_folder(out: Any, default: str = "runs") -> Path:
    """`out` (where the run folder is made; None: `default`) as a Path, checked as `pgjax train
    --out` is: a folder, or a path one can be made at, that can be written (not a file, not
    under a file, not read-only)."""
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise cfg.ConfigError(f"out={out!r}: expected a folder path (a str or pathlib.Path)")
    problem = runs.output_folder_problem(Path(default if out is None else out))
    if problem and out is None:
        raise cfg.ConfigError(f"the default output folder {default!r} {problem.replace('is a file', 'is a file here')} "
                              "(or give another with --out / out=)")
    if problem:
        raise cfg.ConfigError(f"out={str(out)!r}: {problem}")
    return Path(default if out is None else out)


def run_folder(run_dir: Any) -> Path:
    """`run_dir` of `pgjax.resume` as a Path; a value of another type is one line."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise cfg.ConfigError(f"run_dir={run_dir!r}: expected the path of a run folder (a str or pathlib.Path)")
    return Path(run_dir)


def check_record(record: dict, path: Path) -> None:
    """A run's config.json read back (`run_record.read_record`): the entries a resume uses
    have the types they were written with, else one `RunFileError` line naming the file and
    the entry (a hand-edited or damaged file), not a raw error while compiling."""
    def damaged(what: str) -> runs.RunFileError:
        return runs.RunFileError(f"{path} is damaged: {what}; restore it, or train a new run")

    if not isinstance(record.get("algo"), str):
        raise damaged(f"algo={record.get('algo')!r} is not an algorithm name")
    if not isinstance(record.get("config"), dict):
        raise damaged(f"config={record.get('config')!r} is not a table of config fields")
    if not isinstance(record.get("seeds"), list):
        raise damaged(f"seeds={record.get('seeds')!r} is not a list of seed ids")
    try:
        seeds_list(record["seeds"])
        check_settings({key: record.get(key) for key in ("root_seed", "eval_mode", *COUNTS)})
    except cfg.ConfigError as err:
        raise damaged(str(err).split(" (--")[0]) from None


def check_switches(**switches: Any) -> None:
    """`checkpoints` a bool (a string such as 'no' would be true), `progress` a bool, None or
    an object with `start`, `update` and `close` (see `chunk_handler.Progress`)."""
    for name, value in switches.items():
        bar = name == "progress" and (value is None or all(callable(getattr(value, m, None))
                                                           for m in ("start", "update", "close")))
        if isinstance(value, bool) or bar:
            continue
        what = "True or False" + (", or an object with start, update and close" if name == "progress" else "")
        raise cfg.ConfigError(f"{name}={value!r}: expected {what}")
