"""The algorithm registry (`pgjax.algos.ALGORITHMS`): every entry's fields agree with its
module, its config class and the trainer it makes, and every algorithm module is registered."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import typing
from pathlib import Path

import jax
import numpy as np
import pytest
from contract import TINY

from pgjax.algos import ALGORITHMS, Algorithm
from pgjax.algos._off_policy import OffPolicyConfig
from pgjax.config import OnPolicyConfig
from pgjax.runtime.eval_modes import sampling_refused
from pgjax.runtime.loading import algorithm, algorithm_of

NAMES = sorted(ALGORITHMS)
FAMILY_BASE = {"on_policy": OnPolicyConfig, "off_policy": OffPolicyConfig}


@pytest.mark.parametrize("name", NAMES)
def test_entry_fields_agree_with_the_module_and_config(name):
    entry = ALGORITHMS[name]
    assert isinstance(entry, Algorithm) and entry.name == name and algorithm(name) is entry
    assert dataclasses.is_dataclass(entry.config_class)
    # make_trainer is annotated with the class it accepts; make_train is the same module's
    module = sys.modules[entry.make_trainer.__module__]
    assert typing.get_type_hints(entry.make_trainer)["config"] is entry.config_class
    assert module.make_train is entry.make_train and entry.config_class.__module__ == module.__name__
    # a config field `algo`, if a config ever has one, must name this entry
    algo_field = {f.name: f for f in dataclasses.fields(entry.config_class)}.get("algo")
    assert algo_field is None or algo_field.default == name
    # the family is the config's base class, and the two bases exclude each other
    assert issubclass(entry.config_class, FAMILY_BASE[entry.family])
    assert not any(issubclass(entry.config_class, base) for fam, base in FAMILY_BASE.items() if fam != entry.family)
    assert entry.summary and "\n" not in entry.summary
    assert algorithm_of(TINY[name]) is entry


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_policy_is_what_the_trainer_acts(name):
    """Sampled actions under two keys are equal exactly when the entry says the policy is
    deterministic (64 random observations: a stochastic policy cannot repeat them all), and
    only then is sampled evaluation refused."""
    entry = ALGORITHMS[name]
    config = TINY[name]
    trainer = entry.make_trainer(config)
    assert trainer.config is config
    state = trainer.init(jax.random.PRNGKey(0), config.hparams)  # eager: cheaper than compiling, once
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, *trainer.env.obs_shape))

    def actions(seed, deterministic):
        return np.asarray(trainer.act(state.params, state.obs_stats, jax.random.PRNGKey(seed), obs, deterministic))

    np.testing.assert_array_equal(actions(2, True), actions(3, True))
    assert np.array_equal(actions(2, False), actions(3, False)) == entry.deterministic_policy
    refused = sampling_refused("--stochastic", entry)
    assert (refused is not None) == entry.deterministic_policy
    assert refused is None or refused.startswith(f"--stochastic: {name}'s policy is deterministic")


def test_every_algorithm_module_is_registered_once():
    package = Path(importlib.import_module("pgjax.algos").__file__).parent
    makers = []
    for path in sorted(package.glob("[a-z]*.py")):
        module = importlib.import_module(f"pgjax.algos.{path.stem}")
        if "make_trainer" in vars(module) and vars(module)["make_trainer"].__module__ == module.__name__:
            makers.append(module.make_trainer)
    registered = [entry.make_trainer for entry in ALGORITHMS.values()]
    assert len(set(registered)) == len(registered) == len(ALGORITHMS)
    assert set(makers) == set(registered)
    assert len({entry.config_class for entry in ALGORITHMS.values()}) == len(ALGORITHMS)


def test_an_entry_is_frozen_and_checks_its_family():
    entry = ALGORITHMS["ppo"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="family='replay' must be one of"):
        dataclasses.replace(entry, family="replay")
