"""Checkpoints of vmapped seeds (as the CLI saves them): dropping any part of the state breaks
resuming; mismatches are named. That "train N" equals "train N/2, save, restore, train N/2" bit
for bit is part of the trainer contract, for every algorithm: tests/test_contract.py."""

import dataclasses
from typing import Any, NamedTuple

import jax
import pytest
from contract import leaves_equal, tiny_config

from pgjax import config as cfg
from pgjax.algos import ppo
from pgjax.records.checkpoint import Checkpointer, CheckpointError, tree_signature
from pgjax.runtime.experiment import compile_seed_functions, seed_keys

NUM_UPDATES = 4


def _expected(name, config, num_seeds):
    return {"algo": name, "config": cfg.to_dict(config), "num_seeds": num_seeds}


# --- dropping any part of the state is visible -------------------------------------------

PPO_TINY = dataclasses.replace(tiny_config(ppo.PPOConfig, NUM_UPDATES), normalize_obs=True, scale_rewards=True)


@pytest.fixture(scope="module")
def ppo_halves():
    trainer = ppo.make_trainer(PPO_TINY)
    init, run = compile_seed_functions(trainer)
    keys, hp = seed_keys(0, [0, 1]), PPO_TINY.hparams
    fresh = init(keys, hp)
    half, _ = run(fresh, hp, 2)
    end, metrics = run(half, hp, 2)
    return run, fresh, half, end, metrics


@pytest.mark.parametrize("part", [f.name for f in dataclasses.fields(ppo.PPOState)])
def test_resume_that_drops_a_part_of_the_state_is_caught(ppo_halves, part):
    """Replace one field of the saved state by its initial value: the run then differs."""
    run, fresh, half, end, metrics = ppo_halves
    assert not leaves_equal(getattr(fresh, part), getattr(half, part)), f"{part} did not change: a weak test"
    dropped = half.replace(**{part: getattr(fresh, part)})
    end_dropped, metrics_dropped = run(dropped, PPO_TINY.hparams, 2)
    assert not (leaves_equal(end, end_dropped) and leaves_equal(metrics, metrics_dropped))


# --- mismatches are refused with the difference named -------------------------------------


@pytest.fixture(scope="module")
def saved_ppo(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck")
    trainer = ppo.make_trainer(PPO_TINY)
    init, _ = compile_seed_functions(trainer)
    keys = seed_keys(0, [0, 1])
    saver = Checkpointer(path)
    saver.save(0, init(keys, PPO_TINY.hparams), {**_expected("ppo", PPO_TINY, 2), "seeds": [0, 1]})
    saver.close()
    return path, init, keys


def _abstract(config, keys):
    init, _ = compile_seed_functions(ppo.make_trainer(config))
    return jax.eval_shape(init, keys, config.hparams)


def test_restoring_into_another_config_names_the_fields(saved_ppo):
    path, _, keys = saved_ppo
    other = dataclasses.replace(PPO_TINY, hidden_sizes=(16,), hparams=dataclasses.replace(PPO_TINY.hparams, gamma=0.9))
    with pytest.raises(CheckpointError) as err:
        Checkpointer(path).restore(_abstract(other, keys), _expected("ppo", other, 2))
    assert "hidden_sizes: checkpoint [8], this run [16]" in str(err.value)
    assert "hparams.gamma: checkpoint 0.99, this run 0.9" in str(err.value)


def test_restoring_another_algorithm_or_seed_count_fails(saved_ppo):
    path, init, keys = saved_ppo
    like = jax.eval_shape(init, keys, PPO_TINY.hparams)
    with pytest.raises(CheckpointError, match="checkpoint is for algo='ppo', not 'a2c'"):
        Checkpointer(path).restore(like, {**_expected("ppo", PPO_TINY, 2), "algo": "a2c"})
    with pytest.raises(CheckpointError, match="checkpoint holds 2 seeds, this run has 3"):
        Checkpointer(path).restore(like, _expected("ppo", PPO_TINY, 3))


def test_a_changed_state_structure_is_named_leaf_by_leaf(saved_ppo):
    """Same config, different state (as after a code change): the differing leaves are listed."""
    path, _, keys = saved_ppo
    like = _abstract(dataclasses.replace(PPO_TINY, hidden_sizes=(16,)), keys)
    with pytest.raises(CheckpointError) as err:
        Checkpointer(path).restore(like, _expected("ppo", PPO_TINY, 2))
    message = str(err.value)
    assert "checkpoint state does not match" in message
    assert ".params['actor']" in message and "[2, 4, 8]" in message and "[2, 4, 16]" in message


class _NamedTuplePPOState(NamedTuple):
    """PPOState as it was before `OnPolicyState`: the same fields, `opt_state` second."""

    params: dict
    opt_state: Any
    env: Any
    obs_stats: Any
    key: Any
    update: Any
    reward_scaling: Any = None


@pytest.mark.parametrize("scale_rewards", [True, False])
def test_a_checkpoint_of_the_namedtuple_state_restores_into_the_dataclass_by_path(tmp_path, scale_rewards):
    """Checkpoints written before the on-policy states shared `OnPolicyState` hold the same
    leaves under the same paths in another order (`reward_scaling=None`: no leaves, a `None`
    in orbax's tree): they restore leaf by leaf into today's `PPOState`."""
    config = dataclasses.replace(PPO_TINY, scale_rewards=scale_rewards)
    init, run = compile_seed_functions(ppo.make_trainer(config))
    keys = seed_keys(0, [0, 1])
    state, _ = run(init(keys, config.hparams), config.hparams, 1)
    old = _NamedTuplePPOState(**{f.name: getattr(state, f.name) for f in dataclasses.fields(state)})
    old_order, new_order = (tree_signature(s) for s in (old, state))
    assert old_order != new_order and sorted(old_order) == sorted(new_order), "not a reordering: a weak test"
    saver = Checkpointer(tmp_path)
    saver.save(1, old, {**_expected("ppo", config, 2), "seeds": [0, 1]})
    saver.close()
    restored, meta = Checkpointer(tmp_path).restore(jax.eval_shape(init, keys, config.hparams),
                                                    _expected("ppo", config, 2))
    assert type(restored) is ppo.PPOState and meta["tree"] == old_order
    assert leaves_equal(restored, state)


def test_missing_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        Checkpointer(tmp_path / "none").restore(None, {})


def test_the_command_line_drops_exactly_the_echoes_of_a_reported_checkpoint_failure():
    """`quiet_orbax_failure_noise`'s asyncio filter: the errors of a failed restore's other
    reads (futures) and of a failed background write (tasks) were already reported once;
    any other asyncio record passes."""
    import logging

    from pgjax.records.checkpoint import _drop_unretrieved_task_errors

    def record(msg):
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)

    assert not _drop_unretrieved_task_errors(record("Future exception was never retrieved"))
    assert not _drop_unretrieved_task_errors(record("Task exception was never retrieved"))
    assert _drop_unretrieved_task_errors(record("Executing <Task ...> took 0.2 seconds"))
