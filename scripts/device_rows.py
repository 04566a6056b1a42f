"""Issue 31's GPU rows in one device command per suite: pgjax's rows through
`scripts/reproduce.py` (and, for Brax, brax's own PPO beside them), time-guarded.

Run through `scripts/device_rows.sh SUITE` (it installs the carried wheels first; its header
has the plans, the budgets and what each part costs). Suites: `brax` (brax's ppo.train on Ant
seed 0, pgjax's Ant PPO row, brax's seeds 1 and 2, pgjax's Hopper SAC and HalfCheetah PPO
rows), `xminigrid` (pgjax's DoorKey-8x8 rows, the GRU then the CNN) and `minatar` (pgjax's four
MinAtar CNN rows at their full budget). Each phase is a fresh process, in order; one starts
only if its least cost fits before the deadline, and a running one is stopped at the deadline
(SIGTERM to its process group: `pgjax train` ends its chunk and keeps its checkpoint, brax's
harness has written every finished seed). Whatever finished is then tabled and packed into
OUT: `SUITE_summary.md` (table and phase times), `SUITE_summary.json`, `device_rows.log`
(every child's output) and `SUITE_results.tar.gz` (reproduce.py's records, table, curves and
figure, the run folders without checkpoints, brax's JSON): nothing is written into the
repository's benchmarks/results.

usage: python scripts/device_rows.py SUITE --out DIR [--smoke] [--minutes M] [--phases NAME,...] [--steps N]
       python scripts/device_rows.py --preflight SUITE   # versions, devices, requirements; exits
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
# What each suite's rows need beyond pgjax's own dependencies (preflight).
SUITE_PACKAGES = {"brax": ("brax", "mujoco", "gymnax", "flashbax"), "xminigrid": ("xminigrid",),
                  "minatar": ("gymnax",)}
# Declared requirements deliberately not carried (scripts/fetch_device_wheels.py, OMIT).
NOT_CARRIED = ("imageio-ffmpeg",)
# xminigrid's published training throughput, beside the xminigrid rows' (docs/results.md).
PUBLISHED = {"xminigrid": (
    "xminigrid's recurrent PPO at 2^13 = 8,192 environments (one run), read off the log-scale plot "
    "figures/times_minigrid.jpg that its README showed from 2023-12-01 to 2024-02-15 (commit 9315444 "
    "hid it as outdated): about 1.5M (FourRooms) to 1.8M (Empty-16x16, UnlockPickUp) env steps/s, "
    "DoorKey-16x16 about 1.6M; the README names no hardware (\"millions of steps per second on a single GPU\")")}


class Phase(NamedTuple):
    name: str
    kind: str  # "preflight", "brax" (the peer harness) or "pgjax" (a reproduce.py row)
    args: tuple[str, ...]  # after the script's path
    min_s: float  # not started with less time than this left


class Plan(NamedTuple):
    suite: str  # reproduce.py's suite
    seeds: int
    rows: tuple[tuple[str, int | None, float], ...]  # (reproduce row, steps per seed or None: the config's, least s)
    chunks: int  # reproduce.py --chunks: a checkpoint and a 32-episode greedy evaluation after each
    eval_episodes: int  # final evaluation, per seed and mode (greedy, sampled)
    minutes: float  # the command's default length
    sets: tuple[str, ...] = ()  # reproduce.py --set: smaller shapes for a CPU
    brax_config: str | None = None  # brax's own ppo.train beside the first row (the brax suite)
    brax_args: tuple[str, ...] = ()


# Brax: 8 PPO updates of 327,680 steps (Brax's batch shape) and, for SAC, 8,192 random steps plus
# 1,000 iterations of 128 envs (64,000 gradient steps of 512); 8 chunks of one PPO update each
# (Hopper SAC's checkpoint holds 3 seeds' replay buffers of 2^20 transitions, about 350 MB from
# the shapes: 40 chunks would write 40 of them).
BRAX = Plan(suite="brax", seeds=3, rows=(("ant-ppo", 8 * 327_680, 150.0), ("hopper-sac", 8_192 + 1_000 * 128, 100.0),
                                         ("halfcheetah-ppo", 8 * 327_680, 150.0)),
            chunks=8, eval_episodes=32, minutes=8.0, brax_config="configs/ppo_ant_brax.toml",
            brax_args=("--num-evals", "5"))
# XLand-MiniGrid: xminigrid's single-task shape (8,192 envs x 16 steps = 131,072 steps per update),
# 128 updates (2^24 steps) per seed, 3 seeds in one vmap (24,576 environments), 4 chunks.
# A row's least time is most of its estimated cost (device_rows.sh): one stopped early leaves no record.
XMINIGRID = Plan(suite="xminigrid", seeds=3, rows=(("doorkey8-gru", 2**24, 100.0), ("doorkey8-cnn", 2**24, 90.0)),
                 chunks=4, eval_episodes=32, minutes=5.5)
# MinAtar: the CNN rows at their configs' budget (1e7 steps, 64 envs x 128 steps), 5 seeds.
MINATAR = Plan(suite="minatar", seeds=5, rows=tuple((f"{g}-cnn", None, 60.0) for g in
                                                   ("breakout", "asterix", "freeway", "spaceinvaders")),
               chunks=8, eval_episodes=164, minutes=9.0)
FULL = {"brax": BRAX, "xminigrid": XMINIGRID, "minatar": MINATAR}
# Smoke (CPU): the same paths at a tiny size; for Brax, brax's `fast` task, 4 updates of 16 envs x 32 steps.
SMOKE = {
    "brax": Plan(suite="brax", seeds=3, rows=(("fast-ppo", 2_048, 5.0),), chunks=8, eval_episodes=32, minutes=8.0,
                 brax_config="configs/ppo_fast_brax.toml", brax_args=("--num-evals", "3", "--unroll-length", "8")),
    "xminigrid": XMINIGRID._replace(rows=(("doorkey8-gru", 1_024, 5.0), ("doorkey8-cnn", 1_024, 5.0)), chunks=2,
                                    eval_episodes=4, sets=("num_envs=16", "num_minibatches=4")),
    "minatar": MINATAR._replace(rows=(("breakout-cnn", 1_024, 5.0),), seeds=2, chunks=2, eval_episodes=4,
                                sets=("num_envs=8", "num_steps=32", "num_minibatches=2")),
}


def phases(plan: Plan, work: Path, smoke: bool, steps: int | None = None) -> list[Phase]:
    """The run order: preflight, then the rows; for Brax, brax's seed 0, pgjax's first row,
    brax's other seeds, pgjax's other rows. `steps` replaces every row's budget."""
    def brax(seeds: list[int], min_s: float) -> Phase:
        tag = "-".join(map(str, seeds))
        return Phase(f"brax-{'ant' if not smoke else 'fast'}-seeds-{tag}", "brax",
                     (plan.brax_config, f"total_timesteps={steps or plan.rows[0][1]}", "--seeds",
                      ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else ""), *plan.brax_args,
                      "--out", str(work / "brax" / f"seeds-{tag}.json"),
                      "--compile-cache", str(work / "brax-compile-cache")), min_s)

    def row(name: str, row_steps: int | None, min_s: float) -> Phase:
        budget = steps or row_steps
        return Phase(f"pgjax-{name}", "pgjax", (plan.suite, "--rows", name, "--seeds", str(plan.seeds),
                                                *(("--steps", str(budget)) if budget else ()),
                                                "--eval-episodes", str(plan.eval_episodes),
                                                "--chunks", str(plan.chunks), *(("--set", *plan.sets) if plan.sets else ()),
                                                "--runs", str(work / "runs"), "--results", str(work / "results")),
                     min_s)

    out = [Phase("preflight", "preflight", ("--preflight", plan.suite), 5.0)]
    rows = [row(*r) for r in plan.rows]
    if plan.brax_config is None:
        return out + rows
    first, *rest = rows
    out += [brax([0], 5.0 if smoke else 60.0), first]
    if plan.seeds > 1:
        out.append(brax(list(range(1, plan.seeds)), 5.0 if smoke else 30.0))
    return out + rest


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


