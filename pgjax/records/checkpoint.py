"""Checkpoints of the whole training state, written atomically with orbax.

A checkpoint is one folder `checkpoints/<updates_done>/` holding the state pytree (every
leaf: parameters, optimiser state, target networks, normaliser statistics, replay buffer,
environment state, PRNG keys, counters) and a JSON `meta` item: the algorithm, its config,
the seeds, the number of updates done and the tree signature (path, shape and dtype of
every leaf). orbax writes into a temporary folder and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact. The `checkpoints/` folder is created
by the first save, never by a run that stops before it.

Damage is told apart from a mismatch: a checkpoint whose record or arrays do not read back
raises `CorruptCheckpointError`, and `restore()` without a step then falls back to the
newest intact checkpoint (reporting each one skipped). A failing write (full disk) raises
`CheckpointWriteError` after the half-written folder is removed.

Restoring checks the checkpoint against the run that wants it before any array is read:
a different algorithm, config or state structure fails with a `CheckpointError` that
names what differs. Because the whole state is saved, `run(state, hp, a)`, save, restore,
`run(state, hp, b)` is bit-identical to `run(state, hp, a + b)`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

from pgjax import config as cfg
from pgjax.records.prng_keys import key_data_tree, rewrap_leaf

FORMAT = 1  # bump when the layout of `meta` changes


class CheckpointError(ValueError):
    """A checkpoint is missing or does not match the run that wants to restore it."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint's files are damaged: its record or its arrays do not read back."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (e.g. a full disk); the half-written folder is removed."""


_TMP_SUFFIX = ".orbax-checkpoint-tmp"


def _one_line(err: BaseException) -> str:
    """A short reason for an orbax/tensorstore error (they run to hundreds of lines)."""
    text = str(err)
    code = re.search(r"os_error_code='?(\d+)", text)
    if code:
        import os

        return os.strerror(int(code.group(1)))
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    line = (text.splitlines() or [type(err).__name__])[0].split(". See full")[0]
    return line if len(line) <= 160 else line[:157] + "..."


def tree_signature(tree: Any) -> list[list[str]]:
    """`[path, shape, dtype]` for every leaf (arrays or `jax.ShapeDtypeStruct`s)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [[jax.tree_util.keystr(path), str(list(np.shape(x))), str(x.dtype)] for path, x in leaves]


def check_compatible(meta: dict, expected: dict, abstract_state: Any) -> None:
    """Raise `CheckpointError` naming every difference between a checkpoint and a run."""
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint format {meta.get('format')!r} is not {FORMAT} (written by another pgjax)")
    if meta["algo"] != expected["algo"]:
        raise CheckpointError(f"checkpoint is for algo={meta['algo']!r}, not {expected['algo']!r}")
    diffs = cfg.config_differences(meta["config"], expected["config"], expected.get("config_defaults"))
    if diffs:
        raise CheckpointError("checkpoint config differs from this run's config:\n  " + "\n  ".join(diffs))
    if meta.get("num_seeds") != expected.get("num_seeds"):
        raise CheckpointError(f"checkpoint holds {meta.get('num_seeds')} seeds, this run has {expected.get('num_seeds')}")
    # By path, not by position: orbax stores and restores each leaf under its path, so a state
    # whose fields were reordered (the NamedTuple states before `OnPolicyState`: its shared
    # fields come first now) is the same state.
    saved_paths = {p: (s, d) for p, s, d in meta["tree"]}
    current_paths = {p: (s, d) for p, s, d in tree_signature(abstract_state)}
    if saved_paths != current_paths:
        lines = [
            f"{p}: checkpoint {saved_paths.get(p, '<absent>')}, this run {current_paths.get(p, '<absent>')}"
            for p in sorted(set(saved_paths) | set(current_paths))
            if saved_paths.get(p) != current_paths.get(p)
        ]
        raise CheckpointError(
            f"checkpoint state does not match this run's state ({len(lines)} leaves differ; same config, "
            "so the algorithm's code changed):\n  " + "\n  ".join(lines[:10])
        )


def _drop_unretrieved_task_errors(record: logging.LogRecord) -> bool:
    # asyncio words it "Task ..." for a task and "Future ..." for a bare future (the other
    # pending reads of a failed restore, when they are garbage-collected before exit).
    return not str(record.msg).startswith(("Task exception was never retrieved", "Future exception was never retrieved"))


