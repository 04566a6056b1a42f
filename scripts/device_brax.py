"""The Brax rows of issue 31 in one GPU command: pgjax's rows and brax's own PPO, time-guarded.

Run through `scripts/device_brax.sh` (it installs the carried wheels first; its header has
the plan, the budgets and what each part costs). Each phase is a fresh process, in order:
brax's ppo.train on Ant (seed 0), pgjax's Ant PPO row (3 seeds, `scripts/reproduce.py`),
brax's seeds 1 and 2, pgjax's Hopper SAC row, pgjax's HalfCheetah PPO row. A phase starts
only if its least cost fits before the deadline; a running one is stopped at the deadline
(SIGTERM to its process group: `pgjax train` ends its chunk and keeps its checkpoint, brax's
harness has written every finished seed). Whatever finished is then tabled and packed into
OUT: `summary.md` (side-by-side table and phase times), `summary.json`, `device_brax.log`
(every child's output) and `brax_results.tar.gz` (reproduce.py's records, table, curves and
figure, the run folders without checkpoints, brax's JSON).

usage: python scripts/device_brax.py --out DIR [--smoke] [--minutes M] [--phases NAME,...]
       python scripts/device_brax.py --preflight     # versions, devices, requirements; exits
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
RESERVE_S = 20.0  # kept after the last phase for the table, the figure and the archive
GRACE_S = 25.0  # after SIGTERM: pgjax train finishes its chunk and writes its checkpoint
# A phase is given the time left less RESERVE_S and GRACE_S, so that even a stopped one has
# ended, grace included, RESERVE_S before the deadline.
PEER = ROOT / "benchmarks" / "peers" / "brax_ppo.py"
# pgjax's rows: a checkpoint and a 32-episode evaluation after each of 8 chunks (one PPO update
# each; Hopper SAC's checkpoint holds 3 seeds' replay buffers of 2^20 transitions, about
# 350 MB from the shapes: 40 chunks would write 40 of them).
CHUNKS = 8


class Phase(NamedTuple):
    name: str
    kind: str  # "preflight", "brax" (the peer harness) or "pgjax" (a reproduce.py row)
    args: tuple[str, ...]  # after the script's path
    min_s: float  # not started with less time than this left


class Plan(NamedTuple):
    seeds: int
    ppo_steps: int  # env steps per seed of every PPO row (and brax's)
    sac_steps: int
    brax_config: str
    brax_args: tuple[str, ...]
    rows: tuple[tuple[str, int, float], ...]  # (reproduce row, steps, least cost s)


# Full: 8 PPO updates of 327,680 steps (Brax's batch shape) and, for SAC, 8,192 random steps
# plus 1,000 iterations of 128 envs (64,000 gradient steps of 512).
FULL = Plan(seeds=3, ppo_steps=8 * 327_680, sac_steps=8_192 + 1_000 * 128, brax_config="configs/ppo_ant_brax.toml",
            brax_args=("--num-evals", "5"),
            rows=(("ant-ppo", 8 * 327_680, 150.0), ("hopper-sac", 8_192 + 1_000 * 128, 100.0),
                  ("halfcheetah-ppo", 8 * 327_680, 150.0)))
# Smoke (CPU): brax's `fast` task for every part, 4 updates of 16 envs x 32 steps.
SMOKE = Plan(seeds=3, ppo_steps=2_048, sac_steps=0, brax_config="configs/ppo_fast_brax.toml",
             brax_args=("--num-evals", "3", "--unroll-length", "8"), rows=(("fast-ppo", 2_048, 5.0),))


def phases(plan: Plan, work: Path, smoke: bool) -> list[Phase]:
    """The run order: brax seed 0, pgjax's first row, brax's other seeds, pgjax's other rows."""
    def brax(seeds: list[int], min_s: float) -> Phase:
        tag = "-".join(map(str, seeds))
        return Phase(f"brax-{'ant' if not smoke else 'fast'}-seeds-{tag}", "brax",
                     (plan.brax_config, f"total_timesteps={plan.ppo_steps}", "--seeds",
                      ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else ""), *plan.brax_args,
                      "--out", str(work / "brax" / f"seeds-{tag}.json"),
                      "--compile-cache", str(work / "brax-compile-cache")), min_s)

    def row(name: str, steps: int, min_s: float) -> Phase:
        return Phase(f"pgjax-{name}", "pgjax", ("brax", "--rows", name, "--seeds", str(plan.seeds), "--steps",
                                                str(steps), "--eval-episodes", "32", "--chunks", str(CHUNKS),
                                                "--runs", str(work / "runs"),
                                                "--results", str(work / "results")), min_s)

    first, *rest = plan.rows
    out = [Phase("preflight", "preflight", ("--preflight",), 5.0), brax([0], 5.0 if smoke else 60.0),
           row(*first)]
    if plan.seeds > 1:
        out.append(brax(list(range(1, plan.seeds)), 5.0 if smoke else 30.0))
    return out + [row(*r) for r in rest]


