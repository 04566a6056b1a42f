"""`RUN_DIR/run.lock`: one process at a time trains in a run folder."""

from __future__ import annotations

from pathlib import Path

from pgjax.runtime.run_record import ResumeError, note

LOCK_FILE = "run.lock"


class RunLock:
    """`RUN_DIR/run.lock`: held (an exclusive `flock`) by the one process training in a run
    folder, and naming it (pid, host, start time). A second process is refused with who
    holds it; a lock left by a process that died is free (the kernel drops its `flock`) and
    is taken over. Taking it is also the first write into the folder: a read-only folder
    is refused here with one line."""

    def __init__(self, run_dir: Path):
        self.path, self._fd = Path(run_dir) / LOCK_FILE, None

    def acquire(self) -> RunLock:
        import datetime
        import fcntl
        import json
        import os
        import socket

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ResumeError(f"{self.path.parent} cannot be written ({err.strerror or err}): training writes "
                              "metrics, evaluations and checkpoints there; copy the folder somewhere writable and "
                              "resume the copy") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise ResumeError(f"{self.path.parent} is in use by another pgjax process ({holder}); wait for it "
                              f"to finish or stop it (Ctrl-C, or kill -TERM its pid), then resume") from None
        previous = _lock_holder(fd)
        if previous != "unknown":
            note(f"taking over {self.path}: its holder ({previous}) is no longer running")
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        import os

        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                self.path.unlink(missing_ok=True)
            except OSError:  # a folder made read-only meanwhile: the kernel still drops the flock
                pass
            os.close(fd)


def _lock_holder(fd: int) -> str:
    """`pid P on host H since T` from a lock file's contents, or "unknown"."""
    import json
    import os

    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        return f"pid {holder['pid']} on host {holder['host']} since {holder['since']}"
    except (ValueError, TypeError, KeyError, OSError):
        return "unknown"
