"""A run's settings as its config.json keeps them: a new run's, and a resumed run's read
back and checked against what the command repeats.

config.json holds the algorithm, the config and the run's settings (`RUN_SETTINGS`: seeds,
root seed, chunks, vmap width, evaluation, trackers). A resume takes every setting from it;
one given again must repeat it, and an override that would change the config is refused.
`PREFIX`, `note` and `ResumeError` are what every part of a run reports with.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgjax import config as cfg
from pgjax.records import runs
from pgjax.runtime.eval_modes import DEFAULT_MODE
from pgjax.runtime.resumable import refuse_contradictions
from pgjax.runtime.run_settings import check_record, check_settings, seeds_list  # noqa: F401 (seeds_list: run.train's)

# Settings of a run kept in its config.json, with their flags and the defaults of a new run.
RUN_SETTINGS = {"seeds": ("--seeds", [0]), "root_seed": ("--root-seed", 0), "chunks": ("--chunks", 20),
                "width": ("--width", None), "eval_episodes": ("--eval-episodes", 32),
                "eval_every": ("--eval-every", 1), "eval_mode": ("--eval-mode", DEFAULT_MODE),
                "log": ("--log", ["csv"])}
REQUIRED_RECORD = ("algo", "config", "seeds", "root_seed", "chunks")
PREFIX = "pgjax train"  # how the run's notes and errors begin


class ResumeError(Exception):
    """A run folder that cannot be continued (the message says why and what to do)."""


def note(message: str) -> None:
    """One note on stderr: `pgjax train: note: ...`."""
    print(f"{PREFIX}: note: {message}", file=sys.stderr)


def new_record(algo_name: str, config: Any, settings: dict, checkpoints: bool = True) -> dict:
    """The run settings of a new run (config.json without the config): `settings` holds the
    keys of `RUN_SETTINGS` (None: the default)."""
    from pgjax.runtime.experiment import check_seeds, default_seed_width

    check_settings(settings)  # pgjax.train's settings meet the rules of pgjax train's flags
    asked_chunks = settings.get("chunks") is not None  # the plan's note is for a count the user chose
    settings = {key: default if settings.get(key) is None else settings[key]
                for key, (_, default) in RUN_SETTINGS.items()}
    seeds = settings["seeds"]
    try:
        check_seeds(settings["root_seed"], seeds)
    except ValueError as exc:
        raise cfg.ConfigError(str(exc)) from None
    width = settings["width"] or default_seed_width(len(seeds))
    chunks = min(settings["chunks"], config.num_updates)  # a chunk holds at least one update
    if chunks < settings["chunks"]:
        note(f"--chunks {settings['chunks']} is more than the {config.num_updates} updates; "
             f"running {chunks} chunks of one update")
    elif asked_chunks:
        _note_chunk_plan(config.num_updates, chunks)
    return {**settings, "algo": algo_name, "chunks": chunks, "width": min(width, len(seeds)),
            "checkpoints": checkpoints}


def _note_chunk_plan(num_updates: int, chunks: int) -> None:
    """Say so when the chunk plan (`experiment.chunk_sizes`: equal chunks where a divisor
    of the update count allows, one compilation) has fewer chunks than asked for: each
    chunk is a progress step, a checkpoint and an evaluation point."""
    from pgjax.runtime.experiment import chunk_sizes

    sizes = chunk_sizes(num_updates, chunks)
    if len(sizes) < chunks:
        shape = (f"{len(sizes)} equal chunks of {sizes[0]} updates" if len(set(sizes)) == 1
                 else f"{len(sizes)} chunks of {sizes[0]} updates (the last {sizes[-1]})")
        note(f"--chunks {chunks}: the {num_updates} updates run as {shape} (chunk sizes are chosen to compile once "
             f"or twice); a --chunks that divides {num_updates} gives exactly that many")


def read_record(run_dir: Path) -> dict:
    """A run folder's config.json, checked for the entries a resume needs."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists() and not runs.recover_run_file(run_dir, PREFIX, required=True):
        raise cfg.ConfigError(f"--resume {str(run_dir)!r}: no config.json there (not a pgjax run folder)")
    record = runs.read_json(run_dir / "config.json")
    missing = [key for key in REQUIRED_RECORD if not isinstance(record, dict) or key not in record]
    if missing:
        raise runs.RunFileError(f"{run_dir / 'config.json'} is damaged: no {', '.join(missing)}")
    check_record(record, run_dir / "config.json")  # its entries of the types a resume uses
    # Runs from before seed groups vmapped all their seeds at once, or before eval_episodes was kept.
    record.setdefault("width", len(record["seeds"]))
    record.setdefault("checkpoints", True)
    return record


def check_same_settings(record: dict, given: dict, run_dir: Path, no_checkpoint: bool = False) -> None:
    """A setting given with a resume must repeat the run's; one that differs is refused.
    Settings the run's config.json lacks (older runs) are taken from `given` or defaults."""
    refuse_contradictions(record, given, RUN_SETTINGS, "run", run_dir / "config.json")
    if no_checkpoint and record["checkpoints"]:
        raise cfg.ConfigError("--no-checkpoint contradicts the run being resumed, which writes checkpoints; "
                              "drop --no-checkpoint")


def resumed_config(record: dict, env: str | None, overrides: Sequence[str], algo: str | None,
                   run_dir: Path | None = None):
    """`(algorithm, config)` of a resumed run: its registry entry and its config.json. `env`,
    `overrides` and `algo` may only repeat it: one that changes the config is refused here, before anything
    compiles and whether or not the run has a checkpoint yet, since a resume would train
    another config in a folder whose config.json, name and plots say the old one."""
    from pgjax.runtime.loading import build_config

    if algo is not None and algo != record["algo"]:
        raise cfg.ConfigError(f"--algo {algo} contradicts algo={record['algo']!r} of the run being resumed")
    values = record["config"]
    if env is not None:
        values = cfg.merge(values, ["env_id"], env)
    for path, value in cfg.parse_overrides(overrides):
        values = cfg.merge(values, path, value)
    algorithm, config = build_config(record["algo"], values)
    if values is not record["config"]:
        _, own = build_config(record["algo"], record["config"])
        changed = cfg.config_differences(cfg.to_dict(own), cfg.to_dict(config))
        if changed:
            where = run_dir / "config.json" if run_dir is not None else "config.json"
            given = " ".join([*([f"--env {env}"] if env is not None else []), *overrides])
            raise cfg.ConfigError(
                f"{given} changes the config of the run being resumed ({where}, the config its checkpoints "
                f"hold): {'; '.join(changed)}; a resume continues the run's own config: drop them, or train a new "
                "run with them")
    return algorithm, config
