"""Bad input and faults against the command line and the kernels (issue 15): each case asserts the
one-line message, the exit code, and that nothing already there is lost or half-written.

Argument cases run `pgjax.commands.cli.main` in-process (argparse exits 2 before anything is imported
that computes); a few run in a subprocess as a user would, to show no traceback reaches the
terminal. Exit codes: 2 command line, 1 configuration or input.
"""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from cli_lines import exit_and_line

from pgjax.commands.cli import main
from pgjax.kernels import losses, returns
from pgjax.records import runs

ROOT = Path(__file__).resolve().parent.parent
TINY_PPO = ["--config", "configs/ppo_cartpole.toml", "total_timesteps=768", "num_steps=64", "hidden_sizes=[16]",
            "update_epochs=1"]  # 3 updates of 4 envs x 64 steps


def pgjax(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pgjax", *args], check=False, capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=900)


@pytest.fixture
def afile(tmp_path) -> Path:
    path = tmp_path / "afile"
    path.write_text("keep me\n")
    return path


# --- command-line values (exit code 2, before any work) -------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["train", "--seeds", "0"], "--seeds '0': a count must be >= 1; for the seed id 0 alone write --seeds 0,"),
    (["train", "--seeds", "-2"], "--seeds '-2': a count must be >= 1"),
    (["train", "--seeds", "x"], "--seeds 'x': use a count (4), ids with a comma (0,5,9 or 7,) or a range (3:7)"),
    (["train", "--seeds", "1,1"], "--seeds '1,1': need at least one distinct non-negative seed"),
    (["train", "--seeds", "5:5"], "--seeds '5:5': need at least one distinct non-negative seed"),
    (["sweep", "--seeds", "0"], "--seeds '0': a count must be >= 1"),
    (["train", "--chunks", "0"], "--chunks '0': must be an integer >= 1"),
    (["train", "--chunks", "-4"], "--chunks '-4': must be an integer >= 1"),
    (["sweep", "--chunks", "0"], "--chunks '0': must be an integer >= 1"),
    (["train", "--eval-episodes", "-3"], "--eval-episodes '-3': must be an integer >= 0"),
    (["train", "--width", "0"], "--width '0': must be an integer >= 1"),
    (["sweep", "--width", "-1"], "--width '-1': must be an integer >= 1"),
    (["eval", "RUN", "--episodes", "0"], "--episodes '0': must be an integer >= 1"),
    (["eval", "RUN", "--episodes", "-3"], "--episodes '-3': must be an integer >= 1"),
    (["eval", "RUN", "--gif-frames", "0"], "--gif-frames '0': must be an integer >= 1"),
    (["eval", "RUN", "--max-steps", "0"], "--max-steps '0': must be an integer >= 1"),
    (["eval", "RUN", "--gif", "x.txt"], "--gif 'x.txt': the file name must end in .gif"),
])
def test_bad_values_exit_2_with_one_line(argv, expected, capsys):
    code, line = exit_and_line(argv, capsys)
    assert code == 2 and expected in line and line.startswith(f"pgjax {argv[0]}: error: ")


def test_seed_syntax_count_ids_and_range():
    from pgjax.commands import parse_seeds

    assert parse_seeds("4") == [0, 1, 2, 3]
    assert parse_seeds("0,") == [0] and parse_seeds("7,") == [7]  # one id: a trailing comma
    assert parse_seeds("0,5,9") == [0, 5, 9]
    assert parse_seeds("3:7") == [3, 4, 5, 6]


def test_help_says_how_to_write_seeds(capsys):
    for command in ("train", "sweep"):
        with pytest.raises(SystemExit) as stop:
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert stop.value.code == 0 and "a count N >= 1 (4: seeds 0..3), ids with a comma (0,5,9; one id: 7,)" in text


# --- the file system, checked before any work -----------------------------------------------

@pytest.mark.parametrize("command", ["train", "sweep"])
def test_out_naming_a_file_is_refused_and_the_file_kept(command, afile, capsys):
    code, line = exit_and_line([command, "--out", str(afile)], capsys)
    assert code == 2 and f"--out '{afile}': is a file; give a folder" in line
    assert afile.read_text() == "keep me\n"


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_out_under_a_file_is_refused(command, afile, capsys):
    # A path whose parent is a regular file: what a read-only location looks like to root.
    code, line = exit_and_line([command, "--out", str(afile / "runs")], capsys)
    assert code == 2 and f"cannot write there ({afile} is a file, not a folder)" in line
    assert afile.read_text() == "keep me\n"


