"""`unrolled_rng.unrolled_key`: the unrolled Threefry draws exactly the bits `jax.random` draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algos.actor_critic import init_actor_critic, make_actor_critic
from pgjax.config import OnPolicyConfig
from pgjax.envs import make_vec_env
from pgjax.kernels.unrolled_rng import threefry2x32, unrolled_key

DRAWS = {
    "normal": lambda key: jax.random.normal(key, (5, 7)),
    "uniform": lambda key: jax.random.uniform(key, (3,)),
    "scalar": lambda key: jax.random.normal(key),
    "bits8": lambda key: jax.random.bits(key, (9,), jnp.uint8),
    "split": lambda key: jax.random.normal(jax.random.split(key, 3)[2], (4,)),
    "fold_in": lambda key: jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 7), 2**31 + 5), (4,)),
    "categorical": lambda key: jax.random.categorical(key, jnp.zeros((6, 3))),
}


def test_threefry_known_answer():
    # Known-answer vectors of the Threefry-2x32 (20 rounds) reference (Salmon et al., 2011),
    # as used by JAX's own tests: key (0x13198a2e, 0x03707344), counter (0x243f6a88, 0x85a308d3).
    out = threefry2x32(*(jnp.uint32(x) for x in (0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3)))
    assert [int(x) for x in out] == [0xC4923A9C, 0x483DF7A0]
    zeros = threefry2x32(*(jnp.uint32(0) for _ in range(4)))
    assert [int(x) for x in zeros] == [0x6B200159, 0x99BA4EFE]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", sorted(DRAWS))
def test_same_bits_as_jax_random(name, jit):
    draw = DRAWS[name]
    for key in (jax.random.PRNGKey(42), jax.random.key(3)):
        unrolled = (jax.jit(lambda k: draw(unrolled_key(k))) if jit else lambda k: draw(unrolled_key(k)))(key)
        np.testing.assert_array_equal(unrolled, draw(key))


def test_same_bits_under_vmap():
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    draw = DRAWS["fold_in"]
    np.testing.assert_array_equal(jax.vmap(lambda k: draw(unrolled_key(k)))(keys), jax.vmap(draw)(keys))


def test_other_implementations_pass_through():
    key = jax.random.key(0, impl="rbg")
    assert unrolled_key(key) is key
    raw = jax.random.key_data(key)  # uint32[4]: not a Threefry key
    assert unrolled_key(raw) is raw


def test_network_initialisation_is_unchanged():
    # init_actor_critic uses unrolled_key: the parameters equal flax's init with the plain key.
    # The Gaussian draws are bit-identical (above); the orthogonalising matmuls of two
    # different compiled programs may round differently, hence the float tolerance.
    env = make_vec_env("CartPole-v1", 2)
    networks = make_actor_critic(OnPolicyConfig(env_id="CartPole-v1", hidden_sizes=(16, 16)), env)
    key = jax.random.PRNGKey(7)
    params = jax.jit(lambda k: init_actor_critic(networks, env, k))(key)

    def plain_init(key):
        actor_key, critic_key = jax.random.split(key)
        dummy = jnp.zeros((1, *env.obs_shape))
        return {"actor": networks.actor.init(actor_key, dummy), "critic": networks.critic.init(critic_key, dummy)}

    expected = jax.jit(plain_init)(key)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_rollout_draws_are_unchanged(monkeypatch):
    # `rollout` runs its per-step draws (step keys, action samples, gymnax's reset noise) on
    # the unrolled implementation: the transitions equal those of JAX's own Threefry over
    # several episodes of auto-resets. Every discrete leaf (actions, episode ends, lengths)
    # is bit for bit the same, so every draw was; the float leaves (CartPole's physics, the
    # log-probabilities) to float32 rounding, as XLA may fuse the same arithmetic of two
    # different programs differently (jax 0.11.2 gave 1-ulp differences in 7 of 768 values).
    import functools

    from pgjax.algos import rollout as rollout_module
    from pgjax.algos.actor_critic import sample_step
    from pgjax.algos.rollout import reset_env_carry, rollout
    from pgjax.envs import init_running_stats

    env = make_vec_env("CartPole-v1", 3)
    config = OnPolicyConfig(env_id="CartPole-v1", hidden_sizes=(8,))
    networks = make_actor_critic(config, env)
    params = init_actor_critic(networks, env, jax.random.PRNGKey(1))
    policy = functools.partial(sample_step, config, env, networks, params, init_running_stats(env.obs_shape))
    carry = reset_env_carry(env, jax.random.PRNGKey(2))
    run = jax.jit(lambda key: rollout(env, policy, carry, key, 64))
    unrolled = run(jax.random.PRNGKey(3))
    monkeypatch.setattr(rollout_module, "unrolled_key", lambda key: key)
    plain = jax.jit(lambda key: rollout(env, policy, carry, key, 64))(jax.random.PRNGKey(3))
    assert bool(unrolled[1].episode_done.any())  # auto-resets happened, so reset noise was drawn
    for a, b in zip(jax.tree.leaves(unrolled), jax.tree.leaves(plain), strict=True):
        if jnp.issubdtype(a.dtype, jnp.floating):
            np.testing.assert_allclose(a, b, rtol=2e-7, atol=1e-7)
        else:
            np.testing.assert_array_equal(a, b)


def test_off_policy_loop_draws_are_unchanged(monkeypatch):
    # The off-policy loop (warm-up, exploration, environment steps) draws through unrolled
    # keys and hands the learner JAX's own: the same bits as JAX's Threefry throughout. The key chain is equal bit for bit;
    # the floats of two different compiled programs round differently (Pendulum's dynamics,
    # seen: 5e-6 after 30 steps), so they are compared with a tolerance that a different
    # draw (an O(1) change) could not pass.
    from pgjax.algos import td3
    from pgjax.kernels import unrolled_rng

    config = td3.TD3Config(env_id="Pendulum-v1", num_envs=2, total_timesteps=260, learning_starts=200,
                           buffer_size=1000, batch_size=32, hidden_sizes=(8,))
    trainer = td3.make_trainer(config)
    key = jax.random.PRNGKey(5)
    unrolled = jax.jit(trainer.train)(key)
    monkeypatch.setattr(unrolled_rng, "unrolled_key", lambda key: key)
    plain = jax.jit(td3.make_trainer(config).train)(key)
    assert unrolled.state.key.dtype == key.dtype and unrolled.state.key.shape == key.shape
    np.testing.assert_array_equal(unrolled.state.key, plain.state.key)
    for a, b in zip(jax.tree.leaves(unrolled), jax.tree.leaves(plain), strict=True):
        if jnp.issubdtype(a.dtype, jnp.inexact):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
        else:
            np.testing.assert_array_equal(a, b)
