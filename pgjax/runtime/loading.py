"""Configs by algorithm name or file: file values, then `--env`, then `KEY=VALUE` overrides,
built strictly into the algorithm's config (`pgjax.config.from_dict`) and validated.

`load_config` is the notebook's entry point (`pgjax.load_config("configs/ppo_cartpole.toml",
overrides=["hparams.gamma=0.9"])`); the command line (`pgjax.commands`) and sweeps
(`pgjax.runtime.sweep`) use the steps below it. Every failure is a `ConfigError` naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgjax import config as cfg

if TYPE_CHECKING:
    from pgjax.algos import Algorithm
    from pgjax.algos.contract import Trainer

DEFAULT_ALGO = "ppo"  # when neither the caller nor the config file names one


def algorithm(name: str) -> Algorithm:
    """The registry entry of algorithm `name` (`pgjax.algos.ALGORITHMS`). Raises ConfigError."""
    from pgjax.algos import ALGORITHMS

    if not isinstance(name, str) or name not in ALGORITHMS:  # (a list from a file is not hashable)
        raise cfg.ConfigError(f"algo={name!r} is unknown; choose one of {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name]


def algorithm_of(config: Any) -> Algorithm:
    """The registry entry whose config class `config` is: `algorithm_of(c).make_trainer(c)`."""
    from pgjax.algos import ALGORITHMS

    for entry in ALGORITHMS.values():
        if type(config) is entry.config_class:
            return entry
    raise cfg.ConfigError(f"{type(config).__name__} is the config of no registered algorithm")


def make_trainer(config: Any) -> Trainer:
    """The `Trainer` of `config`'s algorithm: `algorithm_of(config).make_trainer(config)`."""
    return algorithm_of(config).make_trainer(config)


def config_values(algo_name: str | None, config_file: Path | None, env: str | None, overrides: Sequence[str]):
    """Resolve the algorithm name and the merged (still unchecked) config values.

    Values come from the config file, then `env`, then the `KEY=VALUE` overrides. The
    algorithm is `algo_name`, else the file's `algo`, else `DEFAULT_ALGO`; the two may not
    disagree. Returns `(algo_name, values)`. Raises ConfigError.
    """
    values = cfg.read_file(config_file) if config_file is not None else {}
    file_algo = values.pop("algo", None)
    for given in (algo_name, file_algo):  # an empty or misspelt name is refused, not taken as the default
        if given is not None:
            algorithm(given)
    if algo_name and file_algo and algo_name != file_algo:
        raise cfg.ConfigError(f"algo={algo_name!r} (--algo) contradicts algo = {file_algo!r} in {config_file}")
    algo_name = algo_name or file_algo or DEFAULT_ALGO
    algorithm(algo_name)
    if env is not None:
        values["env_id"] = env
    for path, value in cfg.parse_overrides(overrides):
        if path == ["algo"]:
            raise cfg.ConfigError(
                f"override algo={value!r}: the algorithm is chosen, not overridden: --algo {value} on the command "
                f"line, load_config({value!r}, ...) or load_config(..., algo={value!r}) in Python")
        values = cfg.merge(values, path, value)
    return algo_name, values


def override_items(overrides: Any) -> list:
    """`load_config`'s `overrides` as items `config_values` applies in order: `KEY=VALUE`
    strings as given, and a dict's entries (dotted keys or nested dicts, values as they are,
    not parsed) as `(path, value)` pairs. Anything else is one `ConfigError` line."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        items: list = []

        def walk(mapping: Mapping, prefix: list[str]) -> None:
            for key, value in mapping.items():
                if not isinstance(key, str) or not key.strip():
                    raise cfg.ConfigError(f"overrides: key {key!r} must be a field name such as 'hparams.gamma'")
                path = [*prefix, *key.strip().split(".")]
                if isinstance(value, Mapping) and value:
                    walk(value, path)
                else:
                    items.append((path, value))

        walk(overrides, [])
        return items
    allowed = "a list of KEY=VALUE strings (['hparams.gamma=0.9']) or a dict ({'hparams.gamma': 0.9})"
    if isinstance(overrides, (str, bytes)):
        raise cfg.ConfigError(f"overrides={overrides!r} must be {allowed}, e.g. [{overrides!r}]")
    try:
        items = list(overrides)
    except TypeError:
        raise cfg.ConfigError(f"overrides={overrides!r} must be {allowed}") from None
    for item in items:
        if not isinstance(item, str):
            raise cfg.ConfigError(f"overrides: {item!r} is not a KEY=VALUE string; overrides must be {allowed}")
    return items


def build_config(algo_name: str, values: dict):
    """Build the algorithm's config strictly and check the environment id: `(algorithm, config)`,
    `algorithm` its registry entry. Raises ConfigError."""
    from pgjax.envs import check_env_id

    entry = algorithm(algo_name)
    config = cfg.from_dict(entry.config_class, values)
    try:
        check_env_id(config.env_id)
    except ValueError as err:
        raise cfg.ConfigError(str(err)) from None
    return entry, config


def resolve_config(algo_name: str | None, config_file: Path | None, env: str | None, overrides: Sequence[str]):
    """`config_values` then `build_config`: `(algo_name, algorithm, config)`."""
    algo_name, values = config_values(algo_name, config_file, env, overrides)
    entry, config = build_config(algo_name, values)
    return algo_name, entry, config


def load_config(
    path_or_algo: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    algo: str | None = None,
    env: str | None = None,
) -> Any:
    """The validated config of an algorithm name (its defaults) or a TOML/JSON config file,
    with `KEY=VALUE` overrides applied: what `pgjax train` would run.

    `load_config("ppo")`, `load_config("configs/ppo_cartpole.toml", ["hparams.gamma=0.9"])`;
    `overrides` may also be a dict (`{"hparams.gamma": 0.9}` or `{"hparams": {"gamma": 0.9}}`,
    values taken as they are). `algo` names the algorithm of a file without `algo = ...`,
    `env` sets `env_id`.
    The trainer is `make_trainer(config)`. Raises ConfigError.
    """
    from pgjax.algos import ALGORITHMS

    items = override_items(overrides)
    config_file = None
    if isinstance(path_or_algo, str) and path_or_algo in ALGORITHMS:
        if algo is not None and algo != path_or_algo:
            raise cfg.ConfigError(f"algo={algo!r} contradicts the algorithm {path_or_algo!r} passed first")
        algo = path_or_algo
    elif path_or_algo is not None:
        if not isinstance(path_or_algo, (str, os.PathLike)):
            raise cfg.ConfigError(f"{path_or_algo!r} is neither an algorithm name ({', '.join(sorted(ALGORITHMS))}) "
                                  "nor the path of a config file (a str or pathlib.Path)")
        config_file = Path(path_or_algo)
        if not config_file.exists() and config_file.suffix not in (".toml", ".json"):
            raise cfg.ConfigError(
                f"{str(path_or_algo)!r} is neither an algorithm ({', '.join(sorted(ALGORITHMS))}) nor a config file"
            )
    return resolve_config(algo, config_file, env, items)[2]
