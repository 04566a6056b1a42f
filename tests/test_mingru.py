"""The minGRU core: the parallel-scan linear recurrence against a NumPy loop (with resets, any
trailing batch dims, with and without jit), minGRU's equations against a NumPy loop, and the
core stepped one step at a time (acting) against the scanned sequence (training)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import config as cfg
from pgjax.algos import ppo
from pgjax.algos.actor_critic import init_actor_critic, make_actor_critic
from pgjax.envs import make_vec_env
from pgjax.kernels.recurrence import linear_recurrence
from pgjax.networks import mingru
from pgjax.networks.cores import CORES


def numpy_linear_recurrence(a, b, h0, resets):
    """`h_t = a_t h_{t-1} + b_t`, one step and one column at a time in float64, the state
    zeroed by hand before step t where `resets[t]` (leading dims of `a`'s batch dims)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    h, out = np.array(h0, np.float64), np.zeros_like(a)
    for t in range(a.shape[0]):
        for index in np.ndindex(*a.shape[1:]):
            if resets[(t, *index[:resets.ndim - 1])]:
                h[index] = 0.0
            h[index] = a[(t, *index)] * h[index] + b[(t, *index)]
        out[t] = h
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_mingru_loop(h0, x_proj, resets):
    """minGRU (Feng et al., 2024) written out in float64: `z = sigmoid(x_z)`, `h~ = x_h`,
    `h_t = (1 - z) h_{t-1} + z h~`, the state zeroed before step t where `resets[t, b]`."""
    x_proj = np.asarray(x_proj, np.float64)
    size = x_proj.shape[-1] // 2
    h, out = np.array(h0, np.float64), []
    for t in range(x_proj.shape[0]):
        h[np.asarray(resets[t])] = 0.0
        z, candidate = _sigmoid(x_proj[t, :, :size]), x_proj[t, :, size:]
        h = (1.0 - z) * h + z * candidate
        out.append(h.copy())
    return np.stack(out)


# (shape of a and b, rank of resets): one batch dim, several, none; resets on some or all of them.
SHAPES = [((37, 3, 5), 2), ((16, 2, 3, 4), 2), ((9, 2, 3, 4), 4), ((23,), 1), ((1, 4, 2), 2)]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("shape, reset_rank", SHAPES, ids=str)
def test_linear_recurrence_with_resets_equals_a_numpy_loop(shape, reset_rank, jit):
    rng = np.random.default_rng(sum(shape))
    a = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    b = rng.normal(size=shape).astype(np.float32)
    h0 = rng.normal(size=shape[1:]).astype(np.float32)
    resets = rng.random(shape[:reset_rank]) < 0.2
    resets[0] = False  # the first step starts from h0 (checked below), the middle ones reset
    fn = jax.jit(linear_recurrence) if jit else linear_recurrence
    got = fn(a, b, h0, resets)
    np.testing.assert_allclose(got, numpy_linear_recurrence(a, b, h0, resets), atol=1e-5, rtol=1e-5)
    no_resets = np.zeros_like(resets)
    np.testing.assert_allclose(fn(a, b, h0, no_resets), numpy_linear_recurrence(a, b, h0, no_resets), atol=1e-5)
    np.testing.assert_allclose(fn(a, b, h0), numpy_linear_recurrence(a, b, h0, no_resets), atol=1e-5)
    if resets.any():  # the resets matter
        assert not np.allclose(got, fn(a, b, h0), atol=1e-3)
    # A reset before step 0 discards h0.
    first = resets.copy()
    first[0] = True
    np.testing.assert_allclose(fn(a, b, 100.0 * h0, first)[0], b[0], atol=1e-6)


def test_linear_recurrence_names_a_bad_argument():
    a = np.zeros((4, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"linear_recurrence: h0 has shape \[2\]; expected one step of a, shape \[3, 2\]"):
        linear_recurrence(a, a, np.zeros(2))
    with pytest.raises(ValueError, match=r"linear_recurrence: arguments must share one shape; got a \[4, 3, 2\], b \[4, 3\]"):
        linear_recurrence(a, a[..., 0], np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"linear_recurrence: resets has shape \[4, 2\]; expected the leading dims"):
        linear_recurrence(a, a, np.zeros((3, 2)), np.zeros((4, 2), bool))


@pytest.mark.parametrize("jit", [False, True])
def test_mingru_scan_with_resets_equals_a_numpy_loop(jit):
    rng = np.random.default_rng(1)
    t, b, size = 11, 3, 4
    h0 = rng.normal(size=(b, size)).astype(np.float32)
    x_proj = (3.0 * rng.normal(size=(t, b, 2 * size))).astype(np.float32)  # gates near 0 and 1 too
    resets = rng.random((t, b)) < 0.25
    resets[0, 0] = True  # a reset before the very first step too
    fn = jax.jit(mingru.mingru_scan) if jit else mingru.mingru_scan
    np.testing.assert_allclose(fn(h0, x_proj, resets), numpy_mingru_loop(h0, x_proj, resets), atol=1e-5)


def _tiny_mingru(num_envs=3):
    config = cfg.from_dict(ppo.CONFIG, {"env_id": "MemoryChain-bsuite", "num_envs": num_envs, "num_steps": 9,
                                        "hidden_sizes": [8], "core": "mingru", "core_size": 6,
                                        "num_minibatches": 1})
    env = make_vec_env(config.env_id, num_envs)
    networks = make_actor_critic(config, env)
    return networks, init_actor_critic(networks, env, jax.random.PRNGKey(4))


def test_stepping_equals_the_scanned_sequence():
    """Acting steps the core one step at a time and resets its carry after episode ends
    (as `rollout` does); an update unrolls the stored sequence by the parallel scan from the
    carry at its start (`sequence_inputs`). Both give the same states and outputs."""
    networks, params = _tiny_mingru()
    core = networks.core
    assert isinstance(core, mingru.MinGRU) and CORES["mingru"] is mingru.MinGRU
    rng = np.random.default_rng(2)
    t, b = 9, 3
    obs = jnp.asarray(rng.normal(size=(t, b, 3)), jnp.float32)
    done = np.zeros((t, b), bool)
    done[[2, 3, 6], [0, 0, 1]] = True  # two resets in a row, one in another column, none in the third
    start = {name: jnp.asarray(rng.normal(size=(b, 6)), jnp.float32) for name in ("actor", "critic")}

    carry, stepped = start, {"logits": [], "value": [], "actor": [], "critic": []}
    for step in range(t):
        carry, dist = core.step(networks.actor, params["actor"], carry, obs[step])
        carry, value = core.step(networks.critic, params["critic"], carry, obs[step])
        for name, x in (("logits", dist.logits), ("value", value), ("actor", carry["actor"]),
                        ("critic", carry["critic"])):
            stepped[name].append(x)
        carry = core.reset(carry, jnp.asarray(done[step]))

    seq = core.sequence_inputs(obs, jnp.asarray(done), start)
    dist, actor_hidden = networks.actor.apply(params["actor"], seq, return_hidden=True)
    values, critic_hidden = networks.critic.apply(params["critic"], seq, return_hidden=True)
    scanned = {"logits": dist.logits, "value": values, "actor": actor_hidden, "critic": critic_hidden}
    for name, got in scanned.items():
        np.testing.assert_allclose(jnp.swapaxes(got, 0, 1), np.stack(stepped[name]), atol=1e-5, err_msg=name)
    # The resets are in there: from the start state without them, the critic's states differ.
    seq_without = core.sequence_inputs(obs, jnp.zeros((t, b), bool), start)
    _, without = networks.critic.apply(params["critic"], seq_without, return_hidden=True)
    assert not np.allclose(without, critic_hidden, atol=1e-3)
