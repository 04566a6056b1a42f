"""Several processes through JAX's own runtime (`jax.distributed`, gloo collectives on CPU):
two processes on localhost, two host devices each, one mesh of four devices.

The default run starts the two processes on a tiny program (the shared decisions and one
sharded computation); `-m slow` runs a whole `pgjax sweep` and a whole `pgjax train` across
the two processes and compares their files with a single-process, single-device run: the
sweep's cell files (records and kept policies) byte for byte, the run's metrics.csv byte for
byte and its evaluation equal, and the run stopped, resumed by two processes (once from a
damaged newest checkpoint) to the same bytes. Process 1 is given another `--out`: it must
stay empty (only process 0 writes); on a resume, a folder that does not exist (process 0
reads for it)."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pgjax.runtime import sharding

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 900


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", *sharding.PROCESS_ENV.values())}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **{sharding.ENV_VAR: "2"})
    return env


def _two_processes(argv_of):
    """Start `argv_of(process_id, port)` for processes 0 and 1; both must exit 0."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, *argv_of(i, port)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for i, (proc, out) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"process {i} failed:\n{out[-3000:]}"
    return outputs


PROBE = textwrap.dedent("""
    import sys
    import jax
    from pgjax.runtime import sharding
    sharding.use_host_devices()
    sharding.initialize_processes(f"localhost:{sys.argv[2]}", 2, int(sys.argv[1]))
    import numpy as np
    me = jax.process_index()
    assert jax.process_count() == 2 and len(jax.devices()) == 4 and len(jax.local_devices()) == 2
    assert sharding.text_from_writer(f"folder-of-{me}") == "folder-of-0"
    assert sharding.from_writer(np.array([me == 0, me == 1])).tolist() == [True, False]
    assert sharding.smallest_over_processes(100 + me) == 100
    mesh = sharding.cell_mesh()
    cells = sharding.pad_cells(np.arange(6.0), 8)  # 8 cells: a vmap group of 2 on each of 4 devices
    f = sharding.cell_function(lambda x: x * x + me * 0, mesh, width=2)
    out = sharding.fetch(f(sharding.put_cells(cells, mesh)))
    assert out.tolist() == [0, 1, 4, 9, 16, 25, 25, 25], out
    assert sharding.smallest_over_processes(5 * 2**30 + me) == 5 * 2**30  # past int32, which x32 would cut
    # Process 0's decision, or its failure, on every process.
    from pgjax.runtime import agreement
    assert agreement.decided_by_writer(lambda: {"me": me, "long": "x" * 5000}, "a probe") == {"me": 0, "long": "x" * 5000}
    def fail():
        raise ValueError(f"refused on {me}")
    try:
        agreement.decided_by_writer(fail, "a probe", (KeyError, ValueError))
        raise AssertionError("no error")
    except ValueError as err:
        assert str(err) == "refused on 0", err
    # Process 0's bits on every process (the others give none): -0.0, a NaN payload, typed
    # keys, in pieces of 16 bytes.
    agreement.PIECE = 16
    tree = {"f": np.array([0x80000000, 0x7FC00001, 0x3FC00000], np.uint32).view(np.float32),
            "keys": jax.random.split(jax.random.key(7), 3), "flags": np.array([False, True]),
            "ints": np.array([2**31 - 1, -5], np.int32), "empty": np.zeros((0, 2), np.float32)}
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
    got = agreement.tree_from_writer(tree if me == 0 else None, like, "a probe")
    assert got["f"].view(np.uint32).tolist() == [0x80000000, 0x7FC00001, 0x3FC00000], got["f"]
    assert got["keys"].dtype == tree["keys"].dtype
    assert (jax.random.key_data(got["keys"]) == jax.random.key_data(tree["keys"])).all()
    assert got["flags"].tolist() == [False, True] and got["ints"].tolist() == [2**31 - 1, -5], got
    assert got["empty"].shape == (0, 2)
    print("probe ok", me, sharding.is_writer())
""")


