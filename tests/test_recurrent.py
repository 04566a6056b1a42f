"""Recurrent (GRU) policies: the GRU scan against a NumPy loop, hidden-state resets in the
rollout, the truncation bootstrap from the pre-reset state, whole-sequence minibatches,
chunking, seed vmaps, checkpoints, evaluation and config errors. The tests of a trainer run
for every recurrent core (`CORE_NAMES`; minGRU's own numerics are in test_mingru.py)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import leaves_equal

from pgjax import config as cfg
from pgjax.algos import ALGORITHMS, npg, ppo, trpo
from pgjax.algos.actor_critic import init_actor_critic, make_actor_critic, rollout_values
from pgjax.algos.ppo import sgd_epoch
from pgjax.algos.rollout import PolicyStep, reset_env_carry, rollout
from pgjax.envs import make_vec_env
from pgjax.networks import recurrent
from pgjax.records.checkpoint import Checkpointer
from pgjax.runtime.evaluation import RecurrentActFn, policy_act_fn, run_episodes
from pgjax.runtime.experiment import compile_seed_functions, seed_keys
from pgjax.types import Transition

TINY = {"env_id": "MemoryChain-bsuite", "num_envs": 4, "num_steps": 16, "hidden_sizes": [8], "core": "gru", "core_size": 6}
CORE_NAMES = ["gru", "mingru"]
# minGRU keeps the GRU core's carry, resets and update rows (`mingru.MinGRU` subclasses `GRU`);
# only its network differs. Where a test checks the carry's plumbing alone (seed vmaps,
# checkpoints, REINFORCE's chunks), its minGRU compilation runs with -m slow.
CORES_CARRY_ONLY = ["gru", pytest.param("mingru", marks=pytest.mark.slow)]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_gru_loop(h0, x_proj, resets, kernel, bias):
    """Step by step, resetting by hand: the GRU equations written out in float64."""
    h0, x_proj, kernel, bias = (np.asarray(a, np.float64) for a in (h0, x_proj, kernel, bias))
    size = h0.shape[-1]
    h, out = h0.copy(), []
    for t in range(x_proj.shape[0]):
        for b in range(h.shape[0]):
            if resets[t, b]:
                h[b] = 0.0
        w_r, w_z, w_n = kernel[:, :size], kernel[:, size:2 * size], kernel[:, 2 * size:]
        x_r, x_z, x_n = x_proj[t, :, :size], x_proj[t, :, size:2 * size], x_proj[t, :, 2 * size:]
        r = _sigmoid(x_r + h @ w_r)
        z = _sigmoid(x_z + h @ w_z)
        n = np.tanh(x_n + r * (h @ w_n + bias))
        h = (1 - z) * n + z * h
        out.append(h.copy())
    return np.stack(out)


@pytest.mark.parametrize("jit", [False, True])
def test_gru_scan_with_resets_equals_a_numpy_loop(jit):
    rng = np.random.default_rng(0)
    t, b, size = 7, 3, 5
    h0 = rng.normal(size=(b, size)).astype(np.float32)
    x_proj = rng.normal(size=(t, b, 3 * size)).astype(np.float32)
    resets = rng.random((t, b)) < 0.3
    resets[0, 0] = True  # a reset before the very first step too
    kernel = rng.normal(size=(size, 3 * size)).astype(np.float32) / np.sqrt(size)
    bias = rng.normal(size=(size,)).astype(np.float32)
    fn = jax.jit(recurrent.gru_scan) if jit else recurrent.gru_scan
    got = fn(h0, x_proj, resets, kernel, bias)
    np.testing.assert_allclose(got, numpy_gru_loop(h0, x_proj, resets, kernel, bias), atol=1e-5)
    # The resets matter: without them the states differ.
    assert not np.allclose(got, numpy_gru_loop(h0, x_proj, np.zeros_like(resets), kernel, bias), atol=1e-3)


def test_gru_step_matches_flax_gru_cell():
    """Same gate layout as flax's GRUCell, given its parameters."""
    import flax.linen as nn

    cell = nn.GRUCell(4)
    x, h = jnp.ones((2, 3)) * 0.3, jnp.linspace(-1, 1, 8).reshape(2, 4)
    p = cell.init(jax.random.PRNGKey(1), h, x)["params"]
    # flax: input kernels i{r,z,n} (n with bias), hidden kernels h{r,z,n} (only hn has bias).
    x_proj = jnp.concatenate([x @ p[g]["kernel"] + p[g]["bias"][None] for g in ("ir", "iz", "in")], -1)
    kernel = jnp.concatenate([p["hr"]["kernel"], p["hz"]["kernel"], p["hn"]["kernel"]], -1)
    want, _ = cell.apply({"params": p}, h, x)
    np.testing.assert_allclose(recurrent.gru_step(h, x_proj, kernel, p["hn"]["bias"]), want, atol=1e-6)


