"""Subcommands of the `pgjax` command line, one module each.

Each module exposes `register(subparsers)` (adds its subparser) and `run(args) -> int`
(exit code). `pgjax.cli.COMMANDS` lists them. Heavy imports (jax, the algorithms) happen
inside `run`, so `pgjax --help` stays fast. Helpers shared by several commands live here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pgjax import config as cfg


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


def load_config_values(algo_name: str | None, config_file: Path | None, env: str | None, overrides: list[str]):
    """Resolve the algorithm name and the merged (still unchecked) config values.

    Values come from the config file, then `--env`, then the `KEY=VALUE` overrides.
    Returns `(algo_name, values)`. Raises ConfigError.
    """
    from pgjax.algos import ALGORITHMS

    values = cfg.read_file(config_file) if config_file is not None else {}
    file_algo = values.pop("algo", None)
    if algo_name and file_algo and algo_name != file_algo:
        raise cfg.ConfigError(f"--algo {algo_name} contradicts algo = {file_algo!r} in {config_file}")
    algo_name = algo_name or file_algo or "ppo"
    if algo_name not in ALGORITHMS:
        raise cfg.ConfigError(f"algo={algo_name!r} is unknown; choose one of {', '.join(sorted(ALGORITHMS))}")
    if env is not None:
        values["env_id"] = env
    for text in overrides:
        path, value = cfg.parse_override(text)
        values = cfg.merge(values, path, value)
    return algo_name, values


def build_config(algo_name: str, values: dict):
    """Build the algorithm's config strictly and check the environment id. Raises ConfigError."""
    from pgjax.algos import ALGORITHMS
    from pgjax.envs import check_env_id

    module = ALGORITHMS[algo_name]
    config = cfg.from_dict(module.CONFIG, values)
    try:
        check_env_id(config.env_id)
    except ValueError as err:
        raise cfg.ConfigError(str(err)) from None
    return module, config


def load_config(algo_name: str | None, config_file: Path | None, env: str | None, overrides: list[str]):
    """Resolve the algorithm and build its config strictly: `(algo_name, module, config)`."""
    algo_name, values = load_config_values(algo_name, config_file, env, overrides)
    module, config = build_config(algo_name, values)
    return algo_name, module, config
