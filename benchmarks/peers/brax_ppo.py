"""Train brax's own PPO (`brax.training.agents.ppo.train.train`) on the environment, budget
and batch shape of a pgjax Brax PPO config, for a row beside pgjax's.

usage: python benchmarks/peers/brax_ppo.py CONFIG [KEY=VALUE ...] [--seeds 0,1,2]
           [--unroll-length N] [--num-evals N] [--out FILE.json] [--deadline UNIX_TIME]
           [--compile-cache DIR]

KEY=VALUE are pgjax overrides (`total_timesteps=2621440`), read with `pgjax.load_config`.
The mapping (`brax_kwargs`), pgjax field -> brax argument:

    env_id brax/NAME[/BACKEND], env_kwargs -> envs.get_environment(NAME, backend=..., **env_kwargs)
    num_envs -> num_envs;  update_epochs -> num_updates_per_batch;  num_minibatches -> num_minibatches
    num_envs * num_steps = batch_size * num_minibatches * unroll_length   (steps per update)
    total_timesteps -> num_timesteps = num_updates * steps per update (pgjax's whole updates)
    gamma -> discounting;  gae_lambda;  clip_eps -> clipping_epsilon;  ent_coef -> entropy_cost
    vf_coef -> vf_loss_coefficient;  learning_rate;  reward_scale -> reward_scaling
    normalize_obs -> normalize_observations;  normalize_advantages -> normalize_advantage
    clip_value_loss -> clipping_epsilon_value = value_clip_eps (else None)
    max_grad_norm -> max_grad_norm (>= 1e9, the configs' "no clipping", -> None as brax's default)

`unroll_length` is brax's alone (pgjax computes one GAE over all `num_steps`): by default the
value brax's training notebook uses for the environment (ant 5, halfcheetah 20), else
`--unroll-length`. Settings brax's PPO has no counterpart for (a linearly annealed learning
rate, return scaling, a recurrent core) are refused. Brax's networks stay brax's defaults
(4x32 policy, 5x256 value, swish; pgjax's configs use 4x64 silu for both), its time limit
stays its own (`episode_length` 1000, pgjax's too; brax folds the limit into `done` and
masks truncated steps, pgjax bootstraps them from V(final observation)), and its
evaluation stays its own: `num_eval_envs` 128 episodes with sampled actions after every
training epoch (brax's default; `--deterministic-eval` for the mode).

brax rounds its work up to whole epochs of `num_timesteps / (num_evals - 1)` steps: the
harness picks the epoch count that divides pgjax's number of updates (at most
`--num-evals` - 1), so both libraries take the same environment steps.

Timing per seed, from `progress_fn` (called after every epoch with brax's own
`training/walltime`): the first epoch compiles the training program ("first_epoch_s"); the
later epochs are the steady training time ("train_s", "env_steps_per_s_train"); "wall_s"
is the whole `ppo.train` call (setup, compilation, evaluations: "env_steps_per_s_wall", the
counterpart of scripts/reproduce.py's env steps/s). Seeds run one after another in this
process; each call compiles again unless `--compile-cache` (JAX's persistent cache, keyed
by the program: a later seed loads it). The JSON file is rewritten after every seed; with
`--deadline` a seed whose predicted time (the previous seed's wall time) would end past it
is skipped and listed in "skipped_seeds".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere: pgjax comes from this checkout
    sys.path.insert(0, str(ROOT))

import pgjax
from pgjax.runtime.loading import algorithm_of

NOTEBOOK_UNROLL_LENGTH = {"ant": 5, "halfcheetah": 20}  # google/brax notebooks/training.ipynb
NO_CLIP = 1e9  # the shipped configs' max_grad_norm for "brax clips no gradients"


class MappingError(ValueError):
    """A pgjax config that brax's ppo.train cannot run as the same work; the message says why."""


def brax_env_name(env_id: str) -> tuple[str, str | None]:
    """`brax/NAME[/BACKEND]` -> (NAME, BACKEND or None)."""
    suite, _, rest = env_id.partition("/")
    if suite != "brax" or not rest:
        raise MappingError(f"env_id={env_id!r}: brax's ppo.train needs a Brax environment, 'brax/NAME[/BACKEND]'")
    name, _, backend = rest.partition("/")
    return name, backend or None


def epochs_for(num_updates: int, num_evals: int) -> int:
    """The most epochs (<= num_evals - 1) that split `num_updates` into equal whole parts."""
    return max(e for e in range(1, max(1, num_evals - 1) + 1) if num_updates % e == 0)


