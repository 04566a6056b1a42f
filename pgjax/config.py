"""Frozen configuration dataclasses and a strict loader.

Each algorithm has two dataclasses: a static config (shapes, loop counts, switches: a
change recompiles) holding a traced `hparams` dataclass (learning rate, gamma, ...: a
pytree, so a sweep over them is a `vmap`). Fields are declared with `field(default, doc,
check)`; the loader rejects unknown keys (suggesting the closest), wrong types, non-finite
numbers and out-of-range values with a message that names the field, the value and what is
allowed. Building a config in Python runs the same per-field rule (`check_field`); the
rules that relate several fields live in the config's `validate()`, which the loader and
`make_trainer` call. Loading by algorithm name or file is `pgjax.runtime.loading.load_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or out of range."""


# --- declaring fields --------------------------------------------------------------------

Check = tuple[Callable[[Any], bool], str]


def field(default: Any, doc: str, check: Check | None = None) -> Any:
    """A dataclass field with a one-line doc and an optional `(predicate, allowed)` check."""
    meta = {"doc": doc, "check": check}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def positive() -> Check:
    return (lambda v: v > 0, "> 0")


def non_negative() -> Check:
    return (lambda v: v >= 0, ">= 0")


def unit_interval(low_open: bool = True, high_open: bool = False) -> Check:
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")

    def ok(v):
        return (v > 0 if low_open else v >= 0) and (v < 1 if high_open else v <= 1)

    return (ok, f"in {lo}0, 1{hi}")


def one_of(*options: Any) -> Check:
    return (lambda v: v in options, f"one of {', '.join(repr(o) for o in options)}")


# The largest count a compiled program holds: JAX computes in 32-bit integers (x64 is off), so
# step counters, array sizes and optimiser step counts past it wrap around or fail to trace.
INT32_MAX = 2**31 - 1


def countable() -> Check:
    """A positive count that the compiled program's int32 counters hold."""
    return (lambda v: 0 < v <= INT32_MAX, f"in [1, {INT32_MAX}] (2**31 - 1: the compiled program counts in int32)")


def check_int32(what: str, value: int, fix: str) -> None:
    """Refuse a product of fields (`what`, e.g. `"num_updates * update_epochs"`) that the
    compiled program would count past `INT32_MAX`, before anything is traced."""
    if value > INT32_MAX:
        raise ConfigError(f"{what} = {value} is past {INT32_MAX} (2**31 - 1), the most the compiled program's "
                          f"int32 counters hold; {fix}.")


# --- traced fields many algorithms share: one default rule and doc each ---------------------


def discount_field(doc: str = "discount factor") -> Any:
    return field(0.99, doc, unit_interval())


def gae_lambda_field(default: float, doc: str = "GAE lambda: 0 is one-step TD, 1 is Monte Carlo") -> Any:
    return field(default, doc, unit_interval(low_open=False))


def entropy_coef_field(default: float = 0.0, doc: str = "entropy bonus coefficient") -> Any:
    return field(default, doc, non_negative())


def value_coef_field() -> Any:
    return field(0.5, "value loss coefficient", non_negative())


def grad_clip_field(doc: str = "global gradient-norm clip") -> Any:
    return field(0.5, doc, positive())


def reward_scale_field(before: str = "GAE") -> Any:
    return field(1.0, f"rewards are multiplied by this before {before}", positive())


def hparams_dataclass(cls):
    """A frozen dataclass registered as a pytree whose every field is traced data.

    Construction (in Python, by `dataclasses.replace`, or by the loader) checks every field:
    a number, or a numeric array (a sweep's grid axis) or tracer, in the field's range where
    its values are known (see `check_fields`). JAX rebuilding the pytree from its leaves
    (which may be `None`, sentinels or abstract values inside `vmap`, `tree.map`, `eval_shape`)
    does not construct it, so it is not checked there.
    """
    cls = _checked_dataclass(cls, prefix="hparams.")
    names = tuple(f.name for f in dataclasses.fields(cls))
    keys = tuple(jax.tree_util.GetAttrKey(name) for name in names)

    def flatten_with_keys(obj):
        return tuple(zip(keys, (getattr(obj, name) for name in names))), None

    def flatten(obj):
        return tuple(getattr(obj, name) for name in names), None

    def unflatten(_aux, leaves):
        obj = object.__new__(cls)
        for name, leaf in zip(names, leaves):
            object.__setattr__(obj, name, leaf)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


