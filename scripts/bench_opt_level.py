"""XLA's CPU backend optimisation level (LLVM -O) against compile time and run time.

Not a test: it measures and prints. Each measurement is a fresh process (no tracing or
compilation cache carried over) that compiles `jax.jit(jax.vmap(train, in_axes=(0, None)),
compiler_options=...)` for a shipped config, recording the compiling process's CPU seconds
(user + system, all threads) around `lower` + `compile`, then runs the program twice and
times the second run. The default level and the given ones alternate round by round; a
digest of the outputs says whether a level changed the arithmetic (the rounding: same
algorithm, other bits).

usage (repository root, pgjax's venv):

    python scripts/bench_opt_level.py --configs ppo_cartpole.toml,sac_pendulum.toml --seeds 1,16 \
        --levels 1 --rounds 2 --total-timesteps 200000,10000

The same option from Python: `jax.jit(fn, compiler_options={"xla_backend_optimization_level": 1})`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from compile_cost import _cpu_seconds, level_options  # scripts/compile_cost.py: the same clock and option

REPO = Path(__file__).resolve().parents[1]


def measure(config_file: str, num_seeds: int, total_timesteps: int, level: str) -> dict:
    import jax
    import numpy as np

    from pgjax.commands import load_config
    from pgjax.runtime.experiment import seed_keys

    overrides = [f"total_timesteps={total_timesteps}"]
    _, algorithm, config = load_config(None, REPO / "configs" / config_file, None, overrides)
    trainer = algorithm.make_trainer(config)
    keys = seed_keys(0, range(num_seeds))
    options = level_options(None if level == "default" else int(level))
    program = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)), compiler_options=options)
    cpu0 = _cpu_seconds()
    compiled = program.lower(keys, config.hparams).compile()
    compile_cpu = _cpu_seconds() - cpu0
    jax.block_until_ready(compiled(keys, config.hparams))
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, config.hparams))
    run_s = time.perf_counter() - start
    digest = hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in jax.tree.leaves(out))).hexdigest()[:12]
    return {"config": config_file, "seeds": num_seeds, "level": level, "compile_cpu_s": round(compile_cpu, 2),
            "run_s": round(run_s, 3), "env_steps": config.total_timesteps * num_seeds, "digest": digest}


def run_child(args: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PGJAX_HOST_DEVICES="1", PGJAX_COMPILE_CACHE="0")
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child {args} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="ppo_cartpole.toml", help="comma list of files in configs/")
    parser.add_argument("--seeds", default="1", help="comma list of seed counts")
    parser.add_argument("--levels", default="1", help="comma list of levels compared with the default")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; medians are reported")
    parser.add_argument("--total-timesteps", default="100000", help="per config (comma list, or one for all)")
    parser.add_argument("--child", nargs=4, metavar=("CONFIG", "SEEDS", "STEPS", "LEVEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        config, seeds, steps, level = args.child
        print(json.dumps(measure(config, int(seeds), int(steps), level)))
        return 0
    configs = args.configs.split(",")
    steps = args.total_timesteps.split(",")
    steps = steps * len(configs) if len(steps) == 1 else steps
    levels = ["default", *args.levels.split(",")]
    rows = ["| config | seeds | level | compile CPU s | run s | compile / default | run / default | same bits |",
            "|---|---:|---|---:|---:|---:|---:|---|"]
    for config, total in zip(configs, steps):
        for seeds in args.seeds.split(","):
            records: dict = {level: [] for level in levels}
            for r in range(args.rounds):
                for level in (levels if r % 2 == 0 else levels[::-1]):
                    record = run_child([config, seeds, total, level])
                    print(json.dumps(record), file=sys.stderr, flush=True)
                    records[level].append(record)
            medians = {level: {k: statistics.median(x[k] for x in records[level]) for k in ("compile_cpu_s", "run_s")}
                       for level in levels}
            base = medians["default"]
            for level in levels:
                m = medians[level]
                same = {x["digest"] for x in records[level]} == {x["digest"] for x in records["default"]}
                rows.append(f"| {config} | {seeds} | {level} | {m['compile_cpu_s']:.1f} | {m['run_s']:.2f} "
                            f"| {m['compile_cpu_s'] / base['compile_cpu_s']:.2f} | {m['run_s'] / base['run_s']:.2f} "
                            f"| {'yes' if same else 'no'} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