def test_two_processes_share_one_mesh_and_process_0_decides():
    outputs = _two_processes(lambda i, port: ["-c", PROBE, str(i), str(port)])
    assert "probe ok 0 True" in outputs[0] and "probe ok 1 False" in outputs[1]
    assert not any("[Gloo]" in out for out in outputs), outputs  # gloo's connection lines are filtered


LATE = textwrap.dedent("""
    import sys, time
    import jax, numpy as np
    from pgjax.runtime import agreement, sharding
    sharding.use_host_devices()
    sharding.initialize_processes(f"localhost:{sys.argv[2]}", 2, int(sys.argv[1]))
    sharding.from_writer(np.zeros(2, np.uint8))  # both have joined
    if jax.process_index() == 0:
        time.sleep(8)  # stuck elsewhere, past the other's timeout
    with agreement.bounded_wait("a late probe", timeout=2):
        agreement.bytes_from_writer(b"late" if jax.process_index() == 0 else None)
    print("not reached")
""")


def test_a_process_waiting_for_a_stuck_one_gives_up_with_one_line():
    """Process 1 waits for process 0 past the timeout: one line and exit code 1, not a hang;
    process 0, reaching the exchange after process 1 left, ends with one line too."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-c", LATE, str(i), str(port)], cwd=ROOT, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    try:
        outputs = [proc.communicate(timeout=TIMEOUT)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [1, 1], outputs
    assert "process 1 of 2: the processes did not all agree on a late probe within 2 s" in outputs[1], outputs[1]
    assert "process 0 of 2: the exchange about a late probe failed" in outputs[0], outputs[0]
    assert not any("not reached" in out or "Traceback" in out for out in outputs), outputs


def test_process_settings_come_from_flags_or_environment(monkeypatch):
    for var in sharding.PROCESS_ENV.values():
        monkeypatch.delenv(var, raising=False)
    assert sharding.process_settings() is None
    assert sharding.process_settings("h:1", 2, 1) == {"coordinator": "h:1", "num_processes": 2, "process_id": 1}
    assert sharding.process_settings("auto") == {"coordinator": None, "num_processes": None, "process_id": None}
    monkeypatch.setenv("PGJAX_COORDINATOR", "h:2")
    monkeypatch.setenv("PGJAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("PGJAX_PROCESS_ID", "3")
    assert sharding.process_settings(process_id=0) == {"coordinator": "h:2", "num_processes": 4, "process_id": 0}
    for bad, message in [(("h:1", 2, 2), "--process-id 2 must be in [0, 2)"), (("h:1", None, 0), "--num-processes"),
                         ((None, 2, None), "need --coordinator")]:
        monkeypatch.delenv("PGJAX_COORDINATOR")
        monkeypatch.delenv("PGJAX_NUM_PROCESSES", raising=False)
        monkeypatch.delenv("PGJAX_PROCESS_ID", raising=False)
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
            sharding.process_settings(*bad)
        monkeypatch.setenv("PGJAX_COORDINATOR", "h:2")


TINY = ["--algo", "ppo", "env_id=CartPole-v1", "num_envs=2", "num_steps=8", "total_timesteps=64", "update_epochs=1",
        "num_minibatches=1", "hidden_sizes=[8]", "--width", "2", "--no-progress"]


def _cli(*args):
    return ["-m", "pgjax", *map(str, args)]


def _single(tmp_path, *args):
    env = {**_env(), sharding.ENV_VAR: "1"}
    result = subprocess.run([sys.executable, *_cli(*args)], cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("cell-*"))}


@pytest.mark.slow
def test_sweep_across_two_processes_writes_the_single_process_cells(tmp_path):
    """6 cells (2 learning rates x 3 seeds) on 4 devices in 2 processes, against 1 device."""
    sweep = ["sweep", *TINY, "--grid", "hparams.learning_rate=1e-3,1e-2", "--seeds", "3", "--save-state"]
    _two_processes(lambda i, port: _cli(*sweep, "--out", tmp_path / f"multi{i}", "--coordinator", f"localhost:{port}",
                                        "--num-processes", 2, "--process-id", i))
    _single(tmp_path, *sweep, "--out", tmp_path / "single")
    assert not (tmp_path / "multi1").exists()  # process 1 wrote nothing
    (multi,), (single,) = (tmp_path / "multi0").iterdir(), (tmp_path / "single").iterdir()
    files = _files(multi / "cells")
    assert len(files) == 18 and files == _files(single / "cells")  # records, policies, states
    assert (multi / "results.csv").read_bytes() == (single / "results.csv").read_bytes()


TRAIN = ["train", *TINY, "--seeds", "5", "--chunks", "4", "--eval-episodes", "3"]


def _in_two(*args):
    """`argv_of` for `_two_processes`: the command with process `i`'s flags."""
    return lambda i, port: _cli(*args, "--coordinator", f"localhost:{port}", "--num-processes", 2, "--process-id", i)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(multi, single)`: the run folders of `TRAIN` across two processes and as one process
    on one device; process 1's `--out` (`multi1`) must stay empty."""
    tmp_path = tmp_path_factory.mktemp("trained")
    _two_processes(lambda i, port: _in_two(*TRAIN, "--out", tmp_path / f"multi{i}")(i, port))
    _single(tmp_path, *TRAIN, "--out", tmp_path / "single")
    assert not (tmp_path / "multi1").exists()
    (multi,), (single,) = (tmp_path / "multi0").iterdir(), (tmp_path / "single").iterdir()
    return multi, single


def _checkpoint_bits(run: Path, step: int) -> list[bytes]:
    """Every array of a checkpoint's state, as bytes (read with orbax, no pgjax code)."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    state = ocp.StandardCheckpointer().restore(run / "checkpoints" / str(step) / "state")
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(state)]


@pytest.mark.slow
def test_train_across_two_processes_equals_one_device(trained, tmp_path):
    """5 seeds in vmap groups of 2 on 4 devices in 2 processes (3 padded seeds), against 1
    device: metrics.csv byte for byte, the same evaluation, and a checkpoint that a
    single-process `pgjax eval` restores to the same numbers."""
    multi, single = trained
    assert (multi / "metrics.csv").read_bytes() == (single / "metrics.csv").read_bytes()
    summary = {name: json.loads((d / "summary.json").read_text()) for name, d in (("multi", multi), ("single", single))}
    for key in ("eval_return_mean", "final_train_return", "diverged_at_update"):
        assert summary["multi"][key] == summary["single"][key], key
    assert sorted(p.name for p in (multi / "checkpoints").iterdir()) == ["3", "4"]
    for d in (multi, single):
        _single(tmp_path, "eval", d, "--episodes", "3", "--out", tmp_path / f"again-{d.parent.name}.json")
    again = [json.loads((tmp_path / f"again-{d.parent.name}.json").read_text())["per_seed"] for d in (multi, single)]
    assert again[0] == again[1]


@pytest.mark.slow
def test_train_stopped_and_resumed_across_two_processes_equals_the_uninterrupted_runs(trained, tmp_path):
    """`TRAIN` across two processes stopped after 2 of its 4 chunks; resumed by two
    processes for one chunk; its newest checkpoint damaged; resumed by two processes to the
    end, process 0 falling back to the intact checkpoint. metrics.csv, eval.csv and the last
    two checkpoints' arrays equal those of the uninterrupted 2-process and 1-process runs,
    bit for bit. Process 1 is given a folder that does not exist: process 0 reads and
    decides for every process (they need not share a disk)."""
    _two_processes(_in_two(*TRAIN, "--out", tmp_path / "out", "--stop-after", 2))
    (run,) = (tmp_path / "out").iterdir()
    nowhere = tmp_path / "nowhere"

    def resume(*extra):
        return _two_processes(lambda i, port: _in_two("train", "--resume", run if i == 0 else nowhere,
                                                      "--no-progress", *extra)(i, port))

    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir()) == [1, 2]
    outputs = resume("--stop-after", 1)
    assert all(f"resuming {run} after 2 of 4 updates" in out for out in outputs), outputs
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir()) == [2, 3]
    arrays = [p for p in (run / "checkpoints" / "3" / "state").rglob("*") if p.parent.name == "d" and p.is_file()]
    assert arrays, "no array files in the checkpoint: orbax's layout changed"
    for path in arrays:
        os.truncate(path, path.stat().st_size // 2)
    outputs = resume()
    assert all(f"resuming {run} after 2 of 4 updates" in out for out in outputs), outputs
    assert "skipping a damaged checkpoint" in outputs[0] and "skipping" not in outputs[1]  # process 0 reports
    assert not nowhere.exists()
    summary = json.loads((run / "summary.json").read_text())
    for reference in trained:
        for name in ("metrics.csv", "eval.csv"):
            assert (run / name).read_bytes() == (reference / name).read_bytes(), (name, reference)
        for step in (3, 4):
            assert _checkpoint_bits(run, step) == _checkpoint_bits(reference, step), (step, reference)
        again = json.loads((reference / "summary.json").read_text())
        for key in ("eval_return_mean", "final_train_return", "diverged_at_update"):
            assert summary[key] == again[key], key


@pytest.mark.slow
@pytest.mark.parametrize("first, then", [("two", "one"), ("one", "two")])
def test_a_run_resumes_with_a_different_number_of_processes(trained, tmp_path, first, then):
    """A pre-empted job may come back on another allocation: `TRAIN` stopped after 2 of its
    4 chunks by two processes and resumed to the end by one (on one device), or the other way
    round, equals the uninterrupted runs bit for bit (metrics.csv, eval.csv, the last
    checkpoint's arrays). The state is global, so the process count is not part of it."""
    start = TRAIN + ["--out", tmp_path / "out", "--stop-after", 2]
    if first == "two":
        _two_processes(_in_two(*start))
    else:
        _single(tmp_path, *start)
    (run,) = (tmp_path / "out").iterdir()
    if then == "one":
        _single(tmp_path, "train", "--resume", run, "--no-progress")
    else:
        outputs = _two_processes(_in_two("train", "--resume", run, "--no-progress"))
        assert all(f"resuming {run} after 2 of 4 updates" in out for out in outputs), outputs
    for reference in trained:
        for name in ("metrics.csv", "eval.csv"):
            assert (run / name).read_bytes() == (reference / name).read_bytes(), (name, reference)
        assert _checkpoint_bits(run, 4) == _checkpoint_bits(reference, 4), reference


@pytest.mark.slow
@pytest.mark.parametrize("signalled", [1, 0])
def test_sigterm_to_one_process_stops_both_after_the_same_chunk(tmp_path, signalled):
    """A scheduler may signal one process of a job. SIGTERM to one process alone, mid-run:
    both stop after the same chunk with exit code 143, process 1 says it stopped with process
    0, process 0 keeps its checkpoint and says how to continue, and the run resumed by one
    process equals the uninterrupted one-process run bit for bit. Was: process 1, signalled
    while it waited in the chunk's vote, stopped alone, and both died 300 s later at JAX's
    shutdown barrier (SIGABRT)."""
    import signal
    import time

    long = ["train", *[a for a in TINY if not a.startswith("total_timesteps=")], "total_timesteps=2048",
            "--seeds", "2", "--chunks", "64"]  # 128 updates in 64 chunks, a checkpoint after each
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, *_in_two(*long, "--out", tmp_path / f"out{i}")(i, port)], cwd=ROOT,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    try:
        # Signal once training is under way (a first checkpoint), unless a process ended first;
        # the poll count only guards against a hang.
        for _ in range(TIMEOUT * 50):
            if list((tmp_path / "out0").glob("*/checkpoints/*")) or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.02)
        assert all(p.poll() is None for p in procs), "a process ended before its first checkpoint"
        assert list((tmp_path / "out0").glob("*/checkpoints/*")), "no checkpoint appeared"
        procs[signalled].send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [128 + signal.SIGTERM] * 2, outputs
    assert "interrupted by SIGTERM" in outputs[0] and "continue with: pgjax train --resume" in outputs[0], outputs[0]
    assert "interrupted by SIGTERM; stopped with process 0" in outputs[1], outputs[1]
    (run,) = (tmp_path / "out0").iterdir()
    kept = max(int(p.name) for p in (run / "checkpoints").iterdir())
    assert 0 < kept < 128, kept  # stopped part-way, at a chunk's end
    _single(tmp_path, "train", "--resume", run, "--no-progress")
    _single(tmp_path, *long, "--out", tmp_path / "reference")
    (reference,) = (tmp_path / "reference").iterdir()
    for name in ("metrics.csv", "eval.csv"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    assert _checkpoint_bits(run, 128) == _checkpoint_bits(reference, 128)


@pytest.mark.slow
@pytest.mark.parametrize("command, signalled", [("train", 1), ("train", 0), ("sweep", 1)])
def test_a_signal_to_one_process_while_starting_stops_both(tmp_path, command, signalled):
    """SIGTERM to one process while the run or sweep compiles, before training: both stop
    together with exit code 143 (a train run before its first chunk: no checkpoint, and it
    resumes). Was: JAX's own SIGTERM handler noted the signal and the run went on to the
    end; SIGINT ended that process alone and JAX's shutdown barrier aborted both 300 s
    later with a C++ stack trace."""
    import signal
    import time

    if command == "train":
        args = ["train", *TINY, "--seeds", "2", "--chunks", "4"]
        started = "compiling the training program"  # printed by process 0 just before it compiles
    else:
        args = ["sweep", *TINY, "--grid", "hparams.learning_rate=1e-3,1e-2", "--seeds", "2"]
        started = " compiled group(s) -> "
    port = _free_port()
    logs = [tmp_path / f"log{i}" for i in (0, 1)]
    procs = []
    for i in (0, 1):
        with logs[i].open("w") as log:
            procs.append(subprocess.Popen([sys.executable, *_in_two(*args, "--out", tmp_path / f"out{i}")(i, port)],
                                          cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT, text=True))
    try:
        for _ in range(TIMEOUT * 50):  # a poll count, only a guard against a hang
            if started in logs[0].read_text() or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.02)
        assert all(p.poll() is None for p in procs), "a process ended before compiling"
        procs[signalled].send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=TIMEOUT)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outputs = [log.read_text() for log in logs]
    assert [p.returncode for p in procs] == [128 + signal.SIGTERM] * 2, outputs
    # held (`hold_signals`) while compiling a train run; a sweep trains as soon as it compiles
    assert f"SIGTERM received: {'held' if command == 'train' else ''}" in outputs[signalled], outputs[signalled]
    assert f"pgjax {command}: interrupted by SIGTERM; stopped with process 0" in outputs[1], outputs[1]
    assert "interrupted by SIGTERM" in outputs[0] and f"continue with: pgjax {command} --resume" in outputs[0], outputs[0]
    assert not any("Check failure" in out or "preemption_notifier" in out for out in outputs), outputs
    if command == "train":
        assert "no checkpoint yet, a resume starts at update 0" in outputs[0], outputs[0]
        (run,) = (tmp_path / "out0").iterdir()
        _single(tmp_path, "train", "--resume", run, "--no-progress")
        assert (run / "summary.json").exists()
