"""PPG: the joint auxiliary loss against a NumPy oracle (with and without jit, categorical and
diagonal Gaussian policies), the phase structure, the buffered value targets, continuous
actions and a CNN torso, and its config rules. The trainer contract (determinism, chunks
that end mid-phase, vmap, checkpoints) is tests/test_contract.py's."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from contract import TINY as CONTRACT_TINY
from contract import contract_trainer

from pgjax import config as cfg
from pgjax.algos import ppg
from pgjax.algos.actor_critic import gae_batch, sample_step
from pgjax.algos.rollout import rollout
from pgjax.kernels.distributions import Categorical, DiagGaussian
from pgjax.kernels.losses import ppg_joint_loss
from pgjax.kernels.trust_region import mean_kl

TINY = CONTRACT_TINY["ppg"]  # phases of 2 updates, 6 updates


def _policies(kind, n, rng):
    """`(old, new, oracle KLs [n])`: two policies over the same n states and their KL(old || new)."""
    if kind == "categorical":
        old, new = (rng.normal(scale=2.0, size=(n, 5)).astype(np.float32) for _ in range(2))
        return Categorical(old), Categorical(new), ref.categorical_kl_rows(old, new)
    mean_old, mean_new = (rng.normal(size=(n, 3)).astype(np.float32) for _ in range(2))
    log_std_old, log_std_new = (rng.uniform(-1.0, 0.5, size=(n, 3)).astype(np.float32) for _ in range(2))
    kls = ref.diag_gaussian_kl_rows(mean_old, log_std_old, mean_new, log_std_new)
    return DiagGaussian(mean_old, log_std_old), DiagGaussian(mean_new, log_std_new), kls


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_joint_loss_matches_the_numpy_oracle(kind, jit):
    rng = np.random.default_rng(0)
    n, beta_clone = 64, 0.7
    old, new, kls = _policies(kind, n, rng)
    aux_values = rng.normal(size=n).astype(np.float32)
    targets = (3.0 * rng.normal(size=n)).astype(np.float32)
    loss_fn = jax.jit(ppg_joint_loss) if jit else ppg_joint_loss
    with jax.numpy_rank_promotion("raise"):
        loss, metrics = loss_fn(aux_values, targets, old, new, beta_clone)
    joint, aux, kl = ref.ppg_joint_loss(aux_values, targets, kls, beta_clone)
    assert kl > 0.1 and aux > 0.1  # both terms matter
    np.testing.assert_allclose(float(loss), joint, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["aux_value_loss"]), aux, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["clone_kl"]), kl, rtol=1e-5)
    assert float(metrics["joint_loss"]) == float(loss)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_joint_loss_gradients_flow_to_the_new_policy_and_the_aux_head_only(kind):
    rng = np.random.default_rng(1)
    n = 32
    old, new, _ = _policies(kind, n, rng)
    aux_values = rng.normal(size=n).astype(np.float32)
    targets = rng.normal(size=n).astype(np.float32)
    grad_values, grad_old, grad_new = jax.grad(
        lambda v, o, d: ppg_joint_loss(v, targets, o, d, 1.0)[0], argnums=(0, 1, 2)
    )(jnp.asarray(aux_values), old, new)
    # d/dV_aux of 1/2 mean (V_aux - y)^2 is (V_aux - y) / n.
    np.testing.assert_allclose(grad_values, (np.float64(aux_values) - targets) / n, rtol=1e-5, atol=1e-7)
    assert all(np.all(g == 0) for g in jax.tree.leaves(grad_old))  # pi_old is a constant
    assert any(np.abs(g).max() > 1e-3 for g in jax.tree.leaves(grad_new))
    # At pi = pi_old the cloning term is at its minimum: no gradient from it.
    same = jax.grad(lambda d: ppg_joint_loss(aux_values, targets, old, d, 1.0)[0])(old)
    assert max(np.abs(g).max() for g in jax.tree.leaves(same)) < 1e-6


@functools.cache
def _one_update_chunks():
    """The contract's small run (phases of 2) cut into 1-update chunks: `(tiny, states [7], metrics
    [6])`, states[0] the initial one. One compiled chunk serves every test here."""
    tiny = contract_trainer("ppg")
    states, rows = [tiny.init(jax.random.PRNGKey(0), TINY.hparams)], []
    for _ in range(TINY.num_updates):
        state, metrics = tiny.run(states[-1], TINY.hparams, 1)
        states.append(state)
        rows.append(jax.tree.map(lambda x: np.asarray(x)[0], metrics))
    return tiny, states, {name: np.array([row[name] for row in rows]) for name in rows[0]}


def test_the_auxiliary_phase_ends_every_phase_and_alone_trains_the_aux_head():
    _, states, metrics = _one_update_chunks()
    kernels = [np.asarray(s.params["actor"]["params"]["aux_value"]["kernel"]) for s in states]
    np.testing.assert_array_equal(kernels[1], kernels[0])  # update 1: a policy-phase iteration only
    assert not np.allclose(kernels[2], kernels[1])  # update 2 ends the phase: the auxiliary phase ran
    np.testing.assert_array_equal(kernels[3], kernels[2])
    np.testing.assert_array_equal(metrics["phase_iteration"], [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(metrics["aux_phase"], [0, 1, 0, 1, 0, 1])
    for name in ("aux_loss", "aux_value_loss", "aux_critic_loss", "aux_grad_norm"):
        assert np.all(metrics[name][0::2] == 0) and np.all(metrics[name][1::2] > 0), name


def test_the_buffer_holds_each_rollouts_observations_and_lambda_returns():
    """The first update's rollout, replayed with the update's own key split, fills slot 0:
    its raw observations and its GAE targets (truncations bootstrapped by `gae_batch`)."""
    tiny, states, _ = _one_update_chunks()
    start, after = states[0], states[1]
    hp, trainer = TINY.hparams, tiny.trainer
    _, rollout_key, _, _ = jax.random.split(start.key, 4)
    policy = functools.partial(sample_step, TINY, trainer.env, trainer.networks, start.params, start.obs_stats)
    _, traj = rollout(trainer.env, policy, start.env, rollout_key, TINY.num_steps)
    batch = gae_batch(TINY, trainer.networks, hp, start.params, start.obs_stats, traj, start.env.hidden)
    np.testing.assert_array_equal(after.buffer.obs[0], np.asarray(traj.obs).reshape(TINY.batch_size, -1))
    np.testing.assert_allclose(after.buffer.target[0], batch.target, rtol=1e-6, atol=1e-6)
    assert np.all(np.asarray(after.buffer.target[1]) == 0)  # slot 1 not written yet
    np.testing.assert_array_equal(states[2].buffer.obs[0], after.buffer.obs[0])  # kept through the phase


def test_behaviour_cloning_holds_the_policy_in_the_auxiliary_phase():
    """Without the cloning term (beta_clone = 0) the value distillation moves the policy through
    the shared torso; with it (beta_clone = 1) the policy stays near pi_old. Measured as
    KL(before || after) over an update that ends a phase (its policy-phase steps are the same
    in both runs), on the buffer's first rollout. The logits
    layer is scaled up so that the policy responds to its features as a trained one does (at
    initialisation its gain 0.01 hides any change of the torso). Measured: 3.6e-3 and 5.9e-5."""
    tiny, states, _ = _one_update_chunks()
    params = jax.tree.map(lambda x: x, states[1].params)
    logits = params["actor"]["params"]["Dense_0"]
    logits["kernel"] = logits["kernel"] * 100.0
    start = states[1].replace(params=params)
    obs = start.buffer.obs[0]
    kls = {}
    for beta_clone in (0.0, 1.0):
        hp = dataclasses.replace(TINY.hparams, beta_clone=beta_clone, aux_learning_rate=1e-2)
        after, metrics = tiny.run(start, hp, 1)  # the phase's last iteration and its auxiliary phase
        assert float(metrics["aux_phase"][0]) == 1.0
        kls[beta_clone] = float(mean_kl(tiny.trainer.networks.actor.apply, params["actor"], after.params["actor"], obs))
    assert kls[0.0] > 1e-3 and kls[1.0] < kls[0.0] / 10, kls


def test_continuous_actions_and_a_cnn_torso_train():
    pendulum = dataclasses.replace(TINY, env_id="Pendulum-v1")
    catch = dataclasses.replace(TINY, env_id="Catch-bsuite", torso="cnn", cnn_channels=(4,), hidden_sizes=(16,))
    for config in (pendulum, catch):
        trainer = ppg.make_trainer(config)
        out = jax.jit(trainer.train)(jax.random.PRNGKey(0))
        assert np.all(out.metrics["finite"]) and np.all(np.isfinite(out.metrics["aux_loss"])), config.env_id
        assert float(out.metrics["aux_loss"][-1]) > 0
        obs = jnp.zeros((2, *trainer.env.obs_shape))
        dist, values = trainer.networks.actor.apply(out.state.params["actor"], obs, with_aux_value=True)
        assert values.shape == (2,)
        assert isinstance(dist, DiagGaussian if config.env_id == "Pendulum-v1" else Categorical)


@pytest.mark.parametrize("values, message", [
    ({"core": "gru"}, "core='gru' is not supported by PPGConfig; use core = 'none'"),
    ({"aux_minibatches": 3}, "aux_minibatches=3 does not divide the batch num_envs * num_steps = 4 * 16 = 64"),
    ({"policy_iterations": 7}, "policy_iterations=7 is more than the run's 6 updates (total_timesteps=384)"),
    ({"hparams": {"beta_clone": -1.0}}, "hparams.beta_clone=-1.0 is out of range: must be >= 0"),
])
def test_bad_settings_fail_with_one_line_naming_the_field(values, message):
    base = {k: v for k, v in cfg.to_dict(TINY).items() if k != "hparams"}
    with pytest.raises(cfg.ConfigError) as err:
        ppg.make_trainer(cfg.from_dict(ppg.PPGConfig, {**base, **values}))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
