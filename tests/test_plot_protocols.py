"""`pgjax plot` never mixes evaluations of different protocols without a label (issue 34):
every evaluation figure, table and JSON names the mode, the episode count and the
evaluation seed; curves or bars of different protocols are labelled each, and a sweep grid
point whose cells were evaluated differently is refused, not pooled into one IQM. Also:
`--out x` writes and prints `x.png`, a read-only run folder is one line, long final-plot
titles are wrapped."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pgjax.commands import plot
from pgjax.commands.cli import main
from pgjax.records import runs

ROOT = Path(__file__).resolve().parent.parent


def _run(path: Path, mode="greedy", episodes=32, summary_extra=None, eval_file=None) -> Path:
    """A run folder with evaluations during training (eval.csv) of one protocol."""
    path.mkdir(parents=True)
    runs.write_json(path / "config.json", {"algo": "ppo", "config": {"env_id": "CartPole-v1"}, "seeds": [0, 1],
                                           "eval_mode": mode, "eval_episodes": episodes, "eval_every": 1})
    steps = np.array([[8, 16, 24]] * 2)
    writer = runs.MetricsWriter(path / "metrics.csv", [0, 1])
    writer.append({"episode_return": np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]), "env_steps": steps})
    with (path / runs.EVAL_FILE).open("w") as f:
        f.write("seed,update,env_steps,eval_length,eval_return,eval_truncated\n")
        for seed in (0, 1):
            for u, step in enumerate((8, 16, 24), 1):
                f.write(f"{seed},{u},{step},{10 * u},{10.0 * u + seed},0\n")
    summary = {"eval_return_mean": {"0": 30.0, "1": 31.0}, "eval_mode": mode, "eval_episodes": episodes,
               "eval_seed": 10_000, **(summary_extra or {})}
    runs.write_json(path / "summary.json", summary)
    if eval_file is not None:
        runs.write_json(path / f"eval_{eval_file['mode']}.json", {
            "mode": eval_file["mode"], "episodes_per_seed": eval_file["episodes"], "eval_seed": eval_file["seed"],
            "per_seed": {"0": {"mean_return": 50.0}, "1": {"mean_return": 60.0}}})
    return path


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_eval_curves_of_one_protocol_name_it_in_the_figure_and_table(tmp_path, capsys):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    out = tmp_path / "c.png"
    assert main(["plot", str(a), str(b), "--metric", "eval_return", "--resamples", "100", "--out", str(out)]) == 0
    rows = _rows(out.with_suffix(".csv"))
    assert {(r["eval_mode"], r["eval_episodes"], r["eval_seed"]) for r in rows} == {("greedy", "32", "10000")}
    assert all("[" not in r["label"] for r in rows)  # one protocol: the title says it, the labels need not
    capsys.readouterr()


def test_eval_curves_of_different_protocols_are_labelled_each(tmp_path, monkeypatch, capsys):
    greedy, sampled = _run(tmp_path / "g"), _run(tmp_path / "s", mode="stochastic", episodes=8)
    from pgjax.reports import plotting

    titles = []
    real = plotting.plot_curves

    def spy(curves, out, title, *rest, **kw):
        titles.append((title, [c.label for c in curves]))
        return real(curves, out, title, *rest, **kw)

    monkeypatch.setattr("pgjax.reports.plotting.plot_curves", spy)
    out = tmp_path / "c.png"
    assert main(["plot", str(greedy), str(sampled), "--metric", "eval_return", "--resamples", "100",
                 "--out", str(out)]) == 0
    (title, labels), = titles
    assert title == "eval return"  # two protocols: the labels say which, not the title
    assert labels == ["g [greedy, 32 episodes, eval seed 10000]", "s [stochastic, 8 episodes, eval seed 10000]"]
    rows = _rows(out.with_suffix(".csv"))
    assert {(r["label"].split(" [")[0], r["eval_mode"], r["eval_episodes"]) for r in rows} == {
        ("g", "greedy", "32"), ("s", "stochastic", "8")}
    capsys.readouterr()


def test_one_protocol_is_named_in_the_curve_title(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr("pgjax.reports.plotting.plot_curves", lambda curves, out, title, *a, **k: seen.append(title)
                        or Path(out))
    run_dir = _run(tmp_path / "r", mode="stochastic", episodes=16)
    assert main(["plot", str(run_dir), "--metric", "eval_return", "--resamples", "100",
                 "--out", str(tmp_path / "c.png")]) == 0
    assert seen == ["eval return (evaluation: stochastic, 16 episodes, eval seed 10000)"]
    capsys.readouterr()


def test_final_names_episodes_and_seed_and_labels_differing_protocols(tmp_path, capsys):
    a = _run(tmp_path / "a", eval_file={"mode": "greedy", "episodes": 100, "seed": 7})
    b = _run(tmp_path / "b")  # summary.json: greedy, 32 episodes, seed 10000
    out = tmp_path / "p.png"
    assert main(["plot", str(a), str(b), "--final", "--resamples", "100", "--out", str(out)]) == 0
    final = json.loads(out.with_name("p-final.json").read_text())
    ra, rb = final["runs"]
    assert ra["protocol"] == {"mode": "greedy", "episodes": 100, "eval_seed": 7}
    assert rb["protocol"] == {"mode": "greedy", "episodes": 32, "eval_seed": 10000}
    assert final["eval_protocols"] == ["greedy, 100 episodes, eval seed 7", "greedy, 32 episodes, eval seed 10000"]
    printed = capsys.readouterr().out
    assert "(evaluation: greedy, 100 episodes, eval seed 7; from eval_greedy.json)" in printed
    assert "(evaluation: greedy, 32 episodes, eval seed 10000; from summary.json eval_return_mean)" in printed


def _sweep(tmp_path: Path, protocols: list[tuple[int, int]]) -> Path:
    """A sweep folder with one grid point of len(protocols) cells, each evaluated (greedy)
    with its (episodes, eval seed)."""
    sweep = tmp_path / "sweep"
    (sweep / "cells").mkdir(parents=True)
    (sweep / "eval").mkdir()
    runs.write_json(sweep / "sweep.json", {"algo": "ppo"})
    for cell, (episodes, seed) in enumerate(protocols):
        runs.write_json(sweep / "cells" / f"cell-{cell:05d}.json", {
            "cell": cell, "seed": cell, "algo": "ppo", "config": {"env_id": "CartPole-v1"},
            "overrides": {"hparams.learning_rate": 0.001},
            "metrics": {"env_steps": [8, 16], "episode_return": [1.0, 2.0]}})
        runs.write_json(sweep / "eval" / f"cell-{cell:05d}-greedy.json", {
            "cell": cell, "seed": cell, "mode": "greedy", "episodes": episodes, "eval_seed": seed,
            "max_episode_steps": 500, "mean_return": 10.0 * (cell + 1), "overrides": {"hparams.learning_rate": 0.001}})
    return sweep


@pytest.mark.parametrize("protocols, differing", [
    ([(32, 10000), (8, 10000), (32, 10000)],
     "cells 0, 2: 32 episodes, eval seed 10000, time limit 500; cells 1: 8 episodes, eval seed 10000"),
    ([(32, 10000), (32, 1)], "cells 0: 32 episodes, eval seed 10000, time limit 500; cells 1: 32 episodes, eval seed 1"),
])
def test_a_sweep_point_evaluated_with_different_protocols_is_refused(tmp_path, capsys, protocols, differing):
    sweep = _sweep(tmp_path, protocols)
    out = tmp_path / "p.png"
    try:
        code = main(["plot", str(sweep), "--final", "--resamples", "100", "--out", str(out)])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err, err
    assert "used different protocols" in err and differing in err and "pgjax eval" in err and "--episodes N" in err
    assert not out.exists()


def test_a_sweep_point_of_one_protocol_states_it(tmp_path, capsys):
    sweep = _sweep(tmp_path, [(32, 5), (32, 5)])
    out = tmp_path / "p.png"
    assert main(["plot", str(sweep), "--final", "--resamples", "100", "--out", str(out)]) == 0
    (r,) = json.loads(out.with_name("p-final.json").read_text())["runs"]
    assert r["protocol"] == {"mode": "greedy", "episodes": 32, "eval_seed": 5} and r["per_seed"] == {"0": 10.0,
                                                                                                     "1": 20.0}
    assert "(evaluation: greedy, 32 episodes, eval seed 5; " in capsys.readouterr().out


def test_out_without_suffix_writes_and_prints_the_png(tmp_path, capsys):
    run_dir = _run(tmp_path / "r")
    assert main(["plot", str(run_dir), "--resamples", "100", "--out", str(tmp_path / "x")]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "x.png").is_file() and (tmp_path / "x.csv").is_file() and not (tmp_path / "x").exists()
    assert f"curves: {tmp_path / 'x.png'}" in printed
    assert main(["plot", str(run_dir), "--out", str(tmp_path / "x.txt")]) == 1
    assert "the file name must end in .png, .pdf, .svg" in capsys.readouterr().err


def test_long_final_titles_are_wrapped_not_clipped(tmp_path):
    from pgjax.reports import plotting
    from pgjax.reports import statistics as st

    title = "per-seed scores: " + "; ".join(f"/a/very/long/folder/name/number-{i}/eval_greedy.json" for i in range(4))
    png = plotting.plot_final(["a", "b"], [st.Interval(1, 0, 2), st.Interval(2, 1, 3)], tmp_path / "f", "x " * 70,
                              title)
    assert png == tmp_path / "f.png" and png.is_file()
    import matplotlib.image

    height, width = matplotlib.image.imread(png).shape[:2]
    assert width == 7 * 110 and height > (1.1 + 0.9) * 110  # grown for the wrapped lines


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(), reason="needs root and unshare")
def test_plot_of_a_read_only_run_folder_is_one_line(tmp_path):
    """The default output goes into the run folder: read-only (a read-only bind mount in a
    private mount namespace, as root ignores chmod), it is one line naming it and --out."""
    run_dir = _run(tmp_path / "r")
    script = (f"mount --bind {run_dir} {run_dir} && mount -o remount,bind,ro {run_dir} && "
              f"{sys.executable} -m pgjax plot {run_dir} --resamples 100")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"pgjax plot: cannot write {run_dir}/curves-episode_return.png") and "--out" in lines[0]
    assert "is not writable" in lines[0]


def test_protocol_label_marks_what_is_unknown():
    assert plot.protocol_label({"mode": "greedy", "episodes": 32, "eval_seed": 1}) == "greedy, 32 episodes, eval seed 1"
    assert plot.protocol_label({"mode": "greedy"}) == "greedy, ? episodes, eval seed ?"


def test_grid_values_are_printed_with_six_significant_digits():
    from pgjax.runtime.sweep_eval import point_label

    assert point_label({"hparams.learning_rate": 0.1 + 0.2, "hparams.gamma": float(np.float32(0.99)),
                        "num_envs": 8, "activation": "relu"}) == "activation=relu, gamma=0.99, learning_rate=0.3, num_envs=8"


def test_help_of_a_sampling_flag_does_not_call_it_greedy(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("--stochastic evaluate")  # the option's entry, after the usage line
    stochastic = text[start:text.index("--eval-seed", start)]
    assert "sampled" in stochastic and "greedy" not in stochastic
