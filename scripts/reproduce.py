"""Reproduce published results, one command per table: MinAtar, Brax, XLand-MiniGrid.

Not a test: it trains (plain `pgjax train` runs, resumable), evaluates every seed's final
policy greedily and with sampled actions (`pgjax eval`), and writes the table (Markdown and
CSV) and the learning curves (IQM with a 95% bootstrap band, the anchor as a line) into
`benchmarks/results/`.

usage (repository root, in the venv):

    python scripts/reproduce.py minatar                               # 4 games x (MLP, CNN) x 5 seeds, 1e7 steps
    python scripts/reproduce.py minatar --rows breakout-mlp --seeds 2 --steps 262144
    python scripts/reproduce.py brax --steps 5e6 --seeds 3            # GPU: ant/halfcheetah PPO, hopper SAC
    python scripts/reproduce.py xminigrid
    python scripts/reproduce.py minatar --report                      # redraw from the stored row records

Each row (a config, a seed count, a budget) trains in `RUNS/<suite>/<row>/` (default
`runs/reproduce`). Run the same command again after a stop and every unfinished row resumes
from its last checkpoint (`pgjax train --resume`), bit for bit. A finished row is kept as a
small record, `benchmarks/results/<suite>/<row>.json` (per-seed final returns in both
evaluation modes, their mean and IQM with bootstrap CIs, env steps/s, wall time, host, date,
commit) and `<row>_curve.csv` (the greedy evaluations during training), so the tables and
figures can be redrawn on a machine without the run folders. A row whose record exists is
not trained again (delete the record to redo it). With `--seeds-per-run K` a row's seeds train
in runs of K, each kept as small files under `benchmarks/results/<suite>/parts/<row>/` when it
finishes, so that a row longer than a stretch of machine time is built across stops and
machines, part by part; the record merges the parts.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RECORD_VERSION = 1


class Row(NamedTuple):
    name: str  # e.g. breakout-mlp
    task: str  # the panel it is drawn in, e.g. Breakout
    variant: str  # the line within the panel, e.g. MLP
    config: str  # path relative to the repository root
    anchor: float | None  # the published number this row is compared with
    anchor_source: str
    peer: str | None = None  # trained by a peer library's harness (benchmarks/peers/), not by pgjax
    overrides: tuple[str, ...] = ()  # KEY=VALUE settings on top of `config` (a one-change experiment)
    extra: tuple[str, ...] = ()  # this invocation's --set KEY=VALUE settings, after `overrides`


MINATAR_ANCHOR = ("gymnax README (gymnax-blines PPO, flattened 2x256 MLP, 1e7 steps, one seed, "
                  "sampled actions, 164 episodes)")
MINATAR_GAMES = {"asterix": ("Asterix", 15.0), "breakout": ("Breakout", 28.0),
                 "freeway": ("Freeway", 58.0), "spaceinvaders": ("SpaceInvaders", 131.0)}
BRAX_NOTEBOOK = "brax notebooks/training.ipynb stored output"


def _minatar_rows() -> list[Row]:
    rows = []
    for game, (title, anchor) in MINATAR_GAMES.items():
        rows.append(Row(f"{game}-mlp", title, "MLP", f"configs/ppo_{game}_minatar.toml", anchor, MINATAR_ANCHOR))
        rows.append(Row(f"{game}-cnn", title, "CNN", f"configs/ppo_{game}_minatar_cnn.toml", anchor,
                        MINATAR_ANCHOR + "; the anchor is the MLP's"))
    # One change from the MLP rows: pgjax's default initialisation (orthogonal kernels, 0.01 on
    # the policy output, zero biases) instead of the anchor's (the configs' init = "lecun").
    for game, (title, anchor) in MINATAR_GAMES.items():
        rows.append(Row(f"{game}-mlp-orthogonal", title, "MLP, orthogonal init", f"configs/ppo_{game}_minatar.toml",
                        anchor, MINATAR_ANCHOR, overrides=("init=orthogonal", "bias_init_max=0.0")))
    # One change from the CNN rows: pgjax's default initialisation. Breakout's was the CNN row
    # while the CNN configs had no init line (its run folder moved here, half-trained).
    for game, (title, anchor) in MINATAR_GAMES.items():
        rows.append(Row(f"{game}-cnn-orthogonal", title, "CNN, orthogonal init", f"configs/ppo_{game}_minatar_cnn.toml",
                        anchor, MINATAR_ANCHOR + "; the anchor is the MLP's",
                        overrides=("init=orthogonal", "bias_init_max=0.0")))
    # One change from the MLP and CNN rows: the time limit folded into termination, as the
    # anchor's gymnax 0.0.x `done` does (pgjax bootstraps a timed-out step from V(final
    # observation)). It matters where episodes reach the limit: Freeway's always do, and most
    # of the Asterix CNN's.
    for game, (title, anchor) in MINATAR_GAMES.items():
        rows.append(Row(f"{game}-mlp-terminate", title, "MLP, time limit as termination",
                        f"configs/ppo_{game}_minatar.toml", anchor, MINATAR_ANCHOR, overrides=("time_limit=terminate",)))
        rows.append(Row(f"{game}-cnn-terminate", title, "CNN, time limit as termination",
                        f"configs/ppo_{game}_minatar_cnn.toml", anchor, MINATAR_ANCHOR + "; the anchor is the MLP's",
                        overrides=("time_limit=terminate",)))
    # The same work in pgjax and in purejaxrl: purejaxrl's MinAtar settings (64x64 MLP, lr 5e-3).
    rows.append(Row("breakout-pjx", "Breakout", "pgjax, purejaxrl's settings",
                    "configs/ppo_breakout_minatar_purejaxrl.toml", 28.0, MINATAR_ANCHOR))
    rows.append(Row("breakout-purejaxrl", "Breakout", "purejaxrl", "examples/brax_minatar.ipynb (purejaxrl)", 28.0,
                    MINATAR_ANCHOR, peer="purejaxrl"))
    return rows


SUITES: dict[str, dict] = {
    "minatar": {"rows": _minatar_rows(), "default_rows": [f"{g}-{n}" for n in ("mlp", "cnn") for g in MINATAR_GAMES]
                + ["breakout-pjx", "breakout-purejaxrl"], "seeds": 5, "steps": None, "eval_episodes": 164,
                "title": "PPO on MinAtar (gymnax)"},
    "brax": {"rows": [
        Row("ant-ppo", "ant", "PPO", "configs/ppo_ant_brax.toml", None, BRAX_NOTEBOOK),
        Row("halfcheetah-ppo", "halfcheetah", "PPO", "configs/ppo_halfcheetah_brax.toml", None, BRAX_NOTEBOOK),
        Row("hopper-sac", "hopper", "SAC", "configs/sac_hopper_brax.toml", None, BRAX_NOTEBOOK),
        Row("fast-ppo", "fast", "PPO", "configs/ppo_fast_brax.toml", None, "none: brax's test environment"),
    ], "default_rows": ["ant-ppo", "halfcheetah-ppo", "hopper-sac"], "seeds": 3, "steps": None,
        "eval_episodes": 16, "title": "Brax"},
    "xminigrid": {"rows": [
        Row("doorkey8-gru", "MiniGrid-DoorKey-8x8", "GRU", "configs/ppo_doorkey8x8_xminigrid_gru.toml", None,
            "xminigrid README (recurrent PPO)"),
        Row("doorkey8-cnn", "MiniGrid-DoorKey-8x8", "CNN", "configs/ppo_doorkey8x8_xminigrid.toml", None,
            "xminigrid README (recurrent PPO)"),
        Row("empty5-cnn", "MiniGrid-Empty-5x5", "CNN", "configs/ppo_empty5x5_xminigrid.toml", None, "none"),
    ], "default_rows": ["doorkey8-gru", "doorkey8-cnn"], "seeds": 5, "steps": None, "eval_episodes": 64,
        "title": "PPO on XLand-MiniGrid"},
}


class ReproduceError(RuntimeError):
    """A row could not be trained or evaluated; the message says which and why."""


# --- running one row ------------------------------------------------------------------------


def _pgjax(args: list[str], log: Path) -> int:
    """Run `python -m pgjax ARGS`, appending its output to `log`; returns the exit code."""
    with log.open("a") as f:
        f.write(f"\n$ pgjax {' '.join(args)}   # {_now()}\n")
        f.flush()
        return subprocess.call([sys.executable, "-m", "pgjax", *args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _run_folder(row_dir: Path) -> Path | None:
    found = sorted(p for p in row_dir.iterdir() if p.is_dir() and (p / "config.json").is_file()) if row_dir.is_dir() else []
    if len(found) > 1:
        raise ReproduceError(f"{row_dir}: {len(found)} run folders ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def _updates_done(run_dir: Path) -> int:
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return 0
    with metrics.open() as f:
        return max((int(r["update"]) for r in csv.DictReader(f) if r.get("update", "").isdigit()), default=0)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _train(row: Row, row_dir: Path, seeds: list[int], steps: int | None, host_devices: int | None,
           chunks: int = 40) -> Path:
    """Train (or resume) the row's run until its summary.json exists; returns the run folder."""
    row_dir.mkdir(parents=True, exist_ok=True)
    progress_file = row_dir / "progress.json"
    progress = json.loads(progress_file.read_text()) if progress_file.is_file() else {"invocations": []}
    run_dir = _run_folder(row_dir)
    if run_dir is not None and (run_dir / "summary.json").is_file():
        return run_dir
    extra = ["--no-progress"] + ([f"--host-devices={host_devices}"] if host_devices else [])
    if run_dir is None:
        args = ["train", "--config", str(ROOT / row.config), "--seeds", _seed_spec(seeds), "--out", str(row_dir),
                "--chunks", str(chunks), "--eval-episodes", "32", *extra, *row.overrides, *row.extra]
        if steps is not None:
            args.append(f"total_timesteps={steps}")
    else:
        _check_matches(run_dir, seeds, steps)
        args = ["train", "--resume", str(run_dir), *extra]
    before = _updates_done(run_dir) if run_dir is not None else 0
    load, start = _load_average(), time.time()
    code = _pgjax(args, row_dir / "train.log")
    seconds = time.time() - start
    run_dir = _run_folder(row_dir)
    if run_dir is not None:
        progress["invocations"].append({"date": _now(), "seconds": round(seconds, 1), "updates_from": before,
                                        "updates_to": _updates_done(run_dir), "exit_code": code,
                                        "load_average_1min_at_start": load, "load_average_1min_at_end": _load_average()})
        progress_file.write_text(json.dumps(progress, indent=1))
    if code != 0:
        raise ReproduceError(f"row {row.name}: pgjax train exited with {code}; see {row_dir / 'train.log'}"
                             + ("; run the same command again to resume" if code in (130, 143) else ""))
    if run_dir is None or not (run_dir / "summary.json").is_file():
        raise ReproduceError(f"row {row.name}: pgjax train ended without a summary.json; see {row_dir / 'train.log'}")
    return run_dir