def config_dataclass(cls):
    """A frozen (hashable) dataclass for static settings; construction checks every field."""
    return _checked_dataclass(cls, prefix="")


def _checked_dataclass(cls, prefix: str):
    """A frozen dataclass whose `__post_init__` runs `check_fields`: a config built in Python
    meets the same per-field rules as one loaded from a file. `prefix` is where the class sits
    in a config (hparams under `hparams.`), so messages name the key a file or override uses."""

    def __post_init__(self):
        check_fields(self, prefix)

    # Set before `dataclass` runs: its generated __init__ calls __post_init__ only if present.
    cls.__post_init__ = __post_init__
    return dataclasses.dataclass(frozen=True)(cls)


class EnvKwargs(Mapping):
    """An immutable, hashable table of environment parameters (a config's `env_kwargs`):
    names to numbers, booleans, strings or tuples of numbers, as a static config needs."""

    def __init__(self, items: Mapping[str, Any] | None = None):
        self._items = dict(sorted((items or {}).items()))

    def __getitem__(self, name: str) -> Any:
        return self._items[name]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._items == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)


def _env_kwarg(name: str, value: Any) -> Any:
    """One `env_kwargs` value as a static config holds it (lists become tuples); which names
    and types an environment takes is its adapter's check (`pgjax.envs.kwargs`)."""
    if isinstance(value, (list, tuple)):
        return tuple(_env_kwarg(f"{name}[{i}]", v) for i, v in enumerate(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}={value!r}: expected a finite number")
    if not isinstance(value, (bool, int, float, str)):
        raise ConfigError(f"{name}={value!r}: expected a number, true or false, a string or a list of numbers")
    return value


# --- loading -----------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotated type `tp`, converting only where lossless."""
    if isinstance(value, np.generic) or isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # a NumPy scalar (np.float32(0.9), np.int64(8)) as the Python number it holds
    origin = typing.get_origin(tp)
    if tp is EnvKwargs:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}={value!r}: expected a table of environment parameters, e.g. "
                              f"{name}.memory_length=10 or [{name}] in a TOML file")
        return EnvKwargs({key: _env_kwarg(f"{name}.{key}", item) for key, item in value.items()})
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if not isinstance(value, tp):
                raise ConfigError(f"{name}={type(value).__name__}(...): expected a {tp.__name__} (this config's "
                                  f"{name}) or a table of its fields")
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a table of fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{name}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r}: expected a list, e.g. [64, 64]")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(f"{name}[{i}]", v, item_tp) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}={value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # 5e5 written in a config is a whole number
            raise ConfigError(f"{name}={value!r}: expected a whole number")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}={value!r}: expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"{name}={value!r}: expected a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r}: expected a string")
        return value
    raise ConfigError(f"{name}: unsupported field type {_type_name(tp)}")


def from_dict(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """Build `cls` from a (possibly nested) mapping, strictly."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.5)
            hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown config key {prefix + key!r}.{hint} Valid keys: {', '.join(fields)}."
            )
        kwargs[key] = check_field(prefix + key, value, hints[key], fields[key])
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def check_field(name: str, value: Any, tp: Any, f: dataclasses.Field) -> Any:
    """The one per-field rule: `value` has the annotated type (converted only where lossless,
    numbers finite) and passes the field's `(predicate, allowed)` check. Returns the value."""
    value = _coerce(name, value, tp)
    check = f.metadata.get("check")
    if check is not None and value is not None:
        ok, allowed = check
        if not ok(value):
            raise ConfigError(f"{name}={value!r} is out of range: must be {allowed}.")
    return value


def check_fields(obj: Any, prefix: str = "") -> None:
    """`check_field` on every field of `obj`. A static config (`prefix` "") holds host values
    only; an hparams dataclass (`prefix` "hparams.") may also hold numeric arrays and tracers
    (`_check_traced`). A dict or list given in Python is held as the hashable value a file gives."""
    static = prefix == ""
    for f, tp in _annotated_fields(type(obj)):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray) and value.ndim == 0 or isinstance(value, np.generic):
            value = value.item()
        if not static and isinstance(value, (np.ndarray, jax.Array, jax.ShapeDtypeStruct)):
            _check_traced(prefix + f.name, value, tp, f)
        elif isinstance(value, Mapping) and not isinstance(value, EnvKwargs) or isinstance(value, list) and static:
            object.__setattr__(obj, f.name, check_field(prefix + f.name, value, tp, f))
        else:
            check_field(prefix + f.name, value, tp, f)  # None only where the field's type allows it


