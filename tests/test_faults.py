"""Faults injected into runs and run folders: damaged checkpoints and files, signals, runs
killed while compiling, contradicting flags, failing writes. Each test asserts the one-line
message, the exit code, and that nothing already computed is lost or left half-written
(a resumed run ends with the same metrics, byte for byte, as one never disturbed).

The CLI runs in a subprocess, as a user would run it; one stopped run folder and one
uninterrupted reference are trained once per module and copied per test."""

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.records import runs
from pgjax.records.checkpoint import Checkpointer, CheckpointError, CheckpointWriteError, CorruptCheckpointError
from pgjax.runtime.experiment import evaluation_updates

ROOT = Path(__file__).resolve().parent.parent
# 24 updates of 4 envs x 64 steps, two seeds: seconds per run, mostly compilation.
TINY = ["--config", "configs/ppo_cartpole.toml", "--seeds", "0,1", "--no-progress", "--eval-episodes", "3",
        "total_timesteps=6144", "num_steps=64", "hidden_sizes=[16]", "update_epochs=1", "num_minibatches=2"]
STOP_CHUNKS = ["--chunks", "6"]  # checkpoints after 4, 8, ... updates
REF_CHUNKS = ["--chunks", "24"]  # one update per chunk: a long run for signals


def pgjax(*args, **kw):
    return subprocess.run([sys.executable, "-m", "pgjax", *map(str, args)], check=False, capture_output=True,
                          text=True, cwd=ROOT, timeout=900, **kw)


