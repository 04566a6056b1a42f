"""The command line, run as a user would: in a subprocess."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pgjax(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pgjax", *args], check=False, capture_output=True, text=True, cwd=cwd or ROOT, timeout=900
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


def test_list_fields_follows_the_config_files_algorithm():
    result = pgjax("train", "--config", "configs/sac_pendulum.toml", "--list-fields", "batch_size=32")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# sac:")
    assert "hparams.alpha_learning_rate = " in result.stdout and "num_minibatches" not in result.stdout
    assert "batch_size = 32" in result.stdout.split("# set by")[1]  # the file's values and overrides


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
    # parts of the wall time, so that training alone can be told apart (scripts/device_rows.py)
    assert 0 < summary["compile_seconds"] < summary["wall_seconds"]
    assert summary["compile_seconds"] + summary["eval_seconds_during_training"] < summary["wall_seconds"]
    assert (run_dir / "learning_curve.png").stat().st_size > 10_000
    # The printed summary: each seed named, 4 significant digits, never a float's 15.
    assert re.search(r"final training return per seed: seed 0: [-\d.e+]+, seed 3: ", result.stdout), result.stdout
    assert not re.search(r"\d\.\d{6,}", result.stdout), result.stdout


TINY = ["total_timesteps=3072", "num_steps=64", "hidden_sizes=[16]", "update_epochs=1"]


def test_killed_train_resumes_bit_for_bit(tmp_path):
    """A run stopped after its first chunk and resumed writes the same metrics, byte for byte,
    as an uninterrupted run (the metrics hold every update's losses, so any drift shows)."""
    common = ["train", "--config", "configs/ppo_cartpole.toml", "--seeds", "2", "--chunks", "3",
              "--eval-episodes", "0", "--no-progress", *TINY]
    whole = pgjax(*common, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    stopped = pgjax(*common, "--out", str(tmp_path / "resumed"), "--stop-after", "1")
    assert stopped.returncode == 0 and "--resume" in stopped.stdout, stopped.stderr
    (run_dir,) = (tmp_path / "resumed").iterdir()
    assert [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()] == ["4"]
    changed = pgjax("train", "--resume", str(run_dir), "--no-progress", "hidden_sizes=[32]")
    assert changed.returncode == 1
    assert "hidden_sizes: checkpoint [16], this run [32]" in changed.stderr
    resumed = pgjax("train", "--resume", str(run_dir), "--no-progress", "--eval-episodes", "0")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "after 4 of 12 updates" in resumed.stdout
    (whole_dir,) = (tmp_path / "whole").iterdir()
    assert (run_dir / "metrics.csv").read_bytes() == (whole_dir / "metrics.csv").read_bytes()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_train_return"] == json.loads((whole_dir / "summary.json").read_text())["final_train_return"]
    assert summary["diverged_at_update"] == {"0": None, "1": None}


def test_resume_of_a_folder_that_is_not_a_run_fails(tmp_path):
    result = pgjax("train", "--resume", str(tmp_path))
    assert result.returncode == 1 and "no config.json there" in result.stderr


def test_sweep_cli_writes_cells_and_table_then_resume_skips_them(tmp_path):
    smaller = [a for a in TINY if not a.startswith("total_timesteps=")]  # a key set twice is refused
    result = pgjax("sweep", "--config", "configs/ppo_cartpole.toml", *smaller, "total_timesteps=512",
                   "--grid", "hparams.learning_rate=1e-3,1e-2", "--seeds", "2", "--width", "2",
                   "--out", str(tmp_path), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "note: --chunks 10 is more than the 2 updates of a group; such groups run chunks of one update" in result.stderr
    (sweep_dir,) = tmp_path.iterdir()
    rows = list(csv.DictReader((sweep_dir / "results.csv").open()))
    assert [(r["hparams.learning_rate"], r["seed"]) for r in rows] == [("0.001", "0"), ("0.001", "1"), ("0.01", "0"), ("0.01", "1")]
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    assert spec["grid"] == {"hparams.learning_rate": [1e-3, 1e-2]} and spec["width"] == 2
    again = pgjax("sweep", "--resume", str(sweep_dir), "--no-progress")
    assert again.returncode == 0 and "0 cells run, 4 already done" in again.stdout, again.stderr


def test_sweep_bad_grid_value_exits_1_before_anything_runs(tmp_path):
    result = pgjax("sweep", "--grid", "hparams.gamma=0.9,1.5", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "hparams.gamma=1.5 is out of range: must be in (0, 1]" in result.stderr
    assert not any(tmp_path.iterdir())


SHIPPED_CONFIGS = sorted((ROOT / "configs").glob("*.toml")) + sorted((ROOT / "configs").glob("*.json"))


def test_every_shipped_config_loads_and_validates():
    """Walks configs/, so configs added later are covered: strict load and every field and
    cross-field rule (`validate`, environment id and spaces included). The Brax configs are
    loaded by the slow test below: making a Brax environment to check its spaces parses its
    MJCF model, about 23 CPU-seconds each here."""
    from pgjax.commands import load_config

    assert SHIPPED_CONFIGS, "no configs shipped"
    for path in SHIPPED_CONFIGS:
        if path.stem.endswith("_brax"):
            continue
        assert "algo" in path.read_text(), f"{path.name} does not name its algo"
        _, _, config = load_config(None, path, None, [])
        config.validate()


@pytest.mark.slow  # the Brax configs' environments and networks: about 2 CPU-minutes
def test_every_shipped_config_loads_and_builds():
    from pgjax.commands import load_config

    for path in SHIPPED_CONFIGS:
        _, module, config = load_config(None, path, None, [])
        module.make_trainer(config)