# --- running one phase ----------------------------------------------------------------------


def _alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies, which a container's init may
    never reap, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while being read
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the whole group ended meanwhile
        pass


def run_phase(cmd: list[str], log, timeout_s: float, env: dict) -> tuple[int | None, str]:
    """Run `cmd` in its own process group until it ends or `timeout_s`; then SIGTERM the group,
    wait GRACE_S, SIGKILL what is left. Returns (exit code or None, "done"/"failed"/"stopped")."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
    try:
        code = proc.wait(timeout=max(1.0, timeout_s))
        # a grandchild (pgjax train under reproduce.py) outliving its parent is ended too
        if _alive(proc.pid):
            _signal(proc.pid, signal.SIGKILL)
        return code, "done" if code == 0 else "failed"
    except subprocess.TimeoutExpired:
        _signal(proc.pid, signal.SIGTERM)
        end = time.time() + GRACE_S
        while time.time() < end and _alive(proc.pid):
            time.sleep(0.5)
        if _alive(proc.pid):
            _signal(proc.pid, signal.SIGKILL)
        return proc.wait(), "stopped"


# --- results --------------------------------------------------------------------------------


def _load_peer():
    spec = importlib.util.spec_from_file_location("brax_ppo_peer", PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def merge_brax(files: list[Path]) -> dict | None:
    """brax's per-phase JSON files as one result: every finished seed, one summary."""
    parts = [json.loads(f.read_text()) for f in files if f.is_file()]
    if not parts:
        return None
    merged = {**parts[0], "per_seed": [s for p in parts for s in p["per_seed"]],
              "seeds": [s for p in parts for s in p["seeds"]],
              "skipped_seeds": [s for p in parts for s in p["skipped_seeds"]]}
    if merged["per_seed"]:
        merged["summary"] = _load_peer()._summary(merged)
    return merged


