"""The on-policy states share one typed core (`pgjax.algos._on_policy.OnPolicyState`): every
on-policy algorithm's state is a subclass that adds only its own fields, and the generic code
that reads a state's fields by name sees the same names in on- and off-policy states."""

from __future__ import annotations

import dataclasses

import jax
import pytest
from contract import TINY
from flax import struct

from pgjax.algos import ALGORITHMS
from pgjax.algos._on_policy import OnPolicyState, RolloutState
from pgjax.runtime.cells import top_level_fields

ON_POLICY = sorted(name for name, entry in ALGORITHMS.items() if entry.family == "on_policy")
SHARED = [f.name for f in dataclasses.fields(OnPolicyState)]


def _state_shape(name):
    trainer = ALGORITHMS[name].make_trainer(TINY[name])
    return jax.eval_shape(trainer.init, jax.random.PRNGKey(0), trainer.config.hparams)


@pytest.mark.parametrize("name", ON_POLICY)
def test_every_on_policy_state_subclasses_the_core(name):
    state = _state_shape(name)
    names = [f.name for f in dataclasses.fields(state)]
    assert isinstance(state, OnPolicyState) and names[: len(SHARED)] == SHARED
    # every algorithm but REINFORCE (fresh episodes each update) carries its environments
    assert isinstance(state, RolloutState) == (name != "reinforce")
    assert ("env" in names) == (name != "reinforce")
    assert list(top_level_fields(state)) == names


def test_from_core_keeps_the_core_and_refuses_a_missing_field():
    core = OnPolicyState(params={"actor": 1.0}, obs_stats=2.0, key=3.0, update=4, reward_scaling=None)

    @struct.dataclass(kw_only=True)
    class WithCounter(OnPolicyState):
        counter: int

    state = WithCounter.from_core(core, counter=5)
    assert [getattr(state, n) for n in SHARED] == [getattr(core, n) for n in SHARED] and state.counter == 5
    with pytest.raises(TypeError, match="env"):
        RolloutState.from_core(core)  # a core without environments cannot become a RolloutState


def test_top_level_fields_of_an_off_policy_state_and_of_a_bare_leaf():
    state = _state_shape("sac")  # the off-policy loop's NamedTuple
    assert list(top_level_fields(state)) == list(state._fields)
    leaf = jax.numpy.zeros(3)
    assert list(top_level_fields(leaf)) == ["state"]