def training_rate(summary: dict, seeds: int) -> float | None:
    """Env steps/s of all seeds with the training program's compile and the evaluations during
    training taken out of the run's wall time (summary.json's fields; None where one is absent)."""
    if "compile_seconds" not in summary:
        return None
    seconds = summary["wall_seconds"] - summary["compile_seconds"] - summary.get("eval_seconds_during_training", 0.0)
    return summary["env_steps_per_seed"] * seeds / seconds if seconds > 0 else None


def run_summaries(runs: Path, suite: str) -> dict[str, dict]:
    """{row: its run folder's summary.json} for the suite's finished runs under `runs`."""
    found = {}
    for path in sorted((runs / suite).glob("*/*/summary.json")):
        found[path.parent.parent.name] = json.loads(path.read_text())
    return found


def _fmt(x, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def side_by_side(records: list[dict], brax: dict | None, summaries: dict[str, dict] | None = None) -> str:
    """Markdown: pgjax's rows (reproduce.py records) and brax's own PPO, one line each."""
    summaries = summaries or {}
    head = ("| row | library | seeds | env steps/seed | final return, mean [95% CI] (episodes/seed, actions) "
            "| per seed | env steps/s, all seeds, wall (compile, evals incl.) | env steps/s, training only "
            "| wall s |")
    lines = [head, "|" + "---|" * 9]
    for r in records:
        summary = summaries.get(r["row"])
        steady = training_rate(summary, len(r["seeds"])) if summary else None
        for mode, label in (("greedy", "greedy"), ("stochastic", "sampled")):
            ev = r["eval"][mode]
            d = 2 if max(map(abs, ev["per_seed"]), default=0.0) < 10 else 1  # XLand's returns lie in [0, 1]
            lines.append(f"| {r['row']} | pgjax | {len(r['seeds'])} | {r['env_steps_per_seed']:,} | "
                         f"{_fmt(ev['mean'], d)} [{_fmt(ev['mean_low'], d)}, {_fmt(ev['mean_high'], d)}] "
                         f"({ev['episodes_per_seed']}, {label}) | {' '.join(_fmt(x, d) for x in ev['per_seed'])} | "
                         f"{_fmt(r['env_steps_per_second'])} | {_fmt(steady)} | {_fmt(r['train_wall_seconds'])} |")
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


def _pack(work: Path, out: Path, suite: str) -> Path:
    path = out / f"{suite}_results.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        results = work / "results"
        for f in [results / suite, *sorted(results.glob(f"{suite}.*"))] + ([work / "brax"] if suite == "brax" else []):
            if f.exists():
                tar.add(f, arcname=str(f.relative_to(work)))
        runs = work / "runs" / suite
        if runs.is_dir():
            for f in sorted(runs.rglob("*")):
                if f.is_file() and "checkpoints" not in f.relative_to(runs).parts and f.stat().st_size < 8 << 20:
                    tar.add(f, arcname=str(f.relative_to(work)))
    return path


# --- preflight ------------------------------------------------------------------------------


def requirement_problems(dists: list[str], extra_requirements: list[str], ignore=()) -> list[str]:
    """Each dist's declared requirements (and `extra_requirements`) not met by what is installed,
    less those on distributions named in `ignore`."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    skip = {canonicalize_name(n) for n in ignore}
    problems = []
    wanted = [(d, r) for d in dists for r in (metadata.requires(d) or [])] + [("pgjax", r) for r in extra_requirements]
    for owner, text in wanted:
        req = Requirement(text)
        if (req.marker is not None and not req.marker.evaluate({"extra": ""})) or canonicalize_name(req.name) in skip:
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{owner} needs {req}: not installed")
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f"{owner} needs {req}: {version} installed")
    return problems


def preflight(suite: str) -> int:
    import tomllib
    from importlib import metadata

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = ["jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint", "numpy", "brax", "mujoco", "mujoco-mjx",
             "gymnax", "flashbax", "xminigrid"]
    versions = {}
    for n in names:
        try:
            versions[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            versions[n] = None
    print("preflight: " + ", ".join(f"{n} {v}" for n, v in versions.items()), flush=True)
    installed = [n for n in ("brax", "mujoco", "mujoco-mjx", "gymnax", "flashbax", "xminigrid") if versions[n]]
    for problem in requirement_problems(installed, deps, ignore=NOT_CARRIED):
        print(f"preflight: WARNING {problem}", flush=True)
    import jax

    print(f"preflight: python {sys.version.split()[0]}, devices {jax.devices()}", flush=True)
    missing = [n for n in SUITE_PACKAGES[suite] if not versions[n]]
    if missing:
        print(f"preflight: missing {', '.join(missing)}: carry them (scripts/fetch_device_wheels.py)", flush=True)
        return 1
    return 0


# --- main -----------------------------------------------------------------------------------


def _positive(kind, variable: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"(or {variable}) must be a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def main(argv=None) -> int:
    env_ = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=sorted(FULL), help="which rows")
    parser.add_argument("--out", type=Path, help="folder for the summary, the log and the archive")
    parser.add_argument("--work", type=Path, default=Path("/tmp/device_rows"),
                        help="run folders, records and caches (default /tmp/device_rows; a rerun continues there)")
    parser.add_argument("--smoke", action="store_true", default=env_("DEVICE_ROWS_SMOKE") == "1",
                        help="the same path at a tiny size, for a CPU (also DEVICE_ROWS_SMOKE=1)")
    parser.add_argument("--minutes", type=_positive(float, "DEVICE_ROWS_MINUTES"), default=env_("DEVICE_ROWS_MINUTES") or None,
                        help="everything ends within this many minutes of DEVICE_ROWS_START "
                        f"(default: {', '.join(f'{k} {p.minutes:g}' for k, p in FULL.items())})")
    parser.add_argument("--phases", default=env_("DEVICE_ROWS_PHASES", ""),
                        help="comma-separated phase names to run (default all; names are printed at the start)")
    parser.add_argument("--steps", type=_positive(int, "DEVICE_ROWS_STEPS"), default=env_("DEVICE_ROWS_STEPS") or None,
                        help="env steps per seed of every row, instead of the plan's (also DEVICE_ROWS_STEPS)")
    parser.add_argument("--preflight", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.preflight:
        return preflight(args.suite)
    if args.out is None:
        parser.error("--out DIR is required")
    plan = (SMOKE if args.smoke else FULL)[args.suite]
    minutes = args.minutes or plan.minutes
    start = float(env_("DEVICE_ROWS_START") or time.time())
    deadline = start + 60.0 * minutes
    todo = phases(plan, args.work, args.smoke, args.steps)
    names = [p.name for p in todo]
    chosen = [n for n in args.phases.split(",") if n]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"device_rows: unknown phase(s) {', '.join(unknown)} for {args.suite}; phases: {', '.join(names)}",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for sub in ("brax", "runs", "results"):
        (args.work / sub).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PGJAX_COMPILE_CACHE": str(args.work / "pgjax-compile-cache")}
    budgets = ", ".join(f"{name} {_fmt(args.steps or steps)}" for name, steps, _ in plan.rows)
    print(f"device_rows: {args.suite}, {'smoke' if args.smoke else 'full'} plan, {minutes:g} min from start, "
          f"{plan.seeds} seeds, env steps per seed: {budgets} ('-': the config's); phases: {', '.join(names)}",
          flush=True)
    timeline = []
    with (args.out / "device_rows.log").open("a") as log:
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
                log.write(f"\n=== {args.suite}: {phase.name} ({time.strftime('%H:%M:%S')}, {left:.0f} s left)\n")
                log.flush()
                t0 = time.time()
                code, status = run_phase([sys.executable, str(script), *phase.args, *extra], log, left, env)
                entry.update(status=status, exit_code=code, seconds=round(time.time() - t0, 1))
                if phase.kind == "preflight" and code != 0:
                    timeline.append(entry)
                    print(f"device_rows: preflight failed; see {args.out / 'device_rows.log'}", flush=True)
                    break
            timeline.append(entry)
            print(f"device_rows: {phase.name}: {entry['status']}"
                  + (f" in {entry['seconds']} s" if "seconds" in entry else ""), flush=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), args.suite, "--report", "--results",
                    str(args.work / "results")], cwd=ROOT, env=env, capture_output=True, check=False)
    order = {name: i for i, (name, _, _) in enumerate(plan.rows)}
    records = sorted((json.loads(p.read_text()) for p in (args.work / "results" / args.suite).glob("*.json")),
                     key=lambda r: (order.get(r["row"], len(order)), r["row"]))
    summaries = run_summaries(args.work / "runs", args.suite)
    brax = merge_brax(sorted((args.work / "brax").glob("seeds-*.json"))) if args.suite == "brax" else None
    table = side_by_side(records, brax, summaries)
    published = f"\nPublished: {PUBLISHED[args.suite]}.\n" if args.suite in PUBLISHED else ""
    times = "\n".join(f"| {e['phase']} | {e['status']} | {e.get('seconds', '-')} |" for e in timeline)
    where = "smoke (CPU)" if args.smoke else "GPU"
    md = (f"# {args.suite} rows, {where} run\n\n{table}\n{published}\n"
          f"| phase | status | s |\n|---|---|---|\n{times}\n\ntotal {time.time() - start:.0f} s\n")
    (args.out / f"{args.suite}_summary.md").write_text(md)
    (args.out / f"{args.suite}_summary.json").write_text(json.dumps(
        {"plan": plan._asdict(), "minutes": minutes, "steps_override": args.steps, "timeline": timeline,
         "pgjax_records": records, "run_summaries": summaries, "brax": brax}, indent=1) + "\n")
    _pack(args.work, args.out, args.suite)
    print(md, flush=True)
    return 0 if all(e["status"] in ("done", "not chosen") for e in timeline) else 1


if __name__ == "__main__":
    sys.exit(main())
