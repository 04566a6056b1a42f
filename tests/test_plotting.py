"""Learning-curve numbers against direct computation, and `pgjax plot` on synthetic run folders."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pgjax.commands.cli import main
from pgjax.records import runs
from pgjax.reports import plotting
from pgjax.reports import statistics as st

ROOT = Path(__file__).resolve().parent.parent


def pgjax(*args):
    """The command line as a user runs it: in a subprocess."""
    return subprocess.run([sys.executable, "-m", "pgjax", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, check=False)


def fake_metrics(num_seeds=5, num_updates=40, offset=0.0, seed=0):
    """seed -> columns, like `runs.read_metrics`: returns rising with noise, some nan."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in range(num_seeds):
        returns = np.linspace(10, 100, num_updates) + offset + rng.normal(0, 10, num_updates)
        returns[rng.random(num_updates) < 0.1] = np.nan  # updates where no episode finished
        out[s] = {"update": np.arange(1.0, num_updates + 1), "env_steps": 64.0 * np.arange(1, num_updates + 1),
                  "episode_return": returns, "loss": rng.normal(size=num_updates)}
    return out


def write_run(folder: Path, metrics: dict, algo="ppo", env_id="CartPole-v1", eval_means=None) -> Path:
    """A run folder as `pgjax train` writes it: config.json, metrics.csv, summary.json."""
    folder.mkdir(parents=True)
    seeds = sorted(metrics)
    runs.write_json(folder / "config.json", {"algo": algo, "config": {"env_id": env_id}, "seeds": seeds})
    writer = runs.MetricsWriter(folder / "metrics.csv", seeds)
    names = [k for k in metrics[seeds[0]] if k != "update"]
    writer.append({k: np.stack([metrics[s][k] for s in seeds]) for k in names})
    summary = {"final_train_return": {}}
    if eval_means is not None:
        summary["eval_return_mean"] = {str(s): v for s, v in zip(seeds, eval_means)}
        summary.update(eval_mode="greedy", eval_episodes=32, eval_seed=10_000)  # as pgjax train records it
    runs.write_json(folder / "summary.json", summary)
    return folder


def test_learning_curve_is_the_pointwise_statistic_of_smoothed_seeds():
    metrics = fake_metrics()
    curve = plotting.learning_curve(metrics, "episode_return", "iqm", smoothing=3, num_resamples=300, seed=2)
    assert len(curve.env_steps) == 40 and curve.env_steps[-1] == 64 * 40
    for j in [0, 7, 39]:
        column = []
        for s in range(5):  # trailing mean over the last 3 updates, skipping nan, by hand
            window = [v for v in metrics[s]["episode_return"][max(0, j - 2): j + 1] if np.isfinite(v)]
            column.append(sum(window) / len(window) if window else np.nan)
        column = np.array(column)
        expected = st.bootstrap_ci(column[np.isfinite(column)], st.iqm, 0.95, 300, seed=2)
        np.testing.assert_allclose([curve.estimate[j], curve.low[j], curve.high[j]], expected, rtol=1e-12)
        assert curve.num_seeds[j] == np.isfinite(column).sum()
    assert curve.estimate[-1] > curve.estimate[0] + 50  # the rising trend survives aggregation


def test_learning_curve_subsamples_and_pads_short_seeds():
    metrics = fake_metrics(num_seeds=3, num_updates=500)
    for col in metrics[1]:
        metrics[1][col] = metrics[1][col][:300]  # seed 1 stopped early
    curve = plotting.learning_curve(metrics, "loss", "mean", smoothing=1, max_points=50, num_resamples=100)
    assert len(curve.env_steps) == 50 and curve.env_steps[0] == 64 and curve.env_steps[-1] == 64 * 500
    assert curve.num_seeds[0] == 3 and curve.num_seeds[-1] == 2
    last = np.mean([metrics[0]["loss"][-1], metrics[2]["loss"][-1]])
    assert curve.estimate[-1] == pytest.approx(last)


def test_unknown_metric_lists_the_available_ones():
    with pytest.raises(KeyError, match="unknown metric 'retrun'; available metrics: env_steps, episode_return, loss"):
        plotting.seed_matrix(fake_metrics(), "retrun")


def test_plot_learning_curve_writes_a_png(tmp_path):
    path = plotting.plot_learning_curve(fake_metrics(), tmp_path / "curve.png", "synthetic")
    assert path.stat().st_size > 10_000


