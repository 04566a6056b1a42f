"""Speed benchmark: pgjax's training throughput, the environment-only ceiling and a peer.

Not a test: it measures, prints Markdown tables on stdout (progress goes to stderr) and
appends one JSON line per measurement to `--out`.

usage (from the repository root, in the venv; the full run takes a while on a small CPU):

    python scripts/benchmark.py                       # PPO on CartPole-v1, 1 and 16 seeds, 5e5 steps
    python scripts/benchmark.py --peer rejax          # also rejax, run right after pgjax per seed count
    python scripts/benchmark.py --seeds 1,2 --total-timesteps 20480 --peer rejax   # quick smoke run
    python scripts/benchmark.py --algos ppo,sac,td3 --seeds 4 --peer rejax --rounds 3
        # pgjax as a user gets it (one host device per core) and on 1 device, against rejax
        # as shipped, alternating rounds in fresh processes; median ratios

options: --algos ppo (comma list)   --seeds 1,16 (seed counts, each one compiled run)
         --total-timesteps N (override the config's)   --peer none|rejax
         --out benchmarks/results.jsonl (appended to)
         --host-devices N (pgjax's CPU devices; default one per usable core)
         --rounds R (alternating rounds: default devices, 1 device, the peer; fresh processes)

What is measured, for each algorithm and seed count S (settings from configs/<algo>_<env>.toml):

- pgjax: the seeds laid out as `pgjax train` lays them out (on CPU one host device per
  usable core unless `--host-devices`, vmap groups of `default_seed_width(S)`, see
  `pgjax.runtime.experiment`); `sharding.cell_function(trainer.train, ...)` lowered and compiled is
  timed as the compile time; the compiled function then runs twice with different keys and the faster run is the
  train time (`jax.block_until_ready`). The final policies of the first run are evaluated
  afterwards, outside the timed region, on 128 episodes per seed.
- rejax (`--peer rejax`): /work/shared/peers/rejax_train.py in rejax's own venv, with the same
  settings, timed the same way by the harness; run right after pgjax for the same S.
- env only: the same batch (num_envs envs x num_steps steps, num_updates rollouts) with
  uniformly random actions, one jitted `lax.scan` over `VecEnv.step`, vmapped over S seeds and
  timed the same way. No learner can step the environments faster: this is the ceiling.
- breakdown (S = 1 only): the rollouts alone (the policy network and the environments, fixed
  initial parameters, num_updates rollouts in one jitted scan) against the full training
  run; the difference is the update (GAE, epochs of minibatch SGD).

Columns of the main table:

  algo, env      algorithm and gymnax environment id
  seeds          S, the number of vmapped seeds trained in one compiled call
  run            pgjax | rejax | env only (random actions)
  compile s      seconds to lower and compile jit(vmap(train)) for S seeds
  train s        best of two runs of the compiled function, seconds
  env steps/s    environment steps of all seeds together per second of train time,
                 S * num_updates * num_envs * num_steps / train s (the steps pgjax actually
                 runs; rejax's harness divides S * total_timesteps instead)
  of env-only    env steps/s as a fraction of the env-only ceiling for the same S (pgjax's
                 gymnax 1.0 environments; rejax steps gymnax 0.0.9's, the same CartPole)
  return mean    mean over seeds of each seed's mean return over 128 evaluation episodes,
                 stochastic policy (sampled actions, as rejax's evaluation)
  return min     the worst seed's mean return (stochastic policy)
  greedy mean/min  the same with the deterministic policy (mode of the action distribution);
                 pgjax only

The ratio table gives pgjax / rejax of env steps per second (> 1: pgjax trains faster) and
of compile seconds (< 1: pgjax compiles faster). The breakdown table gives the seconds of
each part and its share of the full PPO train time.

Each JSON line holds: kind (pgjax | rejax | env_only | rollout_only), algo, env_id, seeds,
total_timesteps, env_steps, compile_s, train_s, env_steps_per_s, the returns where measured,
the config or the peer's arguments, and the jax/jaxlib versions, date (UTC), os.cpu_count(),
JAX backend and pgjax's git commit.

To add an algorithm: give it an entry in ALGO_BENCHMARKS below (its config file and, if it
has them, how to translate its config into rejax's arguments and how to run its rollouts).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
import numpy as np

from pgjax.algos.actor_critic import sample_step
from pgjax.algos.rollout import rollout
from pgjax.commands import load_config
from pgjax.config import to_dict
from pgjax.kernels.unrolled_rng import unrolled_key
from pgjax.runtime import sharding, sweep
from pgjax.runtime.experiment import (
    SeedLayout,
    default_seed_width,
    evaluate_seeds,
    place_seeds,
    seed_keys,
    seed_mesh,
    unpad_seeds,
)

# The host devices must be chosen before JAX starts (importing pgjax does not start it).
if __name__ == "__main__":
    _early = argparse.ArgumentParser(add_help=False)
    _early.add_argument("--host-devices", type=int, default=None)
    sharding.use_host_devices(_early.parse_known_args()[0].host_devices)

REPO = Path(__file__).resolve().parents[1]
# /work/shared/peers next to /work/main, or $PGJAX_PEERS_DIR (e.g. from another worktree)
PEERS_DIR = Path(os.environ.get("PGJAX_PEERS_DIR", REPO.parent / "shared" / "peers"))
EVAL_EPISODES = 128


# --- what to benchmark, per algorithm -------------------------------------------------------


def _ppo_rejax_kwargs(config) -> dict:
    """pgjax's PPO config as rejax's `PPO.create` keyword arguments (see the peers README)."""
    hp = config.hparams
    return {
        "env": config.env_id, "num_envs": config.num_envs, "num_steps": config.num_steps,
        "num_epochs": config.update_epochs, "num_minibatches": config.num_minibatches,
        "learning_rate": hp.learning_rate, "max_grad_norm": hp.max_grad_norm, "gamma": hp.gamma,
        "gae_lambda": hp.gae_lambda, "clip_eps": hp.clip_eps, "ent_coef": hp.ent_coef,
        "vf_coef": hp.vf_coef, "total_timesteps": config.total_timesteps,
        "agent_kwargs": {"activation": config.activation, "hidden_layer_sizes": list(config.hidden_sizes)},
    }


def _td3_rejax_kwargs(config) -> dict:
    """pgjax's TD3 config as rejax's `TD3.create` kwargs. rejax's noise is in action units
    (pgjax's is a fraction of half the action range), its `polyak` is 1 - tau, it has one
    learning rate for actor and critics and fixed 64x64 networks (pass only the activation)."""
    from pgjax.envs import make_vec_env

    hp = config.hparams
    spec = make_vec_env(config.env_id, 1).action_spec
    half = float(np.max(0.5 * (spec.high - spec.low)))
    assert hp.actor_learning_rate == hp.critic_learning_rate and tuple(config.hidden_sizes) == (64, 64)
    return {
        "env": config.env_id, "num_envs": config.num_envs, "total_timesteps": config.total_timesteps,
        "fill_buffer": config.learning_starts, "buffer_size": config.buffer_size, "batch_size": config.batch_size,
        "num_epochs": config.updates_per_step, "learning_rate": hp.actor_learning_rate, "gamma": hp.gamma,
        "polyak": 1.0 - hp.tau, "exploration_noise": hp.exploration_noise * half,
        "target_noise": hp.target_noise * half, "target_noise_clip": hp.target_noise_clip * half,
        "policy_delay": config.policy_delay, "num_critics": config.num_critics,
        "actor_kwargs": {"activation": config.activation}, "critic_kwargs": {"activation": config.activation},
    }


def _sac_rejax_kwargs(config) -> dict:
    """pgjax's SAC config as rejax's `SAC.create` kwargs. rejax has one learning rate (actor,
    critics, alpha), `polyak` = 1 - tau, initial alpha 1, target entropy -|A| for Box actions,
    hidden sizes as a top-level key; it acts with its policy (pgjax: uniformly) while filling
    the buffer and clamps the log-std to [-10, 2]."""
    hp = config.hparams
    assert hp.actor_learning_rate == hp.critic_learning_rate == hp.alpha_learning_rate
    assert hp.init_alpha == 1.0 and hp.target_entropy_scale == 1.0 and not config.value_network
    return {
        "env": config.env_id, "num_envs": config.num_envs, "total_timesteps": config.total_timesteps,
        "fill_buffer": config.learning_starts, "buffer_size": config.buffer_size, "batch_size": config.batch_size,
        "num_epochs": config.updates_per_step, "learning_rate": hp.actor_learning_rate, "gamma": hp.gamma,
        "polyak": 1.0 - hp.tau, "num_critics": config.num_critics,
        "hidden_layer_sizes": list(config.hidden_sizes), "agent_kwargs": {"activation": config.activation},
    }


def _actor_critic_rollout_setup(trainer, state):
    """An actor-critic's sampling policy with the state's (fixed) parameters, and the env carry."""
    policy = functools.partial(
        sample_step, trainer.config, trainer.env, trainer.networks, state.params, state.obs_stats
    )
    return policy, state.env


@dataclasses.dataclass(frozen=True)
class AlgoBenchmark:
    config_file: str  # relative to the repository root
    rejax_name: str | None = None  # the algorithm's name in rejax, None if rejax has no peer
    rejax_kwargs: Callable[[Any], dict] | None = None  # config -> rejax `create` kwargs
    rollout_setup: Callable[[Any, Any], tuple] | None = None  # (trainer, state) -> (policy_fn, env_carry)


ALGO_BENCHMARKS = {
    "ppo": AlgoBenchmark("configs/ppo_cartpole.toml", "ppo", _ppo_rejax_kwargs, _actor_critic_rollout_setup),
    # rejax has no REINFORCE, VPG or A2C: these report pgjax and the env-only ceiling.
    "reinforce": AlgoBenchmark("configs/reinforce_cartpole.toml"),
    "vpg": AlgoBenchmark("configs/vpg_cartpole.toml", rollout_setup=_actor_critic_rollout_setup),
    "a2c": AlgoBenchmark("configs/a2c_cartpole.toml", rollout_setup=_actor_critic_rollout_setup),
    "npg": AlgoBenchmark("configs/npg_cartpole.toml", rollout_setup=_actor_critic_rollout_setup),
    "trpo": AlgoBenchmark("configs/trpo_cartpole.toml", rollout_setup=_actor_critic_rollout_setup),
    "ppo_kl": AlgoBenchmark("configs/ppo_kl_cartpole.toml", rollout_setup=_actor_critic_rollout_setup),
    "ddpg": AlgoBenchmark("configs/ddpg_pendulum.toml"),  # rejax has no DDPG
    "td3": AlgoBenchmark("configs/td3_pendulum.toml", "td3", _td3_rejax_kwargs),
    "sac": AlgoBenchmark("configs/sac_pendulum.toml", "sac", _sac_rejax_kwargs),
    # Discrete SAC: pgjax and the env-only ceiling (its tuned learning rates differ, rejax has one).
    "sac_discrete": AlgoBenchmark("configs/sac_discrete_cartpole.toml"),
    # PPO with the MinAtar CNN (the GPU preset's image-observation case; rejax has no MinAtar CNN).
    "ppo_breakout_cnn": AlgoBenchmark("configs/ppo_breakout_minatar_cnn.toml", rollout_setup=_actor_critic_rollout_setup),
}


@dataclasses.dataclass(frozen=True)
class PresetRun:
    algo: str  # a key of ALGO_BENCHMARKS
    seeds: int
    total_timesteps: int | None = None  # per seed; None: the config's
    width: int | None = None  # seeds per vmap group; None: default_seed_width


# `--preset gpu`: sized to finish in under 8 minutes on one GPU (compiles included). Each row
# also gets its env-only ceiling for the same seed count; every row's records are appended to
# `--out` as soon as it finishes, cheapest rows first, so a run cut short keeps what it measured.
PRESETS = {
    "gpu": (
        PresetRun("ppo", 1),  # CartPole-v1, 5e5 steps
        PresetRun("ppo", 256),
        # A sweep's fixed vmap width (8) against all 64 cells in one vmap, as `pgjax train` does.
        PresetRun("ppo", 64, 100_000, width=8),
        PresetRun("ppo", 64, 100_000),
        PresetRun("ppo", 4096, 100_000),  # 4.1e8 environment steps in all
        PresetRun("sac", 64),  # Pendulum-v1, 6e3 steps per seed, one update per step
        PresetRun("ppo_breakout_cnn", 64, 1_000_000),  # 6.4e7 steps through the CNN: last, the costliest
    ),
}


# --- timing ---------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Timed:
    compile_s: float
    train_s: float  # the better of the two runs
    output: Any  # of the first run
    xla_bytes: int | None  # per device: arguments + outputs + temporaries (XLA's memory_analysis)


def time_compiled(fn: Callable, first_args: tuple, second_args: tuple) -> Timed:
    """Compile `jit(fn)` for `first_args`, run it on both argument sets."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*first_args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*first_args))
    t2 = time.perf_counter()
    jax.block_until_ready(compiled(*second_args))
    t3 = time.perf_counter()
    return Timed(t1 - t0, min(t2 - t1, t3 - t2), out, sweep.compiled_bytes(compiled))


def device_peak_bytes() -> int | None:
    """The first device's peak bytes in use since the process started (accelerators only)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


def keys_pair(num_seeds: int):
    """Keys for the two timed runs: seeds 0..S-1 under root seeds 0 and 1."""
    return seed_keys(0, range(num_seeds)), seed_keys(1, range(num_seeds))


def env_only_shape(config) -> tuple[int, int]:
    """`(rollouts, steps per rollout)` of one seed's run; off-policy algorithms step every
    environment once per iteration (an update is `num_steps` iterations), warm-up included."""
    if hasattr(config, "warmup_iterations"):
        return config.warmup_iterations + config.num_updates * config.num_steps, 1
    return config.num_updates, config.num_steps


def env_steps(config) -> int:
    """Environment steps one seed's training run actually takes."""
    rollouts, steps = env_only_shape(config)
    return rollouts * config.num_envs * steps


def timing_record(kind: str, config, num_seeds: int, compile_s: float, train_s: float) -> dict:
    steps = env_steps(config)
    return {
        "kind": kind, "env_id": config.env_id, "seeds": num_seeds,
        "total_timesteps": config.total_timesteps, "env_steps": steps,
        "compile_s": round(compile_s, 3), "train_s": round(train_s, 3),
        "env_steps_per_s": round(num_seeds * steps / train_s),
    }


# --- pgjax training -------------------------------------------------------------------------


def final_returns(trainer, state) -> dict:
    """Mean and min over seeds of the mean return over EVAL_EPISODES episodes per seed."""
    out = {}
    for name, deterministic in (("final_return", False), ("greedy_return", True)):
        returns, _ = evaluate_seeds(trainer, state, EVAL_EPISODES, deterministic=deterministic)
        per_seed = np.asarray(returns).mean(axis=1)
        out[f"{name}_mean"] = float(per_seed.mean())
        out[f"{name}_min"] = float(per_seed.min())
    return out


def bench_pgjax(trainer, num_seeds: int, evaluate: bool = True, width: int | None = None) -> dict:
    """Time the whole training run for S seeds as `pgjax train` runs them (sharded over this
    process's devices in vmap groups of `width`, default `default_seed_width(S)`), then
    evaluate the final policies.

    Memory, per device: XLA's figure for the compiled program, pgjax's estimate for it (state
    in and out and the metrics, as `pgjax train --memory-limit` checks; no temporaries), and
    on an accelerator the device's peak so far in this process (all earlier runs included).
    """
    layout = SeedLayout.plan(num_seeds, width or default_seed_width(num_seeds), len(jax.devices()))
    mesh = seed_mesh(layout)
    hparams = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (num_seeds,)), trainer.config.hparams)
    train = sharding.cell_function(trainer.train, mesh, layout.width)
    first, second = (place_seeds((keys, hparams), layout, mesh) for keys in keys_pair(num_seeds))
    timed = time_compiled(train, first, second)
    record = timing_record("pgjax", trainer.config, num_seeds, timed.compile_s, timed.train_s)
    estimate = sweep.launch_bytes_estimate(sweep.cell_bytes(trainer, trainer.config.num_updates), layout.per_device)
    record.update(host_devices=layout.num_devices, vmap_width=layout.width, xla_bytes_per_device=timed.xla_bytes,
                  estimate_bytes_per_device=estimate, device_peak_bytes=device_peak_bytes())
    if evaluate:
        record.update(final_returns(trainer, unpad_seeds(timed.output.state, layout)))
    record["config"] = to_dict(trainer.config)
    return record


