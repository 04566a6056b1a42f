"""Checkpoints: for every registered algorithm, "train N" equals "train N/2, save, restore,
train N/2" bit for bit; dropping any part of the state breaks that; mismatches are named."""

import dataclasses

import jax
import pytest
from contract import leaves_equal

from pgjax import config as cfg
from pgjax.algos import ALGORITHMS, ppo
from pgjax.checkpoint import Checkpointer, CheckpointError
from pgjax.experiment import compile_seed_functions, seed_keys

# Small settings tried on every algorithm, each kept only if the algorithm has the field
# and the config still validates (so algorithms added later are covered unchanged).
TINY_CANDIDATES = [
    ("hidden_sizes", [8]), ("num_envs", 2), ("num_steps", 8), ("update_epochs", 1), ("num_minibatches", 1),
    ("batch_size", 8), ("buffer_size", 64), ("learning_starts", 8), ("cg_iters", 3), ("backtrack_iters", 3),
    ("value_iters", 2), ("max_episode_steps", 20),
]
NUM_UPDATES = 4


def tiny_config(module):
    """The algorithm's default config, shrunk field by field, with NUM_UPDATES updates."""
    names = {f.name for f in dataclasses.fields(module.CONFIG)}
    values = {}
    for name, value in TINY_CANDIDATES:
        if name in names:
            try:
                cfg.from_dict(module.CONFIG, {**values, name: value})
            except cfg.ConfigError:
                continue
            values[name] = value
    config = cfg.from_dict(module.CONFIG, values)
    for total in (NUM_UPDATES * config.batch_size, NUM_UPDATES):  # on-policy steps, else updates
        try:
            candidate = cfg.from_dict(module.CONFIG, {**values, "total_timesteps": total})
        except cfg.ConfigError:
            continue
        if candidate.num_updates == NUM_UPDATES:
            return candidate
    return config


def _expected(name, config, num_seeds):
    return {"algo": name, "config": cfg.to_dict(config), "num_seeds": num_seeds}


def _save_restore(tmp_path, name, config, state, like):
    saver = Checkpointer(tmp_path / "ck")
    saver.save(2, state, {**_expected(name, config, 2), "seeds": [0, 1]})
    saver.close()
    loader = Checkpointer(tmp_path / "ck")
    restored, meta = loader.restore(like, _expected(name, config, 2))
    loader.close()
    assert meta["updates_done"] == 2
    return restored


# The default run covers the three kinds of state (on-policy PPO; off-policy TD3 with its
# delay counter and exploration noise; SAC with its temperature); `-m slow` runs the rest.
DEFAULT_RUN = {"ppo", "td3", "sac"}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in DEFAULT_RUN else pytest.mark.slow) for name in sorted(ALGORITHMS)
])
def test_train_n_equals_half_save_restore_half(name, tmp_path):
    """init, N/2 updates, N/2 updates  ==  init, N/2 updates, save, restore, N/2 updates.

    Both sides use the same compiled chunk, as the CLI does; that two chunks equal one
    long run is each algorithm's own contract test (`run(a); run(b) == run(a + b)`).
    """
    module = ALGORITHMS[name]
    config = tiny_config(module)
    trainer = module.make_trainer(config)
    half = config.num_updates // 2
    keys, hp = seed_keys(0, [0, 1]), config.hparams
    init, run = compile_seed_functions(trainer)
    start = init(keys, hp)
    middle, _ = run(start, hp, half)
    end, second = run(middle, hp, half)
    restored = _save_restore(tmp_path, name, config, middle, jax.eval_shape(init, keys, hp))
    assert leaves_equal(restored, middle)
    end_restored, second_restored = run(restored, hp, half)
    assert leaves_equal(end, end_restored)
    assert leaves_equal(second, second_restored)
    assert not leaves_equal(start, end)  # the updates did change the state


# --- dropping any part of the state is visible -------------------------------------------

PPO_TINY = dataclasses.replace(tiny_config(ppo), normalize_obs=True)


@pytest.fixture(scope="module")
def ppo_halves():
    trainer = ppo.make_trainer(PPO_TINY)
    init, run = compile_seed_functions(trainer)
    keys, hp = seed_keys(0, [0, 1]), PPO_TINY.hparams
    fresh = init(keys, hp)
    half, _ = run(fresh, hp, 2)
    end, metrics = run(half, hp, 2)
    return run, fresh, half, end, metrics


@pytest.mark.parametrize("part", ppo.PPOState._fields)
def test_resume_that_drops_a_part_of_the_state_is_caught(ppo_halves, part):
    """Replace one field of the saved state by its initial value: the run then differs."""
    run, fresh, half, end, metrics = ppo_halves
    assert not leaves_equal(getattr(fresh, part), getattr(half, part)), f"{part} did not change: a weak test"
    dropped = half._replace(**{part: getattr(fresh, part)})
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


def test_missing_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        Checkpointer(tmp_path / "none").restore(None, {})
