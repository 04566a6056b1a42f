"""Run folders: the config, per-seed metrics (CSV, appended chunk by chunk) and a summary."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_DIR = "checkpoints"  # a run folder's checkpoints (`pgjax train` writes, `pgjax eval` reads)


def new_run_dir(root: str | Path, name: str) -> Path:
    """`root/name-YYYYmmdd-HHMMSS[-k]`, created; never reuses an existing folder."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, k = base, 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    path.mkdir(parents=True)
    return path


def versions() -> dict[str, str]:
    """Versions of pgjax, Python and the libraries a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("pgjax", "jax", "jaxlib", "flax", "optax", "gymnax"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def write_text(path: Path, text: str) -> None:
    """Write a file atomically: a temporary file in the same folder, flushed, then renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(x):
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")


class MetricsWriter:
    """Appends per-seed, per-update metric rows to `metrics.csv` after every chunk."""

    def __init__(self, path: Path, seeds: list[int], resume_at: int | None = None):
        """`resume_at`: continue an existing file after that many updates, dropping rows
        written after the checkpoint the run resumes from."""
        self.path, self.seeds, self.updates_written = path, seeds, 0
        self._columns: list[str] | None = None
        if resume_at is not None and path.exists():
            self._truncate(resume_at)

    def _truncate(self, updates: int) -> None:
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        self._columns = rows[0]
        update_col = self._columns.index("update")
        kept = [rows[0]] + [r for r in rows[1:] if int(r[update_col]) <= updates]
        buf = io.StringIO()
        csv.writer(buf).writerows(kept)
        write_text(self.path, buf.getvalue())
        self.updates_written = updates

    def append(self, metrics: dict[str, np.ndarray]) -> None:
        """`metrics`: name -> `[S, U_chunk]` for the chunk just computed."""
        names = sorted(metrics)
        if self._columns is None:
            self._columns = ["seed", "update", *names]
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self._columns)
        num_updates = next(iter(metrics.values())).shape[1]
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            for s, seed in enumerate(self.seeds):
                for u in range(num_updates):
                    row = [seed, self.updates_written + u + 1]
                    row += [_fmt(metrics[n][s, u]) for n in names]
                    writer.writerow(row)
            f.flush()
            os.fsync(f.fileno())
        self.updates_written += num_updates


def _fmt(x) -> str:
    x = float(x)
    return repr(int(x)) if x.is_integer() and abs(x) < 2**53 else f"{x:.7g}"


def read_metrics(path: str | Path) -> dict[int, dict[str, np.ndarray]]:
    """Read `metrics.csv` back: seed -> name -> `[U]` array (ordered by update)."""
    by_seed: dict[int, dict[str, list[float]]] = {}
    with Path(path).open() as f:
        for row in csv.DictReader(f):
            seed = int(row.pop("seed"))
            cols = by_seed.setdefault(seed, {})
            for k, v in row.items():
                cols.setdefault(k, []).append(float(v))
    return {s: {k: np.asarray(v) for k, v in cols.items()} for s, cols in by_seed.items()}
