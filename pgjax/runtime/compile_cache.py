"""JAX's persistent compilation cache in a per-user folder: a second run of the same
config loads its compiled programs from disk instead of compiling them again.

The `pgjax` commands that compute enable it by default in `default_cache_dir()`
(`$XDG_CACHE_HOME/pgjax/jax`, else `~/.cache/pgjax/jax`); `PGJAX_COMPILE_CACHE=PATH`
moves it, `PGJAX_COMPILE_CACHE=0` (or `--no-compile-cache`) turns it off. From Python,
right after `import jax` and before the first compilation::

    import pgjax; pgjax.enable_compile_cache()          # or enable_compile_cache("/scratch/jax-cache")

JAX keys each entry by the program, the devices it runs on and the compiler's flags
(`XLA_FLAGS`, where the host device count lives), so a run on 1 and on 2 host devices
never shares an executable. Programs that compile in under a second are not stored
(JAX's `jax_persistent_cache_min_compile_time_secs`).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PGJAX_COMPILE_CACHE"
OFF_VALUES = ("0", "off", "false", "no", "")


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/pgjax/jax`, else `~/.cache/pgjax/jax`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pgjax" / "jax"


def configured_cache_dir(disabled: bool = False) -> Path | None:
    """The folder the commands cache in: None when `disabled` (`--no-compile-cache`) or
    `$PGJAX_COMPILE_CACHE` is 0/off; its path when set; else `default_cache_dir()`."""
    if disabled:
        return None
    value = os.environ.get(ENV_VAR)
    if value is None:
        return default_cache_dir()
    if value.strip().lower() in OFF_VALUES:
        return None
    return Path(value).expanduser()


def enable_compile_cache(path: str | os.PathLike | None = None) -> Path:
    """Store and reuse compiled programs in `path` (default `default_cache_dir()`), created
    if missing. Call before the first compilation. Returns the folder.

    Raises `OSError` naming the folder when it cannot be created or written."""
    import jax

    folder = Path(path).expanduser() if path is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"compile cache {folder}: cannot create it ({err.strerror or err})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(f"compile cache {folder}: not writable")
    jax.config.update("jax_compilation_cache_dir", str(folder))
    return folder