def _late_read_error(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


# Where the coroutines of a restore live: their errors when collected after a failure
# ("Exception ignored in: <coroutine object ...>") are echoes of the one reported.
_RESTORE_CODE = ("/orbax/", "/tensorstore/", "/array_serialization/", "/asyncio/")


def _abandoned_restore_coroutine(obj: Any) -> bool:
    import inspect

    code = getattr(obj, "cr_code", None) if inspect.iscoroutine(obj) else None
    return code is not None and any(part in code.co_filename.replace("\\", "/") for part in _RESTORE_CODE)


def quiet_orbax_failure_noise() -> None:
    """For command-line programs: silence the echoes of a failure `Checkpointer` already reported.

    After a failed restore, tensorstore still completes the other pending reads and calls
    back into orbax's closed event loop ("Event loop is closed", through `sys.excepthook`
    or `sys.unraisablehook`), or asyncio logs those reads' errors ("Future exception was
    never retrieved"); a failed background write is logged again by asyncio ("Task
    exception was never retrieved"), or Python reports the restore's abandoned coroutines as
    they are collected ("Exception ignored in: <coroutine object ...>", for coroutines of
    orbax, tensorstore, jax's array serialization or asyncio only). Each is reported once as `CorruptCheckpointError` /
    `CheckpointWriteError`. This drops exactly those records and passes everything else to
    the previous hooks. It changes process-wide hooks, so the library never calls it: the
    `pgjax` command does, once, at start-up; a notebook may, if the echoes bother it."""
    import sys

    asyncio_log = logging.getLogger("asyncio")
    if _drop_unretrieved_task_errors not in asyncio_log.filters:
        asyncio_log.addFilter(_drop_unretrieved_task_errors)
    if getattr(sys.excepthook, "_pgjax_quiet", False):
        return
    previous_except, previous_unraisable = sys.excepthook, sys.unraisablehook

    def excepthook(kind, value, tb):
        if not _late_read_error(value):
            previous_except(kind, value, tb)

    def unraisablehook(unraisable):
        if not (_late_read_error(unraisable.exc_value) or _abandoned_restore_coroutine(unraisable.object)):
            previous_unraisable(unraisable)

    excepthook._pgjax_quiet = True
    sys.excepthook, sys.unraisablehook = excepthook, unraisablehook


class Checkpointer:
    """Saves and restores `directory/<updates_done>/` checkpoints (orbax `CheckpointManager`).

    `save` returns once the arrays are copied off the device; the files are written in a
    background thread while the next chunk computes. `close()` waits for the last write.
    Only the newest `max_to_keep` checkpoints are kept. The folder is created by the first
    `save`; reading never creates it.
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        # orbax logs every save at INFO and a failed background write as a long traceback;
        # failures reach the caller as one-line `CheckpointWriteError`s instead.
        logging.getLogger("absl").setLevel(logging.CRITICAL)
        self._ocp, self._max_to_keep = ocp, max_to_keep
        self.directory = Path(directory).absolute()
        self._manager = None

    def _open(self, create: bool = False):
        if self._manager is None and (create or self.directory.is_dir()):
            ocp = self._ocp
            # With several processes only process 0 saves (host copies of every row): its
            # manager must not wait for the others at orbax's barriers.
            single = {}
            if jax.process_count() > 1:  # orbax refuses create=True then: the folder is made here
                single = {"multiprocessing_options": ocp.options.MultiprocessingOptions(
                    primary_host=jax.process_index(), active_processes={jax.process_index()})}
                if create:
                    self.directory.mkdir(parents=True, exist_ok=True)
                create = False
            options = ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, create=create, **single)
            self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        return self._manager

    def save(self, updates_done: int, state: Any, meta: dict) -> None:
        """Checkpoint `state` after `updates_done` updates; `meta` gains format and tree signature.

        Raises `CheckpointWriteError` when this write, or the previous one still finishing in
        the background, fails; the half-written folder is removed first."""
        ocp = self._ocp
        meta = {**meta, "format": FORMAT, "updates_done": int(updates_done), "tree": tree_signature(state)}
        try:
            self._open(create=True).save(
                int(updates_done),
                args=ocp.args.Composite(state=ocp.args.StandardSave(key_data_tree(state)), meta=ocp.args.JsonSave(meta)),
            )
        except Exception as err:  # noqa: BLE001  (orbax raises bare Exception/ValueError for I/O errors)
            self._write_failed(err)

    def _write_failed(self, err: Exception):
        try:
            self._manager.wait_until_finished()
        except Exception:  # noqa: BLE001, S110  (the same failure, reported once below)
            pass
        self.remove_partial()
        raise CheckpointWriteError(f"writing a checkpoint to {self.directory} failed: {_one_line(err)}") from None

    def remove_partial(self) -> list[str]:
        """Delete half-written `*.orbax-checkpoint-tmp*` folders (a failed or killed save)."""
        removed = []
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if _TMP_SUFFIX in path.name:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path.name)
        return removed

    def steps(self) -> list[int]:
        """The complete checkpoints on disk, oldest first (intact or not)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit() and p.is_dir())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def read_meta(self, step: int | None = None) -> dict:
        """The JSON record of a checkpoint; `CorruptCheckpointError` naming the file if it does not read."""
        step = self._step(step)
        path = self.directory / str(step) / "meta" / "metadata"
        try:
            meta = self._open().restore(step, args=self._ocp.args.Composite(meta=self._ocp.args.JsonRestore()))["meta"]
        except json.JSONDecodeError as err:
            raise CorruptCheckpointError(f"{path} is not valid JSON ({err})") from None
        except Exception as err:  # noqa: BLE001  (missing files surface as several exception types)
            raise CorruptCheckpointError(f"{path} does not read: {_one_line(err)}") from None
        if not isinstance(meta, dict) or "updates_done" not in meta or "algo" not in meta:
            raise CorruptCheckpointError(f"{path} is not a pgjax checkpoint record (no algo / updates_done)")
        return meta

    def restore(self, abstract_state: Any, expected: dict, step: int | None = None,
                on_skip: Any = None, at_most: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure of `abstract_state` (e.g. `jax.eval_shape` of init).

        `expected` holds this run's `algo`, `config` (a `config.to_dict`) and `num_seeds`;
        any difference from the checkpoint raises `CheckpointError` before arrays are read.
        Without `step`, the newest intact checkpoint (at most `at_most` updates) is restored:
        each damaged one is passed to `on_skip(CorruptCheckpointError)` and skipped.
        Returns `(state, meta)`.
        """
        if step is not None:
            return self._restore_step(abstract_state, expected, step)
        candidates = [s for s in reversed(self.steps()) if at_most is None or s <= at_most]
        if not candidates:
            raise CheckpointError(f"no checkpoint in {self.directory}"
                                  + (f" at or before update {at_most}" if at_most is not None else ""))
        damaged = []
        for candidate in candidates:
            try:
                return self._restore_step(abstract_state, expected, candidate)
            except CorruptCheckpointError as err:
                damaged.append(err)
                if on_skip is not None:
                    on_skip(err)
        raise CorruptCheckpointError(f"no intact checkpoint in {self.directory}: " + "; ".join(map(str, damaged)))

    def _restore_step(self, abstract_state: Any, expected: dict, step: int) -> tuple[Any, dict]:
        ocp = self._ocp
        meta = self.read_meta(step)
        check_compatible(meta, expected, abstract_state)
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
            jax.eval_shape(key_data_tree, abstract_state),
        )
        try:
            restored = self._open().restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        except Exception as err:  # noqa: BLE001  (tensorstore reports damaged files as bare Exception)
            raise CorruptCheckpointError(
                f"checkpoint {self.directory / str(step)} is damaged, its arrays do not read back: {_one_line(err)}"
            ) from None
        return jax.tree.map(rewrap_leaf, abstract_state, restored["state"]), meta

    def delete_after(self, step: int) -> list[int]:
        """Delete the checkpoints after `step` updates (a resume from an older one rewrites them)."""
        newer = [s for s in self.steps() if s > step]
        for s in newer:
            shutil.rmtree(self.directory / str(s))
        if newer and self._manager is not None:
            self._manager.reload()
        return newer

    def _step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        return step

    def close(self) -> None:
        """Wait for pending writes and release orbax's threads; `CheckpointWriteError` if the last write failed."""
        if self._manager is None:
            return
        try:
            self._manager.wait_until_finished()
        except Exception as err:  # noqa: BLE001
            self._manager.close()
            self._manager = None
            self.remove_partial()
            raise CheckpointWriteError(f"writing a checkpoint to {self.directory} failed: {_one_line(err)}") from None
        self._manager.close()
        self._manager = None