# --- the environment-only ceiling and the rollout-only part ---------------------------------


def random_actions(env, key):
    """Uniformly random actions for every environment copy."""
    spec = env.action_spec
    if spec.discrete:
        return jax.random.randint(key, (env.num_envs,), 0, spec.num_actions)
    return jax.random.uniform(
        key, (env.num_envs, *spec.shape), minval=jnp.asarray(spec.low), maxval=jnp.asarray(spec.high)
    )


def make_env_only(env, num_rollouts: int, num_steps: int):
    """`run(key) -> total reward`: num_rollouts x num_steps random-action steps of `env`."""

    def step(env_state, step_key):
        action_key, env_key = jax.random.split(step_key)
        env_state, timestep = env.step(env_key, env_state, random_actions(env, action_key))
        return env_state, timestep.reward.sum()

    def one_rollout(env_state, rollout_key):
        # The same straight-line keys as pgjax's rollouts, so this stays the ceiling.
        rollout_key = unrolled_key(rollout_key)
        env_state, rewards = jax.lax.scan(step, env_state, jax.random.split(rollout_key, num_steps))
        return env_state, rewards.sum()

    def run(key):
        reset_key, key = jax.random.split(key)
        env_state, _ = env.reset(reset_key)
        _, totals = jax.lax.scan(one_rollout, env_state, jax.random.split(key, num_rollouts))
        return totals.sum()  # depends on every step, so nothing is optimised away

    return run