def _seed_spec(seeds: list[int]) -> str:
    """`pgjax train --seeds` for consecutive ids: a count from 0, else a range LO:HI."""
    return str(len(seeds)) if seeds[0] == 0 else f"{seeds[0]}:{seeds[-1] + 1}"


def _seed_parts(seeds: int, per_run: int | None) -> list[list[int]]:
    """Seeds 0..seeds-1 in consecutive runs of at most `per_run` (one run when None)."""
    per_run = per_run or seeds
    return [list(range(lo, min(lo + per_run, seeds))) for lo in range(0, seeds, per_run)]


def _check_matches(run_dir: Path, seeds: list[int], steps: int | None) -> None:
    saved = json.loads((run_dir / "config.json").read_text())
    problems = []
    if saved["seeds"] != seeds:
        problems.append(f"seeds {saved['seeds']}, not {seeds}")
    if steps is not None and saved["config"]["total_timesteps"] != steps:
        problems.append(f"total_timesteps={saved['config']['total_timesteps']}, not {steps}")
    if problems:
        raise ReproduceError(f"{run_dir} was started with {' and '.join(problems)}: pass the same --seeds/--steps "
                             f"to resume it, or move the folder away to start over")


def _evaluate(row: Row, run_dir: Path, episodes: int, mode: str) -> dict:
    out = run_dir / f"reproduce_eval_{mode}.json"
    if out.is_file():
        result = json.loads(out.read_text())
        if result["episodes_per_seed"] == episodes:
            return result
    args = ["eval", str(run_dir), "--episodes", str(episodes), "--out", str(out)]
    if mode == "stochastic":
        args.append("--stochastic")
    code = _pgjax(args, run_dir.parent / "train.log")
    if code != 0 or not out.is_file():
        raise ReproduceError(f"row {row.name}: pgjax eval ({mode}) exited with {code}; see {run_dir.parent / 'train.log'}")
    return json.loads(out.read_text())