def test_pgjax_plot_compares_runs_and_writes_the_numbers(tmp_path):
    a = write_run(tmp_path / "a", fake_metrics(seed=1), eval_means=[480.0, 500.0, 350.0, 490.0, 500.0])
    b = write_run(tmp_path / "b", fake_metrics(offset=-40, seed=2), algo="a2c")
    help_ = pgjax("plot", "--help")
    assert help_.returncode == 0 and "--final" in help_.stdout and "RUN_DIR" in help_.stdout
    out = tmp_path / "plots" / "cmp.png"
    result = pgjax("plot", str(a), str(b), "--final", "--resamples", "500", "--smoothing", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 10_000 and out.with_name("cmp-final.png").stat().st_size > 5_000
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert {r["label"] for r in rows} == {"ppo CartPole-v1", "a2c CartPole-v1"}
    a_rows = [r for r in rows if r["label"] == "ppo CartPole-v1"]
    assert len(a_rows) == 40
    direct = plotting.learning_curve(runs.read_metrics(a / "metrics.csv"), smoothing=1, num_resamples=500)
    np.testing.assert_allclose([float(r["iqm"]) for r in a_rows], direct.estimate, rtol=1e-6)
    np.testing.assert_allclose([float(r["low"]) for r in a_rows], direct.low, rtol=1e-6)

    final = json.loads(out.with_name("cmp-final.json").read_text())
    run_a, run_b = final["runs"]
    assert run_a["source"] == "summary.json eval_return_mean"  # the evaluation train ran
    assert run_a["per_seed"] == {"0": 480.0, "1": 500.0, "2": 350.0, "3": 490.0, "4": 500.0}
    assert run_a["iqm"] == pytest.approx(st.iqm([480.0, 500.0, 350.0, 490.0, 500.0]))
    assert run_a["median"] == 490.0
    # b has no evaluation: its score is the mean of the last 10% (4) updates' finite returns.
    assert run_b["source"].startswith("training episode_return")
    for s in range(5):
        tail = runs.read_metrics(b / "metrics.csv")[s]["episode_return"][-4:]
        assert run_b["per_seed"][str(s)] == pytest.approx(np.nanmean(tail))


def test_pgjax_plot_finds_the_runs_in_a_folder(tmp_path, capsys):
    for name in ["lr=0.001", "lr=0.01"]:
        write_run(tmp_path / "runs" / name, fake_metrics(num_seeds=2, num_updates=8))
    assert main(["plot", str(tmp_path / "runs"), "--resamples", "100", "--out", str(tmp_path / "s.png")]) == 0
    labels = {r["label"] for r in csv.DictReader((tmp_path / "s.csv").open())}
    assert labels == {"lr=0.001", "lr=0.01"}  # same algo and env: labelled by folder


def test_pgjax_plot_draws_one_curve_per_grid_point_of_a_sweep(tmp_path, capsys):
    """A `pgjax sweep` folder: cells/cell-NNNNN.json, one per (grid point, seed)."""
    from pgjax.runtime.sweep import write_cell

    sweep_dir = tmp_path / "sweep-ppo"
    (sweep_dir / "cells").mkdir(parents=True)
    metrics = {}
    for index, (lr, seed) in enumerate([(lr, s) for lr in (0.001, 0.0003) for s in (0, 1, 2)]):
        cols = fake_metrics(num_seeds=1, num_updates=20, offset=100 * (lr == 0.001), seed=index)[0]
        if index == 2:  # this cell diverged at update 15: non-finite from there on
            cols["episode_return"][14:] = np.inf
        metrics[(lr, seed)] = cols
        write_cell(sweep_dir / "cells" / f"cell-{index:05d}.json", {
            "algo": "ppo", "cell": index, "seed": seed, "overrides": {"hparams.learning_rate": lr},
            "config": {"env_id": "CartPole-v1"}, "diverged": index == 2,
            "metrics": {k: v.tolist() for k, v in cols.items()},
        })
    out = tmp_path / "sweep.png"
    assert main(["plot", str(sweep_dir), "--final", "--smoothing", "1", "--resamples", "100", "--out", str(out)]) == 0
    assert "1 of 3 cells diverged" in capsys.readouterr().err
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert {r["label"] for r in rows} == {"learning_rate=0.001", "learning_rate=0.0003"}
    high = [r for r in rows if r["label"] == "learning_rate=0.001"]
    stack = np.stack([metrics[(0.001, s)]["episode_return"] for s in (0, 1, 2)])
    assert [int(r["num_seeds"]) for r in high] == np.isfinite(stack).sum(axis=0).tolist()
    assert all(int(r["num_seeds"]) <= 2 for r in high[14:])  # the diverged cell drops out
    for j in (3, 17):
        column = stack[:, j][np.isfinite(stack[:, j])]
        assert float(high[j]["iqm"]) == pytest.approx(st.iqm(column), rel=1e-6)
    final = json.loads(out.with_name("sweep-final.json").read_text())["runs"]
    low_lr = next(r for r in final if r["label"] == "learning_rate=0.0003")
    for s in (0, 1, 2):
        tail = metrics[(0.0003, s)]["episode_return"][-2:]  # last 10% of 20 updates
        assert low_lr["per_seed"][str(s)] == pytest.approx(np.nanmean(tail))


def test_pgjax_plot_scores_sweep_points_by_their_evaluations_and_marks_the_best(tmp_path, capsys):
    """With every cell evaluated (`pgjax eval SWEEP_DIR` writes eval/cell-NNNNN-greedy.json),
    --final scores each grid point by its cells' evaluation returns and marks the point of
    highest IQM; with one point's evaluations missing it falls back to training returns for
    that point, says so, and ranks nothing (scores of different kinds)."""
    from pgjax.records import runs
    from pgjax.runtime.sweep import write_cell

    sweep_dir = tmp_path / "sweep-ppo"
    (sweep_dir / "cells").mkdir(parents=True)
    (sweep_dir / "eval").mkdir()
    evals = {0.001: [10.0, 30.0, 20.0, 400.0], 0.0003: [100.0, 90.0, 110.0, 0.0]}  # IQMs 25 and 95
    index = 0
    for lr, scores in evals.items():
        for seed, score in enumerate(scores):
            cols = fake_metrics(num_seeds=1, num_updates=10, offset=500 * (lr == 0.001), seed=index)[0]
            write_cell(sweep_dir / "cells" / f"cell-{index:05d}.json", {
                "algo": "ppo", "cell": index, "seed": seed, "overrides": {"hparams.learning_rate": lr},
                "config": {"env_id": "CartPole-v1"}, "diverged": False,
                "metrics": {k: v.tolist() for k, v in cols.items()}})
            runs.write_json(sweep_dir / "eval" / f"cell-{index:05d}-greedy.json",
                            {"cell": index, "seed": seed, "overrides": {"hparams.learning_rate": lr},
                             "mean_return": score})
            index += 1
    out = tmp_path / "sweep.png"
    argv = ["plot", str(sweep_dir), "--final", "--smoothing", "1", "--resamples", "100", "--out", str(out)]
    assert main(argv) == 0
    assert "learning_rate=0.0003: IQM 95 " in capsys.readouterr().out
    final = {r["label"]: r for r in json.loads(out.with_name("sweep-final.json").read_text())["runs"]}
    assert final["learning_rate=0.0003"]["best"] is True and final["learning_rate=0.001"]["best"] is False
    assert final["learning_rate=0.001"]["iqm"] == pytest.approx(25.0)  # the training returns are higher
    assert final["learning_rate=0.001"]["kind"] == "greedy evaluation"

    (sweep_dir / "eval" / "cell-00005-greedy.json").unlink()
    assert main(argv) == 0
    final = {r["label"]: r for r in json.loads(out.with_name("sweep-final.json").read_text())["runs"]}
    assert final["learning_rate=0.0003"]["kind"] == "training" and final["learning_rate=0.0003"]["best"] is None
    assert main([*argv, "--final-source", "eval"]) == 1
    assert "for every cell of grid point learning_rate=0.0003" in capsys.readouterr().err


def test_pgjax_plot_errors_name_the_problem(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "missing")]) == 1
    assert f"run folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 1
    assert "no metrics.csv or sweep cells in" in capsys.readouterr().err
    run_dir = write_run(tmp_path / "r", fake_metrics(num_seeds=2, num_updates=8))
    assert main(["plot", str(run_dir), "--metric", "retrun"]) == 1
    err = capsys.readouterr().err
    assert "unknown metric 'retrun'" in err and "episode_return" in err and "loss" in err
    assert main(["plot", str(run_dir), "--labels", "x,y"]) == 1
    assert "--labels has 2 labels for 1 curves found" in capsys.readouterr().err
    assert main(["plot", str(run_dir), "--final", "--final-source", "eval"]) == 1
    assert "pgjax eval" in capsys.readouterr().err
    assert not list(run_dir.glob("*.png"))  # nothing half-written


def test_default_smoothing_is_two_percent_of_the_run():
    assert [plotting.auto_window(n) for n in (10, 390, 5000)] == [1, 8, 100]
    metrics = fake_metrics(num_seeds=2, num_updates=200)
    default = plotting.learning_curve(metrics, num_resamples=100)
    explicit = plotting.learning_curve(metrics, smoothing=4, num_resamples=100)
    np.testing.assert_array_equal(default.estimate, explicit.estimate)
    assert not np.array_equal(default.estimate, plotting.learning_curve(metrics, smoothing=1, num_resamples=100).estimate)