def test_eval_out_under_a_file_or_naming_a_folder_is_refused(afile, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    code, line = exit_and_line(["eval", str(run_dir), "--out", str(afile / "e.json")], capsys)
    assert code == 2 and f"--out '{afile / 'e.json'}': cannot write there ({afile} is a file" in line
    code, line = exit_and_line(["eval", str(run_dir), "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a folder; give a file name" in line
    code, line = exit_and_line(["eval", str(run_dir), "--gif", str(afile / "a.gif")], capsys)
    assert code == 2 and "--gif" in line and "is a file, not a folder" in line
    assert list(run_dir.iterdir()) == []  # nothing evaluated, nothing written


def _read_only(folder: Path, *args: str):
    """`pgjax ARGS` with `folder` mounted read-only (a bind mount in a private mount namespace:
    chmod does not stop root); None where mount namespaces are not allowed."""
    import shlex
    import shutil

    if shutil.which("unshare") is None:
        return None
    q = shlex.quote(str(folder))
    command = (f"mount --bind {q} {q} && mount -o remount,bind,ro {q} && "
               f"{shlex.quote(sys.executable)} -m pgjax {' '.join(map(shlex.quote, args))}")
    result = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, cwd=ROOT,
                            timeout=300, check=False)
    return None if "mount:" in result.stderr or "unshare:" in result.stderr else result


def test_read_only_locations_are_refused_before_any_work(tmp_path):
    ro = tmp_path / "ro"
    (ro / "run").mkdir(parents=True)
    result = _read_only(ro, "train", "--out", str(ro / "runs"), "--no-progress")
    if result is None:
        pytest.skip("no mount namespaces here")
    assert result.returncode == 2 and f"--out '{ro / 'runs'}': cannot write there ({ro} is not writable)" in result.stderr
    evaluated = _read_only(ro, "eval", str(ro / "run"))
    assert evaluated.returncode == 1
    assert f"{ro / 'run'} is not writable, so the results cannot go there" in evaluated.stderr
    for r in (result, evaluated):
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(ro.iterdir()) == [ro / "run"]


def test_config_naming_a_folder_or_binary_file_exits_1(tmp_path, capsys):
    out = tmp_path / "runs"
    code, line = exit_and_line(["train", "--config", str(tmp_path), "--out", str(out)], capsys)
    assert code == 1 and f"config file '{tmp_path}' is a folder, not a file" in line
    binary = tmp_path / "c.toml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    code, line = exit_and_line(["train", "--config", str(binary), "--out", str(out)], capsys)
    assert code == 1 and "is not text (UTF-8)" in line
    code, line = exit_and_line(["sweep", "--config", str(tmp_path), "--out", str(out)], capsys)
    assert code == 1 and "is a folder, not a file" in line
    assert not out.exists()  # no run or sweep folder was started


def test_cli_errors_reach_the_terminal_as_one_line(afile):
    """As a user runs it: a subprocess, no traceback, the exit code."""
    for args, code, text in [
        (["train", "--seeds", "0"], 2, "write --seeds 0,"),
        (["train", "--out", str(afile)], 2, "is a file; give a folder"),
        (["eval", str(afile.parent), "--gif", "x.txt"], 2, "must end in .gif"),
        (["train", "--config", str(afile.parent)], 1, "is a folder, not a file"),
    ]:
        result = pgjax(*args)
        assert result.returncode == code and text in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- configuration values (exit code 1) ------------------------------------------------------

@pytest.mark.parametrize("overrides, expected", [
    (["--algo", "sac", "learning_starts=0"], "learning_starts=0 is smaller than batch_size=256"),
    (["--algo", "ddpg", "learning_starts=100", "batch_size=128"], "learning_starts=100 is smaller than batch_size=128"),
    (["--algo", "td3", "learning_starts=255"], "learning_starts=255 is smaller than batch_size=256"),
    (["hparams.learning_rate=inf"], "learning_rate"),
    (["init_log_std=nan"], "init_log_std"),
])
def test_bad_config_values_exit_1(overrides, expected, tmp_path, capsys):
    code, line = exit_and_line(["train", *overrides, "--out", str(tmp_path / "runs")], capsys)
    assert code == 1 and line.startswith("pgjax train: config error: ") and expected in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("flags, bad", [(["--root-seed", str(2**40)], f"root seed {2**40}"),
                                        (["--seeds", f"{2**32},"], f"seed {2**32}")])
def test_seeds_of_2_to_the_32_and_above_are_refused(command, flags, bad, tmp_path, capsys):
    """PRNGKey and fold_in keep 32 bits: 2**40 would silently train the bytes of seed 0."""
    code, line = exit_and_line([command, *flags, "--out", str(tmp_path / "runs")], capsys)
    assert code == 1 and bad in line and "[0, 2**32)" in line
    assert not (tmp_path / "runs").exists()


def test_seed_keys_refuse_what_would_alias_and_keep_the_rest():
    from pgjax.runtime.experiment import seed_keys

    with pytest.raises(ValueError, match="2\\*\\*32"):
        seed_keys(2**32, [0])
    keys = np.asarray(seed_keys(2**32 - 1, [0, 2**32 - 1]))
    assert not np.array_equal(keys[0], keys[1])


def test_learning_starts_equal_to_batch_size_is_accepted():
    from pgjax.runtime.loading import build_config

    _, config = build_config("sac", {"learning_starts": 64, "batch_size": 64})
    assert config.learning_starts == config.batch_size == 64


# --- evaluation: what a run folder can and cannot be asked --------------------------------

def _old_sweep(tmp_path):
    """A sweep folder from before cells kept their policies: one cell record without `policy`."""
    sweep_dir = tmp_path / "sweep"
    (sweep_dir / "cells").mkdir(parents=True)
    runs.write_json(sweep_dir / "sweep.json", {"algo": "ppo", "root_seed": 3, "seeds": [0, 1], "base": {}, "grid": {},
                                               "width": 2})
    runs.write_json(sweep_dir / "cells" / "cell-00001.json", {
        "algo": "ppo", "cell": 1, "seed": 1, "overrides": {"hparams.learning_rate": 0.001},
        "config": {"env_id": "CartPole-v1", "hidden_sizes": [8], "hparams": {"learning_rate": 0.001}}})
    return sweep_dir


@pytest.mark.parametrize("argv, message", [
    (["--cell", "7"], "--cell 7: no such finished cell (finished: 1..1)"),
    (["--point", "hparams.gamma=0.9"], ("--point hparams.gamma: not a grid key of this sweep (grid keys: "
                                        "hparams.learning_rate)")),
    (["--point", "hparams.learning_rate=0.5"], "no finished cell has these values (values: hparams.learning_rate: 0.001)"),
    (["--cell", "1", "--point", "hparams.learning_rate=0.001"], "not both"),
    (["--step", "3"], "--step applies to run folders"),
    ([], "cell 1 kept no policy (swept before pgjax kept them)"),
])
def test_eval_of_a_sweep_names_a_bad_selection(tmp_path, capsys, argv, message):
    sweep_dir = _old_sweep(tmp_path)
    before = sorted(p.name for p in sweep_dir.rglob("*"))
    code, line = exit_and_line(["eval", str(sweep_dir), *argv], capsys)
    assert code == 1 and message in line, line
    assert sorted(p.name for p in sweep_dir.rglob("*")) == before  # nothing written


def test_cell_selection_on_a_run_folder_is_refused(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    code, line = exit_and_line(["eval", str(tmp_path), "--cell", "0"], capsys)
    assert code == 1 and "--cell/--point select the cells of a sweep folder" in line


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_eval_stochastic_on_a_deterministic_policy_is_refused_before_restoring(algo, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runs.write_json(run_dir / "config.json", {"algo": algo})  # no checkpoint: nothing is restored before the check
    code, line = exit_and_line(["eval", str(run_dir), "--stochastic"], capsys)
    assert code == 1 and f"--stochastic: {algo}'s policy is deterministic" in line
    runs.write_json(run_dir / "config.json", {"algo": "sac"})  # a stochastic policy passes the check
    code, line = exit_and_line(["eval", str(run_dir), "--stochastic"], capsys)
    assert code == 1 and "no checkpoint in" in line


@pytest.mark.slow  # four CLI runs; test_cli covers the clamp note in the default run
def test_train_clamps_chunks_with_a_note_and_every_result_names_its_mode(tmp_path):
    """`--chunks 50` on 3 updates runs 3 chunks and says so; summary.json records the greedy
    evaluation, its episodes and seed; `pgjax eval` (greedy by default) reproduces it exactly;
    `plot --final` uses that mode and says so."""
    result = pgjax("train", *TINY_PPO, "--seeds", "2", "--chunks", "50", "--eval-episodes", "4", "--no-progress",
                   "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "note: --chunks 50 is more than the 3 updates; running 3 chunks of one update" in result.stderr
    (run_dir,) = tmp_path.iterdir()
    assert runs.read_json(run_dir / "config.json")["chunks"] == 3
    saved_steps = {int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()}
    assert max(saved_steps) == 3 and 2 in saved_steps  # a checkpoint after every one-update chunk (the last kept)
    summary = runs.read_json(run_dir / "summary.json")
    assert (summary["eval_mode"], summary["eval_episodes"], summary["eval_seed"]) == ("greedy", 4, 10_000)
    assert "(greedy, 4 episodes, eval seed 10000)" in result.stdout

    evaluated = pgjax("eval", str(run_dir), "--episodes", "4")
    assert evaluated.returncode == 0, evaluated.stderr
    saved = runs.read_json(run_dir / "eval_greedy.json")
    assert (saved["mode"], saved["episodes_per_seed"], saved["eval_seed"]) == ("greedy", 4, 10_000)
    assert {s: v["mean_return"] for s, v in saved["per_seed"].items()} == summary["eval_return_mean"]

    out = tmp_path / "plots" / "p.png"
    plotted = pgjax("plot", str(run_dir), "--final", "--resamples", "100", "--out", str(out))
    assert plotted.returncode == 0, plotted.stderr
    final = json.loads(out.with_name("p-final.json").read_text())
    assert final["eval_mode"] == "greedy" and final["runs"][0]["kind"] == "greedy evaluation"


def test_sweep_memory_limit_failure_leaves_no_sweep_folder(tmp_path):
    result = pgjax("sweep", *TINY_PPO, "--seeds", "2", "--memory-limit", "1KB", "--no-progress", "--out", str(tmp_path))
    assert result.returncode == 1 and "raise --memory-limit" in result.stderr, result.stderr
    assert "no cell finished" in result.stderr and "removed" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_train_memory_limit_counts_the_compiled_chunks_temporaries(tmp_path):
    """A limit between pgjax's estimate from shapes (state in and out and the metrics, about 13
    MB here) and XLA's count for the compiled chunk (about 32 MB: the CNN's patches and
    activations are temporaries) is refused before anything trains, naming XLA's count."""
    tiny_cnn = ["--config", "configs/ppo_breakout_minatar_cnn.toml", "total_timesteps=2048", "num_envs=8",
                "num_steps=64", "num_minibatches=2", "update_epochs=1"]
    result = pgjax("train", *tiny_cnn, "--seeds", "1", "--chunks", "4", "--memory-limit", "20MB", "--no-progress", "--out", str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "XLA's count for one chunk" in result.stderr and "raise --memory-limit" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def _sweep_folder(path: Path, finished_cells: int) -> Path:
    (path / "cells").mkdir(parents=True)
    (path / "sweep.json").write_text("{}")
    (path / "events.out.tfevents.0").write_text("tracker")
    for i in range(finished_cells):
        (path / "cells" / f"cell-{i:05d}.json").write_text("{}")
    return path


@pytest.mark.parametrize("ending", ["discard", "ctrl-c", "normal"])
def test_one_rule_removes_a_launch_folder_only_when_no_cell_finished(tmp_path, ending):
    """After a memory refusal (`discard`) or a Ctrl-C: the folder this launch made goes, tracker
    files and all, if no cell finished; a folder with a finished cell, or one the launch did not
    make (`--resume`), stays. A launch that ends normally removes nothing."""
    from pgjax.runtime.sweep import removed_if_no_cell_finished

    folders = {"unstarted": _sweep_folder(tmp_path / "unstarted", 0), "done": _sweep_folder(tmp_path / "done", 1),
               "resumed": _sweep_folder(tmp_path / "resumed", 0)}
    for name, folder in folders.items():
        with contextlib.suppress(KeyboardInterrupt), removed_if_no_cell_finished() as launch:
            launch.made = None if name == "resumed" else folder
            launch.discard = ending == "discard"
            if ending == "ctrl-c":
                raise KeyboardInterrupt
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == (["done", "resumed", "unstarted"] if ending == "normal" else ["done", "resumed"])
    assert (folders["done"] / "events.out.tfevents.0").exists() and (folders["resumed"] / "sweep.json").exists()


# --- plot --final never mixes evaluation modes unlabelled ------------------------------------

def _run_folder(path: Path, summary: dict, eval_files: dict | None = None) -> Path:
    path.mkdir(parents=True)
    runs.write_json(path / "config.json", {"algo": "ppo", "config": {"env_id": "CartPole-v1"}, "seeds": [0, 1]})
    writer = runs.MetricsWriter(path / "metrics.csv", [0, 1])
    writer.append({"episode_return": np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]), "env_steps": np.array([[8, 16, 24]] * 2)})
    runs.write_json(path / "summary.json", summary)
    for mode, means in (eval_files or {}).items():
        runs.write_json(path / f"eval_{mode}.json", {"mode": mode, "per_seed": {str(s): {"mean_return": v}
                                                                              for s, v in enumerate(means)}})
    return path


def test_plot_final_uses_one_mode_and_labels_every_bar(tmp_path, capsys):
    greedy = _run_folder(tmp_path / "a", {"eval_return_mean": {"0": 100.0, "1": 120.0}, "eval_mode": "greedy"})
    legacy = _run_folder(tmp_path / "b", {"eval_return_mean": {"0": 30.0, "1": 40.0}})  # old train: stochastic
    out = tmp_path / "p.png"
    assert main(["plot", str(greedy), str(legacy), "--final", "--resamples", "100", "--out", str(out)]) == 0
    final = json.loads(out.with_name("p-final.json").read_text())
    a, b = final["runs"]
    assert a["kind"] == "greedy evaluation" and a["per_seed"] == {"0": 100.0, "1": 120.0}
    # b's only evaluation is stochastic: not put beside a's greedy one; its training return, labelled.
    assert b["kind"] == "training" and b["per_seed"] == {"0": 3.0, "1": 4.0}  # the last update (10% of 3, at least 1)
    printed = capsys.readouterr().out
    assert "(evaluation: greedy, ? episodes, eval seed ?; from summary.json eval_return_mean)" in printed
    assert "(training; from training episode_return" in printed
    assert main(["plot", str(greedy), str(legacy), "--final", "--final-source", "eval", "--resamples", "100",
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "has no greedy evaluation results" in err and "--eval-mode stochastic" in err
    assert main(["plot", str(legacy), "--final", "--eval-mode", "stochastic", "--resamples", "100",
                 "--out", str(out)]) == 0
    (b,) = json.loads(out.with_name("p-final.json").read_text())["runs"]
    assert b["kind"] == "stochastic evaluation" and b["per_seed"] == {"0": 30.0, "1": 40.0}


def test_plot_final_prefers_eval_files_of_the_asked_mode(tmp_path, capsys):
    run_dir = _run_folder(tmp_path / "r", {"eval_return_mean": {"0": 1.0, "1": 1.0}, "eval_mode": "greedy"},
                          {"greedy": [7.0, 8.0], "stochastic": [3.0, 4.0]})
    out = tmp_path / "p.png"
    for mode, expected in (("greedy", {"0": 7.0, "1": 8.0}), ("stochastic", {"0": 3.0, "1": 4.0})):
        assert main(["plot", str(run_dir), "--final", "--eval-mode", mode, "--resamples", "100", "--out", str(out)]) == 0
        (r,) = json.loads(out.with_name("p-final.json").read_text())["runs"]
        assert r["per_seed"] == expected and r["source"] == f"eval_{mode}.json"
    capsys.readouterr()


def test_plot_final_on_a_torn_eval_file_is_one_line(tmp_path, capsys):
    run_dir = _run_folder(tmp_path / "r", {})
    (run_dir / "eval_greedy.json").write_text('{"per_seed": {"0": ')
    code, line = exit_and_line(["plot", str(run_dir), "--final", "--resamples", "100", "--out", str(tmp_path / "p.png")],
                               capsys)
    assert code == 1 and "eval_greedy.json is not readable JSON" in line
    assert not (tmp_path / "p.png").exists()


# --- kernels from a notebook: lists and integer rewards --------------------------------------

def _episode():
    rewards = [1, 0, 2, 1, 3]  # Python ints, as typed in a notebook
    values = [0.5, 0.1, -0.2, 0.3, 0.0]
    next_values = [0.1, -0.2, 0.3, 0.7, 0.4]
    terminated = [0, 0, 1, 0, 0]
    truncated = [False, False, False, False, True]
    return rewards, values, next_values, terminated, truncated


@pytest.mark.parametrize("jit", [False, True])
def test_return_kernels_accept_lists_and_integer_rewards(jit):
    r, v, nv, te, tr = _episode()
    f = jax.jit if jit else (lambda fn: fn)
    np.testing.assert_allclose(f(lambda: returns.gae(r, v, nv, te, tr, 0.9, 0.8))(),
                               ref.gae(r, v, nv, te, tr, 0.9, 0.8), rtol=1e-6)
    np.testing.assert_allclose(f(lambda: returns.lambda_returns(r, nv, te, tr, 0.9, 0.8))(),
                               ref.lambda_returns(r, nv, te, tr, 0.9, 0.8), rtol=1e-6)
    np.testing.assert_allclose(f(lambda: returns.discounted_returns(r, te, tr, 0.9))(),
                               ref.discounted_returns(r, te, tr, 0.9), rtol=1e-6)
    np.testing.assert_allclose(f(lambda: returns.td_errors(r, v, nv, te, 0.9))(),
                               ref.td_errors(r, v, nv, te, 0.9), rtol=1e-6)
    mask = [1, 1, 1, 0, 0]
    expected = [1 + 0.9 * 0 + 0.81 * 2, 0 + 0.9 * 2, 2, 0, 0]  # G_t = sum gamma^k m r, by hand
    np.testing.assert_allclose(f(lambda: returns.reward_to_go(r, mask, 0.9))(), expected, rtol=1e-6)
    out = returns.gae(np.array(r, np.int32), v, nv, te, tr, 0.9, 0.8)
    assert out.dtype == jnp.float32


def test_kernel_shape_and_type_errors_name_the_argument():
    r, v, nv, te, tr = _episode()
    with pytest.raises(ValueError, match=r"^gae: arguments must share one shape; got rewards \[5\], values \[4\]"):
        returns.gae(r, v[:4], nv, te, tr, 0.9, 0.8)
    with pytest.raises(ValueError, match=r"^discounted_returns: rewards has shape \[\] \(rank 0\)"):
        returns.discounted_returns(3, 0, 0, 0.9)
    with pytest.raises(TypeError, match=r"^reward_to_go: rewards must be numbers \(an array, list or scalar\), got \['one', 'two'\]"):
        returns.reward_to_go(["one", "two"], [1, 1], 0.9)
    with pytest.raises(ValueError, match=r"^batch_baseline: weights has shape \[5\] \(rank 1\); expected rank 2"):
        returns.batch_baseline(r, [1] * 5)
    with pytest.raises(ValueError, match=r"^policy_gradient_loss: arguments must share one shape; got log_probs \[2\], "
                                         r"advantages \[3\]"):
        losses.policy_gradient_loss([0.1, 0.2], [1, 2, 3])


@pytest.mark.parametrize("jit", [False, True])
def test_losses_accept_lists_and_integers(jit):
    log_probs, old, adv = [-0.5, -1.0, -0.2], [-0.6, -0.9, -0.2], [1, -2, 3]
    f = jax.jit if jit else (lambda fn: fn)
    loss, _ = f(lambda: losses.policy_gradient_loss(log_probs, adv))()
    np.testing.assert_allclose(loss, -np.mean(np.multiply(log_probs, adv)), rtol=1e-6)
    clip, _ = f(lambda: losses.ppo_clip_loss(log_probs, old, adv, 0.2))()
    ratio = np.exp(np.subtract(log_probs, old))
    expected = -np.mean(np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * np.asarray(adv)))
    np.testing.assert_allclose(clip, expected, rtol=1e-6)
    np.testing.assert_allclose(f(lambda: losses.importance_surrogate(log_probs, old, adv))(),
                               ref.importance_surrogate(log_probs, old, adv), rtol=1e-6)
    value, _ = f(lambda: losses.value_loss([1, 2], [0, 4]))()
    np.testing.assert_allclose(value, 0.5 * np.mean([1, 4]), rtol=1e-6)