def _host() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count()}
    try:
        import jax

        devices = jax.devices()
        info["backend"] = devices[0].platform
        info["device"] = devices[0].device_kind
    except (ImportError, RuntimeError) as exc:  # the record is still useful without the device's name
        info["device"] = f"unknown ({type(exc).__name__})"
    return info


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _record(row: Row, run_dirs: list[Path], evals: dict[str, dict]) -> dict:
    """The row's record from its runs (one, or one per part of its seeds) and their evaluations."""
    from pgjax.reports import statistics as st

    saved = [json.loads((d / "config.json").read_text()) for d in run_dirs]
    summaries = [json.loads((d / "summary.json").read_text()) for d in run_dirs]
    seeds = [s for c in saved for s in c["seeds"]]
    # pgjax's own totals over every start: progress.json misses an invocation whose process
    # was killed (a session's end), which pgjax's checkpoints still count
    seconds = sum(m["wall_seconds"] for m in summaries)
    steps_per_seed = summaries[0]["env_steps_per_seed"]
    if any(m["env_steps_per_seed"] != steps_per_seed for m in summaries):
        raise ReproduceError(f"row {row.name}: its runs trained different budgets "
                             f"({', '.join(str(m['env_steps_per_seed']) for m in summaries)} env steps per seed)")
    loads = []
    for d in run_dirs:  # progress.json is absent where a plain `pgjax train` trained into the row folder
        progress_file = d.parent / "progress.json"
        if progress_file.is_file():
            loads += [i.get("load_average_1min_at_start") for i in json.loads(progress_file.read_text())["invocations"]]
    layout = {key: [m.get(key) for m in summaries] for key in ("host_devices", "vmap_width")}
    record = {
        "record_version": RECORD_VERSION, "row": row.name, "task": row.task, "variant": row.variant,
        "config": row.config, "overrides": [*row.overrides, *row.extra], "algo": saved[0]["algo"],
        "env_id": saved[0]["config"]["env_id"], "seeds": seeds,
        "root_seed": saved[0]["root_seed"], "env_steps_per_seed": steps_per_seed,
        "anchor": row.anchor, "anchor_source": row.anchor_source,
        "train_wall_seconds": round(seconds, 1),
        # all seeds together over pgjax's wall clock, summed over the runs (compile and evaluations included)
        "env_steps_per_second": round(steps_per_seed * len(seeds) / seconds, 1) if seconds > 0 else None,
        **{key: values[0] if len(set(values)) == 1 else values for key, values in layout.items()},
        "load_average_1min": loads,
        "final_train_return": {k: v for m in summaries for k, v in m["final_train_return"].items()},
        "diverged_at_update": {k: v for m in summaries for k, v in m["diverged_at_update"].items()},
        "date": _now(), "commit": _commit(), "host": _host(), "versions": saved[0].get("versions"),
        "command": f"python scripts/reproduce.py {_suite_of(row)} --rows {row.name} --seeds {len(seeds)}"
                   + (f" --seeds-per-run {len(saved[0]['seeds'])}" if len(run_dirs) > 1 else "")
                   + (f" --set {' '.join(row.extra)}" if row.extra else ""),
        "eval": {},
    }
    if len(run_dirs) > 1:
        record["runs"] = [{"seeds": c["seeds"], "wall_seconds": m["wall_seconds"], "host_devices": m.get("host_devices"),
                           "vmap_width": m.get("vmap_width")} for c, m in zip(saved, summaries)]
    for mode, result in evals.items():
        seeds = [result["per_seed"][str(s)] for s in result["seeds"]]
        per_seed = [s["mean_return"] for s in seeds]
        record["eval"][mode] = {"episodes_per_seed": result["episodes_per_seed"], "eval_seed": result["eval_seed"],
                                "max_episode_steps": result["max_episode_steps"], "per_seed": per_seed,
                                "mean_length_per_seed": [s["mean_length"] for s in seeds],
                                "truncated_fraction_per_seed": [s["truncated_fraction"] for s in seeds],
                                **st.summarize(per_seed)}
    return record