def _fmt(x, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def side_by_side(records: list[dict], brax: dict | None) -> str:
    """Markdown: pgjax's rows (reproduce.py records) and brax's own PPO, one line each."""
    head = ("| row | library | seeds | env steps/seed | final return, mean [95% CI] (episodes/seed, actions) "
            "| per seed | env steps/s, all seeds, wall (compile, evals incl.) | env steps/s, training only "
            "| wall s |")
    lines = [head, "|" + "---|" * 9]
    for r in records:
        for mode, label in (("greedy", "greedy"), ("stochastic", "sampled")):
            ev = r["eval"][mode]
            lines.append(f"| {r['row']} | pgjax | {len(r['seeds'])} | {r['env_steps_per_seed']:,} | "
                         f"{_fmt(ev['mean'], 1)} [{_fmt(ev['mean_low'], 1)}, {_fmt(ev['mean_high'], 1)}] "
                         f"({ev['episodes_per_seed']}, {label}) | {' '.join(f'{x:.1f}' for x in ev['per_seed'])} | "
                         f"{_fmt(r['env_steps_per_second'])} | - | {_fmt(r['train_wall_seconds'])} |")
    if brax and brax["per_seed"]:
        s, per = brax["summary"], brax["per_seed"]
        ev = s["final_eval_return"]
        steady = [p.get("env_steps_per_s_train") for p in per if p.get("env_steps_per_s_train")]
        mode = "greedy" if brax.get("deterministic_eval") else "sampled"
        lines.append(f"| {brax['env_id'].split('/')[1]}-ppo | brax {brax['brax']} | {len(per)} | "
                     f"{per[0]['env_steps']:,} | {_fmt(ev['mean'], 1)} [{_fmt(ev['mean_low'], 1)}, "
                     f"{_fmt(ev['mean_high'], 1)}] (128, {mode}) | "
                     f"{' '.join(_fmt(p['final_eval_return'], 1) for p in per)} | "
                     f"{_fmt(s['env_steps_per_s_wall_all_seeds'])} | "
                     f"{' '.join(_fmt(x) for x in steady) or '-'} (per seed) | {_fmt(s['wall_s_all_seeds'])} |")
    return "\n".join(lines)


def _pack(work: Path, out: Path) -> Path:
    path = out / "brax_results.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for sub in ("results", "brax"):
            if (work / sub).is_dir():
                tar.add(work / sub, arcname=sub)
        runs = work / "runs"
        if runs.is_dir():
            for f in sorted(runs.rglob("*")):
                if f.is_file() and "checkpoints" not in f.relative_to(runs).parts and f.stat().st_size < 8 << 20:
                    tar.add(f, arcname=str(Path("runs") / f.relative_to(runs)))
    return path


# --- preflight ------------------------------------------------------------------------------


def requirement_problems(dists: list[str], extra_requirements: list[str]) -> list[str]:
    """Each dist's declared requirements (and `extra_requirements`) not met by what is installed."""
    from importlib import metadata

    from packaging.requirements import Requirement

    problems = []
    wanted = [(d, r) for d in dists for r in (metadata.requires(d) or [])] + [("pgjax", r) for r in extra_requirements]
    for owner, text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{owner} needs {req}: not installed")
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f"{owner} needs {req}: {version} installed")
    return problems


