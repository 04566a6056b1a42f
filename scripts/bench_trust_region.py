"""Where a TRPO update's time goes: rollout, gradient, conjugate gradient, line search, value fit.

Not a test: it measures and prints a Markdown table (progress on stderr).

usage (repository root, in the venv):

    python scripts/bench_trust_region.py                          # configs/trpo_cartpole.toml
    python scripts/bench_trust_region.py --config configs/trpo_pendulum.toml --reps 20

Method: train the config's first `--warmup` updates (1 seed) so the policy is not the
initial one, then collect one rollout batch from that state and time, each as its own
jitted function on that same batch (median of `--reps` calls after one warm-up call,
`jax.block_until_ready`):

  update          one whole TRPO update (`trainer.run(state, hp, 1)`: rollout included)
  rollout + GAE   the rollout and the advantage estimates
  gradient        `grad` of the surrogate
  gradient + CG   `npg.natural_gradient_step` (gradient, cg_iters Fisher-vector products)
  line search     `line_search_step` on the natural step (as in training: usually 1 try)
  line search x n the same with a non-improving step: all backtrack_iters tries
  value fit       `value_iters` Adam steps of value regression

Shares are of the whole update. CG's cost is `gradient + CG - gradient`. The parts are
timed separately, so they need not add up to the update exactly (fusion across parts).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import jax

from pgjax.algos import npg, trpo
from pgjax.algos.actor_critic import fit_value_function, sample_step
from pgjax.algos.rollout import rollout
from pgjax.commands import load_config

REPO = Path(__file__).resolve().parents[1]


def median_seconds(fn, *args, reps: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def collect(config, trainer, hparams, state):
    """One rollout from `state` and its GAE batch (as `npg.update` builds it)."""
    key = jax.random.split(state.key, 3)[1]
    policy = functools.partial(sample_step, config, trainer.env, trainer.networks, state.params, state.obs_stats)
    _, traj = rollout(trainer.env, policy, state.env, key, config.num_steps)
    return npg._rollout_batch(config, trainer.networks, hparams, state.params, state.obs_stats, traj)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs/trpo_cartpole.toml")
    parser.add_argument("--warmup", type=int, default=20, help="training updates before measuring")
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args(argv)

    config = load_config("trpo", args.config, None, [])[2]
    hp = config.hparams
    trainer = trpo.make_trainer(config)
    networks = trainer.networks
    run = jax.jit(trainer.run, static_argnums=2)
    print(f"warming up: {args.warmup} updates of {config.env_id}", file=sys.stderr)
    state, _ = run(jax.jit(trainer.init)(jax.random.PRNGKey(0), hp), hp, args.warmup)
    batch = jax.jit(functools.partial(collect, config, trainer))(hp, state)
    actor = state.params["actor"]
    key = jax.random.PRNGKey(1)

    def direction(actor):
        return npg.natural_gradient_step(config, networks, hp, actor, batch, key)[0]

    def line_search(actor, step):
        problem = npg.natural_gradient_step(config, networks, hp, actor, batch, key)[1]
        return trpo.line_search_step(config, hp, problem, step)

    def value_fit(critic):
        opt = npg.critic_optimizer(hp)
        return fit_value_function(networks.critic, opt, critic, opt.init(critic), batch.obs, batch.target,
                                  config.value_iters)

    step = jax.jit(direction)(actor)
    backwards = jax.tree.map(lambda s: -s, step)  # never improves the surrogate: every try runs
    parts = {
        "update (whole)": (lambda s: run(s, hp, 1), state),
        "rollout + GAE": (functools.partial(jax.jit(functools.partial(collect, config, trainer)), hp), state),
        "gradient": (jax.jit(jax.grad(functools.partial(npg.surrogate, networks, batch))), actor),
        "gradient + CG": (jax.jit(direction), actor),
        "line search (as trained)": (jax.jit(functools.partial(line_search, step=step)), actor),
        f"line search x {config.backtrack_iters} (reject)": (jax.jit(functools.partial(line_search, step=backwards)), actor),
        "value fit": (jax.jit(value_fit), state.params["critic"]),
    }
    seconds = {}
    for name, (fn, arg) in parts.items():
        print(f"timing {name}...", file=sys.stderr)
        seconds[name] = median_seconds(fn, arg, reps=args.reps)
    seconds["CG alone (gradient + CG - gradient)"] = seconds["gradient + CG"] - seconds["gradient"]

    total = seconds["update (whole)"]
    print(f"TRPO update breakdown, {config.env_id}, batch {config.batch_size}, cg_iters {config.cg_iters}, "
          f"fvp_fraction {config.fvp_fraction}, hidden {list(config.hidden_sizes)}; jax {jax.__version__}, "
          f"median of {args.reps}\n")
    print("| part | ms | share of update |\n|---|---:|---:|")
    for name, s in seconds.items():
        print(f"| {name} | {1e3 * s:.2f} | {s / total:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