def brax_kwargs(config, unroll_length: int | None = None, num_evals: int = 10) -> dict:
    """The keyword arguments of brax's `ppo.train` for the same work as pgjax's `config`
    (a loaded `PPOConfig`), environment and seed aside."""
    algo = algorithm_of(config).name
    if algo != "ppo":
        raise MappingError(f"algo={algo!r}: this harness runs brax's PPO; give a PPO config (algo = 'ppo')")
    name, _ = brax_env_name(config.env_id)
    refused = {"anneal_lr": (config.anneal_lr, False, "brax's ppo.train keeps the learning rate constant"),
               "scale_rewards": (config.scale_rewards, False, "brax has no running return scaling"),
               "core": (config.core, "none", "brax's PPO networks are feed-forward")}
    for field, (value, allowed, why) in refused.items():
        if value != allowed:
            raise MappingError(f"{field}={value!r}: only {allowed!r} maps onto brax ({why})")
    unroll = unroll_length or NOTEBOOK_UNROLL_LENGTH.get(name)
    if unroll is None:
        raise MappingError(f"env_id={config.env_id!r}: no unroll_length from brax's notebook for {name!r}; "
                           "pass --unroll-length N (N must divide num_steps)")
    per_update = config.num_envs * config.num_steps
    if unroll < 1 or config.num_steps % unroll or per_update % (config.num_minibatches * unroll):
        raise MappingError(f"unroll_length={unroll}: must divide num_steps={config.num_steps} and, times "
                           f"num_minibatches={config.num_minibatches}, num_envs * num_steps={per_update}")
    num_updates = config.total_timesteps // per_update  # >= 1: load_config refuses less than one rollout
    h = config.hparams
    epochs = epochs_for(num_updates, num_evals)
    return {
        "num_timesteps": num_updates * per_update, "num_envs": config.num_envs, "episode_length": 1000,
        "unroll_length": unroll, "batch_size": per_update // (config.num_minibatches * unroll),
        "num_minibatches": config.num_minibatches, "num_updates_per_batch": config.update_epochs,
        "num_evals": epochs + 1, "learning_rate": h.learning_rate, "discounting": h.gamma,
        "gae_lambda": h.gae_lambda, "clipping_epsilon": h.clip_eps, "entropy_cost": h.ent_coef,
        "vf_loss_coefficient": h.vf_coef, "reward_scaling": h.reward_scale,
        "max_grad_norm": None if h.max_grad_norm >= NO_CLIP else h.max_grad_norm,
        "normalize_observations": config.normalize_obs, "normalize_advantage": config.normalize_advantages,
        "clipping_epsilon_value": h.value_clip_eps if config.clip_value_loss else None,
    }


def _float(x) -> float:
    return float(x) if x is not None else float("nan")


def _timing(points: list[dict], wall: float) -> dict:
    """Split one ppo.train call's wall time using brax's cumulative `training/walltime`."""
    epochs = [p for p in points if "training/walltime" in p]
    out = {"wall_s": round(wall, 2), "env_steps": epochs[-1]["env_steps"] if epochs else 0}
    if not epochs:
        return out
    walls = [p["training/walltime"] for p in epochs]
    out["first_epoch_s"] = round(walls[0], 2)
    out["other_s"] = round(wall - walls[-1], 2)  # setup, resets, evaluations with their compilation
    out["eval_s"] = round(_float(epochs[-1].get("eval/walltime")), 2)
    out["env_steps_per_s_wall"] = round(out["env_steps"] / wall, 1)
    if len(epochs) > 1:
        train_s = walls[-1] - walls[0]
        steps = epochs[-1]["env_steps"] - epochs[0]["env_steps"]
        out["train_s"] = round(train_s, 2)
        out["env_steps_per_s_train"] = round(steps / train_s, 1)
        out["compile_s_estimate"] = round(walls[0] - train_s / (len(epochs) - 1), 2)
    return out


