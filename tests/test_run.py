"""The training run in the library (`pgjax.runtime.run`): `pgjax.train` and `pgjax.resume`
called as a notebook calls them, no command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from test_faults import _unshare_works, one_line_error

import pgjax
from pgjax.records import runs
from pgjax.runtime import run_record, run_result
from pgjax.runtime.chunk_handler import ChunkHandler
from pgjax.runtime.run_lock import RunLock
from pgjax.runtime.run_record import ResumeError

ROOT = Path(__file__).resolve().parent.parent
TINY = ["total_timesteps=3072", "num_steps=64", "hidden_sizes=[16]", "update_epochs=1"]


def leaves(tree):
    def host(x):
        return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)

    return [host(x) for x in jax.tree.leaves(tree)]


def test_notebook_stops_a_checkpointed_run_and_resumes_it_bit_for_bit(tmp_path):
    """A run started from Python, stopped after its first chunk (as if killed), and
    finished by `pgjax.resume(run_dir)` writes the bytes of an uninterrupted run."""
    config = pgjax.load_config(ROOT / "configs/ppo_cartpole.toml", TINY)
    options = {"seeds": 2, "chunks": 3, "eval_episodes": 2}
    whole = pgjax.train(config, out=tmp_path / "whole", **options)
    assert whole.status == "finished" and whole.exit_code == 0 and whole.updates_done == 12
    assert set(whole.summary["final_train_return"]) == {"0", "1"} and (whole.run_dir / "summary.json").exists()

    stopped = pgjax.train(ROOT / "configs/ppo_cartpole.toml", overrides=TINY, out=tmp_path / "stopped",
                          stop_after=1, **options)
    assert stopped.status == "stopped" and stopped.exit_code == 0 and stopped.updates_done == 4
    assert stopped.state is None and not (stopped.run_dir / "summary.json").exists()
    assert sorted(p.name for p in (stopped.run_dir / "checkpoints").iterdir() if p.name.isdigit()) == ["4"]

    resumed = pgjax.resume(stopped.run_dir)
    assert resumed.status == "finished" and resumed.run_dir == stopped.run_dir
    for name in ("metrics.csv", runs.EVAL_FILE):
        assert (resumed.run_dir / name).read_bytes() == (whole.run_dir / name).read_bytes(), name
    assert resumed.summary["final_train_return"] == whole.summary["final_train_return"]
    assert resumed.summary["eval_return_mean"] == whole.summary["eval_return_mean"]
    assert all(np.array_equal(a, b) for a, b in zip(leaves(whole.state), leaves(resumed.state), strict=True))


def test_a_resumed_runs_compile_and_eval_seconds_add_up_over_its_starts(tmp_path, monkeypatch):
    """summary.json's compile_seconds and eval_seconds_during_training, like its
    wall_seconds, count every start of a run: the checkpoint keeps them so far. (Each
    start's compile is set to a known figure: 100 s, then 7 s.)"""
    from pgjax.records.checkpoint import Checkpointer
    from pgjax.runtime.seed_cells import SeedCells

    compiles = iter([100.0, 7.0])
    check_memory = SeedCells.check_memory
    monkeypatch.setattr(SeedCells, "check_memory",
                        lambda self, *args: {**check_memory(self, *args), "compile_seconds": next(compiles)})
    stopped = pgjax.train(ROOT / "configs/ppo_cartpole.toml", overrides=TINY, out=tmp_path, stop_after=1,
                          seeds=1, chunks=3, eval_episodes=2)
    meta = Checkpointer(stopped.run_dir / "checkpoints").read_meta(4)
    assert meta["compile_seconds"] == 100.0 and meta["wall_seconds"] > 100.0 + meta["eval_seconds_during_training"]
    assert meta["eval_seconds_during_training"] > 0  # the evaluation after the first chunk
    resumed = pgjax.resume(stopped.run_dir)
    summary = resumed.summary
    assert summary["compile_seconds"] == 107.0
    assert summary["wall_seconds"] > meta["wall_seconds"] + 7.0 + summary["eval_seconds_during_training"] - meta["eval_seconds_during_training"]
    assert summary["eval_seconds_during_training"] > meta["eval_seconds_during_training"]


def test_notebook_errors_are_exceptions_before_anything_starts(tmp_path):
    with pytest.raises(pgjax.config.ConfigError, match="hparams.gamma=1.5 is out of range"):
        pgjax.train("ppo", overrides=["hparams.gamma=1.5"], out=tmp_path)
    with pytest.raises(pgjax.config.ConfigError, match="seeds=0: a count must be >= 1"):
        pgjax.train("ppo", seeds=0, out=tmp_path)
    with pytest.raises(pgjax.config.ConfigError, match="no config.json there"):
        pgjax.resume(tmp_path)
    assert not any(tmp_path.iterdir())


# --- reliability of the run logic (issue 34) --------------------------------------------------

OPTIONS = {"seeds": 2, "chunks": 3, "eval_episodes": 2}


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "pgjax", *map(str, args)], check=False, capture_output=True,
                          text=True, cwd=ROOT, timeout=900, **kw)