def test_rollout_resets_the_hidden_state_exactly_where_an_episode_ends():
    """A counting 'policy' (hidden += 1 each step): after the rollout each environment's
    count is the number of steps since its last episode end (terminated or truncated)."""
    env = make_vec_env("CartPole-v1", 5, max_episode_steps=15)  # truncations every 15 steps at most

    def policy(key, obs, hidden):
        action = jax.random.bernoulli(key, 0.5, (obs.shape[0],)).astype(jnp.int32)
        step = PolicyStep(action, action, jnp.zeros(obs.shape[0]))
        return step, {"actor": hidden["actor"] + 1.0}

    start = jnp.arange(5.0)[:, None] * 100.0  # distinct non-zero starting states
    carry = reset_env_carry(env, jax.random.PRNGKey(0), {"actor": start})
    final, traj = jax.jit(lambda c: rollout(env, policy, c, jax.random.PRNGKey(1), 60))(carry)
    done = np.asarray(traj.terminated | traj.truncated)
    assert done.any(0).all() and np.asarray(traj.truncated).any() and np.asarray(traj.terminated).any()
    expected = np.asarray(start[:, 0]).copy()
    for t in range(done.shape[0]):
        expected = np.where(done[t], 0.0, expected + 1.0)
    np.testing.assert_array_equal(final.hidden["actor"][:, 0], expected)


def _tiny_networks(env_id="MemoryChain-bsuite", num_envs=2, core="gru"):
    config = cfg.from_dict(ppo.PPOConfig, {**TINY, "env_id": env_id, "num_envs": num_envs, "num_minibatches": 1,
                                           "core": core})
    env = make_vec_env(config.env_id, num_envs)
    networks = make_actor_critic(config, env)
    return config, env, networks, init_actor_critic(networks, env, jax.random.PRNGKey(2))


@pytest.mark.parametrize("core", CORE_NAMES)
def test_truncation_bootstraps_from_the_hidden_state_before_the_reset(core):
    """`V(s_{t+1})` at a truncated step is `head(GRU(h_t, final_obs))`, computed here with
    explicit one-step calls; the reset hidden state would give another value."""
    config, _env, networks, params = _tiny_networks(core=core)
    rng = np.random.default_rng(3)
    t, b = 5, 2
    obs = jnp.asarray(rng.normal(size=(t, b, 3)), jnp.float32)
    next_obs = jnp.asarray(rng.normal(size=(t, b, 3)), jnp.float32)
    truncated = np.zeros((t, b), bool)
    truncated[2, 0] = True
    terminated = np.zeros((t, b), bool)
    terminated[1, 1] = True
    zeros = jnp.zeros((t, b))
    traj = Transition(obs, zeros, zeros, jnp.asarray(terminated), jnp.asarray(truncated), next_obs, zeros,
                      zeros, zeros, zeros)
    h0 = {"actor": jnp.zeros((b, 6)), "critic": jnp.asarray(rng.normal(size=(b, 6)), jnp.float32)}
    stats = None  # normalize_obs is off
    _, values, next_values = jax.jit(functools.partial(rollout_values, config, networks))(params, stats, traj, h0)

    critic = functools.partial(recurrent.step_network, networks.critic, params["critic"])
    h = h0["critic"]
    for step in range(t):
        value, h_t = critic(obs[step], {"critic": h})
        next_value, _ = critic(next_obs[step], {"critic": h_t})
        np.testing.assert_allclose(values[step], value, atol=1e-6)
        np.testing.assert_allclose(next_values[step], next_value, atol=1e-6)
        done = terminated[step] | truncated[step]
        h = jnp.where(done[:, None], 0.0, h_t)
    # At the truncation, the post-reset state gives a different bootstrap value.
    after_reset, _ = critic(next_obs[2], {"critic": jnp.zeros((b, 6))})
    assert abs(float(after_reset[0] - next_values[2, 0])) > 1e-3


