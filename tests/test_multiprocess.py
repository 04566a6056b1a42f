"""Several processes through JAX's own runtime (`jax.distributed`, gloo collectives on CPU):
two processes on localhost, two host devices each, one mesh of four devices.

The default run starts the two processes on a tiny program (the shared decisions and one
sharded computation); `-m slow` runs a whole `pgjax sweep` and a whole `pgjax train` across
the two processes and compares their files with a single-process, single-device run: the
sweep's cell files (records and kept policies) byte for byte, the run's metrics.csv byte for
byte and its evaluation equal. Process 1 is given another `--out`: it must stay empty (only
process 0 writes)."""

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
    print("probe ok", me, sharding.is_writer())
""")


def test_two_processes_share_one_mesh_and_process_0_decides():
    outputs = _two_processes(lambda i, port: ["-c", PROBE, str(i), str(port)])
    assert "probe ok 0 True" in outputs[0] and "probe ok 1 False" in outputs[1]
    assert not any("[Gloo]" in out for out in outputs), outputs  # gloo's connection lines are filtered


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


@pytest.mark.slow
def test_train_across_two_processes_equals_one_device(tmp_path):
    """5 seeds in vmap groups of 2 on 4 devices in 2 processes (3 padded seeds), against 1
    device: metrics.csv byte for byte, the same evaluation, and a checkpoint that a
    single-process `pgjax eval` restores to the same numbers."""
    train = ["train", *TINY, "--seeds", "5", "--chunks", "2", "--eval-episodes", "3"]
    _two_processes(lambda i, port: _cli(*train, "--out", tmp_path / f"multi{i}", "--coordinator", f"localhost:{port}",
                                        "--num-processes", 2, "--process-id", i))
    _single(tmp_path, *train, "--out", tmp_path / "single")
    assert not (tmp_path / "multi1").exists()
    (multi,), (single,) = (tmp_path / "multi0").iterdir(), (tmp_path / "single").iterdir()
    assert (multi / "metrics.csv").read_bytes() == (single / "metrics.csv").read_bytes()
    summary = {name: json.loads((d / "summary.json").read_text()) for name, d in (("multi", multi), ("single", single))}
    for key in ("eval_return_mean", "final_train_return", "diverged_at_update"):
        assert summary["multi"][key] == summary["single"][key], key
    assert sorted(p.name for p in (multi / "checkpoints").iterdir()) == ["2", "4"]
    for d in (multi, single):
        _single(tmp_path, "eval", d, "--episodes", "3", "--out", d / "again.json")
    again = [json.loads((d / "again.json").read_text())["per_seed"] for d in (multi, single)]
    assert again[0] == again[1]