def unstarted_run(folder: Path) -> Path:
    """A run folder as a run killed while compiling leaves it: config.json only."""
    config = pgjax.load_config(ROOT / "configs/ppo_cartpole.toml", TINY)
    record = run_record.new_record("ppo", config, {"seeds": [0, 1], "chunks": 3, "eval_episodes": 2})
    run_dir = folder / "ppo-CartPole-v1-unstarted"
    run_dir.mkdir(parents=True)
    runs.write_json(run_dir / "config.json", {**record, "config": pgjax.config.to_dict(config)})
    return run_dir


def test_resume_refuses_overrides_that_change_the_config_before_compiling(tmp_path):
    """No checkpoint yet (killed while compiling, or checkpoints/ deleted): a resume with
    `--env` or `KEY=VALUE` overrides would train another config in the old folder. They are
    checked against config.json first; overrides that repeat it pass."""
    run_dir = unstarted_run(tmp_path)
    before = (run_dir / "config.json").read_bytes()
    record = run_record.read_record(run_dir)
    with pytest.raises(pgjax.config.ConfigError, match=r"env_id: checkpoint 'CartPole-v1', this run 'Acrobot-v1'"):
        run_record.resumed_config(record, "Acrobot-v1", [], None, run_dir)
    run_record.resumed_config(record, "CartPole-v1", ["num_steps=64", "hparams.gamma=0.99"], None, run_dir)
    result = cli("train", "--resume", run_dir, "--no-progress", "--env", "Acrobot-v1", "hidden_sizes=[32]")
    assert result.returncode == 1
    line = one_line_error(result, "--env Acrobot-v1 hidden_sizes=[32] changes the config of the run being resumed",
                          "env_id: checkpoint 'CartPole-v1', this run 'Acrobot-v1'",
                          "hidden_sizes: checkpoint [16], this run [32]", "train a new run with them")
    assert "compiling" not in result.stdout and "delete" not in line
    assert (run_dir / "config.json").read_bytes() == before and sorted(p.name for p in run_dir.iterdir()) == [
        "config.json"]


def test_a_run_folder_is_locked_by_the_process_training_in_it(tmp_path):
    """A second resume of a run being trained says who holds it and exits 1; a lock left by
    a process that died is taken over."""
    run_dir = unstarted_run(tmp_path)
    lock = RunLock(run_dir).acquire()
    try:
        holder = json.loads((run_dir / "run.lock").read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(ResumeError, match=f"in use by another pgjax process \\(pid {os.getpid()} on host "):
            RunLock(run_dir).acquire()
        result = cli("train", "--resume", run_dir, "--no-progress")
        assert result.returncode == 1
        one_line_error(result, f"{run_dir} is in use by another pgjax process (pid {os.getpid()} on host",
                       "wait for it to finish or stop it")
        assert "compiling" not in result.stdout
    finally:
        lock.release()
    assert not (run_dir / "run.lock").exists()
    (run_dir / "run.lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": "gone", "since": "then"}))
    lock = RunLock(run_dir).acquire()  # the dead holder's flock went with it
    assert json.loads((run_dir / "run.lock").read_text())["pid"] == os.getpid()
    lock.release()


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -m and bind mounts (root)")
def test_resume_in_a_read_only_folder_is_one_line(tmp_path):
    """chmod does not stop root: the folder is bind-mounted read-only in a mount namespace."""
    run_dir = unstarted_run(tmp_path)
    cmd = (f"mount --bind {run_dir} {run_dir} && mount -o remount,ro,bind {run_dir} && "
           f"{sys.executable} -m pgjax train --resume {run_dir} --no-progress")
    result = subprocess.run(["unshare", "-m", "sh", "-c", cmd], check=False, capture_output=True, text=True,
                            cwd=ROOT, timeout=900)
    assert result.returncode == 1
    one_line_error(result, f"{run_dir} cannot be written (Read-only file system)", "copy the folder")


