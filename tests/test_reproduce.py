"""scripts/reproduce.py: a table's rows train, resume, evaluate in both modes and are recorded.

The full tables are hours of compute (benchmarks/results/); here one MinAtar row runs at a
budget of two updates, stopped after the first and resumed by the script, as after a stop.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


def _record(row: str, task: str, variant: str, greedy: list[float], sampled: list[float]) -> dict:
    from pgjax.reports import statistics as st

    return {
        "record_version": 1, "row": row, "task": task, "variant": variant, "seeds": list(range(len(greedy))),
        "env_steps_per_seed": 1e7, "anchor": 28.0, "anchor_source": "a source", "train_wall_seconds": 100.0,
        "env_steps_per_second": 12345.0, "host": {"device": "cpu", "cores": 2}, "date": "2026-12-04 20:00 UTC",
        "commit": "abc1234",
        "eval": {"greedy": {"per_seed": greedy, **st.summarize(greedy)},
                 "stochastic": {"per_seed": sampled, **st.summarize(sampled)}},
    }


def test_table_and_figure_come_from_the_records_alone(reproduce, tmp_path):
    results = tmp_path / "minatar"
    results.mkdir()
    records = [_record("breakout-mlp", "Breakout", "MLP", [20.0, 30.0, 25.0], [22.0, 28.0, 26.0]),
               _record("breakout-cnn", "Breakout", "CNN", [40.0, 50.0, 45.0], [41.0, 49.0, 44.0])]
    for r in records:
        with (results / f"{r['row']}_curve.csv").open("w") as f:
            f.write("env_steps,seed,eval_return\n")
            for seed in range(3):
                f.write(f"100,{seed},{seed}\n200,{seed},{10 + seed}\n")
    md, table = reproduce.write_table("minatar", records, results)
    text = md.read_text()
    assert "| breakout-mlp | Breakout | MLP | 3 |" in text
    assert "25.0 [20.0, 30.0]" in text  # the greedy mean with its bootstrap interval
    assert "20.0 30.0 25.0" in text  # every seed's value
    assert text.count("Anchor of") == 1 and "Anchor of breakout-mlp, breakout-cnn: a source." in text
    rows = list(csv.DictReader(table.open()))
    assert [r["row"] for r in rows] == ["breakout-mlp", "breakout-cnn"]
    assert rows[1]["sampled per seed"] == "41.0 49.0 44.0"
    png = reproduce.plot_suite("minatar", records, results)
    assert png.is_file() and png.stat().st_size > 10_000


@pytest.mark.parametrize("change, overrides", [("orthogonal", ("init=orthogonal", "bias_init_max=0.0")),
                                               ("terminate", ("time_limit=terminate",))])
def test_a_one_change_minatar_row_is_its_base_row_plus_that_change(reproduce, change, overrides):
    """`<game>-<net>-<change>` is `<game>-<net>` with only `overrides` added, for both networks
    and every game, so comparing the two rows measures that change alone."""
    rows = {r.name: r for r in reproduce.SUITES["minatar"]["rows"]}
    for game in reproduce.MINATAR_GAMES:
        for net in ("mlp", "cnn"):
            base, changed = rows[f"{game}-{net}"], rows[f"{game}-{net}-{change}"]
            assert changed._replace(name=base.name, variant=base.variant, overrides=base.overrides) == base
            assert changed.overrides == base.overrides + overrides and changed.variant.startswith(base.variant + ", ")


def test_two_recorded_rows_are_compared_by_an_exact_permutation_test(reproduce, tmp_path, capsys):
    results = tmp_path / "minatar"
    results.mkdir()
    for r in (_record("breakout-mlp", "Breakout", "MLP", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
              _record("breakout-cnn", "Breakout", "CNN", [4.0, 5.0, 6.0], [1.5, 2.5, 3.5])):
        (results / f"{r['row']}.json").write_text(json.dumps(r))
    args = ["minatar", "--results", str(tmp_path), "--compare", "breakout-cnn", "breakout-mlp"]
    assert reproduce.main(args) == 0
    sampled, greedy = capsys.readouterr().out.splitlines()
    # greedy: of the 20 splits of 1..6 into threes, only the observed one and its mirror
    # differ by 3 in means; sampled: 1.5, 2.5, 3.5 against 1, 2, 3 differ by 0.5, and 14 of 20 splits by as much
    assert greedy.startswith("greedy: breakout-cnn mean 5.00") and greedy.endswith(
        "difference in means +3.00, two-sided permutation test p = 0.100 over all 20 splits")
    assert sampled.startswith("sampled:") and "+0.50" in sampled and "p = 0.700" in sampled
    with pytest.raises(SystemExit):
        reproduce.main(["minatar", "--results", str(tmp_path), "--compare", "breakout-cnn", "asterix-cnn"])
    assert "no record for asterix-cnn" in capsys.readouterr().err


def test_a_row_resumes_after_a_stop_and_is_recorded(reproduce, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    row_dir = runs / "minatar" / "breakout-mlp"
    row_dir.mkdir(parents=True)
    # The first session: stopped after one of two chunks (as by a session's end).
    stopped = subprocess.run(
        [sys.executable, "-m", "pgjax", "train", "--config", str(ROOT / "configs/ppo_breakout_minatar.toml"),
         "--seeds", "2", "--out", str(row_dir), "--chunks", "2", "--eval-episodes", "2", "--no-progress",
         "--stop-after", "1", "total_timesteps=16384"], check=False, capture_output=True, text=True, cwd=ROOT)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    (run_dir,) = [p for p in row_dir.iterdir() if p.is_dir()]
    assert not (run_dir / "summary.json").exists()

    args = ["minatar", "--rows", "breakout-mlp", "--seeds", "2", "--steps", "16384", "--eval-episodes", "3",
            "--runs", str(runs), "--results", str(results)]
    assert reproduce.main(args) == 0
    record = json.loads((results / "minatar" / "breakout-mlp.json").read_text())
    assert record["seeds"] == [0, 1] and record["env_steps_per_seed"] == 16384
    progress = json.loads((row_dir / "progress.json").read_text())
    assert [(i["updates_from"], i["updates_to"]) for i in progress["invocations"]] == [(1, 2)]
    # the time counts both starts, the first of which progress.json never saw
    wall = json.loads((run_dir / "summary.json").read_text())["wall_seconds"]
    assert record["train_wall_seconds"] == round(wall, 1)
    assert record["env_steps_per_second"] == round(2 * 16384 / wall, 1)
    for mode in ("greedy", "stochastic"):
        ev = record["eval"][mode]
        assert ev["episodes_per_seed"] == 3 and len(ev["per_seed"]) == 2
        assert ev["mean"] == pytest.approx(np.mean(ev["per_seed"]))
    saved = json.loads((run_dir / "reproduce_eval_stochastic.json").read_text())
    assert saved["mode"] == "stochastic"
    curve = list(csv.DictReader((results / "minatar" / "breakout-mlp_curve.csv").open()))
    assert sorted({int(r["env_steps"]) for r in curve}) == [8192, 16384] and len(curve) == 4
    assert (results / "minatar.md").is_file() and (results / "minatar.png").is_file()

    # A finished row is not trained again, and a mismatched request for an unfinished one is refused.
    log_size = (row_dir / "train.log").stat().st_size
    assert reproduce.main(args) == 0
    assert (row_dir / "train.log").stat().st_size == log_size

    # A run trained by a plain `pgjax train` into the row folder (no progress.json) is recorded as it is.
    (row_dir / "progress.json").unlink()
    (results / "minatar" / "breakout-mlp.json").unlink()
    assert reproduce.main(args) == 0
    assert (row_dir / "train.log").stat().st_size == log_size
    adopted = json.loads((results / "minatar" / "breakout-mlp.json").read_text())
    assert adopted["load_average_1min"] == [] and adopted["train_wall_seconds"] == round(wall, 1)
    assert adopted["eval"] == record["eval"]


def test_a_mismatched_resume_is_refused(reproduce, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"seeds": [0, 1], "config": {"total_timesteps": 16384}}))
    with pytest.raises(reproduce.ReproduceError, match=r"seeds \[0, 1\], not \[0, 1, 2, 3, 4\]"):
        reproduce._check_matches(run_dir, [0, 1, 2, 3, 4], None)
    with pytest.raises(reproduce.ReproduceError, match="total_timesteps=16384, not 8192"):
        reproduce._check_matches(run_dir, [0, 1], 8192)


def test_a_row_trained_in_parts_of_its_seeds_survives_losing_its_run_folders(reproduce, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    args = ["minatar", "--rows", "breakout-mlp", "--seeds", "3", "--seeds-per-run", "2", "--steps", "8192",
            "--eval-episodes", "2", "--chunks", "1", "--runs", str(runs), "--results", str(results)]
    assert reproduce.main(args) == 0
    parts = results / "minatar" / "parts" / "breakout-mlp"
    assert sorted(p.name for p in parts.iterdir()) == ["seeds-0-1", "seeds-2-2"]
    summaries = [json.loads(next((parts / p).glob("*/summary.json")).read_text()) for p in ("seeds-0-1", "seeds-2-2")]
    record = json.loads((results / "minatar" / "breakout-mlp.json").read_text())
    assert record["seeds"] == [0, 1, 2] and record["command"].endswith("--seeds 3 --seeds-per-run 2")
    assert [r["seeds"] for r in record["runs"]] == [[0, 1], [2]]
    assert record["train_wall_seconds"] == round(sum(m["wall_seconds"] for m in summaries), 1)
    assert sorted(record["final_train_return"]) == ["0", "1", "2"]
    for mode in ("greedy", "stochastic"):
        kept = [json.loads(next((parts / p).glob(f"*/reproduce_eval_{mode}.json")).read_text())
                for p in ("seeds-0-1", "seeds-2-2")]
        assert record["eval"][mode]["per_seed"] == [kept[0]["per_seed"][s]["mean_return"] for s in ("0", "1")] + [
            kept[1]["per_seed"]["2"]["mean_return"]]
    curve = list(csv.DictReader((results / "minatar" / "breakout-mlp_curve.csv").open()))
    assert sorted({r["seed"] for r in curve}) == ["0", "1", "2"]

    # A fresh machine: no run folders, one part not yet kept. Only that part trains again.
    shutil.rmtree(runs)
    shutil.rmtree(parts / "seeds-2-2")
    (results / "minatar" / "breakout-mlp.json").unlink()
    assert reproduce.main(args) == 0
    assert sorted(p.name for p in (runs / "minatar" / "breakout-mlp").iterdir()) == ["seeds-2-2"]
    again = json.loads((results / "minatar" / "breakout-mlp.json").read_text())
    assert again["eval"] == record["eval"]  # seed 2 retrained alone gives the same policy
    # A kept part evaluated on other episodes is refused, not silently mixed.
    (results / "minatar" / "breakout-mlp.json").unlink()
    assert reproduce.main(args[:-4] + ["--eval-episodes", "3", *args[-4:]]) == 1
