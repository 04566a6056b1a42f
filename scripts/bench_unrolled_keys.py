"""Off-policy training throughput with and without the unrolled Threefry keys, in one process.

Not a test: it measures and prints. Both programs are built in this process, the "rolled"
one with `pgjax.kernels.unrolled_rng.unrolled_key` replaced by the identity (JAX's own Threefry,
one `while` loop per draw, what the off-policy loop ran before), and timed alternately
(median of `--repeats` runs each, after one warm-up run), so machine load hits both alike.
The two draw the same bits (tests/test_unrolled_rng.py), so they train the same run.

usage: python scripts/bench_unrolled_keys.py [--algos sac,td3,ddpg] [--seeds 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax

from pgjax.commands import load_config
from pgjax.kernels import unrolled_rng

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"sac": "configs/sac_pendulum.toml", "td3": "configs/td3_pendulum.toml", "ddpg": "configs/ddpg_pendulum.toml"}


def compiled_train(algo: str, num_seeds: int, rolled: bool):
    original = unrolled_rng.unrolled_key
    if rolled:
        unrolled_rng.unrolled_key = lambda key: key
    try:
        _, algorithm, config = load_config(None, REPO / CONFIGS[algo], None, [])
        trainer = algorithm.make_trainer(config)
        keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
        fn = jax.jit(jax.vmap(trainer.train, in_axes=(0, None))).lower(keys, config.hparams).compile()
    finally:
        unrolled_rng.unrolled_key = original
    return fn, keys, config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="sac,td3")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, {jax.default_backend()}, {args.seeds} seeds, median of {args.repeats} alternating runs")
    print("| algo | env steps/s, rolled keys | env steps/s, unrolled keys | unrolled / rolled (median of paired runs) |")
    print("|---|---:|---:|---:|")
    for algo in args.algos.split(","):
        programs = {name: compiled_train(algo, args.seeds, name == "rolled") for name in ("rolled", "unrolled")}
        steps = args.seeds * programs["rolled"][2].total_timesteps
        seconds = {"rolled": [], "unrolled": []}
        for name, (fn, keys, config) in programs.items():
            jax.block_until_ready(fn(keys, config.hparams))  # warm-up
        for r in range(args.repeats):
            for name in (("rolled", "unrolled") if r % 2 == 0 else ("unrolled", "rolled")):
                fn, keys, config = programs[name]
                t0 = time.perf_counter()
                jax.block_until_ready(fn(keys, config.hparams))
                seconds[name].append(time.perf_counter() - t0)
        ratio = statistics.median(a / b for a, b in zip(seconds["rolled"], seconds["unrolled"]))
        print(f"| {algo} | {steps / statistics.median(seconds['rolled']):,.0f} "
              f"| {steps / statistics.median(seconds['unrolled']):,.0f} | {ratio:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