def _replicate(tree, devices):
    """One copy of every leaf per device, stacked on a new leading (pmap) axis."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf] * len(devices)), tree)


def jax_compat() -> list[str]:
    """Restore the one JAX function brax 0.14.2's ppo.train calls that JAX >= 0.10 removed
    (`jax.device_put_replicated`: google/brax issue 671, whose workaround is JAX 0.9);
    returns the names restored, recorded with the results."""
    import jax

    try:
        jax.device_put_replicated  # noqa: B018 - the lookup raises where JAX removed it
        return []
    except AttributeError:
        jax.device_put_replicated = _replicate
        return ["jax.device_put_replicated"]


def train_seed(env, kwargs: dict, seed: int, deterministic_eval: bool) -> dict:
    from brax.training.agents.ppo import train as ppo

    points: list[dict] = []
    start = time.perf_counter()
    keep = ("eval/episode_reward", "eval/episode_reward_std", "eval/avg_episode_length", "eval/walltime",
            "training/walltime", "training/sps")

    def progress(step, metrics):
        point = {"env_steps": int(step), "host_s": round(time.perf_counter() - start, 2)}
        point.update({k: round(float(metrics[k]), 4) for k in keep if k in metrics})
        points.append(point)
        print(f"  brax seed {seed}: {int(step):,} steps, eval return {point.get('eval/episode_reward', math.nan):.1f}, "
              f"{point['host_s']:.0f} s", file=sys.stderr, flush=True)

    ppo.train(environment=env, seed=seed, progress_fn=progress, deterministic_eval=deterministic_eval, **kwargs)
    wall = time.perf_counter() - start
    finals = [p["eval/episode_reward"] for p in points if "eval/episode_reward" in p]
    return {"seed": seed, **_timing(points, wall), "final_eval_return": finals[-1] if finals else None,
            "curve": points}


def _summary(result: dict) -> dict:
    from pgjax.reports import statistics as st

    seeds = result["per_seed"]
    finals = [s["final_eval_return"] for s in seeds]
    steps = sum(s["env_steps"] for s in seeds)
    wall = sum(s["wall_s"] for s in seeds)
    return {"final_eval_return": st.summarize([x for x in finals if x is not None]),
            "env_steps_all_seeds": steps, "wall_s_all_seeds": round(wall, 2),
            "env_steps_per_s_wall_all_seeds": round(steps / wall, 1) if wall else None}


def _write(path: Path | None, result: dict) -> None:
    if path is None:
        return
    text = json.dumps(result, indent=1) + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else list(range(int(text)))
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds: a count N >= 1 or ids like 0,1,2; got {text!r}")
    return seeds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a pgjax Brax PPO config, e.g. configs/ppo_ant_brax.toml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="pgjax config overrides")
    parser.add_argument("--seeds", type=_seeds, default=[0], help="a count N (seeds 0..N-1) or ids 0,1,2")
    parser.add_argument("--unroll-length", type=int, help="brax's unroll_length (default: its notebook's)")
    parser.add_argument("--num-evals", type=int, default=10, help="at most this many evaluations (default 10)")
    parser.add_argument("--deterministic-eval", action="store_true", help="evaluate with the policy's mode")
    parser.add_argument("--out", type=Path, help="JSON file, rewritten after every seed")
    parser.add_argument("--deadline", type=float, help="unix time: skip a seed predicted to end past it")
    parser.add_argument("--compile-cache", type=Path, help="JAX persistent compilation cache folder")
    args = parser.parse_args(argv)
    try:
        config = pgjax.load_config(args.config, overrides=args.overrides)
        kwargs = brax_kwargs(config, args.unroll_length, args.num_evals)
    except ValueError as exc:  # ConfigError and MappingError: one line, no traceback
        print(f"brax_ppo: {exc}", file=sys.stderr)
        return 2

    import jax

    if args.compile_cache:
        jax.config.update("jax_compilation_cache_dir", str(args.compile_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    shims = jax_compat()
    import brax
    from brax import envs

    name, backend = brax_env_name(config.env_id)
    env = envs.get_environment(name, **({"backend": backend} if backend else {}), **dict(config.env_kwargs))
    result = {"lib": "brax", "brax": brax.__version__, "jax": jax.__version__,
              "device": jax.devices()[0].device_kind, "jax_compat": shims, "config": args.config, "overrides": args.overrides,
              "env_id": config.env_id, "kwargs": kwargs, "deterministic_eval": args.deterministic_eval,
              "networks": "brax defaults: policy 4x32, value 5x256, swish", "seeds": [], "per_seed": [],
              "skipped_seeds": []}
    print(f"brax_ppo: {config.env_id}, {kwargs['num_envs']} envs, batch {kwargs['batch_size']} x "
          f"{kwargs['num_minibatches']} minibatches x unroll {kwargs['unroll_length']}, "
          f"{kwargs['num_timesteps']:,} steps per seed, seeds {args.seeds}", file=sys.stderr, flush=True)
    for seed in args.seeds:
        predicted = result["per_seed"][-1]["wall_s"] if result["per_seed"] else 0.0
        if args.deadline is not None and time.time() + predicted > args.deadline:
            result["skipped_seeds"].append(seed)
            print(f"brax_ppo: seed {seed} skipped: about {predicted:.0f} s, past the deadline", file=sys.stderr)
            continue
        result["per_seed"].append(train_seed(env, kwargs, seed, args.deterministic_eval))
        result["seeds"].append(seed)
        result["summary"] = _summary(result)
        _write(args.out, result)
    _write(args.out, result)  # also when every seed was skipped
    if args.out is None:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