def make_rollout_only(trainer, rollout_setup):
    """`run(key) -> checksum`: num_updates rollouts of the initial policy, no learning."""
    config = trainer.config

    def run(key):
        init_key, key = jax.random.split(key)
        state = trainer.init(init_key, config.hparams)
        policy, env_carry = rollout_setup(trainer, state)

        def one_rollout(carry, rollout_key):
            carry, traj = rollout(trainer.env, policy, carry, rollout_key, config.num_steps)
            # Sum every field so log-probs, values and observations are all computed.
            return carry, sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(traj))

        _, sums = jax.lax.scan(one_rollout, env_carry, jax.random.split(key, config.num_updates))
        return sums.sum()

    return run


def bench_vmapped(kind: str, run_fn, config, num_seeds: int) -> dict:
    first, second = keys_pair(num_seeds)
    timed = time_compiled(jax.vmap(run_fn), (first,), (second,))
    return timing_record(kind, config, num_seeds, timed.compile_s, timed.train_s)


# --- roofline: the training step's floating-point rate against one large matmul ------------


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0))


def _xla_flops_of(closed_jaxpr) -> float:
    """XLA's cost analysis of one jaxpr, compiled alone (loop bodies counted once)."""
    args = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in closed_jaxpr.jaxpr.invars]
    return _flops(jax.jit(jax_core.jaxpr_as_fun(closed_jaxpr)).lower(*args).compile())


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jax_core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax_core.Jaxpr):
                yield item