def _check_traced(name: str, value: Any, tp: Any, f: dataclasses.Field) -> None:
    """An hparams array (a sweep's grid axis) or tracer: a numeric dtype, and every value in
    the field's range where the values are on this host (not a tracer or abstract value)."""
    if getattr(value.dtype, "kind", None) not in tuple("iuf"):  # (a typed PRNG key's dtype is no NumPy dtype)
        raise ConfigError(f"{name}: expected a number or an array of numbers, got an array of dtype {value.dtype}")
    if isinstance(value, (jax.core.Tracer, jax.ShapeDtypeStruct)):
        return
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        return  # another process holds part of it; that process checks its own
    for item in np.asarray(value).ravel():
        check_field(name, item.item(), tp, f)


@functools.cache
def _annotated_fields(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """`(field, resolved type)` pairs, resolved once per class (configs are built often: a
    sweep builds one per cell)."""
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls))


def to_dict(obj: Any) -> dict:
    """A JSON-ready dict of a config (tuples become lists)."""
    return _json_fields(obj, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})


def field_defaults(cls: type) -> dict:
    """`to_dict` of `cls`'s field defaults, built without constructing (or validating) a `cls`:
    what a saved config that predates a field is compared as (see `records.checkpoint`)."""
    values = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
    }
    return _json_fields(cls, values)


