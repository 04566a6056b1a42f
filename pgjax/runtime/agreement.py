"""What process 0 reads or decides, sent to every process, with a bounded wait.

With several processes every one must run the same launches on the same inputs, so a
decision that reads files (a resumed run's settings, which checkpoint is intact, the
checkpoint's arrays) is made once, by process 0, and sent to the others, which read
nothing from the run folder (it need not be on a disk they see). A failure on process 0 is
sent too and raised on every process, so that none waits for a value that never comes.

Every exchange is a collective that all processes enter; a process that stopped or is
stuck elsewhere would leave the others waiting in it. Each wait is bounded like the
coordinator wait of `sharding.initialize_processes`: a note after a few seconds, then one
line and exit code 1 after `sharding.wait_timeout()` seconds (`--coordinator-timeout`).

Arrays travel as their bytes (integer sums with zeros, exact), so every process gets the
writer's bits, -0.0 and NaN payloads included, whatever the dtype.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from pgjax.records.prng_keys import key_data_leaf, rewrap_leaf
from pgjax.runtime import sharding

NOTE_AFTER = 10.0  # seconds of waiting before a process says what it waits for
PIECE = 1 << 26  # bytes sent per collective: bounds the extra memory of a large state


class WriterFailed(RuntimeError):
    """Process 0 failed with an unexpected error while deciding for every process."""


def _where() -> str:
    return f"process {jax.process_index()} of {jax.process_count()}"


def _give_up(what: str, timeout: float) -> None:
    print(f"pgjax: error: {_where()}: the processes did not all agree on {what} within {timeout:g} s (a process "
          f"stopped or is stuck); stop every process and start them again (or raise --coordinator-timeout / "
          f"${sharding.TIMEOUT_ENV})", file=sys.stderr, flush=True)
    os._exit(1)


@contextlib.contextmanager
def bounded_wait(what: str, timeout: float | None = None):
    """Wait in a collective exchange about `what` at most `timeout` seconds (default
    `sharding.wait_timeout()`): a note after `NOTE_AFTER` s, then one line and exit code 1
    (a thread cannot interrupt a collective, so the process ends); likewise at once when
    the collective fails because a peer went away."""
    timeout = sharding.wait_timeout() if timeout is None else timeout
    note = threading.Timer(min(NOTE_AFTER, timeout / 2), lambda: print(
        f"pgjax: {_where()}: waiting up to {timeout:g} s for every process to agree on {what}",
        file=sys.stderr, flush=True))
    stop = threading.Timer(timeout, _give_up, (what, timeout))
    for timer in (note, stop):
        timer.daemon = True
        timer.start()
    try:
        yield
    except jax.errors.JaxRuntimeError as err:  # a peer went away mid-exchange
        # Ending here spares a wait for JAX's heartbeat timeout and its C++ abort at exit.
        print(f"pgjax: error: {_where()}: the exchange about {what} failed ({str(err).splitlines()[0][:200]}): "
              "another process stopped; stop every process and start them again", file=sys.stderr, flush=True)
        os._exit(1)
    finally:
        note.cancel()
        stop.cancel()


def _int64_from_writer(value: int) -> int:
    # Two uint32 words: without jax_enable_x64 an int64 would be cut to int32 on the way.
    words = np.array([value], np.int64).view(np.uint32)
    return int(np.asarray(sharding.from_writer(words), np.uint32).view(np.int64)[0])


def bytes_from_writer(data: bytes | None) -> bytes:
    """Process 0's `data` on every process (the others pass None), in pieces of `PIECE` bytes."""
    if jax.process_count() == 1:
        return data
    size = _int64_from_writer(len(data) if sharding.is_writer() else 0)
    if size == 0:
        return b""
    piece = min(size, PIECE)
    buffer = np.zeros(sharding.padded_size(size, piece), np.uint8)
    if sharding.is_writer():
        buffer[:size] = np.frombuffer(data, np.uint8)
    out = [np.asarray(sharding.from_writer(buffer[i:i + piece])) for i in range(0, buffer.size, piece)]
    return np.concatenate(out)[:size].tobytes()


def _host_leaf(x: Any) -> np.ndarray:
    return np.ascontiguousarray(key_data_leaf(x))


def tree_from_writer(tree: Any, like: Any, what: str) -> Any:
    """Process 0's `tree` on every process, bit for bit (the others pass None): NumPy
    arrays, typed PRNG keys as keys again. `like` (e.g. `jax.eval_shape` of it) gives the
    structure, shapes and dtypes on every process; `what` names it in a wait that runs out."""
    if jax.process_count() == 1:
        return tree
    leaves, treedef = jax.tree.flatten(like)
    raws = [jax.eval_shape(key_data_leaf, x) for x in leaves]
    data = None
    if sharding.is_writer():
        host = [_host_leaf(x) for x in treedef.flatten_up_to(tree)]
        for x, raw in zip(host, raws, strict=True):
            if x.shape != tuple(raw.shape) or x.dtype != raw.dtype:
                raise ValueError(f"tree_from_writer: a leaf {x.shape} {x.dtype} does not match {raw.shape} {raw.dtype}")
        data = b"".join(x.tobytes() for x in host)
    with bounded_wait(what):
        data = bytes_from_writer(data)
    out, start = [], 0
    for x, raw in zip(leaves, raws, strict=True):
        size = int(np.prod(raw.shape)) * np.dtype(raw.dtype).itemsize
        array = np.frombuffer(data[start:start + size], raw.dtype).reshape(raw.shape).copy()
        out.append(rewrap_leaf(x, array))
        start += size
    return jax.tree.unflatten(treedef, out)


def decided_by_writer(decide: Callable[[], Any], what: str, errors: Sequence[type[BaseException]] = ()) -> Any:
    """`decide()` run on process 0 alone, its JSON value on every process. An exception of
    one of `errors` is raised on every process (same class, same message); any other is
    re-raised on process 0 and raised as `WriterFailed` on the others. With one process
    this is `decide()`. `what` names the decision in a wait that runs out (`bounded_wait`)."""
    if jax.process_count() == 1:
        return decide()
    sent, failure = None, None
    if sharding.is_writer():
        try:
            sent = json.dumps({"value": decide()})
        # Any failure is sent first, so that no process waits for a value that never comes.
        except BaseException as err:  # noqa: BLE001
            failure = err
            kind = next((i for i, cls in enumerate(errors) if isinstance(err, cls)), None)
            sent = json.dumps({"error": kind, "message": str(err) if kind is not None else f"{type(err).__name__}: {err}"})
    with bounded_wait(what):
        text = bytes_from_writer(None if sent is None else sent.encode())
    if failure is not None:
        raise failure
    payload = json.loads(text)
    if "error" in payload:
        if payload["error"] is None:
            raise WriterFailed(f"process 0 failed deciding {what}: {payload['message']}")
        raise errors[payload["error"]](payload["message"])
    return payload["value"]
