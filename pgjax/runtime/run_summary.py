"""The end of a finished run: summary.json (final training and evaluation returns,
divergence per seed) and the learning-curve figures, for the `run.TrainingRun` passed."""

from __future__ import annotations

from pgjax.records import runs


def summarize(run, state, spent: dict, evaluator, evaluated_during_training: bool) -> dict | None:
    """summary.json: final training return and divergence per seed (from the whole
    metrics.csv, also after a resume), the evaluation return per seed, and the seconds
    `spent` over every start (`ChunkHandler.spent`). With several processes all evaluate;
    process 0 writes and gets the summary, the others None."""
    import numpy as np

    from pgjax.runtime import sharding
    from pgjax.runtime.eval_modes import DEFAULT_EVAL_SEED
    from pgjax.runtime.experiment import first_nonfinite_update

    run_dir, record, config = run.run_dir, run.record, run.config
    seed_ids = record["seeds"]
    episodes = evaluator(state) if evaluator is not None else None  # every process takes part
    if not sharding.is_writer():
        return None
    by_seed = runs.read_metrics(run_dir / "metrics.csv")
    summary = {"wall_seconds": spent["wall_seconds"],
               "env_steps_per_seed": config.num_updates * config.env_steps_per_update,
               "host_devices": run.seeds.layout.num_devices, "vmap_width": run.seeds.layout.width,
               "final_train_return": {}, "diverged_at_update": {}}
    for seed in seed_ids:
        returns = by_seed[seed]["episode_return"]
        tail = returns[-max(1, config.num_updates // 10):]
        summary["final_train_return"][str(seed)] = float(np.nanmean(tail)) if np.isfinite(tail).any() else None
        finite = ({"finite": by_seed[seed]["finite"][None]} if "finite" in by_seed[seed]
                  else {"loss": by_seed[seed]["loss"][None]})
        summary["diverged_at_update"][str(seed)] = first_nonfinite_update(finite)[0]
    if episodes is not None:
        summary["eval_return_mean"] = {str(s): float(episodes.returns[i].mean()) for i, s in enumerate(seed_ids)}
        summary.update(eval_episodes=record["eval_episodes"], eval_mode=record["eval_mode"],
                       eval_seed=DEFAULT_EVAL_SEED)
    # Parts of wall_seconds, so that training alone can be told apart (process 0's, every start's).
    if evaluated_during_training:
        summary["eval_seconds_during_training"] = spent["eval_seconds_during_training"]
    summary["compile_seconds"] = spent["compile_seconds"]
    runs.write_json(run_dir / "summary.json", summary)
    return summary


def plot(run, summary: dict) -> None:
    """learning_curve.png and eval_curve.png; their paths into `summary` (not the file)."""
    from pgjax.reports.plotting import plot_learning_curve

    run_dir, record = run.run_dir, run.record
    title = f"{run.algo_name} on {run.config.env_id}"
    summary["plot"] = plot_learning_curve(runs.read_metrics(run_dir / "metrics.csv"),
                                          run_dir / "learning_curve.png", title)
    if (run_dir / runs.EVAL_FILE).exists():
        summary["eval_plot"] = plot_learning_curve(
            runs.read_metrics(run_dir / runs.EVAL_FILE), run_dir / "eval_curve.png",
            f"{title}: {record['eval_mode']} evaluation, {record['eval_episodes']} episodes",
            metric="eval_return", smoothing=1)
