"""Checkpoints of the whole training state, written atomically with orbax.

A checkpoint is one folder `checkpoints/<updates_done>/` holding the state pytree (every
leaf: parameters, optimiser state, target networks, normaliser statistics, replay buffer,
environment state, PRNG keys, counters) and a JSON `meta` item: the algorithm, its config,
the seeds, the number of updates done and the tree signature (path, shape and dtype of
every leaf). orbax writes into a temporary folder and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact.

Restoring checks the checkpoint against the run that wants it before any array is read:
a different algorithm, config or state structure fails with a `CheckpointError` that
names what differs. Because the whole state is saved, `run(state, hp, a)`, save, restore,
`run(state, hp, b)` is bit-identical to `run(state, hp, a + b)`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np

FORMAT = 1  # bump when the layout of `meta` changes


class CheckpointError(ValueError):
    """A checkpoint is missing or does not match the run that wants to restore it."""


def tree_signature(tree: Any) -> list[list[str]]:
    """`[path, shape, dtype]` for every leaf (arrays or `jax.ShapeDtypeStruct`s)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [[jax.tree_util.keystr(path), str(list(np.shape(x))), str(x.dtype)] for path, x in leaves]


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_data(tree: Any) -> Any:
    """Typed PRNG keys as their raw uint32 data (what an array store can hold)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _describe_difference(what: str, saved: dict, current: dict, prefix: str = "") -> list[str]:
    lines = []
    for name in sorted(set(saved) | set(current)):
        a, b = saved.get(name, "<absent>"), current.get(name, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _describe_difference(what, a, b, f"{prefix}{name}.")
        elif a != b:
            lines.append(f"{prefix}{name}: checkpoint {a!r}, {what} {b!r}")
    return lines


def check_compatible(meta: dict, expected: dict, abstract_state: Any) -> None:
    """Raise `CheckpointError` naming every difference between a checkpoint and a run."""
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint format {meta.get('format')!r} is not {FORMAT} (written by another pgjax)")
    if meta["algo"] != expected["algo"]:
        raise CheckpointError(f"checkpoint is for algo={meta['algo']!r}, not {expected['algo']!r}")
    diffs = _describe_difference("this run", meta["config"], expected["config"])
    if diffs:
        raise CheckpointError("checkpoint config differs from this run's config:\n  " + "\n  ".join(diffs))
    if meta.get("num_seeds") != expected.get("num_seeds"):
        raise CheckpointError(f"checkpoint holds {meta.get('num_seeds')} seeds, this run has {expected.get('num_seeds')}")
    saved, current = meta["tree"], tree_signature(abstract_state)
    if saved != current:
        saved_paths = {p: (s, d) for p, s, d in saved}
        current_paths = {p: (s, d) for p, s, d in current}
        lines = [
            f"{p}: checkpoint {saved_paths.get(p, '<absent>')}, this run {current_paths.get(p, '<absent>')}"
            for p in sorted(set(saved_paths) | set(current_paths))
            if saved_paths.get(p) != current_paths.get(p)
        ] or ["same leaves in a different order"]
        raise CheckpointError(
            f"checkpoint state does not match this run's state ({len(lines)} leaves differ; same config, "
            "so the algorithm's code changed):\n  " + "\n  ".join(lines[:10])
        )


class Checkpointer:
    """Saves and restores `directory/<updates_done>/` checkpoints (orbax `CheckpointManager`).

    `save` returns once the arrays are copied off the device; the files are written in a
    background thread while the next chunk computes. `close()` waits for the last write.
    Only the newest `max_to_keep` checkpoints are kept.
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO
        self._ocp = ocp
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def save(self, updates_done: int, state: Any, meta: dict) -> None:
        """Checkpoint `state` after `updates_done` updates; `meta` gains format and tree signature."""
        ocp = self._ocp
        meta = {**meta, "format": FORMAT, "updates_done": int(updates_done), "tree": tree_signature(state)}
        self._manager.save(
            int(updates_done),
            args=ocp.args.Composite(state=ocp.args.StandardSave(_key_data(state)), meta=ocp.args.JsonSave(meta)),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def read_meta(self, step: int | None = None) -> dict:
        step = self._step(step)
        return self._manager.restore(step, args=self._ocp.args.Composite(meta=self._ocp.args.JsonRestore()))["meta"]

    def restore(self, abstract_state: Any, expected: dict, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure of `abstract_state` (e.g. `jax.eval_shape` of init).

        `expected` holds this run's `algo`, `config` (a `config.to_dict`) and `num_seeds`;
        any difference from the checkpoint raises `CheckpointError` before arrays are read.
        Returns `(state, meta)`.
        """
        ocp = self._ocp
        step = self._step(step)
        meta = self.read_meta(step)
        check_compatible(meta, expected, abstract_state)
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
            jax.eval_shape(_key_data, abstract_state),
        )
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        state = jax.tree.map(
            lambda like, x: jax.random.wrap_key_data(x, impl=jax.random.key_impl(like)) if _is_key(like) else x,
            abstract_state, restored["state"],
        )
        return state, meta

    def _step(self, step: int | None) -> int:
        step = self._manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        return step

    def close(self) -> None:
        """Wait for pending writes and release orbax's threads."""
        self._manager.wait_until_finished()
        self._manager.close()
