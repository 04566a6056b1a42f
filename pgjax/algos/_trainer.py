"""Turn an algorithm's `init` and `update` into the `Trainer` every algorithm exposes.

An algorithm supplies two module-level functions, `init(config, env, networks, key,
hparams) -> state` and `update(config, env, networks, hparams, state, _) -> (state,
metrics)`; `run` scans `update` and `train` is `init` followed by `run` over the budget.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pgjax.algos.contract import Trainer, TrainOutput


def all_finite(state, metrics) -> jax.Array:
    """True when the parameters and every loss metric are finite (bool scalar).

    Cheap enough to run after every update: one reduction over the parameters and loss
    metrics concatenated, one fused loop for XLA to compile instead of one per leaf. Other
    metrics may be nan on purpose (an update in which no episode finished has a nan
    return), so only metrics named like a loss are checked.
    """
    leaves = [x for x in jax.tree.leaves(state.params) if jnp.issubdtype(x.dtype, jnp.inexact)]
    leaves += [x for name, x in metrics.items() if "loss" in name]
    return jnp.all(jnp.isfinite(jnp.concatenate([jnp.ravel(x) for x in leaves])))


def _update_with_finite_check(update, config, env, networks, hparams, state, x):
    state, metrics = update(config, env, networks, hparams, state, x)
    return state, {**metrics, "finite": all_finite(state, metrics)}


def run_updates(update, config, env, networks, state, hparams, num_updates: int):
    """`num_updates` iterations of `update` in one `lax.scan`; metrics stack to `[num_updates]`.

    Adds the metric `finite` (see `all_finite`): a sweep finds the first update at which a
    cell diverged from it, without stopping or perturbing the other cells.
    """
    step = functools.partial(_update_with_finite_check, update, config, env, networks, hparams)
    if num_updates != 1:
        return jax.lax.scan(step, state, None, length=num_updates)
    return _one_update_loop(step, state)


def _one_update_loop(step, state):
    """`lax.scan(step, state, None, length=1)`, as a loop XLA cannot see to be of one trip.

    Why: XLA replaces a loop of one trip by its body, which it then fuses with whatever
    surrounds it; inside a sweep's or a run's group map (`sharding.cell_function`, one seed
    per group) that body rounded differently from the body of a longer scan (seen on an
    AVX-512 CPU: the metrics, then the parameters), so a run cut into 1-update chunks
    drifted from the same run in longer chunks. With a bound XLA cannot read, the loop
    stays a loop and compiles to the same body as every longer chunk.
    """
    rows = jax.eval_shape(lambda s: step(s, None)[1], state)
    table = jax.tree.map(lambda m: jnp.zeros((1, *m.shape), m.dtype), rows)

    def body(i, carry):
        state, table = carry
        state, metrics = step(state, None)
        return state, jax.tree.map(lambda t, m: jax.lax.dynamic_update_index_in_dim(t, m, i, 0), table, metrics)

    one = jax.lax.optimization_barrier(jnp.int32(1))  # a value, not a constant, for XLA
    return jax.lax.fori_loop(0, one, body, (state, table))


def train(init, update, config, env, networks, key, hparams=None) -> TrainOutput:
    """The whole run: `init`, then `config.num_updates` updates (config.hparams if none given)."""
    hparams = config.hparams if hparams is None else hparams
    state = init(config, env, networks, key, hparams)
    state, metrics = run_updates(update, config, env, networks, state, hparams, config.num_updates)
    return TrainOutput(state, metrics)


def assemble_trainer(config, env, networks, init, update, act_fn, pieces=None) -> Trainer:
    """Bind the static pieces into `Trainer(init, run, train, act)`.

    `init` and `update` take `(config, env, pieces)` first; `pieces` defaults to `networks`
    (the off-policy loop passes its learner and replay buffer instead). `Trainer.networks`
    is always the flax modules.
    """
    bound = (config, env, networks if pieces is None else pieces)
    return Trainer(
        config=config,
        env=env,
        networks=networks,
        init=functools.partial(init, *bound),
        run=functools.partial(run_updates, update, *bound),
        train=functools.partial(train, init, update, *bound),
        act=act_fn,
    )


def train_function(make_trainer):
    """An algorithm's `make_train(config)`: `make_trainer(config).train`, the whole run as
    `train(key, hparams=None) -> TrainOutput`, to jit and vmap over keys and hparams."""

    def make_train(config):
        """`train(key, hparams=None) -> TrainOutput`; jit it, vmap it over keys and hparams."""
        return make_trainer(config).train

    return make_train
