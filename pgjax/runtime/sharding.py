"""Spreading a batch of independent cells (seeds x hyper-parameters) over devices.

The cell axis is sharded over a 1-D device mesh (`NamedSharding(mesh, P("cells"))`). On
each device the local cells are cut into groups of a fixed `width`: a `vmap` over the
`width` cells of a group, a `lax.map` over the groups. Why not one `vmap` over all local
cells: XLA picks different kernels for different batch sizes, so a cell's result would
change in the last bits with the number of cells batched with it (measured here: ~6e-8 in
the parameters after 6 PPO updates, growing with training). With a fixed `width`, every
cell is computed by the same program whatever the number of devices or of cells per
launch, so a sharded sweep equals an unsharded one and a sweep split into memory chunks
equals an unsplit one, bit for bit.

Several processes (hosts, or processes on one host): `initialize_processes()` on every
process before anything else (JAX's own runtime, `jax.distributed.initialize`: coordinator
address, process count and id from its arguments, `$PGJAX_COORDINATOR` /
`$PGJAX_NUM_PROCESSES` / `$PGJAX_PROCESS_ID`, or the cluster, e.g. SLURM; CPU collectives
through gloo). `jax.devices()` then lists the devices of all processes and `cell_mesh()`
spans them. Every process must run the same program with the same inputs: `put_cells`
builds each global array from the host copy every process holds
(`jax.make_array_from_callback`), `fetch` gathers the results to every process
(`multihost_utils.process_allgather`), and a decision that reads files (which cells are
done, the run folder's name) is taken by process 0 and sent to the others (`from_writer`).
Only process 0 writes files (`is_writer()`).

Host devices: XLA's CPU client runs one program's small operations on a shared thread
pool, and most of a small-network RL step cannot use a second core. Splitting the CPU into
several JAX devices (`use_host_devices()`, one per usable core by default) and sharding
seeds or cells over them runs them in parallel (issue 19 measured PPO CartPole with 16 seeds
on 2 cores at 234k environment steps per second on one device, 447k on two).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "cells"
ENV_VAR = "PGJAX_HOST_DEVICES"  # host devices to create; 1 turns the splitting off
_FORCE_FLAG = "xla_force_host_platform_device_count"  # XLA's own flag, respected when set


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _given_or_env(value, name: str, env_var: str, parse, allowed: str):
    """`(value, source)`: `value` if given, else `$env_var` parsed by `parse` (a bad one is a
    one-line ValueError naming the variable and `allowed`), else `(None, name)`."""
    text = os.environ.get(env_var, "").strip()
    if value is not None or not text:
        return value, name
    try:
        return parse(text), env_var
    except ValueError:
        raise ValueError(f"{env_var}={text!r}: {allowed}") from None


def host_device_count(requested: int | None = None) -> int:
    """Host devices to create: `requested`, else `$PGJAX_HOST_DEVICES`, else one per usable core."""
    requested, source = _given_or_env(requested, "host devices", ENV_VAR, int,
                                      "must be a positive integer (1 turns host devices off)")
    if requested is None:
        return usable_cores()
    if requested < 1:
        raise ValueError(f"{source}={requested}: must be a positive integer (1 turns host devices off)")
    return requested


def use_host_devices(count: int | None = None) -> int:
    """Split the CPU into `count` JAX devices so that work sharded over them runs in parallel.

    `count` defaults to `$PGJAX_HOST_DEVICES`, else one device per usable core; 1 turns it
    off. Call it before any JAX computation (importing pgjax modules computes nothing, so
    they may come first); it sets `jax_num_cpu_devices`. Without `count` or the variable, an
    `XLA_FLAGS` that already sets `--xla_force_host_platform_device_count` is left to decide. On a GPU or TPU
    nothing changes: the CPU devices are not the default devices. If JAX is already
    running, the devices it has stay; an explicit request for another count raises
    `RuntimeError`. Returns the number of CPU devices JAX will use.
    """
    from jax._src import xla_bridge

    explicit = count is not None or bool(os.environ.get(ENV_VAR, "").strip())
    wanted = host_device_count(count)
    if xla_bridge.backends_are_initialized():
        have = len(jax.devices("cpu"))
        if explicit and have != wanted:
            raise RuntimeError(f"host devices={wanted}: JAX already runs with {have} CPU device(s); "
                               "call pgjax.runtime.sharding.use_host_devices before any JAX computation")
        return have
    if not explicit and _FORCE_FLAG in os.environ.get("XLA_FLAGS", ""):
        return int(os.environ["XLA_FLAGS"].split(_FORCE_FLAG + "=")[1].split()[0])
    jax.config.update("jax_num_cpu_devices", wanted)
    return wanted


PROCESS_ENV = {"coordinator": "PGJAX_COORDINATOR", "num_processes": "PGJAX_NUM_PROCESSES",
               "process_id": "PGJAX_PROCESS_ID"}
TIMEOUT_ENV = "PGJAX_COORDINATOR_TIMEOUT"
DEFAULT_TIMEOUT = 300  # seconds every process waits for all the others to join
_joined = {"timeout": None}  # the timeout this process joined with, which also bounds later waits


def check_coordinator(address: str) -> str:
    """`HOST:PORT` with a host and a port in 1..65535 (IPv6 as `[::1]:PORT`), else one
    `ValueError` line naming the flag, the value and what is allowed."""
    host, colon, port = address.rpartition(":")
    allowed = "HOST:PORT with a port in 1..65535, e.g. localhost:12345 (or auto on a cluster, e.g. SLURM)"
    if not colon or not host or host in ("[", "[]"):
        raise ValueError(f"--coordinator {address!r}: no port; give {allowed}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--coordinator {address!r}: port {port!r} is not a number in 1..65535; give {allowed}")
    return address


def coordinator_timeout(seconds: float | None = None) -> float:
    """Seconds to wait for the other processes: `seconds`, else `$PGJAX_COORDINATOR_TIMEOUT`, else 300."""
    seconds, source = _given_or_env(seconds, "--coordinator-timeout", TIMEOUT_ENV, float,
                                    "must be a number of seconds > 0")
    if seconds is None:
        return float(DEFAULT_TIMEOUT)
    if not seconds > 0:
        raise ValueError(f"{source} {seconds!r}: must be a number of seconds > 0")
    return float(seconds)


def wait_timeout() -> float:
    """Seconds a process waits for the others in an exchange after joining (`agreement`):
    the timeout it joined with (`initialize_processes`), else `coordinator_timeout()`."""
    return _joined["timeout"] or coordinator_timeout()


def process_settings(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> dict | None:
    """The multi-process settings from the arguments, else `$PGJAX_COORDINATOR`,
    `$PGJAX_NUM_PROCESSES`, `$PGJAX_PROCESS_ID`; None when no coordinator is named (one
    process). `coordinator="auto"`: JAX reads all three from the cluster (SLURM, ...)."""
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    for name, var in PROCESS_ENV.items():
        if given[name] is None and os.environ.get(var, "").strip():
            text = os.environ[var].strip()
            if name == "coordinator":
                given[name] = text
            else:
                try:
                    given[name] = int(text)
                except ValueError:
                    raise ValueError(f"{var}={text!r}: must be an integer") from None
    if given["coordinator"] is None:
        if given["num_processes"] is not None or given["process_id"] is not None:
            raise ValueError("--num-processes/--process-id need --coordinator HOST:PORT (or $PGJAX_COORDINATOR)")
        return None
    if given["num_processes"] is not None and given["num_processes"] < 1:
        raise ValueError(f"--num-processes {given['num_processes']}: must be an integer >= 1")
    if given["process_id"] is not None and given["process_id"] < 0:
        raise ValueError(f"--process-id {given['process_id']}: must be an integer >= 0 (process 0 coordinates)")
    if given["coordinator"] == "auto":
        return {"coordinator": None, "num_processes": given["num_processes"], "process_id": given["process_id"]}
    check_coordinator(given["coordinator"])
    if given["num_processes"] is None or given["process_id"] is None:
        raise ValueError(f"--coordinator {given['coordinator']}: give --num-processes and --process-id too "
                         "(or --coordinator auto on a cluster JAX recognises, e.g. SLURM)")
    if not 0 <= given["process_id"] < given["num_processes"]:
        raise ValueError(f"--process-id {given['process_id']} must be in [0, {given['num_processes']}) "
                         f"(--num-processes {given['num_processes']})")
    return given


def _waiting_line(settings: dict, timeout: float) -> str:
    """What this process waits for, in one line (printed before the wait)."""
    n, i, address = settings["num_processes"], settings["process_id"], settings["coordinator"]
    if address is None:
        return f"pgjax: joining the cluster's processes (from its environment), waiting up to {timeout:g} s"
    if i == 0:
        return (f"pgjax: process 0 of {n}: coordinator at {address}, waiting up to {timeout:g} s for the other "
                f"{n - 1} process(es) to join")
    return f"pgjax: process {i} of {n}: waiting up to {timeout:g} s for the coordinator (process 0) at {address}"


def _give_up(settings: dict, timeout: float) -> None:
    """The watchdog's end: JAX's own timeout aborts the interpreter with a C++ stack trace,
    so the wait is cut here first, with one line saying what did not come."""
    import sys

    address = settings["coordinator"] or "the cluster's coordinator"
    print(f"pgjax: error: process {settings['process_id']} of {settings['num_processes']}: the processes did not all "
          f"join at {address} within {timeout:g} s; start the same command on every process with the same "
          f"--coordinator, --num-processes and distinct --process-id (or raise --coordinator-timeout / "
          f"${TIMEOUT_ENV})", file=sys.stderr, flush=True)
    os._exit(1)


# What gloo prints on stdout for every communicator it connects (one per device set used):
# progress chatter, not a result. gloo writes each line in pieces from one thread per
# device, so two devices' lines can interleave piece by piece: a line is dropped when it is
# made of those pieces only (and holds at least one that is not a number).
_GLOO_LINE = re.compile(rb"(?:\[Gloo\] Rank |\d+| is connected to | peer ranks\. Expected number of connected peer "
                        rb"ranks is : |\r)+")
_GLOO_PREFIX = b"[Gloo] Rank "


def _is_gloo_line(line: bytes) -> bool:
    return (b"[Gloo] Rank" in line or b" is connected to " in line) and _GLOO_LINE.fullmatch(line) is not None


def _gloo_filter(pending: bytes) -> tuple[bytes, bytes]:
    """`(bytes to write now, bytes to hold)`: complete lines pass unless they are gloo's
    connection line; an unfinished line is held only while it could still become one."""
    *lines, rest = pending.split(b"\n")
    out = b"".join(line + b"\n" for line in lines if not _is_gloo_line(line))
    if rest and not (rest.startswith(_GLOO_PREFIX) or _GLOO_PREFIX.startswith(rest) or rest[:1].isdigit()):
        out, rest = out + rest, b""
    return out, rest


def quiet_gloo_connection_lines() -> None:
    """Drop gloo's "[Gloo] Rank I is connected to N peer ranks ..." lines from this process's
    stdout (gloo writes them from C++ whenever CPU collectives connect a new set of devices;
    nothing else is filtered). File descriptor 1 becomes a pipe that a thread forwards to the
    real stdout; at exit the real stdout is put back and the pipe drained."""
    import atexit
    import sys
    import threading

    sys.stdout.flush()
    real = os.dup(1)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.close(write_end)

    def forward():
        pending = b""
        while chunk := os.read(read_end, 65536):
            out, pending = _gloo_filter(pending + chunk)
            if out:
                os.write(real, out)
        if pending:
            os.write(real, pending)
        os.close(read_end)

    thread = threading.Thread(target=forward, name="pgjax-gloo-filter", daemon=True)
    thread.start()

    def restore():
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.dup2(real, 1)  # the pipe's last writer closes: the thread reads the end and stops
        thread.join(timeout=5)

    atexit.register(restore)


def initialize_processes(coordinator: str | None = None, num_processes: int | None = None,
                         process_id: int | None = None, timeout: float | None = None) -> int:
    """Join JAX's multi-process runtime (`jax.distributed.initialize`) if a coordinator is
    named (`process_settings`); CPU collectives go through gloo. Call it on every process
    right after `use_host_devices`, before any JAX computation. Returns the process count.

    It prints (stderr) what this process waits for, and gives up after `timeout` seconds
    (`coordinator_timeout`: default `$PGJAX_COORDINATOR_TIMEOUT`, else 300) with one line
    and exit code 1: JAX's own timeout would abort the interpreter with a C++ stack trace."""
    import sys
    import threading

    settings = process_settings(coordinator, num_processes, process_id)
    if settings is None:
        return 1
    timeout = coordinator_timeout(timeout)
    _joined["timeout"] = timeout
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    print(_waiting_line(settings, timeout), file=sys.stderr, flush=True)
    watchdog = threading.Timer(timeout, _give_up, (settings, timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(settings["coordinator"], settings["num_processes"], settings["process_id"],
                                   initialization_timeout=int(timeout) + 60)
    finally:
        watchdog.cancel()
    quiet_gloo_connection_lines()
    if jax.process_count() > 1:
        from pgjax.runtime.resumable import hold_signals

        hold_signals()  # a signal to one process stops all together, never this one alone
    return jax.process_count()


def from_writer(tree: Any) -> Any:
    """Process 0's values of `tree` (NumPy arrays of one structure on every process), on
    every process: decisions that read files are taken once and shared."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.broadcast_one_to_all(tree))


def smallest_over_processes(value: int) -> int:
    """The smallest of every process's `value` (e.g. a memory limit from each host's free
    RAM), so that every process plans the same launches."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    # Sent as two uint32 words: without jax_enable_x64 an int64 is cut to int32 on the way
    # (a few GB of free RAM per device came back negative).
    words = multihost_utils.process_allgather(np.array([value], np.int64).view(np.uint32))
    return int(np.min(np.asarray(words, np.uint32).reshape(-1, 2).view(np.int64)))


def text_from_writer(text: str, size: int = 4096) -> str:
    """Process 0's `text` (UTF-8, at most `size` bytes) on every process."""
    if jax.process_count() == 1:
        return text
    data = np.zeros(size, np.uint8)
    encoded = np.frombuffer(text.encode(), np.uint8) if is_writer() else np.zeros(0, np.uint8)
    data[: len(encoded)] = encoded
    return bytes(from_writer(data)).rstrip(b"\0").decode()


def cell_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh with axis `"cells"` over `devices` (default: every device of every host)."""
    return Mesh(np.asarray(jax.devices() if devices is None else list(devices)), (AXIS,))


def padded_size(num_cells: int, multiple: int) -> int:
    """`num_cells` rounded up to a multiple of `multiple` (padding repeats the last cell)."""
    return -(-num_cells // multiple) * multiple


def pad_cells(tree: Any, size: int) -> Any:
    """Host arrays with a leading cell axis, padded to `size` rows by repeating the last."""

    def pad(x):
        x = np.asarray(x)
        extra = size - x.shape[0]
        return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)]) if extra else x

    return jax.tree.map(pad, tree)


def cells_sharding(mesh: Mesh) -> NamedSharding:
    """The leading (cell) axis split over the mesh, every other axis whole."""
    return NamedSharding(mesh, P(AXIS))


def abstract_cells(tree: Any, mesh: Mesh) -> Any:
    """`jax.ShapeDtypeStruct`s of `tree`'s leaves with the cell axis sharded over `mesh`
    (weak types dropped): the arguments to lower a `cell_function` ahead of a launch."""
    place = cells_sharding(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=place), tree)


def put_cells(tree: Any, mesh: Mesh) -> Any:
    """Global arrays with the leading axis sharded over the mesh, from identical host copies."""
    sharding = cells_sharding(mesh)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def fetch(tree: Any) -> Any:
    """NumPy copies of (possibly multi-host) global arrays, on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def is_writer() -> bool:
    """True on the one process that writes results (process 0)."""
    return jax.process_index() == 0


def _grouped(fn: Callable, width: int, *args):
    """`fn` vmapped over groups of `width` cells and mapped over the groups (see module doc)."""
    def split(x):
        return x.reshape(x.shape[0] // width, width, *x.shape[1:])

    def merge(x):
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])

    out = jax.lax.map(lambda group: jax.vmap(fn)(*group), jax.tree.map(split, args))
    return jax.tree.map(merge, out)


def cell_function(fn: Callable, mesh: Mesh, width: int) -> Callable:
    """`fn(*args)` for one cell -> a jitted function over `[n]` cells sharded on `mesh`.

    `n` must be a multiple of `width * mesh.size`. Every argument and output carries the
    cell axis first; bind other arguments into `fn` beforehand.
    """
    # check_vma=False: the algorithms' scans start from constants (zeros) that the
    # varying-axis checker would want cast; every cell is independent, nothing is reduced.
    per_device = jax.shard_map(
        functools.partial(_grouped, fn, width), mesh=mesh, in_specs=P(AXIS), out_specs=P(AXIS), check_vma=False
    )
    return jax.jit(per_device)
