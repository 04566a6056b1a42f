"""Run folders: the config, per-seed metrics (CSV, appended chunk by chunk) and a summary.

Damaged files are reported, never passed on as a raw parser error: `read_json` raises
`RunFileError` naming the file, and `metrics.csv` rows torn by a killed write are found by
`metrics_coverage` and dropped when a resume rewrites the file.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np


class RunFileError(ValueError):
    """A file of a run or sweep folder is missing or damaged (exit code 1, one line naming it)."""


CHECKPOINT_DIR = "checkpoints"  # a run folder's checkpoints (`pgjax train` writes, `pgjax eval` reads)
RUN_FILE = "config.json"  # a run folder's settings and config (`pgjax train` writes it first)
RUN_FILE_COPY = "run_file"  # the key of config.json's copy in every checkpoint's record
EVAL_FILE = "eval.csv"  # evaluations during training: seed, update, env_steps, return_mean, ... (`pgjax train`)


def unwritable(path: Path) -> str | None:
    """Why a file or folder cannot be created at `path`, or None: an ancestor that is a file,
    or a nearest existing folder that is not writable (read-only mount, permissions)."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{parent} is not writable"
            return None
    return None


def output_folder_problem(path: Path) -> str | None:
    """Why `path` cannot be a folder that receives run or sweep folders (it is a file, lies
    under a file, or cannot be written), or None; checked before any work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return "is a file; give a folder"
    if path.is_dir():
        reason = None if os.access(path, os.W_OK | os.X_OK) else f"{path} is not writable"
    else:
        reason = unwritable(path)
    return f"cannot write there ({reason})" if reason else None


def new_run_dir(root: str | Path, name: str) -> Path:
    """`root/name-YYYYmmdd-HHMMSS[-k]`, created; never reuses an existing folder."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = name.replace("/", "-")  # environment ids name their suite: brax/ant -> brax-ant
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
    """The JSON in `path`; `RunFileError` naming the file when it is missing or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFileError(f"{path} is damaged, not valid JSON ({err})") from None
    except OSError as err:
        raise RunFileError(f"{path} does not read: {err.strerror or err}") from None


def recover_run_file(run_dir: str | Path, prefix: str, required: bool) -> bool:
    """Write a missing `run_dir/config.json` back (atomically) from the newest readable
    checkpoint, which keeps a copy of it, saying so in one line on stderr; True if written.

    Checkpoints written before they kept the copy hold the config but not the run's settings
    (chunks, evaluation, trackers): with `required` (a resume) that is a `RunFileError`
    naming them, else (evaluation, plots: they read the config from the checkpoint) False.
    Nothing is done, False, when config.json is there or there is no checkpoint."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if path.exists() or not (run_dir / CHECKPOINT_DIR).is_dir():
        return False  # (before orbax is imported: plots and evaluations of whole folders stay quick)
    from pgjax.records.checkpoint import Checkpointer, CheckpointError

    checkpointer = Checkpointer(run_dir / CHECKPOINT_DIR)
    steps = checkpointer.steps()
    if not steps:
        return False
    try:
        for step in reversed(steps):
            try:
                copy = checkpointer.read_meta(step).get(RUN_FILE_COPY)
            except CheckpointError:
                continue  # a damaged record: an older checkpoint may still hold the copy
            if isinstance(copy, dict):
                try:
                    write_json(path, copy)
                except OSError as err:
                    if required:
                        raise RunFileError(f"{path} is missing and cannot be written back from the checkpoint at "
                                           f"update {step}: {err.strerror or err}") from None
                    return False
                print(f"{prefix}: note: {path} was missing: recovered it from the checkpoint at update {step}",
                      file=sys.stderr)
                return True
    finally:
        checkpointer.close()
    if required:
        raise RunFileError(
            f"{path} is missing, and the checkpoints in {checkpointer.directory} (updates {', '.join(map(str, steps))}) "
            "do not keep a copy of it (written by an older pgjax, or damaged), so the run's settings (chunks, "
            "evaluation, trackers) are lost; restore config.json, or train a new run")
    return False


def _jsonable(x):
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")


