"""Experiment tracking (`pgjax.records.tracking`) and evaluation during training, read back from
the files the sinks write: TensorBoard event files and W&B offline runs (no network),
through the independent readers in `tracker_files.py`."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tracker_files import tensorboard_run, wandb_runs

from pgjax.records import runs, tracking
from pgjax.runtime.experiment import chunk_sizes, evaluation_updates

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
TINY = ["--config", "configs/ppo_cartpole.toml", "--seeds", "0,1", "--no-progress", "--eval-episodes", "3",
        "total_timesteps=6144", "num_steps=64", "hidden_sizes=[16]", "update_epochs=1", "num_minibatches=2"]


@pytest.fixture
def trackers():
    """The [track] extra, which scripts/setup.sh (hence CI) installs."""
    pytest.importorskip("tensorboardX", reason="the [track] extra: pip install 'pgjax[track]'")
    pytest.importorskip("wandb", reason="the [track] extra: pip install 'pgjax[track]'")


@pytest.fixture
def offline(monkeypatch, trackers):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)


def test_parse_sinks_keeps_csv_and_names_the_choices():
    assert tracking.parse_sinks("wandb,tensorboard") == ["csv", "tensorboard", "wandb"]
    assert tracking.parse_sinks("csv") == ["csv"]
    assert tracking.parse_sinks(["TensorBoard"]) == ["csv", "tensorboard"]
    with pytest.raises(tracking.TrackingError, match=r"unknown sink 'mlflow'; choose from csv, tensorboard, wandb"):
        tracking.parse_sinks("csv,mlflow")


@pytest.mark.parametrize("sink, module", [("tensorboard", "tensorboardX"), ("wandb", "wandb")])
def test_a_missing_tracker_package_names_the_extra(monkeypatch, sink, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(tracking.TrackingError) as err:
        tracking.open_tracker(["csv", sink], "unused", "g")
    assert f"--log {sink} needs the package {module}" in str(err.value)
    assert "pip install 'pgjax[track]'" in str(err.value)


def test_flat_hparams_and_wandb_ids():
    flat = tracking.flat_hparams({"hparams": {"gamma": 0.99}, "hidden_sizes": [64, 64], "anneal": None, "env": "x"})
    assert flat == {"hparams.gamma": 0.99, "hidden_sizes": "[64, 64]", "anneal": "None", "env": "x"}
    a, b = tracking.wandb_run_id("runs/r1", "seed-0"), tracking.wandb_run_id("runs/r1", "seed-1")
    assert a == tracking.wandb_run_id("runs/r1", "seed-0") and a != b != tracking.wandb_run_id("runs/r2", "seed-1")


def test_tracker_writes_one_series_per_seed_read_back(tmp_path, offline):
    """Chunk metrics [S, U] and evaluations [S] reach both sinks under each seed's name, at
    its env steps; nan (no finished episode) is left out; hyper-parameters are recorded."""
    series = [tracking.Series(f"seed-{s}", {"seed": s, "config.hparams.learning_rate": 3e-4, "algo": "ppo"})
              for s in (0, 5)]
    tracker = tracking.open_tracker(["csv", "tensorboard", "wandb"], tmp_path, "grp", series)
    returns = np.array([[1.5, np.nan, 3.0], [4.0, 5.0, 6.25]])
    tracker.log_chunk(["seed-0", "seed-5"], {"env_steps": np.array([[10, 20, 30]] * 2), "episode_return": returns,
                                             "loss": np.array([[0.5, 0.25, 0.125], [1.0, 2.0, 3.0]])})
    tracker.log_eval(["seed-0", "seed-5"], [30, 30], {"return": np.array([7.0, 8.0])})
    tracker.close()
    import wandb

    wandb.teardown()  # W&B's service writes run files asynchronously: wait for it, as a process exit does

    for i, name in enumerate(["seed-0", "seed-5"]):
        expected = {step: v for step, v in zip((10, 20, 30), returns[i]) if np.isfinite(v)}
        scalars, hparams = tensorboard_run(tmp_path / "tensorboard" / name)
        assert scalars["train/episode_return"] == expected
        assert scalars["eval/return"] == {30: [7.0, 8.0][i]}
        assert hparams == {"seed": [0, 5][i], "config.hparams.learning_rate": pytest.approx(3e-4), "algo": "ppo"}
    wandb = wandb_runs(tmp_path)
    assert sorted(wandb) == ["grp/seed-0", "grp/seed-5"]
    for i, name in enumerate(["seed-0", "seed-5"]):
        run = wandb[f"grp/{name}"]
        assert run["group"] == "grp" and run["config"]["seed"] == [0, 5][i]
        assert run["history"]["train/episode_return"] == {s: v for s, v in zip((10, 20, 30), returns[i])
                                                           if np.isfinite(v)}
        assert run["history"]["train/loss"][20] == [0.25, 2.0][i]
        assert run["history"]["eval/return"] == {30: [7.0, 8.0][i]}


def test_evaluation_updates_follow_the_chunk_plan():
    ends = list(np.cumsum(chunk_sizes(24, 6)))
    assert evaluation_updates(24, 6, 1) == set(ends) == {4, 8, 12, 16, 20, 24}
    assert evaluation_updates(24, 6, 4) == {16, 24}  # every 4th chunk, and always the last update
    assert evaluation_updates(24, 6, 0) == set()
    assert evaluation_updates(10, 3, 1) == set(np.cumsum(chunk_sizes(10, 3)).tolist()) | {10}


def test_bad_log_flag_is_a_usage_error(capsys):
    from pgjax.commands import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--log", "csv,mlflow"])
    assert exit_.value.code == 2
    assert "unknown sink 'mlflow'" in capsys.readouterr().err


def eval_rows(run_dir: Path) -> dict[tuple[int, int], dict]:
    with (run_dir / runs.EVAL_FILE).open(newline="") as f:
        return {(int(r["seed"]), int(r["update"])): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}


def test_train_tracks_every_seed_and_evaluates_during_training(tmp_path, trackers):
    """`pgjax train --log csv,tensorboard,wandb`: each seed's TensorBoard and W&B series
    hold exactly its metrics.csv rows and its eval.csv evaluations; the evaluation after
    a chunk equals an independent evaluation of that chunk's checkpoint."""
    from pgjax.commands.eval import load_run
    from pgjax.runtime.evaluation import evaluate_states

    result = subprocess.run([sys.executable, "-m", "pgjax", "train", *TINY, "--chunks", "3", "--out", tmp_path,
                             "--log", "csv,tensorboard,wandb"], capture_output=True, text=True, cwd=ROOT,
                            env=OFFLINE, timeout=900, check=False)
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    record = runs.read_json(run_dir / "config.json")
    assert (record["log"], record["eval_every"], record["eval_mode"]) == (["csv", "tensorboard", "wandb"], 1, "greedy")
    metrics = runs.read_metrics(run_dir / "metrics.csv")
    evals = eval_rows(run_dir)
    assert sorted(evals) == [(s, u) for s in (0, 1) for u in (8, 16, 24)]  # after each of the 3 chunks
    assert (run_dir / "eval_curve.png").stat().st_size > 0
    wandb = wandb_runs(run_dir)
    for seed in (0, 1):
        steps = metrics[seed]["env_steps"].astype(int)
        scalars, hparams = tensorboard_run(run_dir / "tensorboard" / f"seed-{seed}")
        assert hparams["seed"] == seed and hparams["config.hparams.learning_rate"] == pytest.approx(2.5e-4)
        history = wandb[f"{run_dir.name}/seed-{seed}"]["history"]
        for name in ("episode_return", "loss", "approx_kl"):
            finite = np.isfinite(metrics[seed][name])
            expected = dict(zip(steps[finite].tolist(), metrics[seed][name][finite]))
            for logged in (scalars[f"train/{name}"], history[f"train/{name}"]):
                assert sorted(logged) == sorted(expected)
                np.testing.assert_allclose([logged[s] for s in sorted(expected)],
                                           [expected[s] for s in sorted(expected)], rtol=2e-6)
        at = {int(evals[seed, u]["env_steps"]): evals[seed, u]["eval_return"] for u in (8, 16, 24)}
        assert scalars["eval/return"] == pytest.approx(at) and history["eval/return"] == pytest.approx(at)

    # The evaluation after a chunk is the policy of that chunk's checkpoint on the shared
    # evaluation episodes (checked for the two checkpoints a run keeps).
    for update in (16, 24):
        loaded = load_run(run_dir, update)
        episodes = evaluate_states(loaded.trainer, loaded.state, 3, 10_000, deterministic=True)
        np.testing.assert_allclose([evals[s, update]["eval_return"] for s in (0, 1)], episodes.returns.mean(axis=1),
                                   atol=1e-4)
        np.testing.assert_allclose([evals[s, update]["eval_length"] for s in (0, 1)], episodes.lengths.mean(axis=1),
                                   rtol=1e-6)  # metrics files keep 7 significant digits
    summary = runs.read_json(run_dir / "summary.json")
    assert [summary["eval_return_mean"][str(s)] for s in (0, 1)] == pytest.approx([evals[s, 24]["eval_return"]
                                                                                    for s in (0, 1)])


