"""Experiment tracking: TensorBoard and Weights & Biases beside `metrics.csv`.

A run is fed to its trackers on the host between compiled chunks, from the metrics the
chunk already returned (`[S, U]` arrays), never through callbacks inside `jit` (under
`vmap` those unroll per seed or serialise). Each *series* (one seed of `pgjax train`, one
cell of `pgjax sweep`) is its own TensorBoard run folder and its own W&B run, with its
hyper-parameters (the flattened config, the seed and, for a sweep cell, the grid values)
recorded as the run's hyper-parameters. Points are logged against environment steps per
seed (`env_steps`): training metrics as `train/<name>`, evaluations as `eval/<name>`.

`metrics.csv` is always written (resume and `pgjax plot` read it); "csv" in a sink list
only names it. From Python::

    from pgjax.records import tracking
    tracker = tracking.open_tracker(["tensorboard", "wandb"], "runs/my-run", "my-run",
                                    [tracking.Series("seed-0", {"lr": 3e-4, "seed": 0})])
    tracker.log_chunk(["seed-0"], metrics)      # name -> [S, U], with an env_steps column
    tracker.log_eval(["seed-0"], env_steps, {"return": returns})  # name -> [S]
    tracker.close()                             # finishes every series (tracker.finish: some)

The writers are optional packages (`pip install 'pgjax[track]'`): `tensorboardX` (event
files without TensorFlow, under 1 MB) and `wandb`. W&B runs offline with
`WANDB_MODE=offline` (files under `<folder>/wandb/`, `wandb sync` uploads them later).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

CSV, TENSORBOARD, WANDB = "csv", "tensorboard", "wandb"
SINKS = (CSV, TENSORBOARD, WANDB)
INSTALL_HINT = "pip install 'pgjax[track]'"
TENSORBOARD_DIR = "tensorboard"  # <run or sweep folder>/tensorboard/<series>/events.out.tfevents.*
DEFAULT_PROJECT = "pgjax"


class TrackingError(ValueError):
    """A bad sink list, or a tracker package that is missing (the message names the extra)."""


def parse_sinks(text: str | Iterable[str]) -> list[str]:
    """`"csv,tensorboard"` (or a list of names) -> the sinks in `SINKS` order, always with csv."""
    names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    unknown = [n for n in names if n not in SINKS]
    if unknown or not any(names):
        raise TrackingError(f"--log {','.join(names)!r}: unknown sink {unknown[0] if unknown else '(empty)'!r}; "
                            f"choose from {', '.join(SINKS)} (comma-separated)")
    return [s for s in SINKS if s in names or s == CSV]


def require(sinks: Sequence[str]) -> None:
    """Fail before any work when a chosen sink's package is not installed, or W&B would need a
    login it does not have (`check_wandb_login`)."""
    modules = {TENSORBOARD: "tensorboardX", WANDB: "wandb"}
    for sink in sinks:
        if sink in modules:
            _import(modules[sink], sink)
    if WANDB in sinks:
        check_wandb_login()


def _wandb_settings_mode() -> str:
    """The `mode` that `wandb offline` / `wandb disabled` wrote into W&B's settings files
    (`./wandb/settings`, then the global one), or ''."""
    import configparser

    config_dir = Path(os.environ.get("WANDB_CONFIG_DIR") or Path.home() / ".config" / "wandb")
    for path in (Path("wandb") / "settings", config_dir / "settings"):
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except (OSError, configparser.Error):
            continue
        if parser.has_option("default", "mode"):
            return parser.get("default", "mode").strip().lower()
    return ""


def _netrc_has(host: str) -> bool:
    import netrc

    paths = [os.environ["NETRC"]] if os.environ.get("NETRC") else [Path.home() / ".netrc", Path.home() / "_netrc"]
    for path in paths:
        try:
            if netrc.netrc(str(path)).authenticators(host):
                return True
        except (OSError, netrc.NetrcParseError):
            continue
    return False


def check_wandb_login() -> None:
    """Raise `TrackingError` now, before anything compiles, when `--log wandb` would fail at
    its first `wandb.init`: online mode (no `WANDB_MODE=offline`/`disabled`, no `wandb
    offline`) without an API key (`WANDB_API_KEY`, or the `.netrc` entry `wandb login`
    writes for `$WANDB_BASE_URL`'s host, default api.wandb.ai). Nothing is sent anywhere."""
    from urllib.parse import urlparse

    mode = (os.environ.get("WANDB_MODE") or _wandb_settings_mode()).strip().lower()
    if mode in ("offline", "dryrun", "disabled") or os.environ.get("WANDB_DISABLED", "").lower() in ("true", "1"):
        return
    if os.environ.get("WANDB_API_KEY", "").strip():
        return
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    if _netrc_has(host):
        return
    raise TrackingError(f"--log wandb: not logged in to W&B ({host}: no WANDB_API_KEY and no .netrc entry); "
                        "run `wandb login`, or log offline with WANDB_MODE=offline (then `wandb sync`)")


def _import(module: str, sink: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise TrackingError(f"--log {sink} needs the package {module}, which is not installed: "
                            f"{INSTALL_HINT}") from None


@dataclasses.dataclass(frozen=True)
class Series:
    """One tracked line: a seed of a run, or a cell of a sweep, with its hyper-parameters."""

    name: str  # "seed-3", "cell-00012": the TensorBoard folder and the W&B run name
    hparams: Mapping[str, Any]  # flat: dotted key -> bool/int/float/str


def flat_hparams(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict flattened to dotted keys; lists, None and other values become
    their JSON-like text, since trackers take scalars and strings only."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


class Sink(Protocol):
    def open(self, series: Series) -> None: ...

    def log(self, series: str, step: int, values: dict[str, float]) -> None: ...

    def has(self, series: str) -> bool: ...

    def finish(self, series: str) -> None: ...


class TensorBoardSink:
    """One `tensorboardX.SummaryWriter` per series in `directory/tensorboard/<series>/`.

    `purge_step` (a resumed run: its checkpoint's env steps) tells TensorBoard to drop
    points at or after it from earlier files, so the rows a resume recomputes are not drawn
    twice.
    """

    def __init__(self, directory: str | Path, purge_step: int | None = None):
        self._tensorboardx = _import("tensorboardX", TENSORBOARD)
        self.directory, self.purge_step, self.writers = Path(directory), purge_step, {}

    def open(self, series: Series) -> None:
        from tensorboardX.summary import hparams

        writer = self._tensorboardx.SummaryWriter(str(self.directory / TENSORBOARD_DIR / series.name),
                                                  purge_step=self.purge_step, flush_secs=30)
        # The hparams plugin's records go into the series' own folder (add_hparams would
        # open a new timestamped sub-run), so the HParams tab lists one row per series.
        for summary in hparams(dict(series.hparams), {"eval/return": None, "train/episode_return": None}):
            writer._get_file_writer().add_summary(summary)
        self.writers[series.name] = writer

    def log(self, series: str, step: int, values: dict[str, float]) -> None:
        writer = self.writers[series]
        for name, value in values.items():
            writer.add_scalar(name, value, global_step=step)

    def has(self, series: str) -> bool:
        return series in self.writers

    def finish(self, series: str) -> None:
        self.writers.pop(series).close()


def wandb_run_id(directory: str | Path, series: str) -> str:
    """A W&B run id fixed by the folder (its absolute path and host) and the series, so a
    resumed run continues the same W&B runs without storing anything."""
    where = f"{socket.gethostname()}:{Path(directory).resolve()}:{series}"
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", f"{Path(directory).name}-{series}")[-48:]
    return f"{stem}-{hashlib.sha1(where.encode()).hexdigest()[:10]}"


class WandbSink:
    """One W&B run per series (grouped by the run or sweep folder's name), config = its
    hyper-parameters, files under `directory/wandb/`. Steps are environment steps."""

    def __init__(self, directory: str | Path, group: str, project: str | None = None):
        self._wandb = _import("wandb", WANDB)
        self.project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.directory, self.group, self.runs = Path(directory), group, {}

    def open(self, series: Series) -> None:
        wandb = self._wandb
        self.runs[series.name] = wandb.init(
            project=self.project, group=self.group, name=f"{self.group}/{series.name}", job_type="train",
            config=dict(series.hparams), dir=str(self.directory), id=wandb_run_id(self.directory, series.name),
            resume="allow", reinit="create_new", settings=wandb.Settings(silent=True, console="off"))

    def log(self, series: str, step: int, values: dict[str, float]) -> None:
        # A resumed run re-logs the updates after its checkpoint: W&B ignores steps below
        # its last one, and the values are bit-identical anyway.
        self.runs[series].log(values, step=step)

    def has(self, series: str) -> bool:
        return series in self.runs

    def finish(self, series: str) -> None:
        self.runs.pop(series).finish()


class Tracker:
    """The sinks of one run or sweep. `open` a series (a seed, a sweep cell), feed it `[S, U]`
    metric chunks and `[S]` evaluations on the host, `finish` it; each row goes to every
    sink under its series name, at its env step. `close` finishes every open series."""

    def __init__(self, sinks: Sequence[Sink] = ()):
        self.sinks, self.open_series = list(sinks), set()

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def open(self, series: Iterable[Series]) -> None:
        """Start these series in every sink; a sink that fails (W&B online without a login,
        an unwritable folder) raises `TrackingError` with its reason."""
        for s in series:
            if s.name not in self.open_series:
                self.open_series.add(s.name)
                for sink in self.sinks:
                    try:
                        sink.open(s)
                    except Exception as err:  # noqa: BLE001 (a tracker's own errors are many and its own)
                        raise TrackingError(f"{type(sink).__name__} could not start the series {s.name}: {err}"
                                            + (" (W&B: run `wandb login`, or set WANDB_MODE=offline)"
                                               if isinstance(sink, WandbSink) else "")) from None

    def finish(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.open_series:
                self.open_series.discard(name)
                for sink in self.sinks:
                    if sink.has(name):
                        sink.finish(name)

    def log_chunk(self, names: Sequence[str], metrics: Mapping[str, np.ndarray]) -> None:
        """`metrics`: name -> `[S, U]` (one row per series in `names`), with `env_steps`."""
        if not self.sinks:
            return
        steps = np.asarray(metrics["env_steps"])
        arrays = {f"train/{k}": np.asarray(v, float) for k, v in metrics.items() if k != "env_steps"}
        for i, series in enumerate(names):
            for u in range(steps.shape[1]):
                self._log(series, int(steps[i, u]), {k: v[i, u] for k, v in arrays.items()})

    def log_eval(self, names: Sequence[str], env_steps: Sequence[int] | np.ndarray,
                 values: Mapping[str, np.ndarray]) -> None:
        """`values`: name -> `[S]`, logged as `eval/<name>` at each series' `env_steps`."""
        if not self.sinks:
            return
        for i, series in enumerate(names):
            self._log(series, int(np.asarray(env_steps)[i]), {f"eval/{k}": np.asarray(v, float)[i]
                                                               for k, v in values.items()})

    def _log(self, series: str, step: int, values: dict) -> None:
        # nan marks "nothing to report" (no episode finished in the update): left out.
        values = {k: float(v) for k, v in values.items() if not math.isnan(float(v))}
        if values:
            for sink in self.sinks:
                sink.log(series, step, values)

    def close(self) -> None:
        self.finish(sorted(self.open_series))


def open_tracker(
    sinks: Sequence[str],
    directory: str | Path,
    group: str,
    series: Sequence[Series] = (),
    *,
    purge_step: int | None = None,
    project: str | None = None,
) -> Tracker:
    """A `Tracker` writing to the chosen `sinks` (csv is `metrics.csv`, written elsewhere)
    for a run or sweep in `directory`, with `series` opened; `group` names it in W&B, in
    `project` (default `$WANDB_PROJECT`, else "pgjax")."""
    sinks = parse_sinks(sinks)
    require(sinks)
    opened: list[Sink] = []
    if TENSORBOARD in sinks:
        opened.append(TensorBoardSink(directory, purge_step))
    if WANDB in sinks:
        opened.append(WandbSink(directory, group, project))
    tracker = Tracker(opened)
    try:
        tracker.open(series)
    except BaseException:
        tracker.close()
        raise
    return tracker
