"""The minGRU core: the parallel-scan linear recurrence against a NumPy loop (with resets, any
trailing batch dims, with and without jit), minGRU's equations against a NumPy loop, the core
stepped one step at a time (acting) against the scanned sequence (training), and its gate
bias's chrono initialisation (against NumPy; kept through the other initialisers' redraws; the
`zeros` option is the previous init; the GRU untouched)."""

import dataclasses

import flax.linen as nn
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
from pgjax.networks.initializers import chrono_bias
from pgjax.networks.recurrent import RecurrentNetwork, Sequences


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


def _tiny_config(num_envs=3, **overrides):
    return cfg.from_dict(ppo.PPOConfig, {"env_id": "MemoryChain-bsuite", "num_envs": num_envs, "num_steps": 9,
                                         "hidden_sizes": [8], "core": "mingru", "core_size": 6,
                                         "num_minibatches": 1, **overrides})


def _init(config, networks=None, key=4):
    env = make_vec_env(config.env_id, config.num_envs, **config.env_kwargs)
    networks = networks or make_actor_critic(config, env)
    return networks, init_actor_critic(networks, env, jax.random.PRNGKey(key), config.init, config.bias_init_max)


def _tiny_mingru(num_envs=3):
    return _init(_tiny_config(num_envs))


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


# --- the gate bias's chrono initialisation ------------------------------------------------


def numpy_chrono(size, timescale):
    """Tallec & Ollivier (2018), evenly spaced: `b_i = -log(u_i)`, `u_i` from 1 to `T - 1`."""
    t = max(timescale, 2)
    return np.array([-np.log(1.0 + (t - 2.0) * i / max(size - 1, 1)) for i in range(size)])


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("size, timescale", [(6, 9), (32, 84), (1, 50), (5, 2), (4, 1)])
def test_chrono_bias_follows_the_formula(size, timescale, jit):
    init = chrono_bias(timescale)
    fn = jax.jit(init, static_argnums=1) if jit else init
    bias = np.asarray(fn(jax.random.PRNGKey(0), (size,)))
    np.testing.assert_allclose(bias, numpy_chrono(size, timescale), atol=1e-6, rtol=1e-6)
    # Any leading dims get the same row.
    np.testing.assert_allclose(fn(jax.random.PRNGKey(0), (3, size)), np.broadcast_to(bias, (3, size)), atol=1e-6)


def _gate_and_candidate(params, name):
    bias = np.asarray(params[name]["params"]["input_projection"]["bias"])
    return np.split(bias, 2)


@pytest.mark.parametrize("overrides, timescale", [({}, 9), ({"core_timescale": 40, "core_size": 16}, 40)])
def test_both_networks_start_with_the_chrono_gate_and_retention_spread_from_half_to_1_minus_1_over_t(overrides, timescale):
    config = _tiny_config(**overrides)
    networks, params = _init(config)
    assert networks.core == mingru.MinGRU(config.core_size, "chrono", timescale)
    for name in ("actor", "critic"):
        gate, candidate = _gate_and_candidate(params, name)
        np.testing.assert_allclose(gate, numpy_chrono(config.core_size, timescale), atol=1e-6)
        assert (candidate == 0).all()
        # The retention `a = 1 - z` at zero input, from the model's own coefficients.
        a, _ = mingru.mingru_coefficients(np.concatenate([gate, candidate]))
        a = np.asarray(a, np.float64)
        np.testing.assert_allclose([a.min(), a.max()], [0.5, 1.0 - 1.0 / timescale], atol=1e-6)
        # Time constants 1 / (1 - a) evenly spaced from 2 to T.
        np.testing.assert_allclose(1.0 / (1.0 - a), np.linspace(2.0, timescale, config.core_size), rtol=1e-4)


def _context_signal(networks, params, length):
    """MemoryChain's context bit in the actor's state `length` steps after it was shown, relative
    to step 0: `|h_L(+1) - h_L(-1)| / |h_0(+1) - h_0(-1)|` for two episodes that differ in it only."""
    obs = np.zeros((2, length + 1, 3), np.float32)
    obs[:, :, 0] = 1.0 - np.arange(length + 1) / length
    obs[:, 0, 2] = [1.0, -1.0]
    size = networks.core.size
    seq = Sequences(jnp.asarray(obs), jnp.zeros((2, length + 1), bool), {"actor": jnp.zeros((2, size))})
    _, h = networks.actor.apply(params["actor"], seq, return_hidden=True)
    d = np.linalg.norm(np.asarray(h[0] - h[1]), axis=-1)
    return d[length] / d[0]