def config_differences(saved: dict, current: dict, defaults: dict | None = None, prefix: str = "") -> list[str]:
    """`name: checkpoint A, this run B` for every field where two `config.to_dict`s differ. A
    field the saved config lacks (written before the field existed) is its default in
    `defaults` (`config.field_defaults`), so adding a field does not orphan older runs."""
    defaults = defaults or {}
    lines = []
    for name in sorted(set(saved) | set(current)):
        a, b = saved.get(name, defaults.get(name, "<absent>")), current.get(name, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            nested = defaults.get(name) if isinstance(defaults.get(name), dict) else None
            lines += config_differences(a, b, nested, f"{prefix}{name}.")
        elif a != b:
            lines.append(f"{prefix}{name}: checkpoint {a!r}, this run {b!r}")
    return lines


def _json_fields(obj_or_cls: Any, values: dict) -> dict:
    out = {}
    for f in dataclasses.fields(obj_or_cls):
        value = values[f.name]
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, EnvKwargs):
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        out[f.name] = value
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """`'hparams.gamma=0.9'` -> `(['hparams', 'gamma'], 0.9)`; values are JSON, else strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. hparams.gamma=0.99")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = tomllib.loads(f"v = {raw}")["v"] if _is_toml_literal(raw) else raw
    return key.strip().split("."), value


def parse_overrides(overrides: Any) -> list[tuple[list[str], Any]]:
    """`KEY=VALUE` strings (`parse_override`) and `(path, value)` pairs as `(path, value)`
    pairs in order, for `merge`. A key given twice, or a table and a key inside it (`env_kwargs=
    {...}` and `env_kwargs.x=1`), is refused rather than the later one silently winning."""
    items, given = [], {}
    for item in overrides:
        path, value = parse_override(item) if isinstance(item, str) else item
        text = item if isinstance(item, str) else f"{'.'.join(path)}={value!r}"
        key = tuple(path)
        for other, other_text in given.items():
            shorter, longer = sorted((key, other), key=len)
            if longer[:len(shorter)] == shorter:
                where = "is given twice" if key == other else f"and {'.'.join(longer)} inside it are both given"
                raise ConfigError(f"override {'.'.join(shorter)} {where} ({other_text} and {text}); set each "
                                  "key once")
        given[key] = text
        items.append((list(path), value))
    return items


def _is_toml_literal(raw: str) -> bool:
    try:
        tomllib.loads(f"v = {raw}")
        return True
    except tomllib.TOMLDecodeError:
        return False


def merge(base: dict, path: list[str], value: Any) -> dict:
    """Return a copy of nested dict `base` with `path` set to `value`."""
    out = dict(base)
    if len(path) == 1:
        out[path[0]] = value
    else:
        child = out.get(path[0], {})
        out[path[0]] = merge(child if isinstance(child, dict) else {}, path[1:], value)
    return out


CONFIG_SUFFIXES = {".toml": "TOML", ".json": "JSON"}  # the format is taken from the name, in any case


def read_file(path: str | Path) -> dict:
    """Read a TOML or JSON config file (by its suffix; a leading UTF-8 BOM is allowed) into a
    dict. Anything else (a folder, a pipe, another suffix, a JSON list, a key set twice) is one
    `ConfigError` line naming the file."""
    path = Path(path)
    name = repr(str(path))
    if not path.exists():
        raise ConfigError(f"config file {name} does not exist")
    if path.is_dir():
        raise ConfigError(f"config file {name} is a folder, not a file: give a .toml or .json file")
    if not path.is_file():
        raise ConfigError(f"config file {name} is not a regular file (a device, pipe or socket): give a .toml or "
                          ".json file")
    kind = CONFIG_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"config file {name}: the name must end in .toml or .json (its format is taken from "
                          "the suffix)")
    try:
        text = path.read_text(encoding="utf-8-sig")
        values = json.loads(text, object_pairs_hook=_unique_keys(name)) if kind == "JSON" else tomllib.loads(text)
    except OSError as err:
        raise ConfigError(f"config file {name} cannot be read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {name} is not text (UTF-8): give a .toml or .json file") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {name} is not valid {kind}: {err}") from None
    if not isinstance(values, dict):
        kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
        raise ConfigError(f"config file {name} holds a JSON {kinds.get(type(values), 'null')} "
                          f"({text.strip()[:40]!r}), not an object of settings such as {{\"num_envs\": 8}}")
    return values


def _unique_keys(name: str):
    """A `json.loads` `object_pairs_hook` refusing a key set twice in one object (TOML refuses
    it itself), rather than letting the last one silently win."""

    def hook(pairs: list) -> dict:
        seen: dict = {}
        for key, value in pairs:
            if key in seen:
                raise ConfigError(f"config file {name} sets {key!r} twice in one object; keep one")
            seen[key] = value
        return seen

    return hook


def describe(cls: type, prefix: str = "") -> list[str]:
    """One line per field: name, default, doc and the allowed range."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default):
            lines += describe(type(default), prefix=f"{prefix}{f.name}.")
            continue
        check = f.metadata.get("check")
        allowed = f" ({check[1]})" if check else ""
        lines.append(f"{prefix}{f.name} = {default!r}: {f.metadata.get('doc', '')}{allowed}")
    return lines


# --- the environment and the network, checked for every algorithm ------------------------

ENV_ID_DOC = "environment id: a gymnax id (CartPole-v1), brax/NAME[/BACKEND], xminigrid/NAME, or one given to pgjax.register_env"
ENV_KWARGS_DOC = ("environment parameters, a table ([env_kwargs] in TOML, env_kwargs.NAME=VALUE on the command "
                  "line): the environment's constructor arguments or fields of its params (gymnax's memory_length, "
                  "brax's ctrl_cost_weight, xminigrid's view_size), checked by name and type against the environment")


def env_kwargs_field() -> Any:
    """The `env_kwargs` table (empty: the environment's defaults)."""
    return dataclasses.field(default=EnvKwargs(), metadata={"doc": ENV_KWARGS_DOC, "check": None})


TIME_LIMITS = ("truncate", "terminate")  # pgjax.envs.time_limit.TIME_LIMITS (config imports no jax)
TIME_LIMIT_DOC = ("how an episode cut by the time limit reaches the learner: 'truncate' (bootstrap from V(final "
                  "observation); Pardo et al., 2018) or 'terminate' (bootstrap with zero, as gymnax 0.0.x's single "
                  "`done` and the code built on it: gymnax-blines, purejaxrl)")