@pytest.mark.slow
def test_sweep_tracks_every_cell_with_its_grid_values(tmp_path, trackers):
    """`pgjax sweep --log tensorboard,wandb`: one series per cell, its grid values and
    config as hyper-parameters, its metrics equal to its cell file's."""
    result = subprocess.run([sys.executable, "-m", "pgjax", "sweep", "--config", "configs/ppo_cartpole.toml",
                             "--seeds", "2", "--grid", "hparams.learning_rate=1e-3,3e-4", "--no-progress",
                             "--chunks", "2", "total_timesteps=4096", "num_steps=64", "hidden_sizes=[16]",
                             "update_epochs=1", "num_minibatches=2", "--out", tmp_path, "--log", "tensorboard,wandb"],
                            capture_output=True, text=True, cwd=ROOT, env=OFFLINE, timeout=900, check=False)
    assert result.returncode == 0, result.stderr
    (sweep_dir,) = tmp_path.iterdir()
    wandb = wandb_runs(sweep_dir)
    cells = sorted((sweep_dir / "cells").glob("cell-*.json"))
    assert len(cells) == 4 and len(wandb) == 4
    for path in cells:
        cell = runs.read_json(path)
        scalars, hparams = tensorboard_run(sweep_dir / "tensorboard" / path.stem)
        assert hparams["grid.hparams.learning_rate"] == pytest.approx(cell["overrides"]["hparams.learning_rate"])
        assert hparams["config.hparams.learning_rate"] == pytest.approx(cell["overrides"]["hparams.learning_rate"])
        assert hparams["seed"] == cell["seed"]
        run = wandb[f"{sweep_dir.name}/{path.stem}"]
        assert run["config"]["grid.hparams.learning_rate"] == pytest.approx(cell["overrides"]["hparams.learning_rate"])
        steps = [int(s) for s in cell["metrics"]["env_steps"]]
        expected = [v for v in cell["metrics"]["loss"]]
        for logged in (scalars["train/loss"], run["history"]["train/loss"]):
            np.testing.assert_allclose([logged[s] for s in steps], expected, rtol=2e-6)


