"""`KEY=VALUE` overrides anywhere on the command line (issue 34): before, between and after
flags, in the order typed, for every command that takes them; an unknown argument is
reported by the subcommand, pointing to its own `--help`."""

import pytest

from pgjax.commands import cli


@pytest.mark.parametrize("argv, overrides", [
    (["train", "hparams.gamma=0.9", "--env", "CartPole-v1", "num_envs=8"], ["hparams.gamma=0.9", "num_envs=8"]),
    (["train", "--env", "CartPole-v1", "num_envs=8", "--seeds", "2", "num_steps=16"], ["num_envs=8", "num_steps=16"]),
    (["train", "a=1", "b=2", "--env", "CartPole-v1"], ["a=1", "b=2"]),
    (["sweep", "a=1", "--grid", "hparams.learning_rate=1e-3,1e-2", "b=2", "--seeds", "2", "c=3"], ["a=1", "b=2", "c=3"]),
])
def test_overrides_on_both_sides_of_flags_are_all_kept_in_order(argv, overrides):
    args = cli.parse(cli.build_parser(), argv)
    assert args.overrides == overrides


def test_overrides_after_flags_reach_the_config(capsys):
    code = cli.main(["train", "hparams.gamma=0.9", "--env", "Acrobot-v1", "num_envs=8", "--list-fields"])
    out = capsys.readouterr().out
    assert code == 0
    assert "hparams.gamma = 0.9" in out and "num_envs = 8" in out and "env_id = 'Acrobot-v1'" in out


@pytest.mark.parametrize("argv, command, bad", [
    (["train", "--env", "CartPole-v1", "--bogus"], "train", "--bogus"),
    (["sweep", "--grid", "hparams.learning_rate=1,2", "-x", "a=1"], "sweep", "-x"),
    (["plot", "runs/x", "--nope"], "plot", "--nope"),
    (["eval", "runs/x", "extra", "--episodes", "3"], "eval", "extra"),
    (["eval", "runs/x", "a=1"], "eval", "a=1"),  # eval takes no overrides: named, not swallowed
])
def test_unknown_arguments_point_to_the_subcommands_help(argv, command, bad, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.parse(cli.build_parser(), argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "\n" not in err
    assert err == f"pgjax {command}: error: unrecognized arguments: {bad} (see pgjax {command} --help)", err