def preflight() -> int:
    import tomllib
    from importlib import metadata

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = ["jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint", "numpy", "brax", "mujoco", "mujoco-mjx",
             "gymnax", "flashbax"]
    versions = {}
    for n in names:
        try:
            versions[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            versions[n] = None
    print("preflight: " + ", ".join(f"{n} {v}" for n, v in versions.items()), flush=True)
    installed = [n for n in ("brax", "mujoco", "mujoco-mjx", "gymnax", "flashbax") if versions[n]]
    for problem in requirement_problems(installed, deps):
        print(f"preflight: WARNING {problem}", flush=True)
    import jax

    print(f"preflight: python {sys.version.split()[0]}, devices {jax.devices()}", flush=True)
    missing = [n for n in ("brax", "mujoco", "gymnax", "flashbax") if not versions[n]]
    if missing:
        print(f"preflight: missing {', '.join(missing)}: carry them (scripts/fetch_device_wheels.py)", flush=True)
        return 1
    return 0


# --- main -----------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for summary.md/json, the log and the archive")
    parser.add_argument("--work", type=Path, default=Path("/tmp/device_brax"),
                        help="run folders, records and caches (default /tmp/device_brax; a rerun continues there)")
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("DEVICE_BRAX_SMOKE") == "1",
                        help="brax's fast task at a tiny size, for a CPU (also DEVICE_BRAX_SMOKE=1)")
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("DEVICE_BRAX_MINUTES", "8")),
                        help="everything ends within this many minutes of DEVICE_BRAX_START (default 8)")
    parser.add_argument("--phases", default=os.environ.get("DEVICE_BRAX_PHASES", ""),
                        help="comma-separated phase names to run (default all; names are printed at the start)")
    parser.add_argument("--preflight", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.preflight:
        return preflight()
    if args.out is None:
        parser.error("--out DIR is required")
    start = float(os.environ.get("DEVICE_BRAX_START") or time.time())
    deadline = start + 60.0 * args.minutes
    plan = SMOKE if args.smoke else FULL
    todo = phases(plan, args.work, args.smoke)
    names = [p.name for p in todo]
    chosen = [n for n in args.phases.split(",") if n]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"device_brax: unknown phase(s) {', '.join(unknown)}; phases: {', '.join(names)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for sub in ("brax", "runs", "results"):
        (args.work / sub).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PGJAX_COMPILE_CACHE": str(args.work / "pgjax-compile-cache")}
    print(f"device_brax: {'smoke' if args.smoke else 'full'} plan, {args.minutes:g} min from start, "
          f"{plan.seeds} seeds, PPO {plan.ppo_steps:,} steps/seed, SAC {plan.sac_steps:,}; "
          f"phases: {', '.join(names)}", flush=True)
    timeline = []
    with (args.out / "device_brax.log").open("a") as log:
        for phase in todo:
            left = deadline - RESERVE_S - GRACE_S - time.time()
            entry = {"phase": phase.name, "least_s": phase.min_s}
            if chosen and phase.name not in chosen:
                entry["status"] = "not chosen"
            elif left < phase.min_s:
                entry["status"] = f"skipped: {left:.0f} s left, needs {phase.min_s:.0f}"
            else:
                script = {"preflight": Path(__file__).resolve(), "brax": PEER,
                          "pgjax": ROOT / "scripts" / "reproduce.py"}[phase.kind]
                extra = ["--deadline", f"{deadline - RESERVE_S - GRACE_S:.0f}"] if phase.kind == "brax" else []
                log.write(f"\n=== {phase.name} ({time.strftime('%H:%M:%S')}, {left:.0f} s left)\n")
                log.flush()
                t0 = time.time()
                code, status = run_phase([sys.executable, str(script), *phase.args, *extra], log, left, env)
                entry.update(status=status, exit_code=code, seconds=round(time.time() - t0, 1))
                if phase.kind == "preflight" and code != 0:
                    timeline.append(entry)
                    print(f"device_brax: preflight failed; see {args.out / 'device_brax.log'}", flush=True)
                    break
            timeline.append(entry)
            print(f"device_brax: {phase.name}: {entry['status']}"
                  + (f" in {entry['seconds']} s" if "seconds" in entry else ""), flush=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "brax", "--report", "--results",
                    str(args.work / "results")], cwd=ROOT, env=env, capture_output=True, check=False)
    records = [json.loads(p.read_text()) for p in sorted((args.work / "results" / "brax").glob("*.json"))]
    brax = merge_brax(sorted((args.work / "brax").glob("seeds-*.json")))
    table = side_by_side(records, brax)
    times = "\n".join(f"| {e['phase']} | {e['status']} | {e.get('seconds', '-')} |" for e in timeline)
    md = (f"# Brax rows, {'smoke (CPU, brax/fast)' if args.smoke else 'GPU'} run\n\n{table}\n\n"
          f"| phase | status | s |\n|---|---|---|\n{times}\n\ntotal {time.time() - start:.0f} s\n")
    (args.out / "summary.md").write_text(md)
    (args.out / "summary.json").write_text(json.dumps({"plan": plan._asdict(), "timeline": timeline,
                                                       "pgjax_records": records, "brax": brax}, indent=1) + "\n")
    _pack(args.work, args.out)
    print(md, flush=True)
    return 0 if all(e["status"] in ("done", "not chosen") for e in timeline) else 1


if __name__ == "__main__":
    sys.exit(main())
