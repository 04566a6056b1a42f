"""A deleted config.json comes back from the checkpoints (issue 34): every checkpoint keeps a
copy of it, and `pgjax train --resume`, `pgjax eval` and `pgjax plot` write it back
(atomically, one line saying so). Checkpoints from before they kept the copy still evaluate;
a resume from them is refused in one line, since the run's settings are gone."""

import json
import shutil
from pathlib import Path

import pytest

from pgjax.commands.cli import main
from pgjax.records import runs

TINY_PPO = ["--config", "configs/ppo_cartpole.toml", "total_timesteps=768", "num_steps=64", "hidden_sizes=[16]",
            "update_epochs=1"]  # 3 updates of 4 envs x 64 steps


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> tuple[Path, bytes]:
    """A run stopped after 2 of its 3 chunks (checkpoints at updates 1 and 2), and its config.json."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY_PPO, "--seeds", "2", "--chunks", "3", "--stop-after", "2", "--eval-episodes", "2",
                 "--no-progress", "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return run_dir, (run_dir / runs.RUN_FILE).read_bytes()


def _notes(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_plot_and_eval_write_a_deleted_config_json_back(stopped_run, capsys, tmp_path):
    run_dir, original = stopped_run
    for command in (["plot", str(run_dir), "--out", str(tmp_path / "curve.png")],
                    ["eval", str(run_dir), "--episodes", "2", "--out", str(tmp_path / "eval.json")]):
        (run_dir / runs.RUN_FILE).unlink()
        assert main(command) == 0
        assert _notes(capsys) == [(f"pgjax {command[0]}: note: {run_dir / runs.RUN_FILE} was missing: recovered it "
                                  "from the checkpoint at update 2")]
        assert (run_dir / runs.RUN_FILE).read_bytes() == original
        assert not list(run_dir.glob(".config.json.tmp-*"))  # written through a temporary file, renamed


def test_resume_writes_a_deleted_config_json_back_and_finishes(stopped_run, capsys, tmp_path):
    run_dir, original = stopped_run
    copy = tmp_path / run_dir.name

    shutil.copytree(run_dir, copy)
    (copy / runs.RUN_FILE).unlink()
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 0
    notes = _notes(capsys)
    assert f"pgjax train: note: {copy / runs.RUN_FILE} was missing: recovered it from the checkpoint at update 2" in notes
    assert (copy / runs.RUN_FILE).read_bytes() == original
    assert json.loads((copy / "summary.json").read_text())["env_steps_per_seed"] == 768


def _strip_copies(run_dir: Path) -> None:
    """Make the checkpoints look written before they kept config.json's copy."""
    for meta_file in (run_dir / runs.CHECKPOINT_DIR).glob("*/meta/metadata"):
        meta = json.loads(meta_file.read_text())
        del meta[runs.RUN_FILE_COPY]
        meta_file.write_text(json.dumps(meta))


def test_old_checkpoints_still_evaluate_and_refuse_a_resume_in_one_line(stopped_run, capsys, tmp_path):
    run_dir, _ = stopped_run

    old = tmp_path / run_dir.name
    shutil.copytree(run_dir, old)
    _strip_copies(old)
    (old / runs.RUN_FILE).unlink()
    assert main(["eval", str(old), "--episodes", "2", "--out", str(tmp_path / "eval.json")]) == 0
    assert _notes(capsys) == [] and not (old / runs.RUN_FILE).exists()
    assert set(json.loads((tmp_path / "eval.json").read_text())["per_seed"]) == {"0", "1"}

    assert main(["train", "--resume", str(old), "--no-progress"]) == 1
    (line,) = _notes(capsys)
    assert line == (f"pgjax train: {old / runs.RUN_FILE} is missing, and the checkpoints in {old / runs.CHECKPOINT_DIR} "
                    "(updates 1, 2) do not keep a copy of it (written by an older pgjax, or damaged), so the run's "
                    "settings (chunks, evaluation, trackers) are lost; restore config.json, or train a new run")
    assert not (old / runs.RUN_FILE).exists()


def test_a_folder_without_checkpoints_is_still_not_a_run_folder(capsys, tmp_path):
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 1
    (line,) = _notes(capsys)
    assert "no config.json there (not a pgjax run folder)" in line