def test_minibatches_are_whole_sequences_with_their_initial_hidden_state():
    num_envs, t, minibatches = 8, 5, 4
    config = cfg.from_dict(ppo.PPOConfig, {**TINY, "num_envs": num_envs, "num_steps": t, "num_minibatches": minibatches})
    env_ids = jnp.arange(num_envs, dtype=jnp.float32)
    obs = (env_ids[:, None] * 100 + jnp.arange(t, dtype=jnp.float32)[None, :])[..., None]
    seq = recurrent.Sequences(obs, jnp.zeros((num_envs, t), bool),
                              {"actor": jnp.tile(env_ids[:, None], (1, 3)), "critic": -env_ids[:, None]})
    batch = ppo.GAEBatch(seq, jnp.tile(env_ids[:, None], (1, t)), *([jnp.zeros((num_envs, t))] * 4))

    def loss_fn(params, mb):
        return jnp.sum(params["w"]) * 0.0, {"obs": mb.obs.obs, "h": mb.obs.hidden["actor"],
                                               "hc": mb.obs.hidden["critic"], "action": mb.action}

    opt = ppo.make_optimizer(config, config.hparams)
    params = {"w": jnp.ones(2)}
    _, out = sgd_epoch(config, opt, loss_fn, batch, (params, opt.init(params)), jax.random.PRNGKey(0))
    assert out["obs"].shape == (minibatches, num_envs // minibatches, t, 1)
    rows = np.asarray(out["action"][..., 0]).reshape(-1)
    assert sorted(rows.astype(int)) == list(range(num_envs))  # every sequence exactly once
    for m in range(minibatches):
        for i in range(num_envs // minibatches):
            e = out["action"][m, i, 0]
            np.testing.assert_array_equal(out["obs"][m, i, :, 0], e * 100 + np.arange(t))  # whole, in order
            np.testing.assert_array_equal(out["h"][m, i], e)
            assert out["hc"][m, i, 0] == -e


def _ppo_tiny(**changes):
    return cfg.from_dict(ppo.PPOConfig, {**TINY, "num_minibatches": 2, "update_epochs": 2,
                                         "total_timesteps": 4 * 4 * 16, **changes})


# PPO's whole-sequence minibatches and REINFORCE's reset episodes run by default; PPO-KL, A2C and
# VPG share PPO's rollout and value pass, so their compilations run with -m slow.
@pytest.mark.parametrize("name, core", [
    ("ppo", "gru"), ("ppo", "mingru"), ("reinforce", "gru"),
    pytest.param("reinforce", "mingru", marks=pytest.mark.slow),
    *(pytest.param(m, c, marks=pytest.mark.slow) for m in ("ppo_kl", "a2c", "vpg") for c in CORE_NAMES),
])
def test_chunked_run_equals_whole_run(name, core):
    algorithm = ALGORITHMS[name]
    fields = {f.name for f in dataclasses.fields(algorithm.config_class)}
    wanted = {"num_minibatches": 2, "update_epochs": 2, "value_iters": 2, "max_episode_steps": 16}
    extra = {k: v for k, v in wanted.items() if k in fields}
    config = cfg.from_dict(algorithm.config_class, {**TINY, **extra, "total_timesteps": 4 * 4 * 16, "core": core})
    trainer = algorithm.make_trainer(config)
    whole = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    run = jax.jit(trainer.run, static_argnums=2)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0), config.hparams)
    state, first = run(state, config.hparams, 2)
    state, rest = run(state, config.hparams, 2)
    assert leaves_equal(state, whole.state)
    if hasattr(whole.state, "env"):  # REINFORCE starts every update from reset episodes
        assert np.asarray(whole.state.env.hidden["actor"]).any()  # the state did carry something
    np.testing.assert_array_equal(np.concatenate([first["loss"], rest["loss"]]), whole.metrics["loss"])


@pytest.mark.parametrize("core", CORES_CARRY_ONLY)
def test_seed_vmap_matches_single_seeds(core):
    config = _ppo_tiny(core=core)
    trainer = ppo.make_trainer(config)
    keys = seed_keys(0, [0, 1])
    batched = jax.jit(jax.vmap(trainer.train))(keys)
    for i in range(2):
        single = jax.jit(trainer.train)(keys[i])
        # vmap is not bit-identical on CPU (TESTING.md): compare the first update closely.
        np.testing.assert_allclose(batched.metrics["loss"][i, 0], single.metrics["loss"][0], rtol=1e-4, atol=1e-6)
    assert not np.allclose(batched.state.env.hidden["actor"][0], batched.state.env.hidden["actor"][1])


