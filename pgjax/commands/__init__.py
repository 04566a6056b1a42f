"""Subcommands of the `pgjax` command line, one module each.

Each module exposes `register(subparsers)` (adds its subparser) and `run(args) -> int`
(exit code). `pgjax.commands.cli.COMMANDS` lists them. Heavy imports (jax, the algorithms) happen
inside `run`, so `pgjax --help` stays fast. Helpers shared by several commands live here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pgjax.config import ENV_ID_DOC
from pgjax.runtime import loading

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


def int_at_least(minimum: int, flag: str):
    """An argparse `type`: an integer >= `minimum`, else a one-line error naming `flag`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: must be an integer >= {minimum}")
        return value

    return parse


def _unwritable(path: Path) -> str | None:
    """Why a file or folder cannot be created at `path`, or None: an ancestor that is a file,
    or a nearest existing folder that is not writable (read-only mount, permissions)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{parent} is not writable"
            return None
    return None


def output_folder(flag: str):
    """An argparse `type` for a folder the command creates or writes into: checked before any work."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: is a file; give a folder")
        if path.is_dir():
            reason = None if os.access(path, os.W_OK | os.X_OK) else f"{path} is not writable"
        else:
            reason = _unwritable(path)
        if reason:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: cannot write there ({reason})")
        return path

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

    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    parser.add_argument("--algo", default=None, choices=sorted(ALGORITHMS), help="algorithm (default: the config's, else ppo)")
    parser.add_argument("--config", type=Path, default=None, help="TOML or JSON config file, e.g. configs/ppo_cartpole.toml")
    parser.add_argument("--env", default=None, help=f"{ENV_ID_DOC} (same as env_id=...)")


# Config loading is the library's (`pgjax.runtime.loading`); the commands use it under these names.
load_config_values = loading.config_values
build_config = loading.build_config
load_config = loading.resolve_config  # (algo_name, config_file, env, overrides) -> (algo_name, module, config)
