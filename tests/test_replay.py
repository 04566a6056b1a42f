"""Replay buffer: wrap-around, sampling only filled slots, flags and true next observations
kept, jit and vmap per seed identical to separate runs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.kernels.replay import Batch, example_item, make_replay


def _items(ids, obs_dim=2):
    """Items whose every field encodes its id, so a sample tells where it came from."""
    ids = np.asarray(ids, np.float32)
    return Batch(
        obs=jnp.asarray(np.stack([ids] * obs_dim, axis=-1)),
        action=jnp.asarray(ids[:, None] * 10.0),
        reward=jnp.asarray(ids),
        terminated=jnp.asarray(ids.astype(int) % 3 == 0),
        truncated=jnp.asarray(ids.astype(int) % 3 == 1),
        next_obs=jnp.asarray(np.stack([ids + 0.5] * obs_dim, axis=-1)),
    )


def _filled(capacity, adds, add_size=2):
    replay = make_replay(capacity, min(capacity, 64), add_size)
    state = replay.init(example_item((2,), (1,), discrete=False))
    for i in range(adds):
        state = replay.add(state, _items(1 + add_size * i + np.arange(add_size)))
    return replay, state


def _sampled_ids(replay, state, draws=40):
    keys = jax.random.split(jax.random.PRNGKey(0), draws)
    return np.asarray(jax.jit(jax.vmap(replay.sample, in_axes=(None, 0)))(state, keys).reward).ravel()


def test_samples_only_filled_slots():
    replay, state = _filled(capacity=100, adds=2)  # ids 1..4 stored, 96 empty (zero) slots
    assert int(replay.size(state)) == 4
    ids = _sampled_ids(replay, state)
    assert set(ids.tolist()) == {1.0, 2.0, 3.0, 4.0}  # never an empty slot (id 0), every item reachable


def test_wraps_around_and_keeps_the_newest():
    replay, state = _filled(capacity=5, adds=4)  # ids 1..8 through 5 slots: 4..8 remain
    assert int(replay.size(state)) == 5
    ids = _sampled_ids(replay, state)
    assert set(ids.tolist()) == {4.0, 5.0, 6.0, 7.0, 8.0}
    stored = np.sort(np.asarray(state.experience.reward).ravel())
    np.testing.assert_array_equal(stored, [4, 5, 6, 7, 8])


def test_items_keep_flags_actions_and_true_next_obs_together():
    replay, state = _filled(capacity=7, adds=5)  # wrapped
    batch = replay.sample(state, jax.random.PRNGKey(3))
    ids = np.asarray(batch.reward).astype(int)
    np.testing.assert_array_equal(batch.obs, np.stack([ids, ids], -1))
    np.testing.assert_array_equal(batch.next_obs, np.stack([ids + 0.5, ids + 0.5], -1))
    np.testing.assert_array_equal(batch.action[:, 0], ids * 10.0)
    np.testing.assert_array_equal(batch.terminated, ids % 3 == 0)
    np.testing.assert_array_equal(batch.truncated, ids % 3 == 1)
    assert batch.terminated.dtype == bool and batch.obs.shape == (7, 2)


def test_uniform_over_filled_slots():
    replay, state = _filled(capacity=6, adds=2)  # 4 items
    ids = _sampled_ids(replay, state, draws=2000)  # 12000 draws (batch 6)
    counts = np.array([(ids == i).sum() for i in (1, 2, 3, 4)])
    # Binomial(12000, 1/4): sd ~ 47; 5 sd.
    np.testing.assert_allclose(counts, 3000, atol=240)


def test_jit_matches_eager():
    replay, state = _filled(capacity=5, adds=3)
    add = jax.jit(replay.add)
    sample = jax.jit(replay.sample)
    new_items = _items([40, 41])
    eager, jitted = replay.add(state, new_items), add(state, new_items)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_array_equal(a, b)
    key = jax.random.PRNGKey(5)
    for a, b in zip(replay.sample(eager, key), sample(jitted, key)):
        np.testing.assert_array_equal(a, b)


def test_vmap_over_seeds_equals_each_seed_alone():
    replay = make_replay(8, 8, 2)
    example = example_item((2,), (1,), discrete=False)

    def add_random(offset, state, key):
        ids = offset + jax.random.randint(key, (2,), 0, 50).astype(jnp.float32)
        items = Batch(
            obs=jnp.stack([ids, -ids], -1), action=ids[:, None], reward=ids,
            terminated=ids > offset + 25, truncated=ids < offset + 10, next_obs=jnp.stack([ids, ids], -1),
        )
        return replay.add(state, items), None

    def fill_and_sample(key, offset):
        add_key, sample_key = jax.random.split(key)
        add = functools.partial(add_random, offset)
        state, _ = jax.lax.scan(add, replay.init(example), jax.random.split(add_key, 6))  # 12 items, 8 slots
        return state, replay.sample(state, sample_key)

    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    offsets = jnp.asarray([0.0, 100.0, 200.0])
    batched_state, batched_sample = jax.jit(jax.vmap(fill_and_sample))(keys, offsets)
    for s in range(3):
        state, sample = jax.jit(fill_and_sample)(keys[s], offsets[s])
        for a, b in zip(jax.tree.leaves((state, sample)), jax.tree.leaves((batched_state, batched_sample))):
            np.testing.assert_array_equal(a, b[s])


def test_discrete_actions_are_stored_as_integers():
    item = example_item((4,), (), discrete=True)
    assert item.action.dtype == jnp.int32 and item.action.shape == ()


@pytest.mark.parametrize("args, message", [
    ((10, 32, 1), "capacity=10 must be at least batch_size=32"),
    ((10, 4, 16), "add_size=16"),
    ((0, 4, 1), "capacity=0 must be a positive integer"),
])
def test_bad_sizes_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        make_replay(*args)
