"""Subcommands of the `pgjax` command line, one module each.

Each module exposes `register(subparsers)` (adds its subparser) and `run(args) -> int`
(exit code). `pgjax.cli.COMMANDS` lists them. Heavy imports (jax, the algorithms) happen
inside `run`, so `pgjax --help` stays fast. Helpers shared by several commands live here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pgjax import loading


def parse_seeds(text: str) -> list[int]:
    """`'4'` -> seeds 0..3; `'0,5,9'` -> those seeds; `'3:7'` -> 3..6."""
    try:
        if ":" in text:
            lo, hi = (int(t) for t in text.split(":"))
            seeds = list(range(lo, hi))
        elif "," in text:
            seeds = [int(t) for t in text.split(",")]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: use a count (4), a list (0,5,9) or a range (3:7)")
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: need at least one distinct non-negative seed")
    return seeds


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`KEY=VALUE ...`, `--algo`, `--config`, `--env`: how every command picks a config."""
    from pgjax.algos import ALGORITHMS

    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    parser.add_argument("--algo", default=None, choices=sorted(ALGORITHMS), help="algorithm (default: the config's, else ppo)")
    parser.add_argument("--config", type=Path, default=None, help="TOML or JSON config file, e.g. configs/ppo_cartpole.toml")
    parser.add_argument("--env", default=None, help="gymnax environment id (same as env_id=...)")


# Config loading is the library's (`pgjax.loading`); the commands use it under these names.
load_config_values = loading.config_values
build_config = loading.build_config
load_config = loading.resolve_config  # (algo_name, config_file, env, overrides) -> (algo_name, module, config)