def time_limit_field() -> Any:
    """The `time_limit` setting (default "truncate")."""
    return field("truncate", TIME_LIMIT_DOC, one_of(*TIME_LIMITS))


def make_env(config: Any, num_envs: int, max_episode_steps: int | None = None, time_limit: str | None = None) -> Any:
    """`num_envs` copies of the config's environment, `env_id` with its `env_kwargs`
    (`pgjax.envs.make_vec_env`), its time limit reported as `time_limit` says (default: the
    config's `time_limit`, which is how the learner sees it)."""
    from pgjax.envs import make_vec_env
    from pgjax.envs.time_limit import apply_time_limit

    env = make_vec_env(config.env_id, num_envs, max_episode_steps, **getattr(config, "env_kwargs", {}))
    return apply_time_limit(env, time_limit or getattr(config, "time_limit", "truncate"))


TORSO_DOC = ("network torso: 'mlp' (flattened observations), 'cnn' (conv layers, then the MLP), 'auto' (cnn for "
             "[H, W, C] observations, else mlp), or a name given to pgjax.networks.torsos.register_torso")
CNN_DOCS = {
    "cnn_channels": "output channels of each conv layer (torso 'cnn')",
    "cnn_kernel_sizes": "square kernel size of each conv layer, VALID padding (torso 'cnn')",
    "cnn_strides": "stride of each conv layer (torso 'cnn')",
}
ACTIVATIONS = ("tanh", "relu", "gelu", "elu", "silu")  # pgjax.networks.torsos.ACTIVATIONS
INITS = ("orthogonal", "lecun")  # pgjax.networks.initializers.INITS (config imports no flax)
GATE_INITS = ("chrono", "zeros")  # pgjax.networks.mingru.GATE_INITS


def _registered(kind: str, allowed: str) -> Check:
    """A check that the value names a torso or core registered in `pgjax.networks` (asked
    at check time, so one registered after this module loads counts) or is `"auto"`."""

    def ok(value: str) -> bool:
        from pgjax.networks.cores import CORES
        from pgjax.networks.torsos import TORSOS

        return value == "auto" and kind == "torso" or value in (TORSOS if kind == "torso" else CORES)

    return (ok, allowed)


def network_config(default_hidden_sizes: tuple[int, ...], default_activation: str) -> type:
    """The network settings every algorithm shares, declared once, as a base class whose
    fields sit in the algorithm config next to its other keys (flat: `hidden_sizes = [64]`,
    `torso = "cnn"`); `hidden_sizes` and `activation` default to the family's values (the
    on-policy line's small tanh networks, the off-policy line's 256-unit ReLU ones)."""

    @config_dataclass
    class NetworkConfig:
        """Network settings (torso, MLP): see `pgjax.networks`."""

        hidden_sizes: tuple[int, ...] = field(default_hidden_sizes, "hidden layer sizes of every network (actor, critics)")
        activation: str = field(default_activation, "hidden activation", one_of(*ACTIVATIONS))
        torso: str = field("auto", TORSO_DOC, _registered("torso", "'auto' or a registered torso ('mlp', 'cnn', or one given to register_torso)"))
        cnn_channels: tuple[int, ...] = field((16,), CNN_DOCS["cnn_channels"])
        cnn_kernel_sizes: tuple[int, ...] = field((3,), CNN_DOCS["cnn_kernel_sizes"])
        cnn_strides: tuple[int, ...] = field((1,), CNN_DOCS["cnn_strides"])
        init: str = field(
            "orthogonal", "kernel initialisation: 'orthogonal' (gain sqrt(2) in the torso, 0.01 on the policy "
            "output, 1 on the value output; Andrychowicz et al., 2021) or 'lecun' (LeCun-normal everywhere, flax's "
            "Dense default, as gymnax-blines' networks)", one_of(*INITS),
        )
        bias_init_max: float = field(
            0.0, "biases start uniform in [0, bias_init_max) (gymnax-blines: 0.05); 0 starts them at zero", non_negative()
        )

        def validate_network(self) -> None:
            """The network rules between fields (those needing the environment: `check_environment`)."""
            if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
                raise ConfigError(f"hidden_sizes={list(self.hidden_sizes)} must be a non-empty list of positive ints")

    return NetworkConfig


