"""Training throughput and success of the recurrent cores on one task: PPO with the GRU
(`configs/ppo_gru_memorychain.toml`) against minGRU (`configs/ppo_mingru_memorychain.toml`, the
same config but `core = "mingru"`), in one process.

    python scripts/bench_recurrent_cores.py [--rounds 5] [--seeds 4] [--eval-episodes 32] [KEY=VALUE ...]
    python scripts/bench_recurrent_cores.py --seeds 5 env_kwargs.memory_length=20 num_steps=84 total_timesteps=300000
    python scripts/bench_recurrent_cores.py --config configs/ppo_gru_memorychain.toml env_id=xminigrid/MiniGrid-MemoryS8 ...

`KEY=VALUE` overrides apply to both cores; `--config PATH` runs one config file as both cores
(`core=gru` and `core=mingru` added to the overrides). Each core's `jit(vmap(train))` over the
seeds (`seed_keys(0, ...)`, the keys of `pgjax train --seeds N`) is compiled once (timed), then
the two compiled programs run alternately, the order swapped every round, so both see the same
load on a shared machine. Prints per round and as medians: wall seconds, process CPU seconds
(all threads) and env steps per second of each, and the GRU / minGRU ratio of wall seconds per
round; then, from each core's first run, the training return of the last update per seed and
the greedy policy's mean return and success rate (return > 0: MemoryChain's +1, a MiniGrid goal
reached) per seed over `--eval-episodes` evaluation episodes (`evaluate_seeds`, as the learning
tests).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from pgjax.commands import load_config
from pgjax.runtime.experiment import evaluate_seeds, seed_keys

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"gru": "configs/ppo_gru_memorychain.toml", "mingru": "configs/ppo_mingru_memorychain.toml"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--config", type=Path, default=None, help="one config for both cores (core=... added)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to both cores")
    args = parser.parse_args()
    keys = seed_keys(0, range(args.seeds))
    programs, trainers, steps = {}, {}, {}
    for core, path in CONFIGS.items():
        if args.config is None:
            path, overrides = ROOT / path, list(args.overrides)
        else:
            path, overrides = args.config, [*args.overrides, f"core={core}"]
        _, algorithm, config = load_config(None, path, None, overrides)
        trainers[core] = algorithm.make_trainer(config)
        start = time.perf_counter()
        programs[core] = jax.jit(jax.vmap(trainers[core].train)).lower(keys).compile()
        steps[core] = args.seeds * config.num_updates * config.num_envs * config.num_steps
        print(f"{core}: {config.env_id} {dict(config.env_kwargs)}, {config.num_updates} updates of "
              f"{config.num_envs} x {config.num_steps} steps x {args.seeds} seeds; "
              f"compile {time.perf_counter() - start:.1f} s wall", flush=True)
    wall, cpu, first = {c: [] for c in CONFIGS}, {c: [] for c in CONFIGS}, {}
    for r in range(args.rounds):
        for core in list(CONFIGS) if r % 2 == 0 else list(CONFIGS)[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = jax.block_until_ready(programs[core](keys))
            wall[core].append(time.perf_counter() - start)
            cpu[core].append(time.process_time() - start_cpu)
            first.setdefault(core, out)
    for core in CONFIGS:
        w, c = statistics.median(wall[core]), statistics.median(cpu[core])
        print(f"{core}: wall s {np.round(wall[core], 2)}, CPU s {np.round(cpu[core], 2)}; medians {w:.2f} s wall "
              f"({steps[core] / w:,.0f} env steps/s), {c:.2f} s CPU ({steps[core] / c:,.0f} env steps per CPU s)")
    ratios = np.array(wall["gru"]) / np.array(wall["mingru"])
    print(f"GRU / minGRU wall seconds per round: {np.round(ratios, 2)}, median {np.median(ratios):.2f}")
    for core in CONFIGS:
        last = np.asarray(first[core].metrics["episode_return"])[:, -1]
        returns, _ = evaluate_seeds(trainers[core], first[core].state, args.eval_episodes, deterministic=True)
        returns = np.asarray(returns)
        print(f"{core}: last-update training return per seed {np.round(last, 3)}; greedy over "
              f"{args.eval_episodes} episodes: mean return per seed {np.round(returns.mean(axis=1), 3)}, "
              f"success per seed {np.round((returns > 0).mean(axis=1), 3)}")


if __name__ == "__main__":
    main()
