"""Subcommands of the `pgjax` command line, one module each.

Each module exposes `register(subparsers)` (adds its subparser) and `run(args) -> int`
(exit code). `pgjax.commands.cli.COMMANDS` lists them. Heavy imports (jax, the algorithms) happen
inside `run`, so `pgjax --help` stays fast. Helpers shared by several commands live here.
This package imports no jax (nor `pgjax.config`, which does), so `pgjax.commands.cli.main`
is running, and turns a Ctrl-C into one line, before jax starts importing.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from pgjax.records import runs

SEEDS_HELP = ("seeds: a count N >= 1 (4: seeds 0..3), ids with a comma (0,5,9; one id: 7,) or a range LO:HI "
              "(3:7: seeds 3..6); default: seed 0")


def parse_seeds(text: str) -> list[int]:
    """`'4'` -> seeds 0..3 (a count); `'0,5,9'` -> those ids (`'7,'`: the one id 7); `'3:7'` -> 3..6."""
    try:
        if ":" in text:
            lo, hi = (int(t) for t in text.split(":"))
            seeds = list(range(lo, hi))
        elif "," in text:
            seeds = [int(t) for t in text.split(",") if t.strip()]
        else:
            count = int(text)
            if count < 1:
                raise argparse.ArgumentTypeError(
                    f"--seeds {text!r}: a count must be >= 1; for the seed id {count} alone write --seeds {count},")
            seeds = list(range(count))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: use a count (4), ids with a comma (0,5,9 or 7,) or a range (3:7)") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: need at least one distinct non-negative seed")
    return seeds


INT32_MAX = 2**31 - 1  # counts the compiled programs hold (JAX computes in 32-bit integers)
SEED_MAX = 2**32 - 1  # JAX's keys hold 32 bits: 2**32 + s would repeat seed s


def int_at_least(minimum: int, flag: str, maximum: int = INT32_MAX, why: str = "the compiled program counts in int32"):
    """An argparse `type`: an integer in [`minimum`, `maximum`], else a one-line error naming `flag`
    (a count past int32 would overflow inside the compiled program, not fail here)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: must be an integer >= {minimum}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: must be an integer <= {maximum} ({why})")
        return value

    return parse


def seed_number(flag: str):
    """An argparse `type` for a PRNG seed: an integer in [0, 2**32), as training seeds are."""
    return int_at_least(0, flag, SEED_MAX, "JAX's keys hold 32 bits, so 2**32 + s would repeat seed s")


def memory_size(text: str) -> int:
    """An argparse `type` for `--memory-limit`: a positive size (`512MB`, `2GB`, bytes) in
    bytes, by the library's rule (`pgjax.runtime.sweep.parse_bytes`), checked before any work."""
    from pgjax.runtime.sweep import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as err:  # ConfigError
        raise argparse.ArgumentTypeError(str(err)) from None


_unwritable = runs.unwritable  # (plot's --out uses it too)


def output_folder(flag: str):
    """An argparse `type` for a folder the command creates or writes into: checked before any
    work, by the library's rule (`pgjax.records.runs.output_folder_problem`)."""

    def parse(text: str) -> Path:
        problem = runs.output_folder_problem(Path(text))
        if problem:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: {problem}")
        return Path(text)

    return parse


def output_file(flag: str, suffixes: tuple[str, ...] = ()):
    """An argparse `type` for a file the command writes: the right suffix, not a folder, and a
    location that can be written, all checked before any work."""

    def parse(text: str) -> Path:
        path = Path(text)
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: the file name must end in {' or '.join(suffixes)}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: is a folder; give a file name")
        reason = _unwritable(path) if not path.exists() else (None if os.access(path, os.W_OK) else f"{path} is not writable")
        if reason:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: cannot write there ({reason})")
        return path

    return parse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`KEY=VALUE ...`, `--algo`, `--config`, `--env`: how every command picks a config."""
    from pgjax.algos import ALGORITHMS
    from pgjax.config import ENV_ID_DOC

    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    parser.add_argument("--algo", default=None, choices=sorted(ALGORITHMS), help="algorithm (default: the config's, else ppo)")
    parser.add_argument("--config", type=Path, default=None, help="TOML or JSON config file, e.g. configs/ppo_cartpole.toml")
    parser.add_argument("--env", default=None, help=f"{ENV_ID_DOC} (same as env_id=...)")


# Config loading is the library's (`pgjax.runtime.loading`); the commands use it under these
# names, looked up on first use (PEP 562) since loading imports jax.
_LOADING = {
    "load_config_values": "config_values",
    "build_config": "build_config",
    "load_config": "resolve_config",  # (algo_name, config_file, env, overrides) -> (algo_name, algorithm, config)
}


def __getattr__(name: str):
    if name in _LOADING:
        return getattr(importlib.import_module("pgjax.runtime.loading"), _LOADING[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
