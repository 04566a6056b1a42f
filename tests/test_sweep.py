"""Sweeps: memory chunks and resumes give byte-identical cells; divergence stays in its cell."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from contract import leaves_equal

from pgjax import config as cfg
from pgjax.algos import ppo
from pgjax.records import cell_policies
from pgjax.runtime import sweep as sw
from pgjax.runtime import sweep_eval as se

BASE = {"env_id": "CartPole-v1", "num_envs": 2, "num_steps": 8, "total_timesteps": 64, "update_epochs": 1,
        "num_minibatches": 1, "hidden_sizes": [8]}
SEEDS = [0, 1]


def _run(out: Path, grid: dict, **kwargs):
    groups = sw.plan("ppo", BASE, grid, SEEDS)
    limit = kwargs.pop("memory_limit", None)
    settings = sw.SweepSettings(width=2, max_chunks=2, memory_limit=limit, save_state=kwargs.pop("save_state", False))
    return sw.run_sweep(out, "ppo", groups, 0, settings, **kwargs)


def _files(out: Path) -> dict[str, bytes]:
    """Every cell file: records and kept policies."""
    return {p.name: p.read_bytes() for p in sorted((out / "cells").glob("cell-*"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep in one launch: 2 reward scales x 2 seeds."""
    out = tmp_path_factory.mktemp("reference")
    stats = _run(out, {"hparams.reward_scale": [1.0, 2.0]})
    assert stats["launches"] == 1 and stats["cells_run"] == 4
    return out, stats


def test_cells_record_config_seed_versions_and_metrics(reference):
    out, _ = reference
    records = sw.read_cells(out)
    assert [r["cell"] for r in records] == [0, 1, 2, 3]
    assert [(r["overrides"]["hparams.reward_scale"], r["seed"]) for r in records] == [(1.0, 0), (1.0, 1), (2.0, 0), (2.0, 1)]
    assert records[2]["config"]["hparams"]["reward_scale"] == 2.0 and records[2]["config"]["num_envs"] == 2
    assert "jax" in records[0]["versions"] and not any(r["diverged"] for r in records)
    assert len(records[0]["metrics"]["loss"]) == 4
    assert records[0]["metrics"]["loss"] != records[1]["metrics"]["loss"]  # seeds differ


def test_memory_chunks_give_identical_cells(reference, tmp_path):
    out, stats = reference
    one_launch = stats["groups"][0]["bytes_per_device"]
    chunked = _run(tmp_path, {"hparams.reward_scale": [1.0, 2.0]}, memory_limit=one_launch - 1)
    assert chunked["groups"][0]["cells_per_launch"] == 2 and chunked["launches"] == 2
    assert _files(tmp_path) == _files(out)


def test_killed_sweep_resumes_to_identical_cells(reference, tmp_path):
    out, stats = reference
    limit = stats["groups"][0]["bytes_per_device"] - 1  # two launches of two cells
    written = []

    def crash_after_one(cell):
        written.append(cell.index)
        if len(written) == 1:
            raise KeyboardInterrupt  # the process dies after writing its first cell

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, {"hparams.reward_scale": [1.0, 2.0]}, memory_limit=limit, on_cell=crash_after_one)
    assert list(_files(tmp_path)) == ["cell-00000.json", "cell-00000.policy.npz"]
    resumed = _run(tmp_path, {"hparams.reward_scale": [1.0, 2.0]}, memory_limit=limit)
    assert resumed["cells_skipped"] == 1 and resumed["cells_run"] == 3
    assert _files(tmp_path) == _files(out)


def test_diverging_cell_is_marked_and_others_unchanged(reference, tmp_path):
    """reward_scale=1e38 overflows the advantages to inf at the first update."""
    out, _ = reference
    _run(tmp_path, {"hparams.reward_scale": [1.0, 1e38]})
    records = sw.read_cells(tmp_path)
    assert [r["diverged"] for r in records] == [False, False, True, True]
    assert [r["diverged_at_update"] for r in records[2:]] == [1, 1]
    healthy = _files(tmp_path)
    assert healthy["cell-00000.json"] == _files(out)["cell-00000.json"]
    assert healthy["cell-00001.json"] == _files(out)["cell-00001.json"]


def test_bad_grid_values_fail_before_compiling():
    with pytest.raises(cfg.ConfigError, match=r"hparams.gamma=1.5 is out of range: must be in \(0, 1\]"):
        sw.plan("ppo", BASE, {"hparams.gamma": [0.9, 1.5]}, SEEDS)
    with pytest.raises(cfg.ConfigError, match="num_minibatches=3 does not divide the batch"):
        sw.plan("ppo", BASE, {"num_minibatches": [1, 3]}, SEEDS)
    with pytest.raises(cfg.ConfigError, match="values repeat"):
        sw.parse_grid_item("hparams.gamma=0.9,0.9")


