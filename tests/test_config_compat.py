"""A config saved before a field existed (an older run's checkpoint) compares as that field's
default, so adding a config field does not orphan older runs; a real difference still counts."""

import jax
import pytest

from pgjax import config as cfg
from pgjax.algos import ALGORITHMS
from pgjax.records.checkpoint import CheckpointError, check_compatible, tree_signature


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_field_defaults_is_the_dict_of_a_default_config(name):
    config_class = ALGORITHMS[name].config_class
    assert cfg.field_defaults(config_class) == cfg.to_dict(config_class())


def _meta_and_expected(config, saved_config: dict):
    state = {"w": jax.numpy.zeros((2,))}
    meta = {"format": 1, "algo": "ppo", "config": saved_config, "num_seeds": 1, "tree": tree_signature(state)}
    expected = {"algo": "ppo", "config": cfg.to_dict(config), "config_defaults": cfg.field_defaults(type(config)),
                "num_seeds": 1}
    return meta, expected, state


def _older(config_dict: dict) -> dict:
    """The dict an older pgjax saved: without the fields added since (`init`, `bias_init_max`,
    and `hparams.gamma` standing in for a nested one)."""
    older = {k: v for k, v in config_dict.items() if k not in ("init", "bias_init_max")}
    older["hparams"] = {k: v for k, v in config_dict["hparams"].items() if k != "gamma"}
    return older


def test_a_checkpoint_without_a_newer_field_restores_when_this_run_keeps_its_default():
    config = ALGORITHMS["ppo"].config_class()
    meta, expected, state = _meta_and_expected(config, _older(cfg.to_dict(config)))
    check_compatible(meta, expected, state)  # no error


def test_a_run_that_sets_a_newer_field_away_from_its_default_is_refused_naming_it():
    config = ALGORITHMS["ppo"].config_class()
    saved = _older(cfg.to_dict(config))
    changed = cfg.to_dict(config)
    changed["init"], changed["hparams"]["gamma"] = "lecun", 0.5
    meta, expected, state = _meta_and_expected(config, saved)
    expected["config"] = changed
    with pytest.raises(CheckpointError) as err:
        check_compatible(meta, expected, state)
    assert "init: checkpoint 'orthogonal', this run 'lecun'" in str(err.value)
    assert "hparams.gamma: checkpoint 0.99, this run 0.5" in str(err.value)
    assert "bias_init_max" not in str(err.value)


def test_without_defaults_an_absent_field_is_a_difference():
    assert cfg.config_differences({"a": 1}, {"a": 1, "b": 2}) == ["b: checkpoint '<absent>', this run 2"]
