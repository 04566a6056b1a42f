"""Compile cost of `jit(vmap(train))`, in process CPU seconds, for pgjax and rejax.

Not a test: it measures and prints. Wall-clock compile time on a shared machine moves
with the load (the same PPO compile was seen at 10 s and 70 s on the same day), so this
script reports the CPU seconds the compiling process spent (`resource.getrusage`,
user + system, all threads: XLA compiles on a thread pool) around `lower` + `compile`,
each measurement in a fresh process (no JAX tracing or compilation cache carried over;
the persistent compilation cache is off). CPU seconds still grow somewhat under load
(shared caches, frequency), so compare runs alternated in one batch.

usage (repository root, pgjax's venv):

    python scripts/compile_cost.py configs --seeds 1            # every shipped config (non-MinAtar)
    python scripts/compile_cost.py peers --algos ppo,sac,td3 --seeds 1,16 --rounds 3
        # pgjax and rejax (../shared/peers, its own venv) alternated, median of the rounds
    python scripts/compile_cost.py peers --algos ppo --seeds 1 --level 1   # both at LLVM -O1
    python scripts/compile_cost.py configs --pgjax-root /tmp/old-checkout --pgjax-root .
        # two versions of pgjax alternated (before/after a change)

What is compiled: `jax.jit(jax.vmap(train, in_axes=(0, None)))` for S seed keys and the
config's hyper-parameters passed as traced, shared arguments (as rejax's harness passes its
algorithm: `vmap(train, in_axes=(None, 0))`), on one CPU device, at XLA's default LLVM level
unless `--level N` (`xla_backend_optimization_level`, both libraries alike).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(os.environ.get("PGJAX_PEERS_DIR", REPO.parent / "shared" / "peers"))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def level_options(level: int | None) -> dict | None:
    """`jax.jit`'s `compiler_options` for LLVM optimisation level `level` (None: XLA's default, 3)."""
    return None if level is None else {"xla_backend_optimization_level": level}


def timed_compile(fn, *args, level: int | None = None) -> dict:
    """Lower and compile `jax.jit(fn)` for `args` (at LLVM level `level`, None: XLA's
    default): CPU and wall seconds of each phase."""
    import jax

    options = level_options(level)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    lowered = jax.jit(fn, compiler_options=options).lower(*args)
    cpu1 = _cpu_seconds()
    lowered.compile()
    cpu2, wall2 = _cpu_seconds(), time.perf_counter()
    return {
        "lower_cpu_s": round(cpu1 - cpu0, 3), "compile_cpu_s": round(cpu2 - cpu1, 3),
        "total_cpu_s": round(cpu2 - cpu0, 3), "total_wall_s": round(wall2 - wall0, 3),
    }


# --- one measurement (child processes) ------------------------------------------------------


def measure_pgjax(config_file: str, num_seeds: int, level: int | None = None) -> dict:
    import jax

    from pgjax.commands import load_config

    _, algorithm, config = load_config(None, Path(config_file), None, [])
    trainer = algorithm.make_trainer(config)
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    result = timed_compile(jax.vmap(trainer.train, in_axes=(0, None)), keys, config.hparams, level=level)
    return {"lib": "pgjax", "config": Path(config_file).name, "seeds": num_seeds, "level": level, **result}


def measure_rejax(algo_name: str, num_seeds: int, kwargs: dict, level: int | None = None) -> dict:
    """rejax's harness (../shared/peers/rejax_train.py) up to its compile, timed in CPU seconds."""
    import jax
    from rejax import get_algo

    kwargs.setdefault("eval_freq", kwargs.get("total_timesteps", 100_000))
    algo_cls = get_algo(algo_name)
    algo = algo_cls.create(**kwargs).replace(eval_callback=lambda a, ts, rng: ())
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    result = timed_compile(jax.vmap(algo_cls.train, in_axes=(None, 0)), algo, keys, level=level)
    return {"lib": "rejax", "algo": algo_name, "seeds": num_seeds, "level": level, **result}


# --- drivers --------------------------------------------------------------------------------