def _suite_of(row: Row) -> str:
    return next(name for name, suite in SUITES.items() if any(r.name == row.name for r in suite["rows"]))


def _write_curve(run_dirs: list[Path], path: Path) -> None:
    """The greedy evaluations during training, seed by seed: env_steps, seed, return."""
    rows = []
    for eval_file in (d / "eval.csv" for d in run_dirs):
        if eval_file.is_file():
            with eval_file.open() as f:
                rows += [(int(float(r["env_steps"])), int(r["seed"]), float(r["eval_return"]))
                         for r in csv.DictReader(f)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["env_steps", "seed", "eval_return"])
        writer.writerows(sorted(rows))


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def _run_peer(row: Row, args, results: Path) -> dict:
    """Train the peer's own code in the peers' environment and record it like a pgjax row."""
    from pgjax.reports import statistics as st

    if not args.purejaxrl_notebook or not Path(args.purejaxrl_notebook).is_file():
        raise ReproduceError(f"row {row.name}: --purejaxrl-notebook must name examples/brax_minatar.ipynb of a "
                             f"purejaxrl snapshot (got {args.purejaxrl_notebook!r})")
    python = args.peer_python or subprocess.run(["bash", str(ROOT.parent / "shared" / "peers" / "setup.sh")],
                                                capture_output=True, text=True, check=True).stdout.strip()
    episodes = args.eval_episodes or SUITES["minatar"]["eval_episodes"]
    steps = args.steps or 10_000_000
    log = Path(args.runs) / "minatar" / row.name / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env_id = f"{row.task}-MinAtar"
    start, load = time.time(), _load_average()
    proc = subprocess.run([python, str(ROOT / "benchmarks" / "peers" / "purejaxrl_minatar.py"), args.purejaxrl_notebook,
                           env_id, str(args.seeds), str(steps), str(episodes)], capture_output=True, text=True, check=False)
    with log.open("a") as f:
        f.write(proc.stderr)
    if proc.returncode != 0:
        raise ReproduceError(f"row {row.name}: the purejaxrl harness exited with {proc.returncode}; see {log}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds = time.time() - start
    return {
        "record_version": RECORD_VERSION, "row": row.name, "task": row.task, "variant": row.variant,
        "config": row.config, "algo": "ppo (purejaxrl)", "env_id": env_id, "seeds": list(range(args.seeds)),
        "root_seed": 0, "env_steps_per_seed": out["env_steps_per_seed"], "anchor": row.anchor,
        "anchor_source": row.anchor_source, "train_wall_seconds": round(out["compile_s"] + out["train_s"], 1),
        "env_steps_per_second": out["env_steps_per_s"], "process_seconds": round(seconds, 1),
        "load_average_1min": [load], "final_train_return": dict(enumerate(out["final_train_return"])),
        "peer_config": out["config"], "date": _now(), "commit": _commit(), "host": _host(),
        "versions": {"jax": out["jax"]},
        "command": f"python scripts/reproduce.py minatar --rows {row.name} --seeds {args.seeds} "
                   "--purejaxrl-notebook PATH",
        "curve_note": "purejaxrl evaluates nothing during training: no curve",
        "eval": {mode: {"episodes_per_seed": episodes, "eval_seed": 10000, "per_seed": values,
                        **st.summarize(values)} for mode, values in out["eval"].items()},
    }


def _part(row: Row, seeds: list[int], row_dir: Path, results: Path, steps: int | None, episodes: int, args) -> Path:
    """One part of a row's seeds: trained and evaluated in `RUNS/.../<row>/seeds-LO-HI/`, then its small
    files (config, summary, evaluations, curve, progress) kept under `results/parts/<row>/seeds-LO-HI/`,
    which is committed, so that a finished part is not trained again on a machine without the runs."""
    name = f"seeds-{seeds[0]}-{seeds[-1]}"
    kept = results / "parts" / row.name / name
    found = _run_folder(kept)
    if found is not None:
        _check_matches(found, seeds, steps)
        for mode in ("greedy", "stochastic"):
            done = json.loads((found / f"reproduce_eval_{mode}.json").read_text())["episodes_per_seed"]
            if done != episodes:
                raise ReproduceError(f"{kept} was evaluated on {done} episodes per seed, not {episodes}: pass "
                                     f"--eval-episodes {done}, or move it away to train the part again")
        return found
    part_dir = row_dir / name
    print(f"reproduce: {row.name}: training seeds {seeds[0]}..{seeds[-1]} ({row.config}) -> {part_dir}",
          file=sys.stderr, flush=True)
    run_dir = _train(row, part_dir, seeds, steps, args.host_devices, args.chunks)
    for mode in ("greedy", "stochastic"):
        _evaluate(row, run_dir, episodes, mode)
    staging = kept.with_name(name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / run_dir.name).mkdir(parents=True)
    for file in ("config.json", "summary.json", "eval.csv", "reproduce_eval_greedy.json", "reproduce_eval_stochastic.json"):
        if (run_dir / file).is_file():
            shutil.copy2(run_dir / file, staging / run_dir.name / file)
    if (part_dir / "progress.json").is_file():
        shutil.copy2(part_dir / "progress.json", staging / "progress.json")
    staging.replace(kept)  # all of a part's files or none
    print(f"reproduce: {row.name}: seeds {seeds[0]}..{seeds[-1]} done, kept in {kept} (commit it)",
          file=sys.stderr, flush=True)
    return kept / run_dir.name


def _merge_evals(results: list[dict]) -> dict:
    """One evaluation result over the seeds of several runs evaluated alike."""
    merged = {**results[0], "seeds": [s for r in results for s in r["seeds"]],
              "per_seed": {k: v for r in results for k, v in r["per_seed"].items()}}
    for key in ("episodes_per_seed", "eval_seed", "max_episode_steps"):
        if any(r.get(key) != merged.get(key) for r in results):
            raise ReproduceError(f"the runs of one row were evaluated with different {key}")
    return merged


def run_row(row: Row, suite: dict, args, results: Path) -> dict:
    record_path = results / f"{row.name}.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    if row.peer is not None:
        print(f"reproduce: {row.name}: training {row.peer}'s own code ({args.seeds} seeds)", file=sys.stderr, flush=True)
        record = _run_peer(row, args, results)
        (results / f"{row.name}_curve.csv").write_text("env_steps,seed,eval_return\n")
        _write_json_atomic(record_path, record)
        return record
    row_dir = Path(args.runs) / _suite_of(row) / row.name
    steps = args.steps if args.steps is not None else suite["steps"]
    episodes = args.eval_episodes or suite["eval_episodes"]
    parts = _seed_parts(args.seeds, args.seeds_per_run)
    run_dirs, part_evals = [], []
    for seeds in parts:
        if len(parts) == 1:
            print(f"reproduce: {row.name}: training ({row.config}, {args.seeds} seeds) -> {row_dir}", file=sys.stderr,
                  flush=True)
            run_dir = _train(row, row_dir, seeds, steps, args.host_devices, args.chunks)
        else:
            run_dir = _part(row, seeds, row_dir, results, steps, episodes, args)
        run_dirs.append(run_dir)
        part_evals.append({mode: _evaluate(row, run_dir, episodes, mode) for mode in ("greedy", "stochastic")})
    evals = {mode: _merge_evals([e[mode] for e in part_evals]) for mode in ("greedy", "stochastic")}
    record = _record(row, run_dirs, evals)
    _write_curve(run_dirs, results / f"{row.name}_curve.csv")
    _write_json_atomic(record_path, record)
    print(f"reproduce: {row.name}: done, {record_path}", file=sys.stderr, flush=True)
    return record


def compare_rows(row: dict, other: dict) -> str:
    """Per evaluation mode: each row's mean and IQM over seeds, and the two-sided exact
    permutation test of the difference in means (pgjax.reports.statistics.permutation_test)."""
    from pgjax.reports import statistics as st

    lines = []
    for mode in ("stochastic", "greedy"):
        a, b = row["eval"][mode]["per_seed"], other["eval"][mode]["per_seed"]
        test = st.permutation_test(a, b)
        lines.append(f"{'sampled' if mode == 'stochastic' else mode}: {row['row']} mean {np.mean(a):.2f} "
                     f"IQM {st.iqm(np.asarray(a)):.2f} ({len(a)} seeds), {other['row']} mean {np.mean(b):.2f} "
                     f"IQM {st.iqm(np.asarray(b)):.2f} ({len(b)} seeds); difference in means {test.difference:+.2f}, "
                     f"two-sided permutation test p = {test.p_value:.3f} over "
                     f"{'all' if test.exact else 'a sample of'} {test.splits} splits")
    return "\n".join(lines)


# --- the table and the figure ---------------------------------------------------------------


def _fmt_ci(ev: dict, stat: str) -> str:
    if ev.get(stat) is None:
        return "-"
    return f"{ev[stat]:.1f} [{ev[stat + '_low']:.1f}, {ev[stat + '_high']:.1f}]"


def write_table(suite_name: str, records: list[dict], results: Path) -> tuple[Path, Path]:
    header = ["row", "task", "network", "seeds", "env steps/seed", "greedy mean [95% CI]", "greedy IQM [95% CI]",
              "greedy per seed", "sampled mean [95% CI]", "sampled IQM [95% CI]", "sampled per seed", "anchor",
              "env steps/s (all seeds)", "wall s", "host", "date", "commit"]
    lines = []
    for r in records:
        g, s = r["eval"]["greedy"], r["eval"]["stochastic"]
        lines.append([r["row"], r["task"], r["variant"], len(r["seeds"]), f"{r['env_steps_per_seed']:.3g}",
                      _fmt_ci(g, "mean"), _fmt_ci(g, "iqm"), " ".join(f"{x:.1f}" for x in g["per_seed"]),
                      _fmt_ci(s, "mean"), _fmt_ci(s, "iqm"), " ".join(f"{x:.1f}" for x in s["per_seed"]),
                      "-" if r["anchor"] is None else f"{r['anchor']:g}",
                      f"{r['env_steps_per_second']:,.0f}" if r["env_steps_per_second"] else "-",
                      f"{r['train_wall_seconds']:.0f}", f"{r['host']['device']}, {r['host']['cores']} cores",
                      r["date"][:10], r["commit"] or "-"])
    csv_path = results.parent / f"{suite_name}.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(lines)
    md = [f"# {SUITES[suite_name]['title']}: final returns", "",
          "Written by `python scripts/reproduce.py " + suite_name + "` from the row records in "
          f"`{suite_name}/`. Each seed's final policy is evaluated on the same episodes (evaluation seed "
          "10000) with greedy and with sampled actions; a seed's score is its mean return; mean and IQM "
          "across seeds with 95% percentile-bootstrap intervals. Env steps/s: all seeds together, over "
          "the training's wall clock summed over its starts (compilation and evaluations during training "
          "included, work lost in a stop not).", ""]
    if records:
        rows_of = {}  # each anchor source once, with the rows it is the anchor of
        for r in records:
            if r["anchor"] is not None:
                rows_of.setdefault(r["anchor_source"], []).append(r["row"])
        md += [f"Anchor of {', '.join(rows)}: {src}." for src, rows in sorted(rows_of.items())] + [""]
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "---|" * len(header))
    md += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    md_path = results.parent / f"{suite_name}.md"
    md_path.write_text("\n".join(md) + "\n")
    return md_path, csv_path


