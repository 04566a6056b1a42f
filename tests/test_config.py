"""Configs: one per-field rule for files, overrides and Python construction; `pgjax.load_config`;
the package's lazy public attributes (the import rule is tests/test_layout.py's)."""

import dataclasses
import math
import subprocess
import sys
import typing
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax.algos import ALGORITHMS
from pgjax.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# Candidate bad values per field type; each field is tested with the first its check rejects.
CANDIDATES = {float: [-1.0, 0.0, 2.0], int: [0, -1], str: ["bogus"]}


def checked_fields(cls, prefix=""):
    """`(dotted name, field, type)` of every field of `cls` (and its hparams) with a check."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from checked_fields(hints[f.name], prefix=f"{prefix}{f.name}.")
        elif f.metadata.get("check") is not None:
            yield prefix + f.name, f, hints[f.name]


def float_fields(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from float_fields(hints[f.name], prefix=f"{prefix}{f.name}.")
        elif hints[f.name] is float:
            yield prefix + f.name


def bad_value(f, tp):
    ok, _ = f.metadata["check"]
    return next(v for v in CANDIDATES[tp] if not ok(v))


def build_in_python(config_class, dotted, value):
    """The algorithm's config built in Python with one field set, as a notebook would."""
    if dotted.startswith("hparams."):
        hp_cls = typing.get_type_hints(config_class)["hparams"]
        return config_class(hparams=hp_cls(**{dotted.removeprefix("hparams."): value}))
    return config_class(**{dotted: value})


def error_of(build):
    with pytest.raises(ConfigError) as err:
        build()
    return str(err.value)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_python_construction_raises_the_loaders_message_for_every_checked_field(name):
    config_class = ALGORITHMS[name].config_class
    fields = list(checked_fields(config_class))
    assert any(d.startswith("hparams.") for d, _, _ in fields) and any("." not in d for d, _, _ in fields)
    for dotted, f, tp in fields:
        value = bad_value(f, tp)
        loaded = error_of(lambda: pgjax.load_config(name, [f"{dotted}={value}"]))
        built = error_of(lambda: build_in_python(config_class, dotted, value))
        assert built == loaded, dotted
        assert built.startswith(f"{dotted}={value!r} is out of range: must be {f.metadata['check'][1]}")


def test_the_issue_example_raises_instead_of_training():
    from pgjax.algos.ppo import PPOConfig, PPOHParams

    message = error_of(lambda: PPOConfig(hparams=PPOHParams(gamma=1.5, clip_eps=-0.2)))
    assert message == "hparams.gamma=1.5 is out of range: must be in (0, 1]."
    assert message == error_of(lambda: pgjax.load_config("ppo", ["hparams.gamma=1.5", "hparams.clip_eps=-0.2"]))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_non_finite_numbers_are_rejected_in_overrides_and_in_python(name):
    config_class = ALGORITHMS[name].config_class
    names = list(float_fields(config_class))
    assert names
    for dotted in names:
        for text, value in (("inf", math.inf), ("-inf", -math.inf), ("nan", math.nan), ("NaN", math.nan)):
            loaded = error_of(lambda: pgjax.load_config(name, [f"{dotted}={text}"]))
            assert loaded == f"{dotted}={value!r}: expected a finite number", loaded
            assert error_of(lambda: build_in_python(config_class, dotted, value)) == loaded