def popen(*args):
    return subprocess.Popen([sys.executable, "-m", "pgjax", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def only_dir(folder: Path) -> Path:
    (run_dir,) = [p for p in folder.iterdir() if p.is_dir()]
    return run_dir


def one_line_error(result, *needles):
    """The failure is one stderr line (after any notes) holding every needle; no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "note:" not in line]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], result.stderr
    return lines[0]


def steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())


def no_partial(run_dir: Path) -> None:
    ckpt = run_dir / "checkpoints"
    assert not ckpt.exists() or not [p for p in ckpt.iterdir() if "tmp" in p.name]


def metric_updates(run_dir: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    with (run_dir / "metrics.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["seed"], []).append(int(row["update"]))
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run never disturbed: its metrics.csv is what every resumed run must end with."""
    out = tmp_path_factory.mktemp("reference")
    result = pgjax("train", *TINY, *REF_CHUNKS, "--out", out)
    assert result.returncode == 0, result.stderr
    return only_dir(out)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """Stopped after 2 of 6 chunks: checkpoints at updates 4 and 8, metrics up to 8."""
    out = tmp_path_factory.mktemp("stopped")
    result = pgjax("train", *TINY, *STOP_CHUNKS, "--out", out, "--stop-after", "2")
    assert result.returncode == 0, result.stderr
    run_dir = only_dir(out)
    assert steps(run_dir) == [4, 8]
    return run_dir


@pytest.fixture
def stopped(stopped_run, tmp_path):
    return Path(shutil.copytree(stopped_run, tmp_path / "run"))


def sorted_rows(run_dir: Path) -> list[bytes]:
    header, *rows = (run_dir / "metrics.csv").read_bytes().splitlines(keepends=True)
    return [header, *sorted(rows)]


def resume_ok(run_dir: Path, reference: Path, *flags):
    result = pgjax("train", "--resume", run_dir, *flags)
    assert result.returncode == 0, result.stderr
    # Row for row, byte for byte; the order of rows follows the chunks (seed-major within each).
    assert sorted_rows(run_dir) == sorted_rows(reference)
    summary = runs.read_json(run_dir / "summary.json")
    ref = runs.read_json(reference / "summary.json")
    assert summary["final_train_return"] == ref["final_train_return"]
    assert summary["eval_return_mean"] == ref["eval_return_mean"]
    # Evaluations during training: one per chunk of the run's plan, none lost or repeated
    # by the stop; each equals the reference's at that update (it evaluates every update).
    evals, ref_evals = eval_rows(run_dir), eval_rows(reference)
    chunks = runs.read_json(run_dir / "config.json")["chunks"]
    expected = sorted((seed, update) for seed in (0, 1) for update in evaluation_updates(24, chunks, 1))
    assert sorted((int(r.split(b",")[0]), int(r.split(b",")[1])) for r in evals) == expected
    assert set(evals) <= set(ref_evals)
    no_partial(run_dir)
    return result


def eval_rows(run_dir: Path) -> list[bytes]:
    """eval.csv rows (header dropped), byte for byte."""
    return (run_dir / runs.EVAL_FILE).read_bytes().splitlines()[1:]


def array_files(step_dir: Path) -> list[Path]:
    files = sorted(p for p in (step_dir / "state").rglob("*") if p.parent.name == "d" and p.is_file())
    assert files, f"no array files in {step_dir}: the layout changed"
    return files


def truncate_arrays(step_dir: Path) -> None:
    for path in array_files(step_dir):
        os.truncate(path, path.stat().st_size // 2)


def delete_arrays(step_dir: Path) -> None:
    for path in array_files(step_dir):
        path.unlink()


# --- damaged checkpoints: fall back to the newest intact one ---------------------------------

DAMAGE = {
    "array truncated": truncate_arrays,
    "array deleted": delete_arrays,
    "record corrupt": lambda step: (step / "meta" / "metadata").write_text("{not json"),
    "record deleted": lambda step: (step / "meta" / "metadata").unlink(),
}


# One kind of damage in the default run (each resume is a CLI run); the rest with -m slow.
@pytest.mark.parametrize("damage", [d if i == 0 else pytest.param(d, marks=pytest.mark.slow) for i, d in enumerate(DAMAGE)])
def test_resume_skips_a_damaged_newest_checkpoint(stopped, reference, damage):
    DAMAGE[damage](stopped / "checkpoints" / "8")
    result = resume_ok(stopped, reference)
    assert "after 4 of 24 updates" in result.stdout
    notes = [line for line in result.stderr.splitlines() if "skipping a damaged checkpoint" in line]
    assert len(notes) == 1 and str(stopped / "checkpoints" / "8") in notes[0]


def test_resume_with_every_checkpoint_damaged_fails_clearly(stopped):
    for step in (4, 8):
        DAMAGE["array truncated"](stopped / "checkpoints" / str(step))
    before = (stopped / "metrics.csv").read_bytes()
    result = pgjax("train", "--resume", stopped)
    assert result.returncode == 1
    one_line_error(result, "no intact checkpoint", "delete", "to train again from update 0")
    assert steps(stopped) == [4, 8] and (stopped / "metrics.csv").read_bytes() == before  # nothing touched


@pytest.mark.parametrize("damage", ["array truncated", "record corrupt"])
def test_eval_skips_a_damaged_newest_checkpoint(stopped, damage):
    DAMAGE[damage](stopped / "checkpoints" / "8")
    result = pgjax("eval", stopped, "--episodes", "2")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (note,) = [line for line in result.stderr.splitlines() if "skipping a damaged checkpoint" in line]
    assert "checkpoints/8" in note
    assert runs.read_json(stopped / "eval_greedy.json")["checkpoint_updates"] == 4
    assert steps(stopped) == [4, 8]  # eval only reads


def test_eval_with_every_checkpoint_damaged_fails_clearly(stopped):
    for step in (4, 8):
        DAMAGE["record corrupt"](stopped / "checkpoints" / str(step))
    result = pgjax("eval", stopped, "--episodes", "2")
    assert result.returncode == 1
    one_line_error(result, "no intact checkpoint left", "metadata is not valid JSON")


def test_eval_of_a_damaged_step_asked_for_fails_clearly(stopped):
    DAMAGE["array deleted"](stopped / "checkpoints" / "4")
    result = pgjax("eval", stopped, "--episodes", "2", "--step", "4")
    assert result.returncode == 1
    one_line_error(result, "checkpoints/4 is damaged")


# --- damaged run files -------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{\"algo\": \"ppo\", ", "", "\x00\x01binary"])
def test_corrupt_config_json_is_named_on_resume_and_eval(stopped, text):
    (stopped / "config.json").write_text(text)
    for result in (pgjax("train", "--resume", stopped), pgjax("eval", stopped, "--episodes", "2")):
        assert result.returncode == 1
        line = one_line_error(result, str(stopped / "config.json"), "not valid JSON")
        assert "JSONDecodeError" not in line


def test_config_json_without_its_settings_is_named(stopped):
    record = runs.read_json(stopped / "config.json")
    del record["seeds"]
    runs.write_json(stopped / "config.json", record)
    result = pgjax("train", "--resume", stopped)
    assert result.returncode == 1
    one_line_error(result, "config.json is damaged: no seeds")


def test_corrupt_sweep_json_is_named(tmp_path):
    (tmp_path / "sweep.json").write_text("[1, 2")
    result = pgjax("sweep", "--resume", tmp_path, "--no-progress")
    assert result.returncode == 1
    one_line_error(result, str(tmp_path / "sweep.json"), "not valid JSON")


def test_torn_metrics_row_is_dropped_and_the_run_ends_correct(stopped, reference):
    """The last row cut mid-write: seed 1 then has 7 complete updates, so the run continues
    from the checkpoint at 4 (the one at 8 has no complete metrics behind it)."""
    text = (stopped / "metrics.csv").read_text()
    (stopped / "metrics.csv").write_text(text[: len(text) - 25])
    result = resume_ok(stopped, reference)
    assert "dropping 1 torn row(s)" in result.stderr and "complete rows cover 7 updates" in result.stderr
    assert "after 4 of 24 updates" in result.stdout
    assert "deleted the later one(s) at update 8" in result.stderr


@pytest.mark.slow  # a CLI run of its own; the default run keeps one case per fault family
def test_metrics_torn_before_the_first_checkpoint_restarts_from_zero(stopped, reference):
    with (stopped / "metrics.csv").open() as f:
        header, first = f.readline(), f.readline()
    (stopped / "metrics.csv").write_text(header + first[:5])
    result = resume_ok(stopped, reference)
    assert "training again from update 0" in result.stderr and "after 0 of 24 updates" in result.stdout


def test_deleted_metrics_csv_is_a_clear_error_and_keeps_the_checkpoints(stopped):
    (stopped / "metrics.csv").unlink()
    result = pgjax("train", "--resume", stopped)
    assert result.returncode == 1
    one_line_error(result, "metrics.csv is missing while checkpoints exist (updates 4, 8)", "restore the file")
    assert steps(stopped) == [4, 8]


# --- a run killed before its first checkpoint --------------------------------------------


@pytest.mark.slow  # a CLI run of its own; the default run keeps one case per fault family
def test_run_killed_while_compiling_leaves_no_checkpoints_and_resumes_from_zero(tmp_path, reference):
    proc = popen("train", *TINY, *REF_CHUNKS, "--out", tmp_path)
    deadline = time.time() + 300
    while not list(tmp_path.glob("*/config.json")) and time.time() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    run_dir = only_dir(tmp_path)
    assert not (run_dir / "checkpoints").exists()  # created by the first save only
    result = resume_ok(run_dir, reference)
    assert "no checkpoint yet" in result.stderr and "after 0 of 24 updates" in result.stdout


@pytest.mark.slow  # a CLI run of its own; the default run keeps one case per fault family
def test_empty_checkpoint_folder_and_half_saved_checkpoint_start_from_zero(stopped, reference):
    shutil.rmtree(stopped / "checkpoints")
    (stopped / "checkpoints" / "4.orbax-checkpoint-tmp-123").mkdir(parents=True)
    result = resume_ok(stopped, reference)
    assert "removed the half-written checkpoint(s) 4.orbax-checkpoint-tmp-123" in result.stderr
    assert "after 0 of 24 updates" in result.stdout


# --- signals -------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_signal_stops_after_the_chunk_keeps_the_checkpoint_and_says_how_to_resume(tmp_path, reference, signum):
    proc = popen("train", *TINY, *REF_CHUNKS, "--out", tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        found = list(tmp_path.glob("*/metrics.csv"))
        if found and len(found[0].read_text().splitlines()) > 1:
            break
        time.sleep(0.005)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    run_dir = only_dir(tmp_path)
    kept = steps(run_dir)[-1]
    assert 1 <= kept < 24, "the run ended before the signal: a weak test"
    assert f"interrupted by {signal.Signals(signum).name}; kept the checkpoint at update {kept}" in err
    assert f"continue with: pgjax train --resume {run_dir}" in err
    assert metric_updates(run_dir) == {"0": list(range(1, kept + 1)), "1": list(range(1, kept + 1))}
    no_partial(run_dir)
    assert not (run_dir / "summary.json").exists()
    resume_ok(run_dir, reference)


# --- settings kept on resume ------------------------------------------------------------------


@pytest.mark.parametrize("flag, value, stored", [
    ("--seeds", "0,1,2", "seeds=[0, 1]"), ("--seeds", "3", "seeds=[0, 1]"), ("--root-seed", "5", "root_seed=0"),
    ("--chunks", "7", "chunks=6"), ("--eval-episodes", "9", "eval_episodes=3"), ("--width", "3", "width="),
    ("--eval-every", "2", "eval_every=1"), ("--eval-mode", "stochastic", "eval_mode=greedy"),
])
def test_resume_refuses_a_flag_that_contradicts_the_run(stopped, flag, value, stored):
    result = pgjax("train", "--resume", stopped, flag, value)
    assert result.returncode == 1
    one_line_error(result, f"{flag} ", f"contradicts {stored}", "of the run being resumed", f"drop {flag}")
    assert steps(stopped) == [4, 8]


def test_resume_refuses_out_and_no_checkpoint(stopped, tmp_path):
    result = pgjax("train", "--resume", stopped, "--out", tmp_path)
    assert result.returncode == 1
    one_line_error(result, "a resumed run stays in its folder")
    result = pgjax("train", "--resume", stopped, "--no-checkpoint")
    assert result.returncode == 1
    one_line_error(result, "--no-checkpoint contradicts the run being resumed")


def test_resume_keeps_every_setting_and_the_wall_clock(stopped, reference):
    """Flags that repeat the run's settings are accepted; those not given keep the run's
    (3 evaluation episodes, not the default 32); wall_seconds continues from the checkpoint."""
    saved = json.loads((stopped / "checkpoints" / "8" / "meta" / "metadata").read_text())["wall_seconds"]
    assert saved > 0
    resume_ok(stopped, reference, "--seeds", "0,1", "--chunks", "6")
    summary = runs.read_json(stopped / "summary.json")
    assert summary["eval_episodes"] == 3
    assert summary["wall_seconds"] > saved


def test_finished_run_is_not_extended_by_changing_total_timesteps(reference, tmp_path):
    run_dir = Path(shutil.copytree(reference, tmp_path / "run"))
    result = pgjax("train", "--resume", run_dir, "total_timesteps=12288")
    assert result.returncode == 1
    assert "total_timesteps: checkpoint 6144, this run 12288" in result.stderr and "Traceback" not in result.stderr


# --- failing writes ---------------------------------------------------------------------------

# Runs the CLI with orbax's save failing as on a full disk at its second call.
FAIL_SECOND_SAVE = """
import errno, sys
import orbax.checkpoint as ocp
save, calls = ocp.CheckpointManager.save, []
def failing(self, step, *args, **kwargs):
    calls.append(step)
    if len(calls) == 2:
        raise OSError(errno.ENOSPC, "No space left on device")
    return save(self, step, *args, **kwargs)
ocp.CheckpointManager.save = failing
from pgjax.commands.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_failed_checkpoint_write_keeps_the_previous_checkpoint_and_metrics(tmp_path, reference):
    result = subprocess.run([sys.executable, "-c", FAIL_SECOND_SAVE, "train", *TINY, *STOP_CHUNKS, "--out",
                             str(tmp_path)], check=False, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 1
    one_line_error(result, "writing a checkpoint to", "failed: No space left on device",
                   "kept the checkpoint at update 4, metrics.csv up to it", "continue with: pgjax train --resume")
    run_dir = only_dir(tmp_path)
    assert steps(run_dir) == [4] and metric_updates(run_dir) == {"0": [1, 2, 3, 4], "1": [1, 2, 3, 4]}
    no_partial(run_dir)
    resume_ok(run_dir, reference)


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           check=False, capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -m and tmpfs mounts (root)")
@pytest.mark.slow  # a CLI run of its own; the default run keeps one case per fault family
def test_full_disk_during_a_checkpoint(stopped_run, tmp_path, reference):
    """A tmpfs with room for the run folder and little more than one checkpoint: a later
    save fails with ENOSPC. The run stops with one line; the folder, copied out of the
    tmpfs, resumes to the reference."""
    def kib(path):
        return int(subprocess.run(["du", "-sk", str(path)], check=True, capture_output=True, text=True).stdout.split()[0])
    size = kib(stopped_run) - kib(stopped_run / "checkpoints" / "4") // 2 + 64
    mnt, keep = tmp_path / "mnt", tmp_path / "keep"
    mnt.mkdir()
    keep.mkdir()
    cmd = (f"mount -t tmpfs -o size={size}k tmpfs {mnt} && {sys.executable} -m pgjax train "
           + " ".join(f"'{a}'" for a in [*TINY, *STOP_CHUNKS, "--out", str(mnt)])
           + f"; rc=$?; cp -a {mnt}/. {keep}/; exit $rc")
    result = subprocess.run(["unshare", "-m", "sh", "-c", cmd], check=False, capture_output=True, text=True,
                            cwd=ROOT, timeout=900)
    assert result.returncode == 1, result.stderr
    one_line_error(result, "No space left on device", "continue with: pgjax train --resume")
    run_dir = only_dir(keep)
    kept = steps(run_dir)[-1] if (run_dir / "checkpoints").exists() and steps(run_dir) else 0
    assert kept < 24
    assert metric_updates(run_dir) == {"0": list(range(1, kept + 1)), "1": list(range(1, kept + 1))}
    no_partial(run_dir)
    (run_dir / "config.json").write_text((run_dir / "config.json").read_text())  # a plain copy, writable
    resume_ok(run_dir, reference)


# --- the pieces, in process -----------------------------------------------------------------


def _tiny_state(x):
    return {"w": jnp.arange(6.0) + x, "b": jnp.ones((2, 3)) * x}


EXPECTED = {"algo": "t", "config": {"a": 1}, "num_seeds": 1}


WRITE_TWO = """
import sys
sys.path.insert(0, "tests")
from test_faults import EXPECTED, _tiny_state
from pgjax.records.checkpoint import Checkpointer
ckpt = Checkpointer(sys.argv[1])
for step in (1, 2):
    ckpt.save(step, _tiny_state(step), EXPECTED)
ckpt.close()
"""


@pytest.fixture(scope="module")
def two_checkpoints_written(tmp_path_factory):
    """Written by another process: in this one, tensorstore's cache would still hold the
    arrays and hide damage done to the files."""
    path = tmp_path_factory.mktemp("two") / "ck"
    subprocess.run([sys.executable, "-c", WRITE_TWO, str(path)], check=True, cwd=ROOT, timeout=300)
    return path


@pytest.fixture
def two_checkpoints(two_checkpoints_written, tmp_path):
    return Path(shutil.copytree(two_checkpoints_written, tmp_path / "ck"))


def test_checkpointer_creates_its_folder_only_when_it_saves(tmp_path):
    ckpt = Checkpointer(tmp_path / "ck")
    assert ckpt.steps() == [] and ckpt.latest_step() is None
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        ckpt.restore(_tiny_state(0), EXPECTED)
    ckpt.close()
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("damage", DAMAGE)
def test_restore_falls_back_past_a_damaged_checkpoint(two_checkpoints, damage):
    DAMAGE[damage](two_checkpoints / "2")
    skipped = []
    state, meta = Checkpointer(two_checkpoints).restore(_tiny_state(0), EXPECTED, on_skip=skipped.append)
    assert meta["updates_done"] == 1
    np.testing.assert_array_equal(state["w"], np.arange(6.0) + 1)
    (err,) = skipped
    assert isinstance(err, CorruptCheckpointError) and str(two_checkpoints / "2") in str(err)
    assert "\n" not in str(err) and len(str(err)) < 400


def test_a_mismatch_is_not_mistaken_for_damage(two_checkpoints):
    skipped = []
    with pytest.raises(CheckpointError, match="config differs") as info:
        Checkpointer(two_checkpoints).restore(_tiny_state(0), {**EXPECTED, "config": {"a": 2}}, on_skip=skipped.append)
    assert not isinstance(info.value, CorruptCheckpointError) and skipped == []


def test_restore_at_most_and_delete_after(two_checkpoints):
    ckpt = Checkpointer(two_checkpoints)
    _, meta = ckpt.restore(_tiny_state(0), EXPECTED, at_most=1)
    assert meta["updates_done"] == 1
    assert ckpt.delete_after(1) == [2] and ckpt.steps() == [1]
    ckpt.close()


def test_failed_save_raises_one_line_and_leaves_no_partial_folder(two_checkpoints, monkeypatch):
    import orbax.checkpoint as ocp

    def full_disk(self, step, *args, **kwargs):
        (self.directory / f"{step}.orbax-checkpoint-tmp-9").mkdir()
        raise OSError(errno.ENOSPC, "No space left on device")

    ckpt = Checkpointer(two_checkpoints)
    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match=r"failed: No space left on device$"):
        ckpt.save(3, _tiny_state(3), EXPECTED)
    ckpt.close()
    assert sorted(p.name for p in two_checkpoints.iterdir()) == ["1", "2"]


def test_save_under_a_regular_file_raises_checkpoint_write_error(tmp_path):
    (tmp_path / "file").write_text("x")
    ckpt = Checkpointer(tmp_path / "file" / "ck")
    with pytest.raises(CheckpointWriteError, match="writing a checkpoint to .* failed"):
        ckpt.save(1, _tiny_state(1), EXPECTED)
    ckpt.close()


def test_read_json_names_the_damaged_or_missing_file(tmp_path):
    (tmp_path / "a.json").write_text('{"x": ')
    with pytest.raises(runs.RunFileError, match=r"a\.json is damaged, not valid JSON \(Expecting value"):
        runs.read_json(tmp_path / "a.json")
    with pytest.raises(runs.RunFileError, match=r"b\.json is missing"):
        runs.read_json(tmp_path / "b.json")


METRICS = "seed,update,loss\r\n0,1,0.5\r\n1,1,0.25\r\n0,2,0.125\r\n1,2,1\r\n"


@pytest.mark.parametrize("tail, covered, torn", [
    ("", 2, 0),                       # intact
    ("0,3,0.7", 2, 1),                # last line without its newline
    ("0,3\r\n", 2, 1),                # a field short
    ("0,3,0.7e\r\n", 2, 1),           # a number cut mid-exponent
    ("0,3,0.7\r\n1,3,0.1\r\n", 3, 0),  # one more complete update
])
def test_metrics_coverage_finds_torn_rows(tmp_path, tail, covered, torn):
    path = tmp_path / "metrics.csv"
    path.write_bytes((METRICS + tail).encode())
    assert runs.metrics_coverage(path, [0, 1]) == (covered, torn)


def test_metrics_coverage_of_a_missing_file_or_a_seed_with_a_gap(tmp_path):
    assert runs.metrics_coverage(tmp_path / "metrics.csv", [0]) == (None, 0)
    (tmp_path / "metrics.csv").write_text("seed,update,loss\n0,1,1\n0,3,1\n1,1,1\n1,2,1\n")
    assert runs.metrics_coverage(tmp_path / "metrics.csv", [0, 1]) == (1, 0)


def test_resumed_metrics_writer_drops_torn_and_later_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_bytes((METRICS + "0,3,0.7\r\n1,3,0.1\r\n0,4,0.").encode())
    writer = runs.MetricsWriter(path, [0, 1], resume_at=2)
    assert path.read_bytes() == METRICS.encode() and writer.updates_written == 2
    writer.append({"loss": np.array([[3.0], [4.0]])})
    assert path.read_text().splitlines()[-2:] == ["0,3,3", "1,3,4"]
    assert not list(tmp_path.glob(".metrics.csv.tmp*"))