def run_child(python: str, args: list[str], pgjax_root: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PGJAX_HOST_DEVICES")}
    env["PGJAX_HOST_DEVICES"] = "1"
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if pgjax_root is not None:
        env["PYTHONPATH"] = str(pgjax_root)
    done = subprocess.run([python, __file__, *args], capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"compile_cost child {args} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def shipped_configs() -> list[Path]:
    """configs/*.toml except the MinAtar ones (their compiles are the CNN's, minutes here)."""
    return [p for p in sorted((REPO / "configs").glob("*.toml")) if "minatar" not in p.name]


def median(values):
    import statistics

    return statistics.median(values) if values else None


def configs_command(args) -> None:
    roots = args.pgjax_root or [REPO]
    files = [REPO / "configs" / f for f in args.configs] if args.configs else shipped_configs()
    results: dict = {}
    for config in files:
        for seeds in args.seeds:
            for r in range(args.rounds):
                order = roots if r % 2 == 0 else roots[::-1]
                for root in order:
                    record = run_child(sys.executable, ["pgjax", str(config), str(seeds), json.dumps(args.level)], root)
                    record.update(root=str(root), round=r)
                    print(json.dumps(record), file=sys.stderr, flush=True)
                    _append(args.out, record)
                    results.setdefault((config.name, seeds, str(root)), []).append(record["total_cpu_s"])
    head = "| config | seeds | " + " | ".join(f"CPU s ({Path(r).name or r})" for r in roots) + " |"
    print(head + "\n|---|---:|" + "---:|" * len(roots))
    for config in files:
        for seeds in args.seeds:
            cells = [median(results[(config.name, seeds, str(root))]) for root in roots]
            print(f"| {config.stem} | {seeds} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


def peers_command(args) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    sys.path.insert(0, str(REPO))
    import benchmark  # the configs and their translation into rejax's arguments

    from pgjax.commands import load_config

    rejax_python = benchmark.peer_python()
    level = json.dumps(args.level)
    rows = ["| algo | seeds | pgjax CPU s | rejax CPU s | pgjax / rejax (median, range) |", "|---|---:|---:|---:|---:|"]
    for algo in args.algos:
        bench = benchmark.ALGO_BENCHMARKS[algo]
        _, _, config = load_config(None, REPO / bench.config_file, None, [])
        kwargs = json.dumps(bench.rejax_kwargs(config))
        for seeds in args.seeds:
            cpu = {"pgjax": [], "rejax": []}
            for r in range(args.rounds):
                for lib in (("pgjax", "rejax") if r % 2 == 0 else ("rejax", "pgjax")):
                    if lib == "pgjax":
                        record = run_child(sys.executable, ["pgjax", str(REPO / bench.config_file), str(seeds), level], REPO)
                    else:
                        record = run_child(rejax_python, ["rejax", bench.rejax_name, str(seeds), kwargs, level])
                    record.update(round=r)
                    print(json.dumps(record), file=sys.stderr, flush=True)
                    _append(args.out, record)
                    cpu[lib].append(record["total_cpu_s"])
            ratios = sorted(p / q for p, q in zip(cpu["pgjax"], cpu["rejax"]))
            rows.append(f"| {algo} | {seeds} | {median(cpu['pgjax']):.1f} | {median(cpu['rejax']):.1f} "
                        f"| {median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) |")
    print("\n".join(rows))


def _append(path: Path | None, record: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}) + "\n")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "pgjax" and len(argv) == 4:  # a child: one pgjax measurement
        print(json.dumps(measure_pgjax(argv[1], int(argv[2]), json.loads(argv[3]))))
        return 0
    if argv and argv[0] == "rejax" and len(argv) == 5:  # a child in rejax's venv
        print(json.dumps(measure_rejax(argv[1], int(argv[2]), json.loads(argv[3]), json.loads(argv[4]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["configs", "peers"])
    parser.add_argument("--seeds", default="1", help="comma list of seed counts (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; medians are reported")
    parser.add_argument("--algos", default="ppo,sac,td3", help="peers: algorithms with a rejax peer")
    parser.add_argument("--configs", default="", help="configs: comma list of files in configs/ (default all non-MinAtar)")
    parser.add_argument("--pgjax-root", type=Path, action="append",
                        help="configs: a pgjax checkout to measure (repeat to alternate versions; default this one)")
    parser.add_argument("--level", type=int, default=None,
                        help="LLVM optimisation level for every program (xla_backend_optimization_level; "
                             "default: XLA's own, 3)")
    parser.add_argument("--out", type=Path, default=None, help="append every measurement to this JSON-lines file")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.algos = [a for a in args.algos.split(",") if a]
    args.configs = [c for c in args.configs.split(",") if c]
    (configs_command if args.command == "configs" else peers_command)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
