"""First vs second `pgjax train` of the same config with JAX's persistent compilation cache.

    python scripts/bench_compile_cache.py [--configs ppo_cartpole,trpo_cartpole,sac_pendulum]
                                          [--total-timesteps N] [--host-devices 1]

For each config: an empty cache folder, then two `pgjax train` processes of the same
command into it. Each process reports the seconds XLA spent compiling or loading
programs (JAX's `/jax/core/compile/backend_compile_duration` events: wall time, the sum
over programs), the programs found in the cache, the process's CPU seconds (user + system,
what a loaded machine distorts least) and its wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(argv: list[str]) -> None:
    """Run `pgjax train ARGV` in this process and print what it compiled, as JSON."""
    import jax

    totals = {"compile_s": 0.0, "cache_hits": 0, "cache_misses": 0}

    def on_duration(event, seconds, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            totals["compile_s"] += seconds

    def on_event(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            totals["cache_hits"] += 1
        elif event == "/jax/compilation_cache/cache_misses":
            totals["cache_misses"] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    from pgjax.commands import cli

    start = time.perf_counter()
    code = cli.main(["train", *argv])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("RESULT " + json.dumps({**totals, "exit": code, "wall_s": time.perf_counter() - start,
                                  "cpu_s": usage.ru_utime + usage.ru_stime}))


def measure(config: str, total_timesteps: int, host_devices: int, out: Path) -> list[dict]:
    cache = Path(tempfile.mkdtemp(prefix="pgjax-cache-", dir=out))
    env = {**os.environ, "PGJAX_COMPILE_CACHE": str(cache), "PGJAX_HOST_DEVICES": str(host_devices),
           "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--child", "--config", str(ROOT / "configs" / f"{config}.toml"),
               f"total_timesteps={total_timesteps}", "--no-progress", "--no-checkpoint", "--out", str(out)]
    results = []
    for attempt in ("first", "second"):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not line:
            sys.exit(f"{config} ({attempt} run) failed:\n{done.stdout}\n{done.stderr}")
        results.append({"run": attempt, **json.loads(line[-1][len("RESULT "):])})
    entries = sum(1 for _ in cache.iterdir())
    results[-1]["cache_files"] = entries
    return results


def main() -> None:
    if "--child" in sys.argv:
        args = sys.argv[1:]
        args.remove("--child")
        child(args)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="ppo_cartpole,trpo_cartpole,sac_pendulum")
    parser.add_argument("--total-timesteps", type=int, default=8192)
    parser.add_argument("--host-devices", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgjax-bench-cache-") as tmp:
        print("| config | run | compile s (wall, sum of programs) | cache hits / misses | process CPU s | wall s |")
        print("|---|---|---:|---:|---:|---:|")
        for config in args.configs.split(","):
            first, second = measure(config, args.total_timesteps, args.host_devices, Path(tmp))
            for r in (first, second):
                print(f"| {config} | {r['run']} | {r['compile_s']:.1f} | {r['cache_hits']} / {r['cache_misses']} | "
                      f"{r['cpu_s']:.1f} | {r['wall_s']:.1f} |", flush=True)
            print(f"| {config} | second / first | {second['compile_s'] / first['compile_s']:.2f} | | "
                  f"{second['cpu_s'] / first['cpu_s']:.2f} | {second['wall_s'] / first['wall_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