def plot_suite(suite_name: str, records: list[dict], results: Path) -> Path | None:
    from pgjax.reports import plotting
    from pgjax.reports import statistics as st

    if not records:
        return None
    tasks = list(dict.fromkeys(r["task"] for r in records))
    plt = plotting.pyplot()
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=110, squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        for i, r in enumerate(x for x in records if x["task"] == task):
            with (results / f"{r['row']}_curve.csv").open() as f:
                points = [(float(p["env_steps"]), int(p["seed"]), float(p["eval_return"])) for p in csv.DictReader(f)]
            color = f"C{i}"
            if not points:  # a peer that evaluates nothing during training: its final IQM and interval
                g = r["eval"]["greedy"]
                ax.errorbar([r["env_steps_per_seed"]], [g["iqm"]], yerr=[[g["iqm"] - g["iqm_low"]], [g["iqm_high"] - g["iqm"]]],
                            fmt="o", color=color, capsize=3, label=f"{r['variant']}, final ({len(r['seeds'])} seeds)")
                continue
            steps = np.unique([p[0] for p in points])
            seeds = sorted({p[1] for p in points})
            curves = np.full((len(seeds), len(steps)), np.nan)
            for x, seed, value in points:
                curves[seeds.index(seed), np.searchsorted(steps, x)] = value
            est, low, high = st.curve_statistics(curves)
            ax.fill_between(steps, low, high, color=color, alpha=0.2, lw=0)
            ax.plot(steps, est, color=color, lw=2, label=f"{r['variant']} ({len(seeds)} seeds)")
        anchor = next((r["anchor"] for r in records if r["task"] == task and r["anchor"] is not None), None)
        if anchor is not None:
            ax.axhline(anchor, color="k", ls="--", lw=1, label=f"anchor {anchor:g}")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("environment steps per seed")
        ax.set_ylabel("greedy evaluation return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    title = f"{SUITES[suite_name]['title']}: IQM of the greedy evaluations during training, 95% bootstrap band"
    fig.suptitle(textwrap.fill(title, width=int(11 * 4.2 * cols)), fontsize=9)
    fig.tight_layout()
    path = results.parent / f"{suite_name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


# --- command line ---------------------------------------------------------------------------


def _steps(text: str) -> int:
    value = float(text)
    if value < 1 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"--steps must be a positive whole number, got {text!r}")
    return int(value)