def test_non_finite_numbers_in_a_config_file_are_rejected(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('algo = "ppo"\ninit_log_std = -inf\n')
    assert error_of(lambda: pgjax.load_config(path)) == "init_log_std=-inf: expected a finite number"
    path = tmp_path / "bad.json"
    path.write_text('{"algo": "a2c", "hparams": {"ent_coef": NaN}}')
    assert error_of(lambda: pgjax.load_config(path)) == "hparams.ent_coef=nan: expected a finite number"


def test_python_construction_checks_types_and_numpy_scalars():
    from pgjax.algos.ppo import PPOConfig, PPOHParams

    assert error_of(lambda: PPOHParams(gamma="0.9")) == "hparams.gamma='0.9': expected a number"
    gamma = error_of(lambda: PPOHParams(gamma=np.float32(1.5)))
    assert gamma == "hparams.gamma=1.5 is out of range: must be in (0, 1]."
    nan = error_of(lambda: PPOHParams(learning_rate=np.array(np.nan)))
    assert nan == "hparams.learning_rate=nan: expected a finite number"
    assert error_of(lambda: PPOConfig(hidden_sizes=(64, 0.5))) == "hidden_sizes[1]=0.5: expected a whole number"
    replaced = error_of(lambda: dataclasses.replace(PPOConfig(), num_envs=-4))
    assert replaced == "num_envs=-4 is out of range: must be > 0."
    PPOHParams(gamma=np.float32(0.9), learning_rate=np.float64(1e-3))  # valid NumPy scalars pass


def test_arrays_are_checked_and_tracers_and_jax_rebuilding_the_pytree_pass():
    """A sweep's grid axis, values under jit/vmap, and JAX rebuilding the pytree (whose leaves
    may be None, sentinels or abstract values) must not trip the construction checks; the
    values of a concrete array are checked like scalars."""
    from pgjax.algos.ppo import PPOHParams

    hp = PPOHParams()
    grid = dataclasses.replace(jax.tree.map(lambda x: jnp.full((3,), x), hp), gamma=jnp.array([0.9, 0.95, 0.99]))
    np.testing.assert_allclose(jax.jit(jax.vmap(lambda h: h.gamma * h.clip_eps))(grid), [0.18, 0.19, 0.198], rtol=1e-6)
    assert jax.eval_shape(lambda h: h, hp).gamma.shape == ()
    traced = jax.jit(lambda h: dataclasses.replace(h, gamma=h.gamma * 0.5).gamma)(hp)  # a tracer passes
    np.testing.assert_allclose(traced, 0.495, rtol=1e-6)
    assert jax.tree.map(lambda x: None, hp).gamma is None  # JAX's rebuild is not a construction
    only_gamma = jax.tree_util.tree_map_with_path(lambda path, _: 0 if path[0].name == "gamma" else None, hp)
    assert jax.vmap(lambda h: h.gamma * h.clip_eps, in_axes=(only_gamma,))(dataclasses.replace(hp, gamma=grid.gamma)).shape == (3,)
    PPOHParams(gamma=np.array([0.9, 1.0]))  # a NumPy grid column in range
    assert error_of(lambda: PPOHParams(gamma=jnp.asarray(1.5))) == "hparams.gamma=1.5 is out of range: must be in (0, 1]."
    assert error_of(lambda: PPOHParams(gamma=np.array([0.9, 1.5]))) == "hparams.gamma=1.5 is out of range: must be in (0, 1]."
    bools = error_of(lambda: PPOHParams(gamma=jnp.array([True])))
    assert bools == "hparams.gamma: expected a number or an array of numbers, got an array of dtype bool"
    assert jax.tree.map(lambda x: x, hp) == hp


def test_load_config_by_name_file_and_overrides_matches_the_command_lines():
    from pgjax.algos import ppo
    from pgjax.commands import load_config as cli_load_config

    assert pgjax.load_config("ppo") == ppo.PPOConfig()
    assert pgjax.load_config("sac", algo="sac") == ALGORITHMS["sac"].config_class()
    path = ROOT / "configs" / "ppo_cartpole.toml"
    overrides = ["hparams.gamma=0.9", "num_envs=8"]
    config = pgjax.load_config(str(path), overrides=overrides, env="Acrobot-v1")
    assert (config.hparams.gamma, config.num_envs, config.env_id) == (0.9, 8, "Acrobot-v1")
    assert config == cli_load_config(None, path, "Acrobot-v1", overrides)[2]
    assert pgjax.runtime.loading.algorithm_of(config) is ALGORITHMS["ppo"]
    assert pgjax.load_config(path, algo="ppo") == pgjax.load_config(path)


def test_load_config_errors_name_the_problem(tmp_path):
    assert "neither an algorithm" in error_of(lambda: pgjax.load_config("ppo2"))
    assert "does not exist" in error_of(lambda: pgjax.load_config(tmp_path / "missing.toml"))
    assert "contradicts" in error_of(lambda: pgjax.load_config(ROOT / "configs" / "ppo_cartpole.toml", algo="a2c"))
    assert "contradicts" in error_of(lambda: pgjax.load_config("ppo", algo="a2c"))
    assert "list of KEY=VALUE" in error_of(lambda: pgjax.load_config("ppo", "hparams.gamma=0.9"))
    assert "Did you mean 'hparams.gamma'" in error_of(lambda: pgjax.load_config("ppo", ["hparams.gama=0.9"]))


def test_every_public_name_is_an_attribute_of_the_package():
    assert pgjax.__all__ == sorted(pgjax.__all__)
    for name in pgjax.__all__:
        assert getattr(pgjax, name) is not None, name
    assert pgjax.load_config is pgjax.runtime.loading.load_config
    assert pgjax.make_trainer(pgjax.load_config("ppo")).config == pgjax.load_config("ppo")
    assert pgjax.make_env is pgjax.envs.make_vec_env and pgjax.register_env is pgjax.envs.register_env
    assert callable(pgjax.kernels.returns.gae)
    # every subpackage but the command line, and the top-level modules, are public
    subpackages = {p.parent.name for p in (ROOT / "pgjax").glob("*/__init__.py")} - {"commands"}
    modules = {p.stem for p in (ROOT / "pgjax").glob("*.py")} - {"__init__", "__main__"}
    assert subpackages | modules <= set(pgjax.__all__), (subpackages | modules) - set(pgjax.__all__)
    for package in ("kernels", "networks", "records", "reports", "runtime"):
        modules = {p.stem for p in (ROOT / "pgjax" / package).glob("*.py")} - {"__init__"}
        assert sorted(modules) == getattr(pgjax, package).__all__, package
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = pgjax.no_such_thing
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = pgjax.kernels.no_such_thing


def test_importing_the_package_stays_cheap():
    code = "import sys, pgjax; print(sorted(m for m in ('jax', 'numpy', 'pgjax.kernels.returns') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
