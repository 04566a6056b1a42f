"""The command line, run as a user would: in a subprocess."""

import csv
import json
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def pgjax(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pgjax", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=600
    )


def test_help_lists_train():
    top = pgjax("--help")
    assert top.returncode == 0 and "train" in top.stdout
    train = pgjax("train", "--help")
    assert train.returncode == 0 and "--config" in train.stdout and "KEY=VALUE" in train.stdout


def test_bad_flag_exits_2():
    result = pgjax("train", "--no-such-flag")
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_bad_config_exits_1_with_the_field_named(tmp_path):
    result = pgjax("train", "hparams.gamma=1.5", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "hparams.gamma=1.5 is out of range: must be in (0, 1]" in result.stderr
    result = pgjax("train", "num_minibatchs=2", "--out", str(tmp_path))
    assert result.returncode == 1 and "Did you mean 'num_minibatches'" in result.stderr
    result = pgjax("train", "--env", "CartPol-v1", "--out", str(tmp_path))
    assert result.returncode == 1 and "'CartPole-v1'" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


def test_list_fields_documents_every_field():
    result = pgjax("train", "--list-fields")
    assert result.returncode == 0
    assert "hparams.gamma = 0.99: discount factor (in (0, 1])" in result.stdout
    assert "num_minibatches = 4:" in result.stdout


def test_tiny_train_writes_metrics_summary_and_plot(tmp_path):
    result = pgjax(
        "train", "--config", "configs/ppo_cartpole.toml", "--seeds", "0,3", "--out", str(tmp_path),
        "--chunks", "3", "--eval-episodes", "4", "--no-progress",
        "total_timesteps=3072", "num_steps=64", "hidden_sizes=[16]",
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["total_timesteps"] == 3072 and config["seeds"] == [0, 3]
    assert config["config"]["hidden_sizes"] == [16] and "jax" in config["versions"]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) == 2 * 12  # 2 seeds x 3072 / (4 * 64) updates
    assert {r["seed"] for r in rows} == {"0", "3"}
    assert [int(r["update"]) for r in rows if r["seed"] == "3"] == list(range(1, 13))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["eval_return_mean"]) == {"0", "3"}
    assert (run_dir / "learning_curve.png").stat().st_size > 10_000
