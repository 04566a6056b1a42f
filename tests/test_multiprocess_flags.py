"""Multi-process flags (issue 34): bad addresses and counts are refused before anything
starts, each process says what it waits for, and a wait that nobody answers ends after
`--coordinator-timeout` with one line (not JAX's C++ abort minutes later)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_lines import exit_and_line

from pgjax.runtime import sharding

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_process_environment(monkeypatch):
    for var in (*sharding.PROCESS_ENV.values(), sharding.TIMEOUT_ENV):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("argv, code, expected", [
    (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], 1,
     "--coordinator 'localhost': no port; give HOST:PORT with a port in 1..65535"),
    (["--coordinator", "localhost:99999", "--num-processes", "2", "--process-id", "0"], 1,
     "--coordinator 'localhost:99999': port '99999' is not a number in 1..65535"),
    (["--coordinator", "localhost:http", "--num-processes", "2", "--process-id", "0"], 1,
     "port 'http' is not a number in 1..65535"),
    (["--coordinator", ":1234", "--num-processes", "2", "--process-id", "0"], 1, "--coordinator ':1234': no port"),
    (["--coordinator", "localhost:0", "--num-processes", "2", "--process-id", "0"], 1, "port '0' is not a number"),
    (["--coordinator", "localhost:1234", "--num-processes", "0", "--process-id", "0"], 2,
     "--num-processes '0': must be a positive integer"),
    (["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "-1"], 2,
     "--process-id '-1': must be an integer >= 0"),
    (["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "2"], 1,
     r"--process-id 2 must be in [0, 2)"),
    (["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "0", "--coordinator-timeout", "0"], 2,
     "--coordinator-timeout '0': must be a number of seconds > 0"),
    (["--host-devices", "0"], 2, "--host-devices '0': must be a positive integer (1 turns it off)"),
])
def test_bad_process_flags_are_refused_before_starting(argv, code, expected, capsys):
    got_code, line = exit_and_line(["train", "--env", "CartPole-v1", *argv], capsys)
    assert got_code == code and expected in line, line
    assert ("pgjax train" in line) and "IndexError" not in line


def test_bad_process_environment_is_named(monkeypatch):
    monkeypatch.setenv(sharding.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="PGJAX_COORDINATOR_TIMEOUT='soon': must be a number of seconds > 0"):
        sharding.coordinator_timeout()
    monkeypatch.setenv(sharding.TIMEOUT_ENV, "7")
    assert sharding.coordinator_timeout() == 7 and sharding.coordinator_timeout(2.5) == 2.5
    assert sharding.check_coordinator("[::1]:8476") == "[::1]:8476"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("process_id", [0, 1])
def test_a_process_left_alone_says_what_it_waits_for_and_gives_up(process_id):
    """Process 1 with no coordinator, or process 0 whose partner never comes: the waiting
    line first, then after the timeout one error line, exit 1, no C++ stack trace."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", *sharding.PROCESS_ENV.values())}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), PGJAX_HOST_DEVICES="1")
    port = _free_port()
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pgjax", "train", "--env", "CartPole-v1", "--coordinator", f"localhost:{port}",
         "--num-processes", "2", "--process-id", str(process_id), "--coordinator-timeout", "4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    waiting = (f"process 0 of 2: coordinator at localhost:{port}, waiting up to 4 s for the other 1 process(es)"
               if process_id == 0 else f"process 1 of 2: waiting up to 4 s for the coordinator (process 0) at "
                                       f"localhost:{port}")
    assert waiting in lines[0], result.stderr
    assert f"did not all join at localhost:{port} within 4 s" in lines[-1]
    assert "Check failure" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(lines) <= 3, result.stderr  # the waiting line, the error, at most one line of JAX's own
    assert time.monotonic() - start < 120


GLOO = b"[Gloo] Rank 1 is connected to 3 peer ranks. Expected number of connected peer ranks is : 3\n"


@pytest.mark.parametrize("chunks, expected", [
    ([b"hello\n" + GLOO + b"world\n"], b"hello\nworld\n"),
    ([GLOO[:10], GLOO[10:] + b"after\n"], b"after\n"),  # a gloo line split across reads
    ([b"progress 10%\r", b"progress 20%\r"], b"progress 10%\rprogress 20%\r"),  # unfinished lines pass at once
    ([b"[Gloo] Rank 0 says something else\n"], b"[Gloo] Rank 0 says something else\n"),  # only that exact line
    ([b"x " + GLOO], b"x " + GLOO),  # not at the start of a line
    # two devices' lines interleaved piece by piece (gloo writes from one thread per device)
    ([(b"[Gloo] Rank [Gloo] Rank 3 is connected to 3 peer ranks. Expected number of connected peer ranks is : 3\n"
      b"2 is connected to 3 peer ranks. Expected number of connected peer ranks is : 3\nprobe ok\n")], b"probe ok\n"),
    ([b"42\n", b"7"], b"42\n7"),  # numbers alone are the user's
])
def test_the_gloo_filter_drops_exactly_the_connection_lines(chunks, expected):
    out, pending = b"", b""
    for chunk in chunks:
        now, pending = sharding._gloo_filter(pending + chunk)
        out += now
    assert out + pending == expected