def test_the_chrono_gate_keeps_a_context_bit_over_twenty_steps_where_zeros_loses_it():
    # At init, the gate alone decides how much of step 0 survives 20 steps. Measured (median of
    # 10 inits, the bench's 64-unit torso and 32-unit core): chrono 0.14, zeros 1.2e-6 (~0.5^20).
    # Every init here must be above 1e-2 with chrono and below 1e-4 with zeros.
    for gate_init, ok in (("chrono", lambda r: r > 1e-2), ("zeros", lambda r: r < 1e-4)):
        config = _tiny_config(2, env_kwargs={"memory_length": 20}, num_steps=84, hidden_sizes=[64], core_size=32,
                              core_gate_init=gate_init)
        networks = None
        for key in range(3):
            networks, params = _init(config, networks, key)
            ratio = _context_signal(networks, params, 20)
            assert ok(ratio), (gate_init, key, ratio)


def test_the_chrono_gate_survives_lecun_kernels_and_uniform_biases():
    config = _tiny_config(init="lecun", bias_init_max=0.05, core_size=16)
    _, params = _init(config)
    _, plain = _init(_tiny_config(core_size=16))
    for name in ("actor", "critic"):
        gate, candidate = _gate_and_candidate(params, name)
        np.testing.assert_allclose(gate, numpy_chrono(16, 9), atol=1e-6)
        assert candidate.min() >= 0.0 and candidate.max() < 0.05 and np.unique(candidate).size == 16
        # The redraws did happen: LeCun kernels, not the orthogonal ones.
        kernel = params[name]["params"]["MLP_0"]["Dense_0"]["kernel"]
        assert not np.allclose(kernel, plain[name]["params"]["MLP_0"]["Dense_0"]["kernel"])


class PreviousMinGRUNetwork(RecurrentNetwork):
    """`MinGRUNetwork` as it was before the gate init: flax's zero bias on the projection."""

    def unroll(self, x, h0, resets):
        x_proj = nn.Dense(2 * self.core_size, name="input_projection")(x)
        hiddens = mingru.mingru_scan(h0, jnp.swapaxes(x_proj, 0, 1), jnp.swapaxes(resets, 0, 1))
        return jnp.swapaxes(hiddens, 0, 1)


def _previous(network):
    fields = {f.name: getattr(network, f.name) for f in dataclasses.fields(RecurrentNetwork)
              if f.name not in ("parent", "name")}
    return PreviousMinGRUNetwork(**fields)


def _same(a, b) -> bool:
    """Two parameter trees of one structure, bit for bit."""
    return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


def _without_projection(params):
    return {k: v for k, v in params["params"].items() if k != "input_projection"}


@pytest.mark.parametrize("overrides", [{}, {"init": "lecun", "bias_init_max": 0.05}])
def test_zeros_is_the_previous_init_and_chrono_changes_only_the_gate_bias(overrides):
    config = _tiny_config(core_gate_init="zeros", **overrides)
    networks, zeros = _init(config)
    previous_networks = networks._replace(actor=_previous(networks.actor), critic=_previous(networks.critic))
    _, previous = _init(config, previous_networks)
    assert _same(zeros, previous)
    _, chrono = _init(dataclasses.replace(config, core_gate_init="chrono"))
    for name in ("actor", "critic"):
        gate_z, cand_z = _gate_and_candidate(zeros, name)
        gate_c, cand_c = _gate_and_candidate(chrono, name)
        np.testing.assert_array_equal(cand_z, cand_c)
        assert not np.allclose(gate_z, gate_c)
        assert _same(_without_projection(zeros[name]), _without_projection(chrono[name]))
        np.testing.assert_array_equal(zeros[name]["params"]["input_projection"]["kernel"],
                                      chrono[name]["params"]["input_projection"]["kernel"])


def test_the_gru_ignores_the_gate_init():
    base = _tiny_config(core="gru")
    networks, params = _init(base)
    assert type(networks.core).__name__ == "GRU" and networks.core.size == 6
    for overrides in ({"core_gate_init": "zeros"}, {"core_timescale": 50}):
        _, other = _init(dataclasses.replace(base, **overrides))
        assert _same(params, other)
    for name in ("actor", "critic"):
        assert (np.asarray(params[name]["params"]["input_projection"]["bias"]) == 0).all()


@pytest.mark.parametrize("key, value, allowed", [("core_gate_init", "ones", "one of 'chrono', 'zeros'"),
                                                 ("core_timescale", 1, "0 (num_steps) or >= 2")])
def test_a_bad_gate_init_is_refused_naming_the_field(key, value, allowed):
    with pytest.raises(cfg.ConfigError) as err:
        _tiny_config(**{key: value})
    assert str(err.value).startswith(f"{key}={value!r} is out of range: must be {allowed}")
    assert cfg.GATE_INITS == mingru.GATE_INITS