def check_environment(config: Any) -> None:
    """Raise a ConfigError unless `config.env_id` exists, pgjax supports its observation and
    action spaces (without downloading anything) and the config's torso fits its observations."""
    from pgjax.envs import check_env_id, check_spaces
    from pgjax.networks.torsos import check_torso

    try:
        check_env_id(config.env_id)
        obs_shape = check_spaces(config.env_id, **getattr(config, "env_kwargs", {}))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    problem = check_torso(config, obs_shape)
    if problem is not None:
        raise ConfigError(f"{problem} (env_id={config.env_id!r} has observations of shape {obs_shape}).")


# --- settings every on-policy algorithm shares ---------------------------------------------


@config_dataclass
class OnPolicyConfig(network_config((64, 64), "tanh")):
    """Static settings shared by on-policy algorithms (subclasses add theirs and `hparams`);
    the network's come from `network_config`, its core (`core`, `core_size`) is on-policy only."""

    env_id: str = field("CartPole-v1", ENV_ID_DOC)
    env_kwargs: EnvKwargs = env_kwargs_field()
    time_limit: str = time_limit_field()
    num_envs: int = field(4, "environments stepped in parallel", positive())
    num_steps: int = field(128, "steps per environment per rollout", positive())
    total_timesteps: int = field(500_000, "environment steps over the whole run", countable())
    normalize_obs: bool = field(False, "running observation normalisation (stats saved in the state)")
    scale_rewards: bool = field(
        False, "divide rewards by a running std of the discounted return, as SB3's VecNormalize (stats saved in the state)"
    )
    init_log_std: float = field(0.0, "initial log-std of the Gaussian policy (continuous actions)")
    core: str = field(
        "none", "network core after the MLP torso of actor and critic (each its own): 'none', 'gru', 'mingru', "
        "or a name given to pgjax.networks.cores.register_core",
        _registered("core", "a registered core ('none', 'gru', 'mingru', or one given to register_core)"),
    )
    core_size: int = field(64, "hidden units of the core (its carry's width; unused with core = 'none')", positive())
    core_gate_init: str = field(
        "chrono", "minGRU's update-gate bias at init: 'chrono' (retention from 0.5 to 1 - 1/T across units, T = "
        "core_timescale; Tallec & Ollivier, 2018) or 'zeros' (retention ~0.5 everywhere); other cores ignore it",
        one_of(*GATE_INITS),
    )
    core_timescale: int = field(
        0, "T of core_gate_init = 'chrono' (the longest memory the gate starts able to keep, in steps); 0 uses "
        "num_steps, the longest span an update backpropagates through", (lambda v: v == 0 or v >= 2, "0 (num_steps) or >= 2"),
    )

    # Algorithms whose update cannot replay whole sequences set this to False.
    supports_recurrent_core = True

    @property
    def has_sequential_core(self) -> bool:
        """Whether the core unrolls over whole environment sequences (has memory: `gru`)."""
        from pgjax.networks.cores import make_core

        return make_core(self).sequential

    @property
    def batch_size(self) -> int:
        """Environment steps per rollout (per update)."""
        return self.num_envs * self.num_steps

    @property
    def env_steps_per_update(self) -> int:
        """Environment steps of one update of `run` (the CLI's progress and step counts)."""
        return self.batch_size

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    def validate(self) -> None:
        if self.total_timesteps < self.batch_size:
            raise ConfigError(
                f"total_timesteps={self.total_timesteps} is smaller than one rollout "
                f"(num_envs * num_steps = {self.batch_size})."
            )
        self.validate_network()
        if self.has_sequential_core and not self.supports_recurrent_core:
            raise ConfigError(
                f"core={self.core!r} is not supported by {type(self).__name__}; use core = 'none', or a "
                "recurrent-capable algorithm (ppo, ppo_kl, spo, vmpo, a2c, vpg, reinforce)."
            )
        check_environment(self)
