"""What a run gives back (`TrainResult`), and how a run with a diverged seed ends."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

# Exit code of a run that finished with a seed whose parameters or loss became non-finite
# (the other seeds trained as if it were fine; its last finite state is kept, see
# `FINITE_DIR`), so that a cluster job can tell.
DIVERGED_EXIT = 3
FINITE_DIR = "finite_checkpoints"  # RUN_DIR/finite_checkpoints/<update>/: a diverged seed's last finite state


@dataclasses.dataclass
class TrainResult:
    """What a run gives back. `status`: "finished", "stopped" (after `stop_after` chunks),
    "interrupted" (a signal) or "failed" (a write failed; `message` says which).
    `exit_code` is what `pgjax train` exits with; `state` the final `[S]` training state
    (finished runs); `summary` the summary.json contents (finished runs, process 0)."""

    run_dir: Path
    status: str
    exit_code: int
    updates_done: int
    state: Any = None
    summary: dict | None = None
    message: str = ""


def diverged_message(diverged: dict[int, int], run_dir: Path) -> str:
    """One line naming each diverged (seed, update) and where its last finite state is."""
    kept = sorted((Path(run_dir) / FINITE_DIR).glob("[0-9]*"), key=lambda p: int(p.name))
    where = (f"the last finite checkpoints are kept in {Path(run_dir) / FINITE_DIR} (updates "
             f"{', '.join(p.name for p in kept)})" if kept else "no finite checkpoint was kept (none before it)")
    seeds = ", ".join(f"seed {s} at update {u}" for s, u in sorted(diverged.items()))
    return f"non-finite parameters or loss: {seeds}; {where}"