def loop_flops_correction(jaxpr) -> float:
    """FLOPs XLA's cost analysis misses in `jaxpr`: it counts a loop body once, whatever the
    trip count. For every `scan` (fori_loops with static bounds are scans) of `length` L:
    L * (its body's full FLOPs) - (its body counted once). `while` loops with a dynamic trip
    count stay counted once (none in a training step's hot path)."""
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            body = eqn.params["jaxpr"]
            once = _xla_flops_of(body)
            total += eqn.params["length"] * (once + loop_flops_correction(body.jaxpr)) - once
        else:
            for sub in _sub_jaxprs(eqn):
                total += loop_flops_correction(sub)
    return total


def matmul_flops_per_s(size: int | None = None, repeats: int = 5) -> tuple[float, int]:
    """The machine's float32 rate on one `size x size` matmul (best of `repeats`), this process."""
    size = size or (8192 if jax.default_backend() == "gpu" else 2048)
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y).lower(a, a).compile()
    jax.block_until_ready(matmul(a, a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(matmul(a, a))
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best, size


def bench_roofline(trainer, num_seeds: int) -> dict:
    """Achieved FLOP rate of `jit(vmap(train))` for S seeds (one device) against one large matmul.

    FLOPs: XLA's `compiled.cost_analysis()` of the whole program plus, for every `scan`, its
    body's cost (XLA's too, compiled alone) times the trip count minus the one XLA counted.
    Time: best of two runs of the compiled program.
    """
    hparams = trainer.config.hparams
    fn = jax.vmap(trainer.train, in_axes=(0, None))
    first, second = keys_pair(num_seeds)
    compiled = jax.jit(fn).lower(first, hparams).compile()
    jax.block_until_ready(compiled(first, hparams))
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(second, hparams))
    train_s = time.perf_counter() - t0
    counted_once = _flops(compiled)
    flops = counted_once + loop_flops_correction(jax.make_jaxpr(fn)(first, hparams).jaxpr)
    peak, size = matmul_flops_per_s()
    return {
        "kind": "roofline", "env_id": trainer.config.env_id, "seeds": num_seeds, "train_s": round(train_s, 3),
        "flops": flops, "flops_loop_bodies_once": counted_once, "flops_per_s": flops / train_s,
        "matmul_flops_per_s": peak, "matmul_size": size, "fraction_of_matmul": flops / train_s / peak,
    }


def roofline_line(algo: str, r: dict) -> str:
    return (f"roofline, {algo} {r['env_id']} S={r['seeds']}: {r['flops'] / 1e9:,.1f} GFLOP per run (XLA cost analysis, "
            f"loop trip counts applied; {r['flops_loop_bodies_once'] / 1e9:,.2f} with each loop body once) in "
            f"{r['train_s']:.2f} s = {r['flops_per_s'] / 1e9:,.2f} GFLOP/s, {r['fraction_of_matmul']:.1%} of one "
            f"{r['matmul_size']}x{r['matmul_size']} float32 matmul's {r['matmul_flops_per_s'] / 1e9:,.1f} GFLOP/s "
            f"on {jax.default_backend()}")


# --- the peer -------------------------------------------------------------------------------


def peer_python() -> str:
    """The rejax venv's python (setup.sh builds the venv once, then just prints the path)."""
    done = subprocess.run(["bash", str(PEERS_DIR / "setup.sh")], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def bench_rejax(python: str, bench: AlgoBenchmark, config, num_seeds: int) -> dict | None:
    """Run the rejax harness for S seeds; its JSON line, or None (with a message) if it failed."""
    kwargs = bench.rejax_kwargs(config)
    cmd = [python, str(PEERS_DIR / "rejax_train.py"), bench.rejax_name, str(num_seeds), json.dumps(kwargs)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        log(f"  rejax failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return None
    result = json.loads(lines[-1])
    result.update(kind="rejax", env_id=config.env_id, total_timesteps=config.total_timesteps)
    result.setdefault("jaxlib", None)  # the harness reports its own venv's jax version only
    return result


# --- records and tables ---------------------------------------------------------------------


def machine_info() -> dict:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "jax": jax.__version__,
        "jaxlib": importlib.metadata.version("jaxlib"),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "pgjax_commit": commit or None,
    }


def append_jsonl(path: Path, records: list[dict], info: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for record in records:
            f.write(json.dumps({**info, **record}) + "\n")


def fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def ratio(a, b):
    return None if a is None or b is None or not b else a / b


def main_table(groups: list[dict]) -> str:
    head = ("| algo | env | seeds | run | compile s | train s | env steps/s | of env-only "
            "| return mean | return min | greedy mean | greedy min |")
    rows = [head, "|" + "---|" * 4 + "---:|" * 8]
    for g in groups:
        limit = g["env_only"]["env_steps_per_s"]
        pgjax = "pgjax" if g["width"] is None else f"pgjax, vmap width {g['width']}"
        runs = [(pgjax, g["pgjax"]), ("rejax", g.get("rejax")), ("env only (random actions)", g["env_only"])]
        for name, r in runs:
            if r is None:
                continue
            rows.append(
                f"| {g['algo']} | {g['env_id']} | {g['seeds']} | {name} | {fmt(r['compile_s'], '.2f')} "
                f"| {fmt(r['train_s'], '.2f')} | {fmt(r['env_steps_per_s'], ',.0f')} "
                f"| {fmt(ratio(r['env_steps_per_s'], limit), '.0%')} "
                f"| {fmt(r.get('final_return_mean'), '.1f')} | {fmt(r.get('final_return_min'), '.1f')} "
                f"| {fmt(r.get('greedy_return_mean'), '.1f')} | {fmt(r.get('greedy_return_min'), '.1f')} |"
            )
    return "\n".join(rows)


def peer_table(groups: list[dict]) -> str:
    rows = ["| algo | env | seeds | env steps/s pgjax ÷ rejax | compile s pgjax ÷ rejax |", "|---|---|---:|---:|---:|"]
    for g in groups:
        if g.get("rejax") is None:
            continue
        p, r = g["pgjax"], g["rejax"]
        rows.append(
            f"| {g['algo']} | {g['env_id']} | {g['seeds']} "
            f"| {fmt(ratio(p['env_steps_per_s'], r['env_steps_per_s']), '.2f')} "
            f"| {fmt(ratio(p['compile_s'], r['compile_s']), '.2f')} |"
        )
    return "\n".join(rows) if len(rows) > 2 else ""


def memory_table(groups: list[dict]) -> str:
    """pgjax's bytes per device: XLA's for the compiled run, pgjax's estimate, the device's peak."""
    rows = ["| algo | env | seeds | vmap width | XLA MB per device | pgjax estimate MB | device peak MB so far |",
            "|---|---|---:|---:|---:|---:|---:|"]
    megabytes = lambda b: None if b is None else b / 1e6
    for g in groups:
        r = g["pgjax"]
        rows.append(f"| {g['algo']} | {g['env_id']} | {g['seeds']} | {r['vmap_width']} "
                    f"| {fmt(megabytes(r['xla_bytes_per_device']), ',.1f')} "
                    f"| {fmt(megabytes(r['estimate_bytes_per_device']), ',.1f')} "
                    f"| {fmt(megabytes(r['device_peak_bytes']), ',.1f')} |")
    return "\n".join(rows)


def breakdown_table(groups: list[dict]) -> str:
    rows = ["| algo | env | part (1 seed) | compile s | time s | share of training time |", "|---|---|---|---:|---:|---:|"]
    for g in groups:
        if g.get("rollout_only") is None:
            continue
        full, roll, env_only = g["pgjax"], g["rollout_only"], g["env_only"]
        update_s = full["train_s"] - roll["train_s"]
        parts = [
            ("env only, random actions (within the rollouts)", env_only["compile_s"], env_only["train_s"]),
            ("rollouts: policy + env", roll["compile_s"], roll["train_s"]),
            ("update: GAE + SGD (full − rollouts)", None, update_s),
            ("full training run", full["compile_s"], full["train_s"]),
        ]
        for name, compile_s, seconds in parts:
            rows.append(
                f"| {g['algo']} | {g['env_id']} | {name} | {fmt(compile_s, '.2f')} | {seconds:.2f} "
                f"| {seconds / full['train_s']:.0%} |"
            )
    return "\n".join(rows) if len(rows) > 2 else ""


# --- driver ---------------------------------------------------------------------------------


def build_trainer(algo: str, total_timesteps: int | None):
    bench = ALGO_BENCHMARKS[algo]
    overrides = [] if total_timesteps is None else [f"total_timesteps={total_timesteps}"]
    _, algorithm, config = load_config(None, REPO / bench.config_file, None, overrides)
    return bench, algorithm.make_trainer(config)


def bench_group(algo: str, bench: AlgoBenchmark, trainer, num_seeds: int, rejax_python: str | None,
                width: int | None = None) -> dict:
    """All measurements for one algorithm and seed count, pgjax first and the peer right after."""
    config = trainer.config
    group = {"algo": algo, "env_id": config.env_id, "seeds": num_seeds, "width": width}
    log(f"[{algo} {config.env_id} S={num_seeds}] pgjax training ({config.num_updates} updates)...")
    group["pgjax"] = bench_pgjax(trainer, num_seeds, width=width)
    if rejax_python is not None and bench.rejax_kwargs is not None:
        log(f"[{algo} {config.env_id} S={num_seeds}] rejax training...")
        group["rejax"] = bench_rejax(rejax_python, bench, config, num_seeds)
    log(f"[{algo} {config.env_id} S={num_seeds}] env only, random actions...")
    env_only = make_env_only(trainer.env, *env_only_shape(config))
    group["env_only"] = bench_vmapped("env_only", env_only, config, num_seeds)
    if num_seeds == 1 and bench.rollout_setup is not None:
        log(f"[{algo} {config.env_id} S={num_seeds}] rollouts only...")
        group["rollout_only"] = bench_vmapped(
            "rollout_only", make_rollout_only(trainer, bench.rollout_setup), config, num_seeds
        )
    limit = group["env_only"]["env_steps_per_s"]
    group["pgjax"]["fraction_of_env_only"] = round(group["pgjax"]["env_steps_per_s"] / limit, 4)
    if group.get("rejax") is not None:
        r = group["rejax"]
        r["pgjax_over_rejax_env_steps_per_s"] = round(group["pgjax"]["env_steps_per_s"] / r["env_steps_per_s"], 4)
        r["pgjax_over_rejax_compile_s"] = round(group["pgjax"]["compile_s"] / r["compile_s"], 4)
    return group


def group_records(group: dict) -> list[dict]:
    return [
        {"algo": group["algo"], **group[kind]}
        for kind in ("pgjax", "rejax", "env_only", "rollout_only")
        if group.get(kind) is not None
    ]


def parse_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", type=parse_list, default=["ppo"],
                        help=f"comma list of algorithms; known: {', '.join(ALGO_BENCHMARKS)}")
    parser.add_argument("--seeds", type=lambda t: [int(s) for s in parse_list(t)], default=[1, 16],
                        help="comma list of seed counts, each one compiled run (default 1,16)")
    parser.add_argument("--total-timesteps", type=int, default=None, help="override the config's total_timesteps")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.jsonl"), help="JSON lines file, appended to")
    parser.add_argument("--peer", choices=["none", "rejax"], default="none", help="peer library to run alongside")
    parser.add_argument("--width", type=int, default=None,
                        help="seeds per vmap group (default: default_seed_width, as `pgjax train`)")
    parser.add_argument("--host-devices", type=int, default=None,
                        help="CPU devices for pgjax (default: as the pgjax commands, one per usable core)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="R > 0: instead of the tables above, R alternating rounds of pgjax with default "
                             "devices, pgjax on 1 device and the peer, each in a fresh process; median ratios")
    parser.add_argument("--pgjax-only", action="store_true", help=argparse.SUPPRESS)  # a round's child process
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="a fixed set of (algorithm, seeds, budget) runs instead of --algos/--seeds (gpu: "
                             "PPO CartPole at 1, 256, 4096 seeds and at 64 with vmap width 8 and 64, PPO MinAtar "
                             "Breakout CNN at 64, SAC Pendulum at 64)")
    parser.add_argument("--max-seeds", type=int, default=None,
                        help="cap every preset run's seed count (a CPU smoke test of a preset)")
    parser.add_argument("--roofline", choices=["auto", "on", "off"], default="auto",
                        help="the achieved FLOP rate against one large matmul: auto = for PPO at 16 seeds")
    args = parser.parse_args(argv)
    unknown = [a for a in args.algos if a not in ALGO_BENCHMARKS]
    if unknown:
        parser.error(f"--algos: no benchmark for {', '.join(unknown)}; known: {', '.join(ALGO_BENCHMARKS)}")
    if not args.seeds or min(args.seeds) < 1:
        parser.error("--seeds: give positive seed counts, e.g. 1,16")
    return args


def child_pgjax(algo: str, num_seeds: int, host_devices: int | None, total_timesteps: int | None) -> dict:
    """One pgjax measurement in a fresh process (the device count is fixed when JAX starts)."""
    cmd = [sys.executable, __file__, "--pgjax-only", "--algos", algo, "--seeds", str(num_seeds)]
    cmd += [] if host_devices is None else ["--host-devices", str(host_devices)]
    cmd += [] if total_timesteps is None else ["--total-timesteps", str(total_timesteps)]
    env = {k: v for k, v in os.environ.items() if k not in (sharding.ENV_VAR, "XLA_FLAGS")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"pgjax child failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def compare_rounds(args, info: dict, rejax_python: str | None) -> str:
    """Alternating rounds (default devices, 1 device, rejax; the order reversed every other
    round) per algorithm and seed count; the table of medians and median ratios."""
    rows = [("| algo | seeds | pgjax, default devices | pgjax, 1 device | rejax | default ÷ rejax | 1 device ÷ rejax "
             "| default ÷ 1 device |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for algo in args.algos:
        bench, trainer = build_trainer(algo, args.total_timesteps)
        for num_seeds in args.seeds:
            speeds: dict[str, list[float]] = {"default": [], "one": [], "rejax": []}
            for r in range(args.rounds):
                order = ["default", "one", "rejax"] if r % 2 == 0 else ["rejax", "one", "default"]
                for run in order:
                    log(f"[{algo} S={num_seeds} round {r + 1}/{args.rounds}] {run}...")
                    if run == "rejax":
                        if rejax_python is None or bench.rejax_kwargs is None:
                            continue
                        record = bench_rejax(rejax_python, bench, trainer.config, num_seeds)
                        if record is None:
                            continue
                    else:
                        record = child_pgjax(algo, num_seeds, None if run == "default" else 1, args.total_timesteps)
                    record.update(round=r, run=run)
                    append_jsonl(args.out, [{"algo": algo, **record}], info)
                    speeds[run].append(record["env_steps_per_s"])
            med = {k: float(np.median(v)) if v else None for k, v in speeds.items()}
            ratios = {
                (a, b): float(np.median([x / y for x, y in zip(speeds[a], speeds[b])])) if speeds[a] and speeds[b] else None
                for a, b in (("default", "rejax"), ("one", "rejax"), ("default", "one"))
            }
            rows.append(
                f"| {algo} | {num_seeds} | {fmt(med['default'], ',.0f')} | {fmt(med['one'], ',.0f')} "
                f"| {fmt(med['rejax'], ',.0f')} | {fmt(ratios['default', 'rejax'], '.2f')} "
                f"| {fmt(ratios['one', 'rejax'], '.2f')} | {fmt(ratios['default', 'one'], '.2f')} |"
            )
    return "\n".join(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    devices = sharding.use_host_devices(args.host_devices)  # chosen at import when run as a script
    if args.pgjax_only:
        _, trainer = build_trainer(args.algos[0], args.total_timesteps)
        print(json.dumps(bench_pgjax(trainer, args.seeds[0], evaluate=False)))
        return 0
    info = machine_info()
    if args.rounds > 0:
        rejax_python = peer_python() if args.peer == "rejax" else None
        table = compare_rounds(args, info, rejax_python)
        print(f"jax {info['jax']}, {info['backend']}, {info['cpu_count']} CPUs ({sharding.usable_cores()} usable), "
              f"{info['date']}, env steps/s (medians of {args.rounds} alternating rounds)\n\n{table}")
        return 0
    log(f"pgjax on {devices} host device(s)")
    rejax_python = peer_python() if args.peer == "rejax" else None
    log(f"jax {info['jax']} on {info['backend']}, {info['cpu_count']} CPUs; results appended to {args.out}")
    groups, rooflines = [], []
    for algo, num_seeds, total_timesteps, width in planned_runs(args):
        bench, trainer = build_trainer(algo, total_timesteps)
        group = bench_group(algo, bench, trainer, num_seeds, rejax_python, width)
        append_jsonl(args.out, group_records(group), info)
        groups.append(group)
        if args.roofline == "on" or (args.roofline == "auto" and algo == "ppo" and num_seeds == 16):
            log(f"[{algo} S={num_seeds}] roofline...")
            record = bench_roofline(trainer, num_seeds)
            append_jsonl(args.out, [{"algo": algo, **record}], info)
            rooflines.append(roofline_line(algo, record))
    tables = [("Training speed and final returns", main_table(groups)),
              ("pgjax / rejax", peer_table(groups)),
              ("Memory per device (pgjax)", memory_table(groups)),
              ("Where the time goes (1 seed)", breakdown_table(groups))]
    print(f"jax {info['jax']}, {info['backend']}, {info['cpu_count']} CPUs, {info['date']}\n")
    print("\n\n".join(f"### {title}\n\n{table}" for title, table in tables if table))
    if rooflines:
        print("\n" + "\n".join(rooflines))
    return 0


def planned_runs(args) -> list[tuple[str, int, int | None, int | None]]:
    """(algorithm, seeds, total_timesteps, vmap width) of each run: the preset's, or --algos x --seeds."""
    if args.preset is None:
        return [(algo, seeds, args.total_timesteps, args.width) for algo in args.algos for seeds in args.seeds]
    cap = args.max_seeds or max(run.seeds for run in PRESETS[args.preset])
    return [(run.algo, min(run.seeds, cap), args.total_timesteps or run.total_timesteps,
             None if run.width is None else min(run.width, cap)) for run in PRESETS[args.preset]]


if __name__ == "__main__":
    sys.exit(main())
