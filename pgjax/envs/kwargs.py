"""Environment parameters from a config (`env_kwargs`): the names an environment takes and
the value each needs, checked before anything is made.

Each adapter says what its environments take: a constructor's keyword parameters
(`parameter_defaults`: brax's reward weights, gymnax's `num_bits`) and the fields of a
parameter dataclass (`params_fields`: gymnax's `EnvParams`, xminigrid's `EnvParams`).
`check_env_kwargs` refuses a name the environment does not take (listing those it does)
and a value whose type differs from the default's, one line each.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

ANY = inspect.Parameter.empty  # a parameter without a default: any value is passed on


def parameter_defaults(function: Callable, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The keyword parameters of `function` (a class: its constructor) and their defaults
    (`ANY` where none), except `skip` and `*args` / `**kwargs`."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in inspect.signature(function).parameters.values()
            if p.kind in kinds and p.name not in skip}


def takes_any_keyword(function: Callable) -> bool:
    """Whether `function` has a `**kwargs` parameter (it passes unknown names on)."""
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


def params_fields(params: Any) -> dict[str, Any]:
    """The fields of a parameter dataclass instance and their values."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


def check_env_kwargs(env_id: str, given: Mapping[str, Any], allowed: Mapping[str, Any]) -> dict[str, Any]:
    """`given` checked against the names `env_id` takes and their defaults: an unknown name or
    a value of another type than the default's is a one-line ValueError. Returns the values
    converted as the defaults are (an int for a float default becomes a float; a list for a
    tuple or array default, of the same shape, becomes one)."""
    checked = {}
    for name, value in given.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
            hint = f" Did you mean env_kwargs.{close[0]}?" if close else ""
            raise ValueError(f"env_kwargs.{name} is not a parameter of env_id={env_id!r}.{hint} Allowed: "
                             f"{', '.join(sorted(allowed)) or 'none'}.")
        checked[name] = _like_default(env_id, name, value, allowed[name])
    return checked


def _like_default(env_id: str, name: str, value: Any, default: Any) -> Any:
    def refuse(expected: str) -> ValueError:
        return ValueError(f"env_kwargs.{name}={value!r} for env_id={env_id!r}: expected {expected} "
                          f"(the default is {default!r}).")

    if default is ANY or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (int, np.integer)):
        if not number or not float(value).is_integer():
            raise refuse("a whole number")
        return int(value)
    if isinstance(default, (float, np.floating)):
        if not number or not math.isfinite(value):
            raise refuse("a finite number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise refuse("a string")
        return value
    shape = np.shape(default)
    if isinstance(default, (tuple, list)) or hasattr(default, "dtype"):
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise refuse(f"numbers of shape {list(shape)}") from None
        if array.shape != shape or not np.isfinite(array).all():
            raise refuse(f"finite numbers of shape {list(shape)}")
        if isinstance(default, (tuple, list)):
            return type(default)(value)
        return np.asarray(value, dtype=np.asarray(default).dtype)
    return value
