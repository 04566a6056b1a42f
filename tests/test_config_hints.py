"""Configuration limits and hints (issue 34): conv strides and kernels that do not fit the
observation grid, counts past the int32 range of a compiled program, memory refusals that
name what made the state large, and environment parameters from a config (`env_kwargs`).
Each refusal is one line naming the field, the value and what is allowed."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cli_lines import exit_and_line

import pgjax
from pgjax.config import INT32_MAX, ConfigError, to_dict

TINY_PPO = ["--config", "configs/ppo_cartpole.toml", "total_timesteps=768", "num_steps=64", "hidden_sizes=[16]",
            "update_epochs=1"]
MINATAR_CNN = ["--config", "configs/ppo_breakout_minatar_cnn.toml", "total_timesteps=2048", "num_envs=8",
               "num_steps=32"]


def _train_line(argv, capsys, tmp_path) -> str:
    """The one line `pgjax train ARGV` refuses with (exit code 1, nothing written)."""
    code, line = exit_and_line(["train", *argv, "--seeds", "1", "--no-progress", "--out", str(tmp_path)], capsys)
    assert code == 1 and line.startswith("pgjax train: "), line
    assert not any(tmp_path.iterdir())
    return line


# --- conv layers that do not fit the observation grid ----------------------------------------


def _cnn(strides, kernels):
    return SimpleNamespace(torso="cnn", cnn_channels=(4,) * len(strides), cnn_kernel_sizes=kernels, cnn_strides=strides)


def test_a_stride_past_the_grid_is_refused_naming_the_layer_and_the_largest_stride():
    from pgjax.networks.torsos import check_torso

    problem = check_torso(_cnn((20,), (3,)), (10, 10, 4))
    assert "cnn_strides=[20]: layer 1's stride 20" in problem and "10x10 observation grid" in problem
    assert problem.endswith("allowed there: a stride <= 7")
    # The stride is checked on the grid each layer sees: 10 -> (10 - 3) // 2 + 1 = 4, then 4 - 2 = 2.
    problem = check_torso(_cnn((2, 3), (3, 2)), (10, 10, 4))
    assert "layer 2's stride 3" in problem and "the 4x4 grid that layer 2 sees" in problem and "<= 2" in problem
    # A non-square grid: the narrow side decides.
    assert "a stride <= 2" in check_torso(_cnn((4,), (3,)), (10, 5, 1))


def test_a_kernel_past_the_grid_a_later_layer_sees_is_refused():
    from pgjax.networks.torsos import check_torso

    problem = check_torso(_cnn((2, 1), (3, 5)), (10, 10, 4))
    assert "layer 2's 5x5 kernel is larger than the 4x4 grid" in problem and "a kernel <= 4" in problem


@pytest.mark.parametrize("strides, kernels, grid", [
    ((1,), (3,), (10, 10, 4)),  # the MinAtar network
    ((2,), (3,), (10, 10, 4)),  # stride over kernel: every window inside the grid, some rows between
    ((7,), (3,), (10, 10, 4)),  # the largest stride that still takes a second window
    ((5,), (10,), (10, 10, 4)),  # one window covering the whole grid: the stride does not matter
    ((4, 2, 1), (8, 4, 3), (84, 84, 4)),  # the Atari DQN network
])
def test_conv_layers_that_fit_are_accepted(strides, kernels, grid):
    from pgjax.networks.torsos import check_torso

    assert check_torso(_cnn(strides, kernels), grid) is None


def test_the_command_line_refuses_a_stride_past_the_grid_in_one_line(capsys, tmp_path):
    line = _train_line([*MINATAR_CNN, "cnn_strides=[20]"], capsys, tmp_path)
    assert "cnn_strides=[20]" in line and "allowed there: a stride <= 7" in line
    assert "env_id='Breakout-MinAtar' has observations of shape (10, 10, 4)" in line


def test_a_cnn_built_without_a_config_refuses_a_stride_past_the_grid():
    from pgjax.networks.torsos import CNN

    with pytest.raises(ValueError, match=r"cnn_strides=\[20\]: layer 1's stride 20 .* 10x10 observation grid"):
        CNN((4,), (3,), (20,)).init(jax.random.PRNGKey(0), jnp.zeros((1, 10, 10, 4)))


# --- counts past int32 -------------------------------------------------------------------


@pytest.mark.parametrize("overrides, expected", [
    (["total_timesteps=5e9"], "total_timesteps=5000000000 is out of range: must be in [1, 2147483647]"),
    (["num_envs=65536", "num_steps=65536", "total_timesteps=2e9"],
     "total_timesteps=2000000000 is smaller than one rollout (num_envs * num_steps = 4294967296)"),
    (["num_envs=1", "num_steps=1", "num_minibatches=1", "update_epochs=2", "total_timesteps=2e9"],
     "the optimiser's steps num_updates * update_epochs * num_minibatches = 4000000000 is past 2147483647"),
])
def test_ppo_counts_past_int32_are_one_line_before_compiling(overrides, expected, capsys, tmp_path):
    line = _train_line(["--config", "configs/ppo_cartpole.toml", *overrides], capsys, tmp_path)
    assert expected in line


@pytest.mark.parametrize("overrides, expected", [
    (["buffer_size=3e9"], "buffer_size=3000000000 is out of range: must be in [1, 2147483647]"),
    (["total_timesteps=2e9", "updates_per_step=2"], ("the gradient updates (total_timesteps - learning_starts) / "
                                                   "num_envs * updates_per_step = 3999998000 is past 2147483647")),
])
def test_off_policy_counts_past_int32_are_one_line(overrides, expected, capsys, tmp_path):
    assert expected in _train_line(["--algo", "sac", *overrides], capsys, tmp_path)


def test_the_largest_budget_counts_its_last_steps_exactly():
    """total_timesteps = 2**31 - 1 is accepted, and the last update's `env_steps` (an int32 in
    the compiled program) is the exact count, not wrapped round: the update counter is set to
    the last update and one update runs."""
    config = pgjax.load_config("a2c", ["total_timesteps=2147483647", "num_envs=4", "num_steps=8", "hidden_sizes=[8]"])
    trainer = pgjax.make_trainer(config)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0), config.hparams)
    state = state.replace(update=jnp.int32(config.num_updates - 1))
    _, metrics = jax.jit(trainer.run, static_argnums=2)(state, config.hparams, 1)
    assert int(metrics["env_steps"][0]) == config.num_updates * 32 == INT32_MAX // 32 * 32


# --- memory refusals name what made the state large ------------------------------------------


def test_a_one_seed_refusal_names_its_largest_parts_and_no_seed_advice(capsys, tmp_path):
    line = _train_line([*TINY_PPO, "--chunks", "3", "--memory-limit", "1KB"], capsys, tmp_path)
    assert "1 seed needs about" in line and "the largest parts of one seed: the networks and their optimiser state " \
                                            "(hidden_sizes=[16])" in line
    assert "fewer seeds" not in line and "--host-devices" not in line and line.endswith("or raise --memory-limit")


def test_a_replay_buffer_refusal_names_buffer_size_first(capsys, tmp_path):
    line = _train_line(["--algo", "sac", "buffer_size=1000000", "hidden_sizes=[16]", "--memory-limit", "20MB"],
                       capsys, tmp_path)
    # Pendulum: obs 3 + next obs 3 + action 1 + reward, terminated, truncated = 34 bytes a transition.
    assert "the largest parts of one seed: the replay buffer (buffer_size=1000000 transitions x 34 bytes) 34.00 MB" in line


def test_the_compiled_programs_parts_include_the_rollout_and_the_rest():
    from pgjax.runtime.cells import cell_bytes, largest_parts

    trainer = pgjax.make_trainer(pgjax.load_config("ppo", ["num_envs=4", "num_steps=64", "hidden_sizes=[16]"]))
    need = 10**9
    parts = dict(part.rsplit(" ", 1) for part in largest_parts(trainer, 1, cell_need=need, count=5)[:-3].split(" MB, "))
    # 2 x 4 envs x 64 steps x 4 floats x 4 bytes = 8192 bytes; the rest is XLA's count less the
    # state (in and out), the metrics and the rollout, and comes first.
    assert parts["one rollout's observations (num_envs=4 x num_steps=64 x 4 floats, before and after each step)"] == "0.01"
    sizes = cell_bytes(trainer, 1)
    rest = f"{(need - 2 * sizes['state'] - sizes['metrics'] - 8192) / 1e6:.2f}"
    first = next(iter(parts))
    assert first.startswith("the compiled update's other intermediate values") and parts[first] == rest


# --- environment parameters from a config ----------------------------------------------------


def _first_episode(overrides) -> tuple[int, np.ndarray]:
    """The environment a PPO trainer for MemoryChain trains on, stepped until its first
    episode ends: `(steps to termination, the observations returned by the second step)`
    (gymnax's MemoryChain returns the observation of the state a step starts from)."""
    config = pgjax.load_config("ppo", ["env_id=MemoryChain-bsuite", "num_envs=4", "hidden_sizes=[8]", *overrides])
    env = pgjax.make_trainer(config).env
    step = jax.jit(env.step)
    state, _ = env.reset(jax.random.PRNGKey(0))
    second = None
    for t in range(1, 20):
        state, timestep = step(jax.random.PRNGKey(t), state, jnp.zeros((env.num_envs,), jnp.int32))
        if t == 2:
            second = np.asarray(timestep.obs)
        if bool(timestep.terminated.all()):
            return t, second
    raise AssertionError("no episode ended in 20 steps")


def test_memory_chain_memory_length_from_the_config_changes_the_episodes():
    """MemoryChain ends after memory_length + 1 steps and shows the time left as
    1 - t / memory_length: with the default 5, episodes of 6 steps and 0.8 at t = 1; with
    env_kwargs.memory_length=3, 4 steps and 2/3."""
    steps, obs = _first_episode([])
    assert steps == 6
    np.testing.assert_allclose(obs[:, 0], 0.8)
    steps, obs = _first_episode(["env_kwargs.memory_length=3"])
    assert steps == 4
    np.testing.assert_allclose(obs[:, 0], 1 - 1 / 3, rtol=1e-6)


def test_a_constructor_argument_reaches_the_environment_and_the_networks():
    config = pgjax.load_config("ppo", ["env_id=MemoryChain-bsuite", "env_kwargs.num_bits=3", "hidden_sizes=[8]"])
    trainer = pgjax.make_trainer(config)
    assert trainer.env.env.num_bits == 3 and trainer.env.obs_shape == (5,)  # time, query and 3 context bits
    params = jax.eval_shape(trainer.init, jax.random.PRNGKey(0), config.hparams).params
    assert params["actor"]["params"]["MLP_0"]["Dense_0"]["kernel"].shape == (5, 8)


@pytest.mark.parametrize("override, expected", [
    ("env_kwargs.memory_lenght=3", ("env_kwargs.memory_lenght is not a parameter of env_id='MemoryChain-bsuite'. "
                                   "Did you mean env_kwargs.memory_length? Allowed: max_steps_in_episode, "
                                   "memory_length, num_bits.")),
    ("env_kwargs.memory_length=2.5", ("env_kwargs.memory_length=2.5 for env_id='MemoryChain-bsuite': expected a whole "
                                     "number (the default is 5).")),
    ("env_kwargs.memory_length=true", "expected a whole number"),
    ("env_kwargs=3", "env_kwargs=3: expected a table of environment parameters"),
    ("env_kwargs.memory_length={}", "env_kwargs.memory_length={}: expected a number, true or false, a string"),
])
def test_bad_env_kwargs_are_one_line(override, expected, capsys, tmp_path):
    line = _train_line(["--algo", "ppo", "--env", "MemoryChain-bsuite", override], capsys, tmp_path)
    assert expected in line


def test_env_kwargs_from_a_toml_table_and_from_python(tmp_path):
    from pgjax.algos.ppo import PPOConfig

    path = tmp_path / "memory.toml"
    path.write_text('algo = "ppo"\nenv_id = "MemoryChain-bsuite"\n[env_kwargs]\nmemory_length = 3\n')
    loaded = pgjax.load_config(str(path))
    built = PPOConfig(env_id="MemoryChain-bsuite", env_kwargs={"memory_length": 3})
    assert loaded == built and hash(loaded) == hash(built)  # a static config: hashable
    assert to_dict(loaded)["env_kwargs"] == {"memory_length": 3}
    assert to_dict(PPOConfig())["env_kwargs"] == {}
    with pytest.raises(ConfigError, match="env_kwargs.gravity='x' for env_id='CartPole-v1': expected a finite number"):
        PPOConfig(env_kwargs={"gravity": "x"}).validate()


def test_gymnax_params_take_a_float_for_a_whole_number_and_refuse_an_unknown_name():
    from pgjax.envs import make_vec_env

    env = make_vec_env("CartPole-v1", 2, gravity=10)
    assert env.params.gravity == 10.0 and isinstance(env.params.gravity, float)
    with pytest.raises(ValueError, match=r"env_kwargs.gravty is not a parameter of env_id='CartPole-v1'. Did you "
                                         r"mean env_kwargs.gravity\?"):
        make_vec_env("CartPole-v1", 2, gravty=10)


def test_xminigrid_env_kwargs_set_its_params():
    from pgjax.envs import make_vec_env

    assert make_vec_env("xminigrid/MiniGrid-Empty-6x6", 2, view_size=5).obs_shape == (5, 5, 2)
    with pytest.raises(ValueError, match=r"env_kwargs.view is not a parameter of "
                                         r"env_id='xminigrid/MiniGrid-Empty-6x6'. Did you mean env_kwargs.view_size\?"):
        make_vec_env("xminigrid/MiniGrid-Empty-6x6", 2, view=5)
