"""The training run in the library (`pgjax.runtime.run`): `pgjax.train` and `pgjax.resume`
called as a notebook calls them, no command line."""

from pathlib import Path

import jax
import numpy as np
import pytest

import pgjax
from pgjax.records import runs

ROOT = Path(__file__).resolve().parent.parent
TINY = ["total_timesteps=3072", "num_steps=64", "hidden_sizes=[16]", "update_epochs=1"]


def leaves(tree):
    def host(x):
        return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)

    return [host(x) for x in jax.tree.leaves(tree)]


def test_notebook_stops_a_checkpointed_run_and_resumes_it_bit_for_bit(tmp_path):
    """A run started from Python, stopped after its first chunk (as if killed), and
    finished by `pgjax.resume(run_dir)` writes the bytes of an uninterrupted run."""
    config = pgjax.load_config(ROOT / "configs/ppo_cartpole.toml", TINY)
    options = {"seeds": 2, "chunks": 3, "eval_episodes": 2}
    whole = pgjax.train(config, out=tmp_path / "whole", **options)
    assert whole.status == "finished" and whole.exit_code == 0 and whole.updates_done == 12
    assert set(whole.summary["final_train_return"]) == {"0", "1"} and (whole.run_dir / "summary.json").exists()

    stopped = pgjax.train(ROOT / "configs/ppo_cartpole.toml", overrides=TINY, out=tmp_path / "stopped",
                          stop_after=1, **options)
    assert stopped.status == "stopped" and stopped.exit_code == 0 and stopped.updates_done == 4
    assert stopped.state is None and not (stopped.run_dir / "summary.json").exists()
    assert sorted(p.name for p in (stopped.run_dir / "checkpoints").iterdir() if p.name.isdigit()) == ["4"]

    resumed = pgjax.resume(stopped.run_dir)
    assert resumed.status == "finished" and resumed.run_dir == stopped.run_dir
    for name in ("metrics.csv", runs.EVAL_FILE):
        assert (resumed.run_dir / name).read_bytes() == (whole.run_dir / name).read_bytes(), name
    assert resumed.summary["final_train_return"] == whole.summary["final_train_return"]
    assert resumed.summary["eval_return_mean"] == whole.summary["eval_return_mean"]
    assert all(np.array_equal(a, b) for a, b in zip(leaves(whole.state), leaves(resumed.state), strict=True))


def test_notebook_errors_are_exceptions_before_anything_starts(tmp_path):
    with pytest.raises(pgjax.config.ConfigError, match="hparams.gamma=1.5 is out of range"):
        pgjax.train("ppo", overrides=["hparams.gamma=1.5"], out=tmp_path)
    with pytest.raises(pgjax.config.ConfigError, match="seeds=0: a count must be >= 1"):
        pgjax.train("ppo", seeds=0, out=tmp_path)
    with pytest.raises(pgjax.config.ConfigError, match="no config.json there"):
        pgjax.resume(tmp_path)
    assert not any(tmp_path.iterdir())