def test_plot_draws_the_evaluations_during_training(tmp_path):
    """`pgjax plot RUN --metric eval_return` reads eval.csv (rows at the evaluated updates
    only) and draws the IQM across seeds at each evaluation's env steps."""
    from pgjax.commands import cli
    from pgjax.reports.statistics import iqm

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    train = runs.MetricsWriter(run_dir / "metrics.csv", [0, 1, 2, 3])
    train.append({"env_steps": np.tile(np.arange(1, 7) * 100, (4, 1)), "episode_return": np.ones((4, 6))})
    evals = runs.MetricsWriter(run_dir / runs.EVAL_FILE, [0, 1, 2, 3])
    returns = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 70.0], [90.0, 80.0]])
    for k, update in enumerate((3, 6)):
        evals.append({"env_steps": np.full((4, 1), update * 100), "eval_return": returns[:, k:k + 1]},
                     updates=[update])
    assert runs.read_metrics(run_dir / runs.EVAL_FILE)[2]["update"].tolist() == [3, 6]
    assert cli.main(["plot", str(run_dir), "--metric", "eval_return", "--out", str(tmp_path / "e.png")]) == 0
    with (tmp_path / "e.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_steps"]) for r in rows] == [300, 600]
    np.testing.assert_allclose([float(r["iqm"]) for r in rows], [iqm(returns[:, 0]), iqm(returns[:, 1])], rtol=1e-6)


def test_stochastic_evaluation_of_a_deterministic_policy_is_refused(tmp_path, capsys):
    from pgjax.commands import cli

    assert cli.main(["train", "--algo", "td3", "--env", "Pendulum-v1", "--eval-mode", "stochastic",
                     "--out", str(tmp_path)]) == 1
    assert "--eval-mode stochastic: td3's policy is deterministic" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before a run folder is made


def test_a_resumed_tensorboard_series_purges_the_recomputed_steps(tmp_path, trackers):
    """A resumed run reopens its series with `purge_step` (the checkpoint's env steps): the
    new event file starts with TensorBoard's purge marker (a SessionLog START at that step),
    so the points logged past the checkpoint before the stop are dropped, not drawn twice."""
    import time

    from tensorboardX.proto.event_pb2 import Event, SessionLog
    from tracker_files import tfrecords

    series = [tracking.Series("seed-0", {"seed": 0})]
    first = tracking.open_tracker(["tensorboard"], tmp_path, "g", series)
    first.log_chunk(["seed-0"], {"env_steps": np.array([[10, 20, 30]]), "loss": np.array([[1.0, 2.0, 3.0]])})
    first.close()
    time.sleep(1.1)  # event file names carry the second they were opened
    resumed = tracking.open_tracker(["tensorboard"], tmp_path, "g", series, purge_step=20)
    resumed.log_chunk(["seed-0"], {"env_steps": np.array([[20, 30]]), "loss": np.array([[2.0, 3.0]])})
    resumed.close()
    files = sorted((tmp_path / "tensorboard" / "seed-0").glob("events.out.tfevents.*"))
    assert len(files) == 2
    events = [Event.FromString(r) for r in tfrecords(files[1])]
    purges = [e.step for e in events if e.HasField("session_log") and e.session_log.status == SessionLog.START]
    assert purges == [20]
    scalars, _ = tensorboard_run(tmp_path / "tensorboard" / "seed-0")
    assert scalars["train/loss"] == {10: 1.0, 20: 2.0, 30: 3.0}
