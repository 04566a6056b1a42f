"""Typed PRNG keys in stored state (pgjax/records/prng_keys.py): every store (checkpoints,
sweep-cell files) gives them back as keys of their own implementation, also when the
restore target is built from shapes alone (`jax.ShapeDtypeStruct`s, as a resume on a
process that holds no state builds it), which `jax.random.key_impl` refuses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.records import cell_policies
from pgjax.records.checkpoint import Checkpointer
from pgjax.records.prng_keys import is_typed_key, key_data_tree, key_impl_of, rewrap_leaf

IMPLS = ["threefry2x32", "rbg"]


def _state(impl):
    return {"key": jax.random.split(jax.random.key(3, impl=impl), 4), "raw": jax.random.PRNGKey(5),
            "w": jnp.arange(6.0).reshape(2, 3)}


def _shapes(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def _same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert is_typed_key(x) == is_typed_key(y)
        if is_typed_key(x):
            assert key_impl_of(x) == key_impl_of(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("impl", IMPLS)
def test_the_implementation_is_read_off_arrays_tracers_and_shapes(impl):
    keys = jax.random.split(jax.random.key(0, impl=impl), 2)
    expected = jax.random.key_impl(keys)
    assert key_impl_of(keys) == expected
    assert key_impl_of(jax.ShapeDtypeStruct(keys.shape, keys.dtype)) == expected
    seen = []
    jax.jit(lambda k: seen.append(key_impl_of(k)) or k)(keys)
    assert seen == [expected]
    assert not is_typed_key(jax.random.PRNGKey(0)) and not is_typed_key(np.zeros(2))


@pytest.mark.parametrize("impl", IMPLS)
def test_raw_data_and_back_is_the_identity(impl):
    state = _state(impl)
    data = key_data_tree(state)
    assert not any(is_typed_key(x) for x in jax.tree.leaves(data))
    _same(jax.tree.map(rewrap_leaf, _shapes(state), data), state)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_checkpoint_restores_typed_keys_into_a_target_built_from_shapes(tmp_path, impl):
    state = _state(impl)
    expected = {"algo": "test", "config": {}, "num_seeds": 1}
    saver = Checkpointer(tmp_path / "checkpoints")
    saver.save(1, state, expected)
    saver.close()
    for like in (state, _shapes(state)):
        restored, meta = Checkpointer(tmp_path / "checkpoints").restore(like, expected)
        assert meta["updates_done"] == 1
        _same(restored, state)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_cell_file_reads_typed_keys_back_into_a_target_built_from_shapes(tmp_path, impl):
    state = _state(impl)
    path = tmp_path / "cell-00000.state.npz"
    cell_policies.write_tree(path, state)
    for like in (state, _shapes(state)):
        _same(cell_policies.read_tree(path, like), state)
