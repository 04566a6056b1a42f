"""Process-level settings for JAX on CPU, applied by pgjax's entry points (CLI, tests, scripts).

XLA's CPU backend can wedge its Eigen thread pool on long vmapped programs: every thread
parks waiting for work and `block_until_ready` never returns. We saw it twice in the
16-seed PPO benchmark (5e5 steps) on a 2-core machine; others report the same
(PyAutoFit issue #1530: 14 hangs in 16 runs without the flag below, none in 12 with it).
Turning off Eigen's intra-op threading avoids it; tiny RL networks gain little from it.
"""

from __future__ import annotations

import os

SAFE_CPU_FLAG = "--xla_cpu_multi_thread_eigen=false"


def use_safe_cpu_flags() -> bool:
    """Add `--xla_cpu_multi_thread_eigen=false` to `XLA_FLAGS` unless the user set that flag.

    Must run before JAX initialises its backend (before the first computation). Set
    `PGJAX_KEEP_XLA_FLAGS=1` to leave `XLA_FLAGS` untouched. Returns whether it was added.
    """
    if os.environ.get("PGJAX_KEEP_XLA_FLAGS"):
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {SAFE_CPU_FLAG}".strip()
    return True
