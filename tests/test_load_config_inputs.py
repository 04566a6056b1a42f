"""`load_config`'s overrides from a notebook (issue 34): a dict works (dotted keys or nested,
values taken as they are); `algo=...` among the overrides, and anything that is neither
KEY=VALUE strings nor a dict, is one line saying what is allowed."""

import pytest

import pgjax
from pgjax.commands.cli import main
from pgjax.config import ConfigError


@pytest.mark.parametrize("overrides", [
    {"hparams.gamma": 0.9, "num_envs": 8},
    {"hparams": {"gamma": 0.9}, "num_envs": 8},
    ["hparams.gamma=0.9", "num_envs=8"],
    ("hparams.gamma=0.9", "num_envs=8"),
])
def test_overrides_as_a_dict_or_strings_give_one_config(overrides):
    config = pgjax.load_config("ppo", overrides)
    assert config.hparams.gamma == pytest.approx(0.9) and config.num_envs == 8


def test_no_overrides():
    assert pgjax.load_config("ppo", None) == pgjax.load_config("ppo") == pgjax.load_config("ppo", {})


@pytest.mark.parametrize("overrides, message", [
    (["algo=a2c"], (r"override algo='a2c': the algorithm is chosen, not overridden: --algo a2c on the command line, "
                   r"load_config\('a2c', ...\)")),
    ({"algo": "a2c"}, r"override algo='a2c': the algorithm is chosen"),
    ("hparams.gamma=0.9", r"overrides='hparams.gamma=0.9' must be a list of KEY=VALUE strings .* or a dict"),
    (5, r"overrides=5 must be a list of KEY=VALUE strings"),
    ([3], r"overrides: 3 is not a KEY=VALUE string"),
    ([("hparams.gamma", 0.9)], r"overrides: \('hparams.gamma', 0.9\) is not a KEY=VALUE string"),
    ({"hparams.gamma": "x"}, r"hparams.gamma='x': expected a number"),
    ({"nope": 1}, r"unknown config key 'nope'"),
    ({3: 1}, r"overrides: key 3 must be a field name"),
])
def test_bad_overrides_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        pgjax.load_config("ppo", overrides)
    assert "\n" not in str(info.value)


def test_algo_as_an_override_on_the_command_line_names_the_flag(capsys):
    assert main(["train", "algo=a2c", "--list-fields"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "override algo='a2c': the algorithm is chosen, not overridden: --algo a2c" in err
