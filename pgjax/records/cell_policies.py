"""The final parameters of a sweep's cells, kept so that they can be evaluated later.

Every finished cell writes `cells/cell-NNNNN.policy.npz` beside its JSON record: the policy a
trained agent acts with, `state.params` (all online networks) and `state.obs_stats`, one
array per leaf named by its path in that tree. On request (`pgjax sweep --save-state`) it
also writes `cells/cell-NNNNN.state.npz`, the cell's whole final training state (optimiser,
environments, keys, replay buffer...), restorable with `read_tree` into the structure
`jax.eval_shape(trainer.init, ...)` gives.

The files are NumPy `.npz` archives (`numpy.load` reads them) written deterministically:
sorted members with a fixed time stamp and no compression, so that the same parameters give
the same bytes (a multi-process sweep's files equal a single-process one's), and atomically
(a temporary file, then a rename). A file that does not match the tree its config builds
(another algorithm or network size, a damaged archive) raises `CellFileError` naming it.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from pgjax.records.prng_keys import is_typed_key, key_data_leaf, key_data_tree, rewrap_leaf

POLICY_SUFFIX = ".policy.npz"  # cell-NNNNN.policy.npz: params and obs_stats
STATE_SUFFIX = ".state.npz"  # cell-NNNNN.state.npz: the whole final training state (on request)
_STAMP = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no wall-clock time in the bytes


class CellFileError(ValueError):
    """A cell's parameter file is missing, damaged or does not fit its config."""


def policy_tree(state: Any) -> dict:
    """What evaluation needs from a training state: `{"params", "obs_stats"}`."""
    return {"params": state.params, "obs_stats": state.obs_stats}


def _leaves(tree: Any) -> dict[str, Any]:
    """Leaf path (`jax.tree_util.keystr`) -> leaf, typed PRNG keys as their uint32 data."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): key_data_leaf(x) for path, x in leaves}


def write_tree(path: str | Path, tree: Any) -> None:
    """Write every leaf of `tree` (host or device arrays) to the `.npz` archive `path`, byte
    for byte the same for the same values, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, leaf in sorted(_leaves(tree).items()):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(leaf), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_STAMP)
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_tree(path: str | Path, like: Any) -> Any:
    """The arrays of `path` in the structure of `like` (arrays or `jax.ShapeDtypeStruct`s;
    typed PRNG keys are rebuilt). `CellFileError` naming the file and the first mismatch."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise CellFileError(f"{path} is missing") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CellFileError(f"{path} is damaged ({err})") from None
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    out = []
    for key_path, leaf in leaves:
        name = jax.tree_util.keystr(key_path)
        if name not in stored:
            raise CellFileError(f"{path} has no array {name} (written for another algorithm or config?)")
        array = stored[name]
        if is_typed_key(leaf):
            out.append(rewrap_leaf(leaf, array))
            continue
        if array.shape != tuple(leaf.shape) or array.dtype != np.dtype(leaf.dtype):
            raise CellFileError(f"{path}: {name} is {array.dtype}{list(array.shape)}, the config builds "
                                f"{np.dtype(leaf.dtype)}{list(leaf.shape)}")
        out.append(array)
    if len(stored) != len(leaves):
        extra = sorted(set(stored) - {jax.tree_util.keystr(p) for p, _ in leaves})
        raise CellFileError(f"{path} holds arrays this config does not build: {', '.join(extra[:3])}")
    return jax.tree_util.tree_unflatten(treedef, out)


def host_rows(tree: Any, fetch: Any) -> Any:
    """`fetch` (e.g. `sharding.fetch`) of `tree` with typed PRNG keys as their uint32 data
    (what can be gathered across processes and stored)."""
    return fetch(key_data_tree(tree))


def readable(path: str | Path) -> bool:
    """True if `path` is a complete archive (its zip directory reads back)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False
