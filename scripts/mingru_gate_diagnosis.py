"""Why minGRU forgets MemoryChain's context where the GRU remembers it: the update gate at
initialisation.

    python scripts/mingru_gate_diagnosis.py retention
    python scripts/mingru_gate_diagnosis.py train MEMORY_LENGTH NUM_STEPS TOTAL_TIMESTEPS

`retention`: for memory lengths 5, 10, 20, 40 and 20 initialisations of each core's actor
(`configs/ppo_gru_memorychain.toml`, `core` set; minGRU with `core_gate_init = "zeros"`, the
init before chrono became the default, and with `"chrono"`, T = the config's `num_steps` = 60),
the context bit's signal in the hidden state at the rewarded step relative to the step that
shows it, `|h_L(+1) - h_L(-1)| / |h_0(+1) - h_0(-1)|` (two episodes that differ in the context only),
median over the initialisations. minGRU's state is `h_t = a_t h_{t-1} + b_t` with
`a_t = 1 - z_t = sigmoid(-(W_z x_t + b_z))`; flax's zero bias starts every `a_t` near 0.5,
so the bit fades as about `0.5^L` before training can use it. pgjax's minGRU now starts its
gate by the chrono rule below (`core_gate_init = "chrono"`, the default).

`train`: PPO with minGRU on MemoryChain at the given length, rollout length and budget, the
bench's 5 seed keys (`seed_keys(0, range(5))`), with the gate half of both networks'
input-projection bias overwritten after init, once by zeros (the init before chrono became the
default) and once by chrono initialisation (Tallec & Ollivier, 2018, "Can recurrent neural networks warp time?"):
`-b_i = log(u_i)`, `u_i` evenly spread over `[1, T_max - 1]`, `T_max = NUM_STEPS` (the longest
span an update backpropagates through), so the initial retention `a = u / (1 + u)` spans
0.5 to `1 - 1/T_max`. One compiled program serves both (the bias is an argument). Prints the
last update's training return and the greedy success rate (return > 0) over 64 evaluation
episodes per seed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.commands import load_config
from pgjax.networks.recurrent import Sequences
from pgjax.runtime.experiment import evaluate_seeds, seed_keys

CONFIG = Path(__file__).resolve().parent.parent / "configs/ppo_gru_memorychain.toml"


def episode_obs(memory_length: int, context: float) -> np.ndarray:
    """MemoryChain's observations `[time left, query, context]` over one episode (one bit)."""
    t = np.arange(memory_length + 1)
    obs = np.zeros((memory_length + 1, 3), np.float32)
    obs[:, 0] = 1 - t / memory_length
    obs[0, 2] = context
    return obs


def retention() -> None:
    for length in (5, 10, 20, 40):
        row = []
        for core, gate in (("gru", "zeros"), ("mingru", "zeros"), ("mingru", "chrono")):
            overrides = [f"core={core}", f"core_gate_init={gate}", f"env_kwargs.memory_length={length}"]
            _, algorithm, config = load_config(None, CONFIG, None, overrides)
            trainer = algorithm.make_trainer(config)
            ratios = []
            for seed in range(20):
                params = trainer.init(jax.random.PRNGKey(seed), config.hparams).params["actor"]
                obs = jnp.stack([episode_obs(length, 1.0), episode_obs(length, -1.0)])
                seq = Sequences(obs, jnp.zeros((2, length + 1), bool), {"actor": jnp.zeros((2, config.core_size))})
                _, h = trainer.networks.actor.apply(params, seq, return_hidden=True)
                d = jnp.linalg.norm(h[0] - h[1], axis=-1)
                ratios.append(float(d[length] / d[0]))
            row.append(f"{core}{' ' + gate if core == 'mingru' else ''} {np.median(ratios):.2e}")
        print(f"L={length}: context signal at the query step / at step 0 (median of 20 inits): " + ", ".join(row),
              flush=True)


def with_gate_bias(params, bias, size: int):
    proj = params["params"]["input_projection"]
    new = {**proj, "bias": proj["bias"].at[:size].set(bias)}
    return {**params, "params": {**params["params"], "input_projection": new}}


def train(length: int, num_steps: int, total: int) -> None:
    overrides = ["core=mingru", f"env_kwargs.memory_length={length}", f"num_steps={num_steps}",
                 f"total_timesteps={total}"]
    _, algorithm, config = load_config(None, CONFIG, None, overrides)
    trainer = algorithm.make_trainer(config)
    hp, size = config.hparams, config.core_size

    def run(key, bias):
        state = trainer.init(key, hp)
        state = state.replace(params={name: with_gate_bias(p, bias, size) for name, p in state.params.items()})
        return trainer.run(state, hp, config.num_updates)

    keys = seed_keys(0, range(5))
    start = time.perf_counter()
    program = jax.jit(jax.vmap(run, in_axes=(0, None))).lower(keys, jnp.zeros(size)).compile()
    print(f"L={length}: {config.num_updates} updates of {config.num_envs} x {num_steps}, 5 seeds; "
          f"compile {time.perf_counter() - start:.0f} s", flush=True)
    variants = {"zero bias": jnp.zeros(size),
                f"chrono T_max={num_steps}": -jnp.log(jnp.linspace(1.0, num_steps - 1.0, size))}
    for name, bias in variants.items():
        a = jax.nn.sigmoid(-bias)
        start = time.perf_counter()
        state, metrics = jax.block_until_ready(program(keys, bias))
        returns = np.asarray(evaluate_seeds(trainer, state, 64, deterministic=True)[0])
        last = np.asarray(metrics["episode_return"])[:, -1]
        print(f"{name}: init retention a=sigmoid(-b) in [{float(a.min()):.2f}, {float(a.max()):.3f}]; "
              f"run {time.perf_counter() - start:.0f} s; last-update training return {np.round(last, 3)}; "
              f"greedy success over 64 episodes per seed {np.round((returns > 0).mean(axis=1), 3)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("retention")
    p = sub.add_parser("train")
    p.add_argument("memory_length", type=int)
    p.add_argument("num_steps", type=int)
    p.add_argument("total_timesteps", type=int)
    args = parser.parse_args()
    if args.command == "retention":
        retention()
    else:
        train(args.memory_length, args.num_steps, args.total_timesteps)


if __name__ == "__main__":
    main()