def test_a_chunk_plan_with_fewer_chunks_than_asked_is_said(capsys):
    config = pgjax.load_config(ROOT / "configs/ppo_cartpole.toml", ["total_timesteps=9984", "num_steps=64"])
    assert config.num_updates == 39
    record = run_record.new_record("ppo", config, {"chunks": 4})
    assert record["chunks"] == 4
    err = capsys.readouterr().err
    assert "note: --chunks 4: the 39 updates run as 3 equal chunks of 13 updates" in err
    run_record.new_record("ppo", config, {"chunks": 3})
    run_record.new_record("ppo", config, {})  # the default 20 becomes 13 chunks of 3 without a word
    assert capsys.readouterr().err == ""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run (2 seeds, 3 chunks of 4 updates, evaluated after each)."""
    return pgjax.train(ROOT / "configs/ppo_cartpole.toml", overrides=TINY,
                       out=tmp_path_factory.mktemp("reference"), **OPTIONS)


@pytest.mark.parametrize("damage", ["deleted", "torn"])
def test_damaged_eval_csv_is_recomputed_on_resume(damage, reference, tmp_path):
    """eval.csv deleted, or its last row torn: the resume continues from a checkpoint before
    the first missing evaluation and computes it again; both files end as the reference's."""
    stopped = pgjax.train(ROOT / "configs/ppo_cartpole.toml", overrides=TINY, out=tmp_path, stop_after=2, **OPTIONS)
    eval_csv = stopped.run_dir / runs.EVAL_FILE
    if damage == "deleted":
        eval_csv.unlink()
    else:
        eval_csv.write_bytes(eval_csv.read_bytes()[:-7])
    resumed = pgjax.resume(stopped.run_dir)
    assert resumed.status == "finished"
    for name in ("metrics.csv", runs.EVAL_FILE):
        assert (resumed.run_dir / name).read_bytes() == (reference.run_dir / name).read_bytes(), name


def test_a_diverged_seed_keeps_its_last_finite_checkpoint_and_the_run_exits_3(tmp_path, monkeypatch, capsys):
    """Seed 1 turns non-finite during the third chunk (as if its parameters overflowed):
    the checkpoint after the second chunk is kept in finite_checkpoints/ (rotation keeps
    only the newest two), the warning and the final line name (seed, update), and the run
    ends with exit code 3 (`run_result.DIVERGED_EXIT`)."""
    call = ChunkHandler.__call__

    def diverging(self, updates_done, state, metrics):
        if updates_done > 8:
            metrics = {**metrics, "finite": metrics["finite"].copy()}
            metrics["finite"][1, 1:] = 0  # non-finite from update 10
        return call(self, updates_done, state, metrics)

    monkeypatch.setattr(ChunkHandler, "__call__", diverging)
    config = pgjax.load_config(ROOT / "configs/ppo_cartpole.toml", TINY)
    result = pgjax.train(config, out=tmp_path, seeds=2, chunks=6, eval_episodes=0)
    err = capsys.readouterr().err
    assert result.status == "finished" and result.exit_code == run_result.DIVERGED_EXIT == 3
    assert result.summary["diverged_at_update"] == {"0": None, "1": 10}
    kept = result.run_dir / run_result.FINITE_DIR / "8"
    assert "warning: non-finite parameters or loss: seed 1 at update 10; its last finite state is kept in" in err
    assert "non-finite parameters or loss: seed 1 at update 10; the last finite checkpoints are kept in" in err
    assert sorted(p.name for p in (result.run_dir / "checkpoints").iterdir()) == ["10", "12"]
    from pgjax.records.checkpoint import Checkpointer

    assert Checkpointer(kept.parent).read_meta(8)["updates_done"] == 8


def test_a_signal_after_the_last_update_finishes_the_run(tmp_path, monkeypatch, capsys):
    """SIGINT during the last chunk: nothing is left to train, so the run finishes (summary,
    evaluation) instead of asking for a resume. One seed: no "1 seeds", and no "Mean of
    empty slice" from a chunk whose last updates finished no episode."""
    import signal
    import warnings

    call = ChunkHandler.__call__

    def signalled(self, updates_done, state, metrics):
        if updates_done == self.config.num_updates:
            self.signals.received = signal.SIGINT
        return call(self, updates_done, state, metrics)

    monkeypatch.setattr(ChunkHandler, "__call__", signalled)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pgjax.train(ROOT / "configs/sac_pendulum.toml", overrides=["total_timesteps=600",
                             "learning_starts=100", "hidden_sizes=[16]"], out=tmp_path, chunks=4, eval_episodes=1)
    out, err = capsys.readouterr()
    assert result.status == "finished" and result.exit_code == 0 and (result.run_dir / "summary.json").exists()
    assert "SIGINT came after the last update: finishing the run" in err and "--resume" not in err
    assert "(125 updates per chunk, 1 seed)" in out
    assert not [w for w in caught if "Mean of empty slice" in str(w.message)]