def _setting(text: str) -> str:
    if "=" not in text or text.startswith("="):
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE settings, got {text!r}")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--rows", nargs="+", metavar="ROW", help="rows to run (default: the suite's table)")
    parser.add_argument("--seeds", type=int, help="seeds per row (default: 5 for MinAtar and XLand, 3 for Brax)")
    parser.add_argument("--steps", type=_steps, help="env steps per seed (default: the config's budget)")
    parser.add_argument("--eval-episodes", type=int, help="final evaluation episodes per seed and mode")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "reproduce"), help="where the run folders go")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="where tables and records go")
    parser.add_argument("--seeds-per-run", type=int, metavar="K", help="train a row's seeds in runs of at most K "
                        "(0..K-1, K..2K-1, ...), each kept under RESULTS/<suite>/parts/ when done: a row then "
                        "fits in pieces between stops on machines that do not keep run folders (default: one run)")
    parser.add_argument("--host-devices", type=int, help="passed to pgjax train (default: one per core)")
    parser.add_argument("--chunks", type=int, default=40, help="passed to pgjax train: a checkpoint and an "
                        "evaluation after each (default 40; fewer save time where checkpoints are large)")
    parser.add_argument("--set", nargs="+", type=_setting, default=[], metavar="KEY=VALUE",
                        help="config settings on top of every row's (e.g. num_envs=16 for a small run on a CPU); "
                        "kept in each row's record")
    parser.add_argument("--purejaxrl-notebook", help="examples/brax_minatar.ipynb of a purejaxrl snapshot "
                        "(the breakout-purejaxrl row)")
    parser.add_argument("--peer-python", help="python of the peers' environment (default: ../shared/peers/setup.sh)")
    parser.add_argument("--report", action="store_true", help="only redraw the table and figure from the records")
    parser.add_argument("--compare", nargs=2, metavar=("ROW", "OTHER"), help="only compare two recorded rows: "
                        "means, IQMs and an exact permutation test per evaluation mode")
    args = parser.parse_args(argv)
    suite = SUITES[args.suite]
    names = {r.name: r._replace(extra=tuple(args.set)) for r in suite["rows"]}
    wanted = args.rows or suite.get("default_rows") or list(names)
    unknown = [n for n in wanted if n not in names]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)} for {args.suite}; choose from {', '.join(names)}")
    if args.seeds is None:
        args.seeds = suite["seeds"]
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.seeds_per_run is not None and args.seeds_per_run < 1:
        parser.error(f"--seeds-per-run must be >= 1, got {args.seeds_per_run}")
    results = Path(args.results) / args.suite
    if args.compare:
        missing = [n for n in args.compare if not (results / f"{n}.json").is_file()]
        if missing:
            parser.error(f"no record for {', '.join(missing)} in {results}; run the row(s) first")
        print(compare_rows(*(json.loads((results / f"{n}.json").read_text()) for n in args.compare)))
        return 0
    results.mkdir(parents=True, exist_ok=True)
    status = 0
    if not args.report:
        for name in wanted:
            try:
                run_row(names[name], suite, args, results)
            except ReproduceError as exc:
                print(f"reproduce: {exc}", file=sys.stderr)
                status = 1
                break
    order = {r.name: i for i, r in enumerate(suite["rows"])}
    records = sorted((json.loads(p.read_text()) for p in results.glob("*.json")), key=lambda r: order.get(r["row"], 99))
    md, _ = write_table(args.suite, records, results)
    fig = plot_suite(args.suite, records, results)
    print(f"reproduce: {len(records)} row(s) in {md}" + (f" and {fig}" if fig else ""), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
