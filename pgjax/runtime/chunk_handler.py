"""What a run does on the host after each compiled chunk: metrics to metrics.csv and the
trackers, the evaluation if one is due, the checkpoint, the progress, then a requested stop
(SIGINT/SIGTERM: after the current chunk; again: at once). A run stopped by a signal or a
failed write ends with metrics.csv cut back to its newest checkpoint (`ChunkHandler.abort`).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from pgjax.records import runs
from pgjax.runtime.resumable import Interrupted, continue_with
from pgjax.runtime.run_record import PREFIX, note
from pgjax.runtime.run_result import FINITE_DIR, TrainResult


class Stopped(Exception):
    """`stop_after` chunks were run (tests of resume)."""


class Progress:
    """A tqdm progress bar over the environment steps of all seeds (the default of
    `progress=True`). Any object with these three methods can be passed instead."""

    def start(self, total_steps: int, steps_done: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total_steps, initial=steps_done, unit="step", unit_scale=True, desc="compiling",
                        dynamic_ncols=True)

    def update(self, steps_done: int, last_return: float) -> None:
        self.bar.set_description("training")
        self.bar.set_postfix(ret=f"{last_return:.1f}", refresh=False)
        self.bar.update(steps_done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class ChunkHandler:
    """After each chunk: metrics to metrics.csv, the evaluation if due, the state to a
    checkpoint, the progress; then stop if a signal asked to. `abort` leaves metrics.csv
    ending at the last checkpoint."""

    def __init__(self, run, done: int, meta: dict, spent_before: dict, evaluator):
        from pgjax.records.checkpoint import Checkpointer
        from pgjax.runtime import sharding
        from pgjax.runtime.experiment import evaluation_updates

        config, record, run_dir, seeds = run.config, run.record, run.run_dir, run.seeds
        self.config, self.num_seeds, self.run_dir = config, seeds.layout.num_seeds, run_dir
        self.writes = sharding.is_writer()  # with several processes, process 0 alone writes files
        self.writer = runs.MetricsWriter(run_dir / "metrics.csv", meta["seeds"], resume_at=done) if self.writes else None
        self.evaluator = evaluator  # every process evaluates (its seeds); process 0 writes the rows
        self.eval_writer = (runs.MetricsWriter(run_dir / runs.EVAL_FILE, meta["seeds"], resume_at=done)
                            if self.writes else None)
        self.eval_at = (evaluation_updates(config.num_updates, record["chunks"], record["eval_every"])
                        if evaluator is not None else set())
        self.eval_seconds = 0.0  # spent evaluating during training (this process; the first call compiles)
        self.tracker = _open_tracker(run_dir, record if self.writes else {**record, "log": ["csv"]}, meta,
                                     resumed=run.resuming, purge_step=done * config.env_steps_per_update)
        self.meta_checkpoints = record["checkpoints"]
        self.checkpointer = Checkpointer(run_dir / runs.CHECKPOINT_DIR) if record["checkpoints"] and self.writes else None
        self.meta, self.stop_after, self.signals = meta, run.stop_after, None
        # The seconds of this run's earlier starts (`run_restore.NOTHING_SPENT`'s keys), this start's compile added.
        self.spent_before, self.start = spent_before, time.perf_counter()
        self.rows = seeds.rows  # padded state -> [S] rows, what a checkpoint holds
        self.chunks_run, self.updates_done, self.last_return = 0, done, float("nan")
        # Process 0 reads metrics.csv and reports; the others need not see the run folder.
        self.diverged: dict[int, int] = _diverged_before(run_dir, meta["seeds"]) if done and self.writes else {}
        self.progress = run.progress
        if self.progress is not None:
            steps = config.env_steps_per_update * self.num_seeds
            self.progress.start(config.num_updates * steps, done * steps)

    def __call__(self, updates_done: int, state, metrics: dict) -> None:
        import numpy as np

        if self.writer is not None:
            self.writer.append(metrics)  # metrics first: a resume drops rows past its checkpoint
        self.tracker.log_chunk(self.series, metrics)
        if updates_done in self.eval_at:  # before the checkpoint, which then implies its evaluation row
            self._evaluate(updates_done, state)
        self._keep_last_finite(updates_done, metrics)
        if self.meta_checkpoints:
            rows = self.rows(state)  # gathers the rows to every process: all take part
            if self.checkpointer is not None:
                self.checkpointer.save(updates_done, rows, {**self.meta, **self.spent()})
        self.updates_done = updates_done
        recent = metrics["episode_return"][:, -max(1, metrics["episode_return"].shape[1] // 4):]
        if np.isfinite(recent).any():  # no finished episode yet: nanmean would warn of an empty slice
            self.last_return = float(np.nanmean(recent))
        if self.progress is not None:
            self.progress.update(updates_done * self.config.env_steps_per_update * self.num_seeds, self.last_return)
        self.chunks_run += 1
        if self.stop_after is not None and self.chunks_run >= self.stop_after:
            raise Stopped
        if self.signals is not None:
            if updates_done == self.config.num_updates:  # all trained: finish (summary) rather than stop
                if self.signals.received is not None:
                    note(f"{signal.Signals(self.signals.received).name} came after the last update: "
                         "finishing the run (evaluation and summary; send it again to stop at once)")
                return
            self.signals.check_everywhere()

    def _keep_last_finite(self, updates_done: int, metrics: dict) -> None:
        """A seed whose parameters or loss became non-finite in this chunk: copy the previous
        chunk's checkpoint (the seed's last finite state) to `FINITE_DIR` before the
        checkpoint rotation deletes it, and say so. The seed trains on as if fine (as a
        diverged sweep cell); the run ends with exit code `DIVERGED_EXIT`."""
        import shutil

        from pgjax.runtime.experiment import first_nonfinite_update

        before = updates_done - next(iter(metrics.values())).shape[1]
        firsts = first_nonfinite_update(metrics, before)
        new = {s: u for s, u in zip(self.meta["seeds"], firsts, strict=True) if u is not None and s not in self.diverged}
        if not new:
            return
        self.diverged.update(new)
        kept = ""
        if self.checkpointer is not None and before > 0:
            self.checkpointer.close()  # the previous chunk's checkpoint is complete on disk
            source = self.run_dir / runs.CHECKPOINT_DIR / str(before)
            target = self.run_dir / FINITE_DIR / str(before)
            if source.is_dir() and not target.exists():
                target.parent.mkdir(exist_ok=True)
                shutil.copytree(source, target.with_name(target.name + ".tmp"))
                target.with_name(target.name + ".tmp").rename(target)
            kept = f"; its last finite state is kept in {target}"
        if self.writes:
            what = ", ".join(f"seed {s} at update {u}" for s, u in sorted(new.items()))
            print(f"{PREFIX}: warning: non-finite parameters or loss: {what}{kept}; training the other seeds on",
                  file=sys.stderr)

    def spent(self) -> dict:
        """The run's seconds so far over every start: wall time, and the parts of it spent
        compiling the training program and evaluating during training (this process's)."""
        before = self.spent_before
        return {"wall_seconds": round(before["wall_seconds"] + time.perf_counter() - self.start, 2),
                "compile_seconds": round(before["compile_seconds"], 3),
                "eval_seconds_during_training": round(before["eval_seconds_during_training"] + self.eval_seconds, 3)}

    @property
    def series(self) -> list[str]:
        return [f"seed-{s}" for s in self.meta["seeds"]]

    def _evaluate(self, updates_done: int, state) -> None:
        """Every seed's policy on the shared evaluation episodes: a row per seed in eval.csv
        and an eval/ point in the trackers, at the env steps trained so far."""
        import numpy as np

        started = time.perf_counter()
        values = self.evaluator.means(state.params, state.obs_stats)
        self.eval_seconds += time.perf_counter() - started
        env_steps = updates_done * self.config.env_steps_per_update
        rows = {f"eval_{k}": v[:, None] for k, v in values.items()}
        rows["env_steps"] = np.full((self.num_seeds, 1), env_steps)
        if self.eval_writer is not None:
            self.eval_writer.append(rows, updates=[updates_done])
        self.tracker.log_eval(self.series, [env_steps] * self.num_seeds, values)

    def close(self) -> None:
        if self.progress is not None:
            progress, self.progress = self.progress, None
            progress.close()
        try:
            if self.checkpointer is not None:
                checkpointer, self.checkpointer = self.checkpointer, None
                checkpointer.close()
        finally:
            self.tracker.close()

    def abort(self, err: Exception) -> TrainResult:
        """Stop on a signal or a failed write: wait for the pending checkpoint write, cut
        metrics.csv back to the newest checkpoint, say how to continue."""
        from pgjax.records.checkpoint import Checkpointer, CheckpointWriteError

        try:
            self.close()
        except CheckpointWriteError as late:
            err = err if isinstance(err, (CheckpointWriteError, Interrupted)) else late
        if isinstance(err, Interrupted):
            what = f"interrupted by {signal.Signals(err.signum).name}"
        elif isinstance(err, CheckpointWriteError) or not err.filename:
            what = str(err)
        else:
            what = f"writing {err.filename} failed: {err.strerror or err}"
        status, code = ("interrupted", 128 + err.signum) if isinstance(err, Interrupted) else ("failed", 1)
        if not self.writes:  # process 0 keeps the files and says how to continue
            print(f"{PREFIX}: {what}; stopped with process 0", file=sys.stderr)
            return TrainResult(self.run_dir, status, code, self.updates_done, message=what)
        if self.meta_checkpoints:
            kept = Checkpointer(self.run_dir / runs.CHECKPOINT_DIR).latest_step() or 0
            where = (f"kept the checkpoint at update {kept}, metrics.csv up to it" if kept
                     else "no checkpoint yet, a resume starts at update 0")
            try:
                self.writer.truncate(kept)
                self.eval_writer.truncate(kept)
            except OSError as cut:
                where += f" (metrics.csv not cut back: {cut.strerror or cut}; a resume does it)"
        else:
            kept = 0
            where = f"metrics.csv holds {self.writer.updates_written} updates, no checkpoints (a resume starts at update 0)"
        message = f"{what}; {where}; {continue_with(self.run_dir)}"
        print(f"{PREFIX}: {message}", file=sys.stderr)
        return TrainResult(self.run_dir, status, code, kept, message=message)


def _diverged_before(run_dir: Path, seeds: list[int]) -> dict[int, int]:
    """Seeds already non-finite in a resumed run's metrics.csv: their first such update."""
    from pgjax.runtime.experiment import first_nonfinite_update

    by_seed = runs.read_metrics(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else {}
    out = {}
    for seed in seeds:
        rows = by_seed.get(seed)
        if rows:
            (first,) = first_nonfinite_update({k: v[None] for k, v in rows.items()})
            if first is not None:
                out[seed] = first
    return out


def _open_tracker(run_dir: Path, record: dict, meta: dict, resumed: bool, purge_step: int):
    """The run's TensorBoard/W&B sinks (`log`): a series per seed, its config, seed and
    run settings as hyper-parameters. A resumed run purges TensorBoard points from its
    checkpoint on (the resume recomputes them) and continues the same W&B runs."""
    from pgjax.records.tracking import Series, flat_hparams, open_tracker

    common = {"algo": meta["algo"], "root_seed": meta["root_seed"], "num_seeds": meta["num_seeds"],
              **{key: record[key] for key in ("chunks", "eval_every", "eval_episodes", "eval_mode")},
              **flat_hparams(meta["config"], "config.")}
    series = [Series(f"seed-{s}", {**common, "seed": s}) for s in meta["seeds"]]
    return open_tracker(record["log"], run_dir, run_dir.name, series, purge_step=purge_step if resumed else None)
