"""PPO on the four MinAtar games gymnax publishes PPO results for, flattened MLP vs CNN.

Not a test: it trains and prints a Markdown table (progress on stderr).

usage (repository root, in the venv):

    python scripts/minatar_benchmark.py                       # the full run: 4 games x 2 nets x 3 seeds, 1e7 steps
    python scripts/minatar_benchmark.py --games breakout --nets mlp --seeds 1 --steps 262144

For each game and network it loads `configs/ppo_<game>_minatar.toml` (the published MLP
setting) or `configs/ppo_<game>_minatar_cnn.toml`, sets `total_timesteps=--steps`, trains
`--seeds` vmapped seeds (`fold_in(PRNGKey(0), s)`) in one compiled call after a compile-only
call, and evaluates every seed's final policy on 32 episodes (`evaluate_seeds`, sampled
actions). Reported: mean and per-seed final evaluation return, env steps/s of training
(all seeds together, compile excluded), compile and training wall time. Anchors: the
gymnax README's flattened-MLP PPO returns at 1e7 steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from pgjax.commands import load_config
from pgjax.runtime.experiment import evaluate_seeds, seed_keys

ROOT = Path(__file__).resolve().parent.parent
GAMES = {"asterix": 15.0, "breakout": 28.0, "freeway": 58.0, "spaceinvaders": 131.0}  # gymnax README anchors
NETS = {"mlp": "ppo_{game}_minatar.toml", "cnn": "ppo_{game}_minatar_cnn.toml"}


def bench(game: str, net: str, seeds: int, steps: int) -> dict:
    overrides = [f"total_timesteps={steps}"]
    _, module, config = load_config(None, ROOT / "configs" / NETS[net].format(game=game), None, overrides)
    trainer = module.make_trainer(config)
    keys = seed_keys(0, range(seeds))
    start = time.perf_counter()
    train = jax.jit(jax.vmap(trainer.train)).lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(train(keys))
    train_s = time.perf_counter() - start
    returns, _ = evaluate_seeds(trainer, out.state, 32)
    per_seed = np.asarray(returns).mean(axis=1)
    env_steps = config.num_updates * config.batch_size * seeds
    return {"game": game, "net": net, "return": float(per_seed.mean()), "per_seed": ", ".join(f"{x:.1f}" for x in per_seed),
            "steps_per_s": env_steps / train_s, "compile_s": compile_s, "train_s": train_s,
            "steps": config.num_updates * config.batch_size}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", nargs="+", choices=sorted(GAMES), default=sorted(GAMES))
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=sorted(NETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10_000_000, help="environment steps per seed")
    args = parser.parse_args(argv)
    print(f"# PPO on MinAtar, {jax.devices()[0].platform}, {args.seeds} seeds\n")
    print("| game | net | steps/seed | final eval return (mean; per seed) | anchor (MLP, 1e7) | env steps/s | compile s | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for game in args.games:
        for net in args.nets:
            print(f"training {game} {net} ...", file=sys.stderr, flush=True)
            r = bench(game, net, args.seeds, args.steps)
            print(f"| {game} | {net} | {r['steps']:.3g} | {r['return']:.1f}; [{r['per_seed']}] | {GAMES[game]:g} | "
                  f"{r['steps_per_s']:,.0f} | {r['compile_s']:.1f} | {r['train_s']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
