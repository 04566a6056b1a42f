"""W&B across a resume, and its login checked before any work (issue 34).

A resumed run reopens each series under the id `wandb_run_id` derives from the folder and
the series, so W&B appends to the same run: offline, the resumed process writes a second
run folder with the same run id, and the two together hold every step once. `--log wandb`
online without a login is refused by `require` (called before anything compiles)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tracker_files import wandb_runs

from pgjax.records import tracking

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def offline(monkeypatch):
    pytest.importorskip("wandb", reason="the [track] extra: pip install 'pgjax[track]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_a_resumed_run_appends_to_the_same_wandb_run(tmp_path, offline):
    import wandb

    series = [tracking.Series(f"seed-{s}", {"seed": s}) for s in (0, 1)]
    first = tracking.open_tracker(["wandb"], tmp_path, "grp", series)
    first.log_chunk(["seed-0", "seed-1"], {"env_steps": np.array([[10, 20, 30]] * 2),
                                           "loss": np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])})
    first.close()
    wandb.teardown()  # a process exit: the run files are complete
    # The resume restarts from the checkpoint at step 20 and recomputes step 30 (same value).
    resumed = tracking.open_tracker(["wandb"], tmp_path, "grp", series, purge_step=20)
    resumed.log_chunk(["seed-0", "seed-1"], {"env_steps": np.array([[30, 40]] * 2),
                                             "loss": np.array([[3.0, 3.5], [6.0, 6.5]])})
    resumed.log_eval(["seed-0", "seed-1"], [40, 40], {"return": np.array([7.0, 8.0])})
    resumed.close()
    wandb.teardown()
    runs = wandb_runs(tmp_path)
    assert sorted(runs) == ["grp/seed-0", "grp/seed-1"]
    for i, name in enumerate(["seed-0", "seed-1"]):
        run = runs[f"grp/{name}"]
        assert run["files"] == 2, run  # one offline folder per process ...
        assert run["ids"] == [tracking.wandb_run_id(tmp_path, name)] * 2  # ... of one W&B run
        assert run["history"]["train/loss"] == dict(zip((10, 20, 30, 40), [[1.0, 2.0, 3.0, 3.5],
                                                                             [4.0, 5.0, 6.0, 6.5]][i]))
        assert run["history"]["eval/return"] == {40: [7.0, 8.0][i]}
    assert runs["grp/seed-0"]["ids"][0] != runs["grp/seed-1"]["ids"][0]


def _no_login(monkeypatch, tmp_path):
    pytest.importorskip("wandb", reason="the [track] extra: pip install 'pgjax[track]'")
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DISABLED", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.chdir(tmp_path)


def test_wandb_without_a_login_is_refused_before_any_work(monkeypatch, tmp_path):
    _no_login(monkeypatch, tmp_path)
    with pytest.raises(tracking.TrackingError, match=r"--log wandb: not logged in to W&B \(api.wandb.ai: no "
                                                     r"WANDB_API_KEY and no .netrc entry\); run `wandb login`"):
        tracking.require(["csv", "wandb"])
    tracking.require(["csv", "tensorboard"])  # other sinks need no login


@pytest.mark.parametrize("how", ["env-offline", "env-disabled", "api-key", "netrc", "wandb-offline-command",
                                 "netrc-other-host"])
def test_wandb_login_check_accepts_every_way_to_log(monkeypatch, tmp_path, how):
    _no_login(monkeypatch, tmp_path)
    entry = "machine {} login user password " + "x" * 40 + "\n"
    if how == "env-offline":
        monkeypatch.setenv("WANDB_MODE", "offline")
    elif how == "env-disabled":
        monkeypatch.setenv("WANDB_MODE", "disabled")
    elif how == "api-key":
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    elif how == "netrc":
        (tmp_path / ".netrc").write_text(entry.format("api.wandb.ai"))
        (tmp_path / ".netrc").chmod(0o600)
    elif how == "wandb-offline-command":  # what `wandb offline` writes in the working folder
        (tmp_path / "wandb").mkdir()
        (tmp_path / "wandb" / "settings").write_text("[default]\nmode = offline\n")
    else:  # a self-hosted server: its host, not api.wandb.ai
        monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
        (tmp_path / ".netrc").write_text(entry.format("wandb.example.org"))
        (tmp_path / ".netrc").chmod(0o600)
    tracking.require(["wandb"])


def test_sweep_with_wandb_and_no_login_is_one_line_before_compiling(tmp_path):
    pytest.importorskip("wandb", reason="the [track] extra: pip install 'pgjax[track]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB") and k != "NETRC"}
    env.update(HOME=str(tmp_path), WANDB_CONFIG_DIR=str(tmp_path / "cfg"), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "pgjax", "sweep", "--env", "CartPole-v1", "--grid",
                             "hparams.learning_rate=1e-3,1e-2", "--log", "wandb", "--out", str(tmp_path / "out")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert "not logged in to W&B" in lines[0] and "compiling" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
