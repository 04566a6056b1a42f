"""Where a resumed run continues: its newest intact checkpoint that metrics.csv and eval.csv
cover. Checkpoints past it (damaged, or ahead of torn files) are deleted, since training
rewrites them bit for bit. With several processes, process 0 decides and reads, and sends
the decision and the state to the others (`restore_everywhere`). Each function takes the
`run.TrainingRun` it restores.
"""

from __future__ import annotations

from pgjax import config as cfg
from pgjax.records import runs
from pgjax.runtime.run_record import ResumeError, note


def restore(run):
    """`(state [S] or None, updates_done, spent)` to continue a run, `spent` the seconds the
    run's earlier starts took (`NOTHING_SPENT`'s keys, `spent_before`): its newest
    intact checkpoint that metrics.csv covers. Checkpoints past it (damaged, or ahead of
    torn metrics) are deleted, since training rewrites them bit for bit; no checkpoint
    yet (killed while compiling, or no checkpoints) restarts from update 0."""
    from pgjax.records.checkpoint import Checkpointer, CheckpointError

    run_dir, record = run.run_dir, run.record
    checkpointer = Checkpointer(run_dir / runs.CHECKPOINT_DIR)
    removed = checkpointer.remove_partial()
    if removed:
        note(f"removed the half-written checkpoint(s) {', '.join(removed)}")
    steps = checkpointer.steps()
    covered, torn = runs.metrics_coverage(run_dir / "metrics.csv", record["seeds"])
    if covered is None and steps:
        raise ResumeError(
            f"{run_dir / 'metrics.csv'} is missing while checkpoints exist (updates {', '.join(map(str, steps))}); "
            f"restore the file, or delete {checkpointer.directory} to train again from update 0")
    covered = covered or 0
    if torn:
        note(f"{run_dir / 'metrics.csv'}: dropping {torn} torn row(s) (a write cut short); "
             f"complete rows cover {covered} updates")
    missing = first_missing_evaluation(run, max(steps, default=0))
    if missing is not None and missing <= covered:
        # Continue from a checkpoint before it, so that training recomputes it (bit for bit).
        note(f"{run_dir / runs.EVAL_FILE}: the evaluation after update {missing} is missing or torn; "
             "continuing from a checkpoint before it to compute it again")
        covered = missing - 1
    if not steps:
        if record["checkpoints"]:
            note("no checkpoint yet (stopped before the first one): training from update 0 with the run's settings")
        return None, 0, NOTHING_SPENT
    if not any(s <= covered for s in steps):
        note(f"metrics.csv and {runs.EVAL_FILE} cover {covered} updates, fewer than the first checkpoint "
             f"({steps[0]}): training again from update 0")
        checkpointer.delete_after(0)
        return None, 0, NOTHING_SPENT
    try:
        state, meta = checkpointer.restore(run.seeds.abstract_state(), run.expected, at_most=covered,
                                           on_skip=lambda err: note(f"skipping a damaged checkpoint: {err}"))
    except CheckpointError as err:
        raise ResumeError(f"{err}; delete {checkpointer.directory} to train again from update 0") from None
    finally:
        checkpointer.close()
    done = meta["updates_done"]
    dropped = checkpointer.delete_after(done)
    if dropped:
        note(f"continuing from the checkpoint at update {done}; deleted the later one(s) at update "
             f"{', '.join(map(str, dropped))} (training rewrites them bit for bit)")
    return state, done, spent_before(meta)


NOTHING_SPENT = {"wall_seconds": 0.0, "compile_seconds": 0.0, "eval_seconds_during_training": 0.0}


def spent_before(meta: dict) -> dict:
    """The seconds of the starts before a checkpoint, from its meta: wall time, and the parts
    of it spent compiling and evaluating (a checkpoint from before pgjax kept those parts
    counts 0 for them)."""
    return {key: float(meta.get(key, 0.0)) for key in NOTHING_SPENT}


def restore_everywhere(run):
    """`restore` on process 0, its decision and state sent to every process (with one
    process, `restore`): all continue from the same checkpoint, or all fail alike."""
    from pgjax.runtime.agreement import decided_by_writer, tree_from_writer

    found = {}

    def decide():
        found["state"], done, spent = restore(run)
        return {"done": done, "spent": spent}

    decision = decided_by_writer(decide, f"the checkpoint to continue {run.run_dir} from",
                                 (ResumeError, runs.RunFileError, cfg.ConfigError))
    if decision["done"] == 0:  # no checkpoint to continue from: every process starts afresh
        return None, 0, NOTHING_SPENT
    state = tree_from_writer(found.get("state"), run.seeds.abstract_state(),
                             f"the state restored from {run.run_dir}'s checkpoint at update {decision['done']}")
    return state, decision["done"], decision["spent"]


def first_missing_evaluation(run, up_to: int) -> int | None:
    """The first evaluation point at most `up_to` without a complete row for every seed
    in eval.csv (the file deleted, or its last rows torn), or None."""
    from pgjax.runtime.experiment import evaluation_updates

    record = run.record
    if record["eval_episodes"] == 0:
        return None
    due = sorted(u for u in evaluation_updates(run.config.num_updates, record["chunks"], record["eval_every"])
                 if u <= up_to)
    if not due:
        return None
    present: dict[int, set[int]] = {}
    path = run.run_dir / runs.EVAL_FILE
    if path.exists():
        header, rows, _ = runs.read_rows(path)  # well-formed rows only (torn ones dropped)
        if header is not None and header[:2] == ["seed", "update"]:
            for row in rows:
                present.setdefault(int(row[1]), set()).add(int(row[0]))
    seeds = set(record["seeds"])
    return next((u for u in due if not seeds <= present.get(u, set())), None)
