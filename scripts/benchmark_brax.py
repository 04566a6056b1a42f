"""Accelerator benchmark: Brax Ant PPO at thousands of environments and Brax Hopper SAC.

Not a test: it measures, prints a Markdown table on stdout (progress on stderr) and
appends one JSON line per job to `--out`.

usage (from the repository root, in a venv with `pip install -e '.[brax]'`):

    python scripts/benchmark_brax.py --preset gpu-brax   # one GPU, under 8 minutes in all
    python scripts/benchmark_brax.py --preset cpu-tiny   # the same code at a tiny size (CPU)
    python scripts/benchmark_brax.py --env-rates inverted_pendulum:spring ant:spring   # raw brax
        # step rate: 64 envs x 50 random-action steps in one jitted scan, wall and process-CPU

Each job loads a shipped config (`configs/ppo_ant_brax.toml`, `configs/sac_hopper_brax.toml`:
Brax's own published settings) with the preset's overrides, compiles one chunk of
`trainer.run` (timed: "compile s"), then runs chunks until the job's budget of environment
steps or of seconds is spent ("train s"), one seed. It reports environment steps per
second, the mean training return of the last chunk, and, from the measured rate, the time
the full config's budget would take ("full budget est.").

Anchor (the stored output of Brax's training notebook, google/brax notebooks/training.ipynb,
on an accelerator it does not name): Ant PPO, 4096 envs, 33 s to jit and 2 min 36 s to
train, a curve that ends at 2.5e7 steps near 5.9k. The run was 25M steps, not the 50M its
cell's code now sets: the plot's x limit is the run's `num_timesteps`, and the output was
not regenerated when the code changed. So about 160,000 env steps/s. Brax publishes no
time for Hopper SAC there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

import pgjax
from pgjax.runtime.experiment import seed_keys

# job: config file, overrides, updates per compiled chunk, budget in env steps, budget in seconds
PRESETS = {
    # Ant: 4096 envs x 80 steps = 327,680 steps per update (Brax's setting); 30 updates (9.8M
    # steps) or 180 s. Hopper: 128 envs, 64 gradient updates of 512 per step of all envs;
    # 2,000 iterations (256,000 steps) or 150 s. Compile (one chunk each) comes on top.
    "gpu-brax": [
        ("configs/ppo_ant_brax.toml", [], 5, 30 * 327_680, 180.0),
        ("configs/sac_hopper_brax.toml", [], 200, 8192 + 2_000 * 128, 150.0),
    ],
    "cpu-tiny": [
        ("configs/ppo_ant_brax.toml", ["num_envs=8", "num_steps=8", "num_minibatches=2", "hidden_sizes=[16]"],
         1, 2 * 64, 120.0),
        ("configs/sac_hopper_brax.toml", ["num_envs=4", "learning_starts=64", "batch_size=32", "buffer_size=1024",
                                          "updates_per_step=2", "hidden_sizes=[16]"], 4, 64 + 8 * 4, 120.0),
    ],
}
ANCHOR = {"brax/ant": "Brax notebook: 25M steps in 33 s jit + 156 s train (~160k steps/s)"}


def run_job(config_file: str, overrides: list[str], chunk: int, max_steps: int, max_seconds: float, env: str | None):
    overrides = [*overrides, *([f"env_id={env}"] if env else [])]
    config = pgjax.load_config(config_file, overrides=overrides)
    full = pgjax.load_config(config_file, overrides=[f"env_id={env}"] if env else [])
    trainer = pgjax.runtime.loading.algorithm_of(config).make_trainer(config)
    per_update = config.env_steps_per_update
    updates_wanted = max(1, min(config.num_updates, (max_steps - getattr(config, "learning_starts", 0)) // per_update))
    chunk = min(chunk, updates_wanted)
    print(f"{config_file}: {config.env_id}, {config.num_envs} envs, chunks of {chunk} updates", file=sys.stderr)

    t0 = time.perf_counter()
    state = jax.block_until_ready(jax.jit(trainer.init)(seed_keys(0, [0])[0], config.hparams))
    init_s = time.perf_counter() - t0
    run = jax.jit(trainer.run, static_argnums=2)
    t0 = time.perf_counter()
    compiled = run.lower(state, config.hparams, chunk).compile()
    compile_s = time.perf_counter() - t0

    done, train_s, metrics = 0, 0.0, None
    while done + chunk <= updates_wanted and train_s < max_seconds:
        t0 = time.perf_counter()
        state, metrics = jax.block_until_ready(compiled(state, config.hparams))
        train_s += time.perf_counter() - t0
        done += chunk
        print(f"  {done}/{updates_wanted} updates, {train_s:.1f} s", file=sys.stderr)
    steps = done * per_update
    rate = steps / train_s
    returns = np.asarray(metrics["episode_return"])
    returns = returns[np.isfinite(returns)]  # nan: no episode finished in that update
    full_steps = full.num_updates * full.env_steps_per_update
    return {
        "config": config_file, "env_id": config.env_id, "algo": type(config).__name__, "num_envs": config.num_envs,
        "overrides": overrides, "device": str(jax.devices()[0].device_kind), "init_s": round(init_s, 2),
        "compile_s": round(compile_s, 2), "train_s": round(train_s, 2), "updates": done, "env_steps": steps,
        "env_steps_per_s": round(rate, 1), "last_chunk_return": float(returns.mean()) if returns.size else None,
        "full_budget_steps": full_steps, "full_budget_est_s": round(full_steps / rate, 1),
        "anchor": ANCHOR.get(config.env_id, ""),
    }


def env_rates(specs: list[str], num_envs: int = 64, num_steps: int = 50) -> None:
    """Raw brax (no pgjax) steps per second of wall and of process CPU time, `NAME:BACKEND` each."""
    from brax import envs as brax_envs

    for spec in specs:
        name, _, backend = spec.partition(":")
        env = brax_envs.get_environment(name, **({"backend": backend} if backend else {}))
        # brax rewards are weakly typed Python floats after a step: cast, or the second call retraces
        strong = lambda s: s.replace(reward=s.reward.astype("float32"), done=s.done.astype("float32"))
        state = strong(jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), num_envs)))

        def body(s, key, env=env, strong=strong):
            action = jax.random.uniform(key, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return strong(jax.vmap(env.step)(s, action)), None

        run = jax.jit(lambda s, k, body=body: jax.lax.scan(body, s, jax.random.split(k, num_steps))[0])
        t0 = time.perf_counter()
        state = jax.block_until_ready(run(state, jax.random.PRNGKey(1)))
        compile_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(run(state, jax.random.PRNGKey(2)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        steps = num_envs * num_steps
        print(f"| {spec} | {num_envs} | {compile_s:.0f} | {steps / wall:,.0f} | {steps / cpu:,.0f} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="gpu-brax")
    parser.add_argument("--env", default=None, help="replace every job's env_id (e.g. brax/fast for a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/brax.jsonl"), help="JSON lines, appended")
    parser.add_argument("--env-rates", nargs="+", metavar="NAME:BACKEND", help="only time raw brax stepping")
    args = parser.parse_args(argv)
    if args.env_rates:
        print("| env:backend | envs | compile + first run s | env steps/s (wall) | env steps per CPU-second |")
        print("|---|---|---|---|---|")
        env_rates(args.env_rates)
        return 0
    rows = []
    for job in PRESETS[args.preset]:
        row = run_job(*job, env=args.env)
        row["preset"] = args.preset
        rows.append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print("| config | env | device | envs | compile s | train s | env steps | env steps/s | last return "
          "| full budget est. | anchor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ret = "n/a" if r["last_chunk_return"] is None else f"{r['last_chunk_return']:.1f}"
        print(f"| {Path(r['config']).stem} | {r['env_id']} | {r['device']} | {r['num_envs']} | {r['compile_s']} "
              f"| {r['train_s']} | {r['env_steps']:,} | {r['env_steps_per_s']:,.0f} | {ret} "
              f"| {r['full_budget_est_s'] / 60:.1f} min | {r['anchor']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
