"""What evaluation during training costs: `pgjax train` with `--eval-every 0` (only the
final evaluation) against the default `--eval-every 1` (after every chunk), in
alternating fresh processes sharing a warm compilation cache.

    python scripts/bench_eval_cost.py [--config configs/ppo_cartpole.toml] [--rounds 3] [--seeds 1]
    python scripts/bench_eval_cost.py --in-process     # CPU seconds of each evaluation call

Prints, per round and as medians: each process's CPU seconds (user + system, children
included) and wall seconds, and the seconds the default run spent in its evaluations
during training (`eval_seconds_during_training` in summary.json), as a share of its wall.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(config: str, seeds: str, eval_every: int, out: Path, env: dict) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(dir=out))
    done = subprocess.run([sys.executable, "-m", "pgjax", "train", "--config", config, "--seeds", seeds,
                           "--no-progress", "--no-checkpoint", "--eval-every", str(eval_every), "--out", str(folder)],
                          env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"pgjax train failed:\n{done.stderr}")
    (run_dir,) = folder.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "wall_s": wall,
            "train_wall_s": summary["wall_seconds"], "eval_s": summary.get("eval_seconds_during_training", 0.0)}


def in_process(config_file: str, chunks: int = 20, episodes: int = 32) -> None:
    """One seed trained in this process as `pgjax train` does (`train_seeds` on the seed
    layout), evaluated after every chunk by a `SeedEvaluator`; the process CPU seconds of
    each evaluation call (the first one compiles) against those of the whole run."""
    import jax
    import jax.numpy as jnp

    from pgjax.runtime import loading
    from pgjax.runtime.experiment import (
        SeedEvaluator,
        SeedLayout,
        place_seeds,
        seed_functions,
        seed_keys,
        seed_mesh,
        train_seeds,
    )

    _, algorithm, config = loading.resolve_config(None, config_file, None, [])
    trainer = algorithm.make_trainer(config)
    layout = SeedLayout.plan(1, 1, 1)
    mesh = seed_mesh(layout)
    hparams = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (1,)), config.hparams)
    keys, hparams = place_seeds((seed_keys(0, [0]), hparams), layout, mesh)
    evaluator = SeedEvaluator(trainer, layout, episodes)
    calls = []

    def on_chunk(updates, state, metrics):
        start = time.process_time()
        evaluator.placed(state.params, state.obs_stats)
        calls.append(time.process_time() - start)

    start = time.process_time()
    train_seeds(trainer, keys, hparams, hparams_batched=True, max_chunks=chunks, on_chunk=on_chunk,
                functions=seed_functions(trainer, mesh, 1))
    total = time.process_time() - start
    later = sum(calls[1:])
    print(f"in-process: {len(calls)} evaluations of {episodes} episodes; the run took {total:.1f} CPU s (compilation "
          f"included); evaluation CPU s per call: first {calls[0]:.2f} (compiles), then median "
          f"{statistics.median(calls[1:]):.3f}; all but the first: {later:.2f} s = {100 * later / total:.1f}% of the run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/ppo_cartpole.toml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--in-process", action="store_true",
                        help="instead: time each evaluation call inside one training process (CPU seconds)")
    args = parser.parse_args()
    if args.in_process:
        in_process(args.config)
        return
    with tempfile.TemporaryDirectory(prefix="pgjax-bench-eval-") as tmp:
        env = {**os.environ, "PGJAX_COMPILE_CACHE": str(Path(tmp) / "cache"), "PYTHONPATH": str(ROOT)}
        for every in (0, 1):  # warm the compilation cache; not counted
            one_run(args.config, args.seeds, every, Path(tmp), env)
        results = {0: [], 1: []}
        for r in range(args.rounds):
            for every in (0, 1):
                res = one_run(args.config, args.seeds, every, Path(tmp), env)
                results[every].append(res)
                print(f"round {r}: --eval-every {every}: CPU {res['cpu_s']:.1f} s, wall {res['wall_s']:.1f} s, "
                      f"training wall {res['train_wall_s']:.1f} s, evaluations during training {res['eval_s']:.2f} s",
                      flush=True)
        med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in results.items()}
        print(f"median CPU s: {med[0]['cpu_s']:.1f} (--eval-every 0) vs {med[1]['cpu_s']:.1f} (default): "
              f"{100 * (med[1]['cpu_s'] / med[0]['cpu_s'] - 1):+.1f}%")
        print(f"median training wall s: {med[0]['train_wall_s']:.1f} vs {med[1]['train_wall_s']:.1f}; evaluations "
              f"during training {med[1]['eval_s']:.2f} s = {100 * med[1]['eval_s'] / med[1]['train_wall_s']:.1f}% "
              "of the default run's training wall time")


if __name__ == "__main__":
    main()
