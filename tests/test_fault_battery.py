"""Faults found by a wide battery of bad input against the command line and the Python API
(issue 34, the case list with verdicts in the issue note): each test is one defect the battery
found, asserting the one-line message (no traceback), the exit code, and that nothing is
taken silently or lost. Nothing here trains: every case fails, or is checked, before compiling.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_lines import exit_and_line

import pgjax
from pgjax import config as cfg
from pgjax.algos import ALGORITHMS
from pgjax.algos.ppo import PPOConfig
from pgjax.commands.cli import main
from pgjax.records import runs
from pgjax.runtime import run_settings
from pgjax.runtime.sweep import parse_bytes

TRAIN = ["train", "--no-progress", "--memory-limit", "1"]  # a valid run is refused by memory, never trained


# --- config files: exit code 1, one line naming the file ------------------------------------


@pytest.mark.parametrize("name, text, expected", [
    ("list.json", "[1, 2]", "holds a JSON list ('[1, 2]'), not an object of settings"),
    ("null.json", "null", "holds a JSON null"),
    ("string.json", '"ppo"', "holds a JSON string"),
    ("twice.json", '{"num_envs": 4, "num_envs": 8}', "sets 'num_envs' twice in one object; keep one"),
    ("settings.yaml", "num_envs: 4\n", "the name must end in .toml or .json"),
    ("settings", "num_envs = 4\n", "the name must end in .toml or .json"),
    ("empty_algo.toml", 'algo = ""\n', "algo='' is unknown; choose one of"),  # was: trained PPO
    ("list_algo.toml", "algo = [1]\n", "algo=[1] is unknown"),
])
def test_a_config_file_that_is_not_a_table_of_settings_is_one_line(tmp_path, capsys, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    code, line = exit_and_line([*TRAIN, "--config", str(path)], capsys)
    assert code == 1 and expected in line and (str(path) in line or expected.startswith("algo="))


def test_a_config_file_with_a_bom_or_an_upper_case_suffix_reads(tmp_path):
    """Editors on Windows write a UTF-8 BOM; `.JSON` is JSON, not TOML."""
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbfnum_envs = 8\n")
    upper = tmp_path / "upper.JSON"
    upper.write_text('{"num_envs": 8}')
    assert pgjax.load_config(bom).num_envs == pgjax.load_config(upper).num_envs == 8


@pytest.mark.parametrize("make", ["fifo", "device"])
def test_a_config_that_is_a_pipe_or_a_device_is_named_as_such(tmp_path, capsys, make):
    if make == "fifo":
        path = tmp_path / "pipe.toml"
        os.mkfifo(path)  # reading it would block; it must be refused before
    else:
        path = Path("/dev/null")
    code, line = exit_and_line([*TRAIN, "--config", str(path)], capsys)
    assert code == 1 and "is not a regular file (a device, pipe or socket)" in line and "folder" not in line


@pytest.mark.parametrize("limit", [0, -3, 2**40])
def test_a_gymnax_time_limit_out_of_range_is_refused_when_the_config_loads(limit):
    """Was: max_steps_in_episode=0 trained, then evaluation failed indexing an empty array (a traceback)."""
    with pytest.raises(cfg.ConfigError, match=rf"env_kwargs.max_steps_in_episode={limit} for env_id='CartPole-v1': "
                                              r"the time limit must be in \[1, 2147483647\] steps"):
        pgjax.load_config("ppo", [f"env_kwargs.max_steps_in_episode={limit}"])


@pytest.mark.parametrize("env", ["", "  "])
def test_an_empty_env_id_suggests_a_real_one(capsys, env):
    code, line = exit_and_line([*TRAIN, "--env", env], capsys)
    assert code == 1 and "is empty" in line and "e.g. 'CartPole-v1'" in line


# --- configs built in Python -------------------------------------------------------------


def test_numpy_scalars_are_the_numbers_they_hold():
    config = pgjax.load_config("ppo", overrides={"num_envs": np.int64(8), "hparams.gamma": np.float32(0.5),
                                                 "normalize_obs": np.bool_(True)})
    assert (config.num_envs, config.hparams.gamma, config.normalize_obs) == (8, 0.5, True)
    with pytest.raises(cfg.ConfigError, match=r"num_envs=8.5: expected a whole number"):
        pgjax.load_config("ppo", overrides={"num_envs": np.float64(8.5)})


@pytest.mark.parametrize("field, message", [
    ("hparams", "hparams: expected a table of fields, got None"),
    ("num_envs", "num_envs=None: expected a whole number"),
    ("env_kwargs", "env_kwargs=None: expected a table of environment parameters"),
])
def test_none_in_a_static_config_field_is_refused(field, message):
    with pytest.raises(cfg.ConfigError, match=message):
        PPOConfig(**{field: None})


def test_a_list_in_a_static_config_is_held_as_a_tuple_so_the_config_hashes():
    config = PPOConfig(hidden_sizes=[32, 32])
    assert config.hidden_sizes == (32, 32) and hash(config) == hash(PPOConfig(hidden_sizes=(32, 32)))


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_hparams_field_refuses_none_or_a_non_number_from_python_a_file_and_an_override(tmp_path, algo):
    """Was: `PPOHParams(gamma=None)` (or any object) accepted in Python, failing later inside JAX."""
    hparams_class = type(ALGORITHMS[algo].config_class().hparams)
    for f in dataclasses.fields(hparams_class):
        dotted = f"hparams.{f.name}"
        for bad in (None, "0.5", [0.5], True, object()):
            with pytest.raises(cfg.ConfigError) as python:
                hparams_class(**{f.name: bad})
            line = str(python.value)
            assert line.startswith(f"{dotted}=") and line.endswith(": expected a number") and "\n" not in line, line
        with pytest.raises(cfg.ConfigError, match=rf"^{dotted}=None: expected a number$"):
            pgjax.load_config(algo, [f"{dotted}=null"])
    first = dataclasses.fields(hparams_class)[0].name
    path = tmp_path / "null.json"
    path.write_text(json.dumps({"algo": algo, "hparams": {first: None}}))
    with pytest.raises(cfg.ConfigError, match=rf"^hparams.{first}=None: expected a number$"):
        pgjax.load_config(path)


def test_hparams_of_another_algorithm_are_refused():
    sac_hparams = ALGORITHMS["sac"].config_class().hparams
    with pytest.raises(cfg.ConfigError, match=r"^hparams=SACHParams\(...\): expected a PPOHParams"):
        PPOConfig(hparams=sac_hparams)


# --- KEY=VALUE overrides: a key set twice is refused, never the last silently winning ------

TWICE = "override hparams.gamma is given twice (hparams.gamma=0.9 and hparams.gamma=0.99); set each key once"


@pytest.mark.parametrize("overrides, message", [
    (["hparams.gamma=0.9", "hparams.gamma=0.99"], TWICE),
    ({"hparams.gamma": 0.9, "hparams": {"gamma": 0.99}}, TWICE),
    (["env_kwargs.memory_length=5", 'env_kwargs={"memory_length": 6}'],
     ("override env_kwargs and env_kwargs.memory_length inside it are both given (env_kwargs.memory_length=5 and "
      'env_kwargs={"memory_length": 6}); set each key once')),
])
def test_load_config_refuses_an_override_key_set_twice(overrides, message):
    with pytest.raises(cfg.ConfigError) as error:
        pgjax.load_config("ppo", overrides)
    assert str(error.value) == message
    assert pgjax.load_config("ppo", ["hparams.gamma=0.9", "hparams.gae_lambda=0.9"]).hparams.gamma == 0.9


@pytest.mark.parametrize("config", ["ppo", PPOConfig()])
def test_train_refuses_an_override_key_set_twice_before_compiling(tmp_path, config):
    with pytest.raises(cfg.ConfigError, match="override hparams.gamma is given twice"):
        pgjax.train(config, out=tmp_path, overrides=["hparams.gamma=0.9", "hparams.gamma=0.99"])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", [TRAIN, ["sweep", "--memory-limit", "1", "--grid", "num_envs=4,8"]])
def test_the_command_line_refuses_an_override_key_set_twice(tmp_path, capsys, command):
    code, line = exit_and_line([*command, "--out", str(tmp_path), "hparams.gamma=0.9", "hparams.gamma=0.99"], capsys)
    assert code == 1 and line.endswith(f"config error: {TWICE}"), line


# --- pgjax.train / pgjax.resume arguments: one ConfigError line before anything compiles ----


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": "3"}, "seeds='3': expected a count such as 4"),  # was: the seed id 3, silently
    ({"seeds": 2.5}, "seeds=2.5: expected a count"),
    ({"seeds": True}, "seeds=True: expected a count"),
    ({"seeds": ["a"]}, r"seeds=\['a'\]: expected a count"),
    ({"chunks": 0}, r"chunks=0: must be an integer >= 1 \(--chunks\)"),  # was: taken as the default
    ({"chunks": "3"}, "chunks='3': must be an integer >= 1"),
    ({"width": 0}, "width=0: must be an integer >= 1"),  # was: taken as the default
    ({"eval_every": -1}, "eval_every=-1: must be an integer >= 0"),
    ({"eval_episodes": -3}, "eval_episodes=-3: must be an integer >= 0"),
    ({"eval_mode": "best"}, "eval_mode='best': must be 'greedy' or 'stochastic'"),
    ({"root_seed": "x"}, "root_seed='x': expected a whole number"),
    ({"memory_limit": 0}, "--memory-limit 0: must be a positive, finite size"),  # was: no limit
    ({"memory_limit": -5}, "--memory-limit -5: must be a positive"),
    ({"out": 5}, "out=5: expected a folder path"),
    ({"checkpoints": "no"}, "checkpoints='no': expected True or False"),  # was: a true string, checkpoints written
    ({"progress": "yes"}, "progress='yes': expected True or False, or an object"),  # was: AttributeError after starting
])
def test_train_refuses_bad_settings_in_one_line(tmp_path, kwargs, message):
    with pytest.raises(cfg.ConfigError, match=message):
        pgjax.train("ppo", **{"out": tmp_path, **kwargs})
    assert not list(tmp_path.iterdir())


def test_seed_ids_may_be_any_integers_or_a_range():
    assert run_settings.seeds_list(np.int64(2)) == [0, 1]
    assert run_settings.seeds_list(range(3, 5)) == run_settings.seeds_list([np.int32(3), 4]) == [3, 4]


def test_train_refuses_an_out_that_is_a_file_before_compiling(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    with pytest.raises(cfg.ConfigError, match="is a file; give a folder"):
        pgjax.train("ppo", out=afile)
    with pytest.raises(cfg.ConfigError, match="cannot write there .* is a file, not a folder"):
        pgjax.train("ppo", out=afile / "runs")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("not a folder\n")
    with pytest.raises(cfg.ConfigError, match="the default output folder 'runs' is a file here"):
        pgjax.train("ppo")
    assert afile.read_text() == "keep me\n"


def test_the_command_line_refuses_a_default_out_that_is_a_file_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("not a folder\n")  # was: a traceback after compiling, a chunk note before
    code, line = exit_and_line(["train", "total_timesteps=2048"], capsys)
    assert code == 1 and "the default output folder 'runs' is a file here" in line


@pytest.mark.parametrize("call", [lambda: pgjax.load_config(5), lambda: pgjax.load_config(b"ppo"),
                                  lambda: pgjax.resume(5), lambda: pgjax.resume(None)])
def test_a_path_argument_of_the_wrong_type_is_a_config_error(call):
    with pytest.raises(cfg.ConfigError, match="a str or pathlib.Path"):
        call()


@pytest.mark.parametrize("text", ["0", "-5GB", "inf", "nan", "0.1B"])
def test_a_memory_limit_must_be_positive_and_finite(text):
    with pytest.raises(cfg.ConfigError, match="must be a positive, finite size"):
        parse_bytes(text)


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_zero_memory_limit_on_the_command_line_is_refused_not_taken_as_none(capsys, command):
    code, line = exit_and_line([command, "--memory-limit=0"], capsys)
    assert code == 2 and "--memory-limit '0': must be a positive, finite size" in line


# --- eval and plot on odd inputs ---------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["--max-steps", "5000000000"], "--max-steps '5000000000': must be an integer <= 2147483647"),  # was: OverflowError
    (["--eval-seed", "4294967296"], "--eval-seed '4294967296': must be an integer <= 4294967295"),  # was: seed 0's episodes
    (["--eval-seed", "-1"], "--eval-seed '-1': must be an integer >= 0"),
])
def test_eval_numbers_past_what_jax_holds_are_refused(tmp_path, capsys, argv, expected):
    code, line = exit_and_line(["eval", str(tmp_path), *argv], capsys)
    assert code == 2 and expected in line


@pytest.mark.parametrize("resamples", ["1", "0", "-5", "99"])
def test_plot_refuses_too_few_bootstrap_resamples(tmp_path, capsys, resamples):
    """Was: `--resamples 1` drew a zero-width "interval" from one resample."""
    code, line = exit_and_line(["plot", str(tmp_path), "--resamples", resamples], capsys)
    assert code == 1 and line == (f"pgjax plot: --resamples {resamples} is too few for a bootstrap interval: give at "
                                  "least 100 (the default is 2000), so each end of a 95% interval rests on more than "
                                  "two resamples")


def test_the_plot_help_states_the_least_number_of_resamples(capsys):
    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    assert "bootstrap resamples, at least 100" in " ".join(capsys.readouterr().out.split())


def test_a_negative_bootstrap_seed_names_the_flag(tmp_path, capsys):
    code, line = exit_and_line(["plot", str(tmp_path), "--bootstrap-seed", "-1"], capsys)  # was: NumPy's words alone
    assert code == 2 and "--bootstrap-seed '-1': must be an integer >= 0" in line


def test_eval_of_a_file_or_a_folder_of_runs_says_what_it_is(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, line = exit_and_line(["eval", str(afile)], capsys)
    assert code == 1 and "is a file, not a run folder" in line
    (tmp_path / "runs" / "ppo-a" / "checkpoints").mkdir(parents=True)
    code, line = exit_and_line(["eval", str(tmp_path / "runs")], capsys)
    assert code == 1 and "is not a run folder but holds 1 (ppo-a): evaluate one" in line


def _run(folder: Path, text: str, eval_text: str | None = None) -> Path:
    folder.mkdir(parents=True)
    runs.write_json(folder / "config.json", {"algo": "ppo", "config": {"env_id": "CartPole-v1"}, "seeds": [0]})
    (folder / "metrics.csv").write_text(text)
    if eval_text is not None:
        (folder / runs.EVAL_FILE).write_text(eval_text)
    return folder


ROWS = "seed,update,env_steps,episode_return\n0,1,64,10.5\n0,2,128,20.25\n0,3,192,30.125\n"


def test_read_metrics_leaves_out_a_torn_last_row_and_names_a_damaged_one(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(ROWS[:-4])  # the last row cut mid-number: 30.1 is not a result
    assert runs.read_metrics(path)[0]["episode_return"].tolist() == [10.5, 20.25]
    path.write_text(ROWS.replace("0,1,64,10.5", "0,1,64,abc"))
    with pytest.raises(runs.RunFileError, match=r"metrics.csv is damaged: line 2 \('0,1,64,abc'\)"):
        runs.read_metrics(path)


@pytest.mark.parametrize("eval_text, argv, expected", [
    (None, [], "metrics.csv is damaged: line 2"),  # a non-number before intact rows; was: ValueError traceback
    (None, ["--metric", "eval_return"], "has no eval.csv, so no evaluations during training"),  # was: "unknown metric"
])
def test_plot_of_a_damaged_or_missing_table_is_one_line(tmp_path, capsys, eval_text, argv, expected):
    run_dir = _run(tmp_path / "run", ROWS.replace("10.5", "x") if not argv else ROWS, eval_text)
    out = tmp_path / "p.png"
    code, line = exit_and_line(["plot", str(run_dir), "--out", str(out), *argv], capsys)
    assert code == 1 and expected in line and not out.exists()


def test_plot_draws_a_torn_eval_csv_without_its_torn_row(tmp_path):
    run_dir = _run(tmp_path / "run", ROWS, "seed,update,env_steps,eval_return\n0,2,128,9\n0,3,192,1")  # was: TypeError
    out = tmp_path / "p.png"
    assert main(["plot", str(run_dir), "--metric", "eval_return", "--out", str(out)]) == 0
    steps = [line.split(",")[2] for line in out.with_suffix(".csv").read_text().splitlines()[1:]]
    assert steps == ["128"]


def test_plot_of_a_metrics_csv_that_is_a_folder_is_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "metrics.csv").mkdir(parents=True)  # was: RecursionError
    code, line = exit_and_line(["plot", str(run_dir), "--out", str(tmp_path / "p.png")], capsys)
    assert code == 1 and "metrics.csv is not a file" in line


def test_plot_of_a_damaged_sweep_cell_names_the_file(tmp_path, capsys):
    (tmp_path / "sweep" / "cells").mkdir(parents=True)
    (tmp_path / "sweep" / "cells" / "cell-00000.json").write_text('{"cell": 0, ')
    code, line = exit_and_line(["plot", str(tmp_path / "sweep"), "--out", str(tmp_path / "p.png")], capsys)
    assert code == 1 and "cell-00000.json is damaged, not valid JSON" in line


# --- resume of a damaged run folder ------------------------------------------------------


@pytest.mark.parametrize("change, expected", [
    ({"config": 5}, "config=5 is not a table of config fields"),  # was: AttributeError
    ({"seeds": "ab"}, "seeds='ab' is not a list of seed ids"),  # was: ValueError from the key derivation
    ({"seeds": [0, 0]}, "need at least one distinct non-negative seed"),
    ({"chunks": 0}, "chunks=0: must be an integer >= 1"),
    ({"algo": 3}, "algo=3 is not an algorithm name"),
])
def test_resume_names_a_damaged_entry_of_config_json(tmp_path, capsys, change, expected):
    record = {"algo": "ppo", "config": {"env_id": "CartPole-v1"}, "seeds": [0], "root_seed": 0, "chunks": 2, **change}
    runs.write_json(tmp_path / "config.json", record)
    code, line = exit_and_line(["train", "--resume", str(tmp_path)], capsys)
    assert code == 1 and f"{tmp_path / 'config.json'} is damaged: " in line and expected in line


def test_a_metrics_csv_that_does_not_read_is_a_run_file_error(tmp_path):
    (tmp_path / "metrics.csv").mkdir()  # was: IsADirectoryError while resuming
    with pytest.raises(runs.RunFileError, match="metrics.csv does not read"):
        runs.metrics_coverage(tmp_path / "metrics.csv", [0])


# --- noise -------------------------------------------------------------------------------


def test_making_a_brax_environment_prints_no_unmaintained_warning(monkeypatch):
    """brax warns on loading every system that it is not maintained (seen on every `--env brax/...`
    run); the adapter keeps that out. brax's own text, raised by a stand-in for its loader."""
    from pgjax.envs import brax_suite

    class Envs:
        _envs = ("ant",)  # the names in brax's registry

        def get_environment(self, name, **kwargs):
            warnings.warn("Brax System, piplines and environments are not actively being maintained. Please see MJX "
                          "for a well maintained JAX-based physics engine", UserWarning, stacklevel=2)
            return name

    monkeypatch.setattr(brax_suite, "_envs", Envs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert brax_suite._make_brax("brax/ant", "ant") == "ant"
    assert not caught


# --- signals -------------------------------------------------------------------------------


def test_a_second_signal_inside_a_checkpoint_write_is_a_stop_not_a_write_failure(tmp_path, monkeypatch):
    """Was: `writing a checkpoint ... failed: 2`, exit code 1: the write's `except Exception` took it."""
    from pgjax.records.checkpoint import Checkpointer
    from pgjax.runtime.resumable import Interrupted

    class Manager:
        def save(self, *args, **kwargs):
            raise Interrupted(signal.SIGINT)  # the second Ctrl-C, raised by the handler mid-write

    checkpointer = Checkpointer(tmp_path / "checkpoints")
    monkeypatch.setattr(checkpointer, "_open", lambda create=False: Manager())
    with pytest.raises(Interrupted):
        checkpointer.save(2, {"x": np.zeros(2, np.float32)}, {})


def test_sigint_stops_a_command_started_with_it_ignored_while_it_compiles(tmp_path):
    """A job started with `&` from a script inherits SIGINT ignored; training's handlers replace
    that, but a SIGINT while the run compiled (before them) was lost and the run trained on."""
    script = textwrap.dedent("""
        import os, signal, sys
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the shell leaves a background job
        from pgjax.commands import cli
        from pgjax.runtime import run

        def compiling(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the run compiles
            raise SystemExit("compiled on: the SIGINT was lost")

        run.TrainingRun.__init__ = compiling
        sys.exit(cli.main(["train", "--out", sys.argv[1], "total_timesteps=512"]))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 130 and done.stderr.strip().splitlines()[-1] == "pgjax train: interrupted", done.stderr
    assert not list(tmp_path.iterdir())


def test_ctrl_c_while_the_command_starts_is_one_line(monkeypatch, capsys):
    """Was: a KeyboardInterrupt traceback from the imports that building the parser does."""
    from pgjax.commands import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    code, line = exit_and_line(["eval", "RUN"], capsys)
    assert code == 130 and line == "pgjax eval: interrupted"


# The `pgjax` console script's program (`[project.scripts]`), run as a file would be run.
PGJAX = "import sys; from pgjax.commands.cli import main; sys.exit(main())"


@pytest.mark.parametrize("entry, ignored", [(["-c", PGJAX], False), (["-m", "pgjax"], False), (["-c", PGJAX], True)],
                         ids=["pgjax", "python-m-pgjax", "pgjax-sigint-ignored-at-start"])
def test_ctrl_c_while_jax_imports_is_one_line_and_leaves_no_folder(tmp_path, entry, ignored):
    """Was: a KeyboardInterrupt traceback (importing `pgjax.commands` imported jax before `main`
    could catch it), or, for a job started with SIGINT ignored, a SIGINT lost; under `python -m`
    at times death by SIGINT after the line (`cli._forget_the_interrupt`). `-X importtime`
    reports each import as it ends: the first `jax` module's line says jax is being imported."""
    restore = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignored else None  # inherited by the child
    try:
        child = subprocess.Popen([sys.executable, "-X", "importtime", *entry, *TRAIN, "--out", str(tmp_path),
                                  "total_timesteps=512"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, restore)
    lines = []
    for line in child.stderr:
        lines.append(line)
        if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip().startswith("jax"):
            child.send_signal(signal.SIGINT)
            break
    lines += child.stderr.readlines()
    code = child.wait(timeout=600)
    said = [line.strip() for line in lines if line.strip() and not line.startswith("import time:")]
    assert code == 130 and said == ["pgjax train: interrupted"], (code, said)
    assert not list(tmp_path.iterdir())


def test_ctrl_c_after_the_run_folder_is_made_but_before_training_removes_it(tmp_path, monkeypatch, capsys):
    """Was: a KeyboardInterrupt between making the run folder and setting training's signal
    handlers (while the evaluation compiles) left a folder with a config.json and nothing else."""
    from pgjax.runtime import run

    class Cells:  # nothing compiles: the run stops before its first chunk
        @classmethod
        def build(cls, trainer, record):
            return cls()

        def check_memory(self, chunks, memory_limit):
            return {"compile_seconds": 0.0}

    def interrupted(self):
        assert (self.made / "config.json").exists()  # the folder is there when Ctrl-C comes
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "SeedCells", Cells)
    monkeypatch.setattr(run.TrainingRun, "_evaluator", interrupted)
    code, line = exit_and_line(["train", "--no-progress", "--chunks", "1", "--out", str(tmp_path), "total_timesteps=512"],
                               capsys)
    assert code == 130 and line == "pgjax train: interrupted"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("resumed", [False, True], ids=["new-folder", "resumed-folder"])
def test_ctrl_c_before_a_sweeps_signal_handlers_removes_only_a_folder_it_made(tmp_path, monkeypatch, capsys, resumed):
    """Was: a KeyboardInterrupt between making the sweep folder and `run_sweep` setting its
    signal handlers left a folder with a sweep.json and nothing else. A folder given to
    `--resume` is never removed."""
    from pgjax.runtime import sweep as sw
    from pgjax.runtime.resumable import Interrupted

    command = ["sweep", "--no-progress", "--chunks", "1", "--out", str(tmp_path), "--grid", "num_envs=4,8",
               "total_timesteps=2048"]
    if resumed:  # a sweep stopped by SIGTERM before any cell finished: its folder is kept to resume
        def stopped(*args, **kwargs):
            raise Interrupted(signal.SIGTERM)

        monkeypatch.setattr(sw, "run_sweep", stopped)
        assert exit_and_line(command, capsys)[0] == 128 + signal.SIGTERM
        (folder,) = tmp_path.iterdir()
        command = ["sweep", "--no-progress", "--resume", str(folder)]

    def interrupted(*args, **kwargs):
        assert list(tmp_path.iterdir())  # the folder is there when Ctrl-C comes
        raise KeyboardInterrupt

    monkeypatch.setattr(sw, "run_sweep", interrupted)
    code, line = exit_and_line(command, capsys)
    assert code == 130 and line == "pgjax sweep: interrupted"
    assert bool(list(tmp_path.iterdir())) == resumed
