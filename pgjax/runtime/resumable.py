"""Stopping a run or a sweep between compiled chunks, and resuming it with its own settings.

While training, the first SIGINT or SIGTERM asks to stop after the current chunk (whatever
it finished is written first); a second one stops at once (`Signals`). The command then
exits with 128 + the signal number and says how to go on, `continue with: pgjax train
--resume RUN_DIR` (`continue_with`; `pgjax sweep --resume SWEEP_DIR` for a sweep). The
handlers are installed even when the process started with SIGINT ignored (a background job
of a non-interactive shell inherits `SIG_IGN`) or with the signals blocked, so such a job
still stops cleanly rather than not at all. A resume takes every setting from the folder;
one given again must repeat it (`refuse_contradictions`).

With several processes a signal to one of them must not end it alone (the others would
wait for it in their next collective until JAX's shutdown barrier aborts them all), so from
joining until the end (`hold_signals`) a signal outside training is held: training adopts
it, and every process stops together at the vote before the first chunk.
"""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path


class Interrupted(BaseException):
    """SIGINT or SIGTERM: the run or sweep stops with exit code 128 + signal number. A
    `BaseException`, as `KeyboardInterrupt` is: a second signal can land inside any call
    (a checkpoint write, a tracker), whose `except Exception` must not report it as that
    call's failure."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def resume_command(folder: Path, command: str = "train") -> str:
    """`pgjax train --resume RUN_DIR` (or `pgjax sweep --resume SWEEP_DIR`), quoted for a shell."""
    return f"pgjax {command} --resume {shlex.quote(str(folder))}"


def continue_with(folder: Path, command: str = "train") -> str:
    """The hint every stopped run or sweep ends its message with."""
    return f"continue with: {resume_command(folder, command)}"


_held: dict[str, int] = {}  # "signum": a signal held by `hold_signals`' handler, not yet adopted


def hold_signals() -> None:
    """With several processes, from joining on: SIGINT or SIGTERM outside training is held
    for the next `Signals` (a run's or sweep's training), which stops every process together;
    a second one stops this process at once (`Interrupted`). This also replaces JAX's own
    SIGTERM handler, which notes the signal for preemption sync points pgjax does not use,
    and would otherwise let the run go on as if none had come."""
    import threading

    if threading.current_thread() is threading.main_thread():
        for signum in Signals.SIGNALS:
            signal.signal(signum, _hold)


def _hold(signum, frame):
    if "signum" in _held:
        raise Interrupted(signum)
    _held["signum"] = signum
    print(f"\npgjax: {signal.Signals(signum).name} received: held, so that every process stops together before "
          "the next chunk (after the last one, the run finishes); send it again to stop this one alone, at once",
          file=sys.stderr, flush=True)


class Signals:
    """While training, the first SIGINT/SIGTERM asks to stop after the current chunk (its
    results are written first); a second one stops at once. Outside the main thread (where
    handlers cannot be set) it does nothing. `prefix` begins its note ("pgjax train")."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, prefix: str = "pgjax train"):
        self.prefix = prefix
        self.received: int | None = None
        self._previous = {}
        self._blocked: set[int] = set()

    def __enter__(self):
        import threading

        self.received = _held.pop("signum", None)  # held since the processes joined (`hold_signals`)
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for signum in self.SIGNALS:
            # Replaces SIG_IGN too: a job started in the background must still stop cleanly.
            self._previous[signum] = signal.signal(signum, self._handle)
        # A blocked signal would wait, pending, until the end: unblock ours while training.
        self._blocked = set(signal.pthread_sigmask(signal.SIG_UNBLOCK, self.SIGNALS)) & set(self.SIGNALS)
        return self

    def __exit__(self, *exc):
        if self._blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, self._blocked)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum, frame):
        if self.received is not None:
            raise Interrupted(signum)
        self.received = signum
        print(f"\n{self.prefix}: {signal.Signals(signum).name} received: stopping after this chunk "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)

    def check_everywhere(self) -> None:
        """`check`, with several processes after agreeing: a signal to any one stops all
        after the same chunk (they must run the same launches)."""
        import jax

        if jax.process_count() <= 1:
            self.check()
            return
        import numpy as np
        from jax.experimental import multihost_utils

        # Decide from the gathered values alone: a process blocked in the gather runs its
        # handler as soon as the gather returns, and stopping on that late local signal would
        # leave the others waiting in the next chunk. Such a signal stops all at the next check.
        local = self.received or 0
        decided = int(np.max(multihost_utils.process_allgather(np.array([local])))) or None
        if decided is not None:
            self.received = self.received or decided
            raise Interrupted(decided)


def refuse_contradictions(record: dict, given: dict, settings: dict, what: str, path: Path) -> None:
    """A setting given with a resume must repeat the one stored in `record` (read from
    `path`); one that differs is refused in one line naming the flag, both values and the
    file. `settings`: key -> `(flag, default)`; `given`: key -> value or None (not given).
    Settings the record lacks (older folders) are taken from `given`, else the default."""
    for key, (flag, default) in settings.items():
        value = given.get(key)
        if key not in record:
            record[key] = default if value is None else value
        elif value is not None and value != record[key]:
            from pgjax import config as cfg  # (imports JAX: the command line imports this module early)

            raise cfg.ConfigError(f"{flag} {value} contradicts {key}={record[key]} of the {what} being resumed "
                                  f"({path}); drop {flag}")