def test_grid_parsing_and_static_groups():
    assert sw.parse_grid_item("hparams.learning_rate=1e-4,3e-4") == ("hparams.learning_rate", [1e-4, 3e-4])
    assert sw.parse_grid_item("hidden_sizes=[[8],[16,16]]") == ("hidden_sizes", [[8], [16, 16]])
    groups = sw.plan("ppo", BASE, {"num_envs": [2, 4], "hparams.gamma": [0.9, 0.99]}, SEEDS)
    assert [g.static for g in groups] == [{"num_envs": 2}, {"num_envs": 4}]
    assert [len(g.cells) for g in groups] == [4, 4]
    assert [c.index for g in groups for c in g.cells] == list(range(8))


def test_memory_sizes_parse():
    assert sw.parse_bytes("512MB") == 512_000_000 and sw.parse_bytes("2GiB") == 2 * 2**30
    with pytest.raises(cfg.ConfigError, match="--memory-limit 'lots'"):
        sw.parse_bytes("lots")


def test_cell_metrics_are_written_compactly_and_read_back_exactly():
    from pgjax.runtime.sweep import compact_values

    values = (np.random.default_rng(0).normal(size=500) * 10.0 ** np.arange(-20, 30, 0.1)).astype(np.float32)
    values[::7] = np.nan
    compact = compact_values(values)
    np.testing.assert_array_equal(np.asarray(compact, np.float32), values)  # nothing rounded (nan == nan)
    assert len(json.dumps(compact)) < 0.75 * len(json.dumps(values.astype(float).tolist()))
    assert compact_values(np.array([True, False])) == [1, 0]
    assert compact_values(np.arange(3, dtype=np.int32)) == [0, 1, 2]


def test_cells_keep_their_policies_and_on_request_their_state(reference, tmp_path):
    """The policy file holds the final parameters and observation statistics of the cell's
    training state (the state file, asked for with save_state, holds all of it)."""
    out, _ = reference
    _run(tmp_path, {"hparams.reward_scale": [1.0, 2.0]}, save_state=True)
    assert {k: v for k, v in _files(tmp_path).items() if ".state." not in k} == _files(out)
    (record, *_) = sw.read_cells(tmp_path)
    trainer = ppo.make_trainer(sw.plan("ppo", BASE, {}, [0])[0].config)
    like = jax.eval_shape(trainer.init, jax.random.PRNGKey(0), trainer.config.hparams)
    state = cell_policies.read_tree(tmp_path / "cells" / "cell-00000.state.npz", like)
    policy = cell_policies.read_tree(out / "cells" / record["policy"], cell_policies.policy_tree(like))
    assert leaves_equal(policy, cell_policies.policy_tree(state)) and int(state.update) == 4
    other = cell_policies.read_tree(out / "cells" / "cell-00001.policy.npz", cell_policies.policy_tree(like))
    assert not leaves_equal(policy["params"], other["params"])  # seeds differ


def test_a_missing_policy_file_runs_its_cell_again(reference, tmp_path):
    out, _ = reference
    _run(tmp_path, {"hparams.reward_scale": [1.0, 2.0]})
    (tmp_path / "cells" / "cell-00002.policy.npz").unlink()
    (tmp_path / "cells" / "cell-00003.policy.npz").write_bytes(b"torn")
    again = _run(tmp_path, {"hparams.reward_scale": [1.0, 2.0]})
    assert again["cells_skipped"] == 2 and again["cells_run"] == 2
    assert _files(tmp_path) == _files(out)


def test_evaluating_cells_and_ranking_grid_points(reference):
    """Every cell's kept policy plays the same episodes; a cell evaluated alone scores as in
    the whole batch; grid points are summarised over their seeds and ranked by IQM."""
    out, _ = reference
    records = sw.read_cells(out)
    everything = se.evaluate_cells(out, records, width=2, num_episodes=3, write=False)
    alone = se.evaluate_cells(out, se.select_cells(records, cells=[3]), width=2, num_episodes=3)
    assert alone[0]["returns"] == everything[3]["returns"] and alone[0]["mode"] == "greedy"
    assert se.read_cell_evals(out, "greedy")[3]["returns"] == alone[0]["returns"]
    assert [r["cell"] for r in se.select_cells(records, point={"hparams.reward_scale": 2})] == [2, 3]
    summaries = se.point_summaries(everything)
    assert [s["cells"] for s in summaries] == [[0, 1], [2, 3]]
    for s in summaries:
        assert s["n"] == 2 and s["iqm"] == pytest.approx(np.mean([everything[c]["mean_return"] for c in s["cells"]]))
    best = se.best_point(summaries)
    assert summaries[best]["iqm"] == max(s["iqm"] for s in summaries)


def test_a_sweep_on_an_accelerator_is_told_when_its_width_leaves_cells_waiting():
    from pgjax.commands.sweep import narrow_width_note

    assert narrow_width_note("cpu", 8, 64) is None  # one vmap group per core is what a CPU wants
    assert narrow_width_note("gpu", 8, 8) is None and narrow_width_note("gpu", 64, 16) is None
    note = narrow_width_note("gpu", 8, 64)
    assert "--width 8 at a time" in note and "--width 64" in note