def read_rows(path: Path) -> tuple[list[str] | None, list[list[str]], int]:
    """`(header, well-formed rows, torn rows)` of a metrics file (`metrics.csv`: `seed`,
    `update`, then numbers), as strings; the header is None for an empty file. A row is
    torn when the write that made it was cut short: no final newline, a wrong field count
    or a non-number (rows are appended chunk by chunk, so only the end of a file can be
    torn)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise RunFileError(f"{path} is damaged, not text") from None
    except OSError as err:  # e.g. a folder where the file should be
        raise RunFileError(f"{path} does not read: {err.strerror or err}") from None
    lines = text.splitlines(keepends=True)
    torn = 1 if lines and not lines[-1].endswith("\n") else 0  # a last line without its newline
    rows = list(csv.reader(lines[: len(lines) - torn]))
    if not rows:
        return None, [], torn
    header, good = rows[0], []
    for row in rows[1:]:
        try:
            if len(row) != len(header):
                raise ValueError
            int(row[0]), int(row[1]), [float(x) for x in row[2:]]
        except ValueError:
            torn += 1
            continue
        good.append(row)
    return header, good, torn


def metrics_coverage(path: Path, seeds: list[int]) -> tuple[int | None, int]:
    """`(updates, torn rows)`: the number of updates for which every seed has its row in
    `metrics.csv` (rows 1..updates, in order; None when the file is missing)."""
    if not path.exists():
        return None, 0
    header, rows, torn = read_rows(path)
    if header is None or header[:2] != ["seed", "update"]:
        return 0, torn
    updates = {seed: [] for seed in seeds}
    for row in rows:
        updates.setdefault(int(row[0]), []).append(int(row[1]))
    covered = []
    for seed in seeds:
        k = 0
        while k < len(updates[seed]) and updates[seed][k] == k + 1:
            k += 1
        covered.append(k)
    return min(covered, default=0), torn


class MetricsWriter:
    """Appends per-seed, per-update metric rows to `metrics.csv` after every chunk."""

    def __init__(self, path: Path, seeds: list[int], resume_at: int | None = None):
        """`resume_at`: continue an existing file after that many updates, dropping rows
        written after the checkpoint the run resumes from (and torn rows)."""
        self.path, self.seeds, self.updates_written = path, seeds, 0
        self._columns: list[str] | None = None
        if resume_at is not None and path.exists():
            self.truncate(resume_at)

    def truncate(self, updates: int) -> None:
        """Keep the well-formed rows of the first `updates` updates (atomic rewrite)."""
        self.updates_written = updates
        if not self.path.exists():
            return
        header, rows, _ = read_rows(self.path)
        if header is None:
            self.path.unlink()
            return
        self._columns = header
        update_col = header.index("update")
        kept = [header] + [r for r in rows if int(r[update_col]) <= updates]
        buf = io.StringIO()
        csv.writer(buf).writerows(kept)
        write_text(self.path, buf.getvalue())

    def append(self, metrics: dict[str, np.ndarray], updates: list[int] | None = None) -> None:
        """`metrics`: name -> `[S, U_chunk]` for the chunk just computed, rows numbered after
        the updates written so far, or by `updates` (`[U_chunk]`, e.g. the update an
        evaluation followed)."""
        names = sorted(metrics)
        if self._columns is None:
            self._columns = ["seed", "update", *names]
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self._columns)
        num_updates = next(iter(metrics.values())).shape[1]
        if updates is None:
            updates = [self.updates_written + u + 1 for u in range(num_updates)]
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            for s, seed in enumerate(self.seeds):
                for u in range(num_updates):
                    row = [seed, updates[u]]
                    row += [_fmt(metrics[n][s, u]) for n in names]
                    writer.writerow(row)
            f.flush()
            os.fsync(f.fileno())
        self.updates_written = updates[-1]


def _fmt(x) -> str:
    x = float(x)
    return repr(int(x)) if x.is_integer() and abs(x) < 2**53 else f"{x:.7g}"


def read_metrics(path: str | Path) -> dict[int, dict[str, np.ndarray]]:
    """Read `metrics.csv` (or eval.csv) back: seed -> name -> `[U]` array (ordered by update).

    Rows at the end that a killed write tore (no final newline, a field short, a number cut
    off) are left out, as a resume drops them: they are not results. A damaged row before an
    intact one is a `RunFileError` naming the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines(keepends=True)
    except UnicodeDecodeError:
        raise RunFileError(f"{path} is damaged, not text") from None
    except OSError as err:
        raise RunFileError(f"{path} does not read: {err.strerror or err}") from None
    rows = list(csv.reader(lines))  # one record per line: the fields are numbers, never quoted
    by_seed: dict[int, dict[str, list[float]]] = {}
    if not rows:
        return {}
    header, damaged = rows[0], None
    for number, (line, row) in enumerate(zip(lines[1:], rows[1:]), start=2):
        try:
            if len(row) != len(header) or not line.endswith("\n"):
                raise ValueError
            seed, values = int(row[0]), [float(x) for x in row[1:]]
        except ValueError:
            damaged = damaged or (number, line.strip())
            continue
        if damaged is not None:
            raise RunFileError(f"{path} is damaged: line {damaged[0]} ({damaged[1][:60]!r}) is not a row of "
                               f"{len(header)} numbers ({', '.join(header[:3])}, ...), and intact rows follow it")
        cols = by_seed.setdefault(seed, {})
        for name, value in zip(header[1:], values):
            cols.setdefault(name, []).append(value)
    return {s: {k: np.asarray(v) for k, v in cols.items()} for s, cols in by_seed.items()}