@pytest.mark.parametrize("core", CORES_CARRY_ONLY)
def test_checkpoint_round_trip_is_bit_exact(tmp_path, core):
    config = _ppo_tiny(core=core)
    trainer = ppo.make_trainer(config)
    keys, hp = seed_keys(0, [0, 1]), config.hparams
    init, run = compile_seed_functions(trainer)
    middle, _ = run(init(keys, hp), hp, 2)
    end, second = run(middle, hp, 2)
    meta = {"algo": "ppo", "config": cfg.to_dict(config), "num_seeds": 2}
    saver = Checkpointer(tmp_path / "ck")
    saver.save(2, middle, {**meta, "seeds": [0, 1]})
    saver.close()
    loader = Checkpointer(tmp_path / "ck")
    restored, _ = loader.restore(jax.eval_shape(init, keys, hp), meta)
    loader.close()
    assert leaves_equal(restored, middle)
    end_restored, second_restored = run(restored, hp, 2)
    assert leaves_equal(end, end_restored) and leaves_equal(second, second_restored)


@pytest.mark.parametrize("core", CORE_NAMES)
def test_evaluation_carries_and_resets_the_hidden_state(core):
    """`policy_act_fn` of a recurrent trainer carries the state: its episodes equal a
    Python loop over `trainer.act` that threads the hidden state by hand."""
    config = _ppo_tiny(core=core)
    trainer = ppo.make_trainer(config)
    state = trainer.init(jax.random.PRNGKey(0), config.hparams)
    act_fn = policy_act_fn(trainer, state.params, state.obs_stats, deterministic=False)
    assert isinstance(act_fn, RecurrentActFn)
    env = make_vec_env(config.env_id, 3)
    episodes = jax.jit(lambda k: run_episodes(env, act_fn, k))(jax.random.PRNGKey(5))

    reset_key, run_key = jax.random.split(jax.random.PRNGKey(5))
    step_keys = jax.random.split(run_key, env.max_episode_steps)
    env_state, obs = env.reset(reset_key)
    hidden, alive, returns = recurrent.initial_hidden(config, 3), np.ones(3, bool), np.zeros(3)
    step = jax.jit(env.step)
    t = 0
    while alive.any():
        act_key, env_key = jax.random.split(step_keys[t])
        action, hidden = trainer.act(state.params, state.obs_stats, act_key, obs, False, hidden)
        env_state, ts = step(env_key, env_state, action)
        returns += np.where(alive, ts.reward, 0.0)
        alive &= ~np.asarray(ts.terminated | ts.truncated)
        obs, t = ts.obs, t + 1
    np.testing.assert_allclose(episodes.returns, returns)


@pytest.mark.parametrize("core", CORE_NAMES)
@pytest.mark.parametrize("config_class", [npg.NPGConfig, trpo.TRPOConfig], ids=["npg", "trpo"])
def test_unsupported_algorithms_say_so(config_class, core):
    with pytest.raises(cfg.ConfigError, match=f"core='{core}' is not supported by"):
        cfg.from_dict(config_class, {"core": core})


def test_minibatches_must_split_the_environments():
    with pytest.raises(cfg.ConfigError, match="num_minibatches=3 does not divide num_envs=4"):
        cfg.from_dict(ppo.PPOConfig, {**TINY, "num_minibatches": 3, "num_steps": 3})
    with pytest.raises(cfg.ConfigError, match="core='lstm'"):
        cfg.from_dict(ppo.PPOConfig, {"core": "lstm"})


def test_command_line_trains_and_evaluates_a_recurrent_policy(tmp_path):
    """`pgjax train` with the shipped GRU config (tiny budget) and `pgjax eval` on its run."""
    from test_cli import pgjax

    trained = pgjax("train", "--config", "configs/ppo_gru_memorychain.toml", "--seeds", "2", "--chunks", "2",
                    "--eval-episodes", "4", "--no-progress", "--out", str(tmp_path / "runs"),
                    "total_timesteps=3840", "core_size=8", "hidden_sizes=[8]", "update_epochs=1")
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    evaluated = pgjax("eval", str(run_dir), "--episodes", "5", "--out", str(tmp_path / "eval.json"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert (tmp_path / "eval.json").stat().st_size > 0
