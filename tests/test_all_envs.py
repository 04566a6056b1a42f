"""Every registered gymnax environment either trains (PPO, the default algorithm for both
action spaces, at a tiny budget: finite losses) or is refused with a clear error when the
config is validated, before anything compiles or is written.

Compilation dominates (one PPO program per environment), so the default run keeps one
environment of each kind that once failed; `-m slow` walks all of them.
"""

import gymnax
import numpy as np
import pytest

from pgjax.commands import load_config
from pgjax.config import ConfigError
from pgjax.runtime.experiment import seed_keys

TINY = ["num_envs=2", "num_steps=4", "total_timesteps=8", "num_minibatches=1", "update_epochs=1",
        "hidden_sizes=[8]", "cnn_channels=[2]"]
# One per kind of space that once failed: a MinAtar image (CNN), a 2-D int grid, a scalar
# Discrete observation, Box action bounds given as jnp arrays.
DEFAULT = {"Breakout-MinAtar", "Catch-bsuite", "FrozenLake-misc", "Reacher-misc"}
REFUSED = {"MNISTBandit-bsuite": "needs the MNIST data set"}  # unless its files are already on disk
GYMNAX_IDS = [e for e in gymnax.registered_envs if not e.endswith("-probe")]


def test_every_gymnax_id_is_walked():
    assert len(GYMNAX_IDS) == 26 and DEFAULT | set(REFUSED) <= set(GYMNAX_IDS)


@pytest.mark.parametrize("env_id", sorted(REFUSED))
def test_refused_environments_say_why(env_id, monkeypatch, tmp_path):
    from pgjax.envs import gymnax_suite

    what, url, _, files = gymnax_suite._DOWNLOADS[env_id]
    monkeypatch.setitem(gymnax_suite._DOWNLOADS, env_id, (what, url, str(tmp_path), files))  # nothing downloaded yet
    with pytest.raises(ConfigError, match=REFUSED[env_id]):
        load_config("ppo", None, env_id, TINY)


@pytest.mark.parametrize(
    "env_id",
    [pytest.param(e, marks=() if e in DEFAULT else pytest.mark.slow) for e in GYMNAX_IDS if e not in REFUSED],
)
def test_ppo_trains_on_every_gymnax_environment(env_id):
    import jax

    _, module, config = load_config("ppo", None, env_id, TINY)
    trainer = module.make_trainer(config)
    out = jax.jit(jax.vmap(trainer.train))(seed_keys(0, range(1)))
    losses = {k: np.asarray(v) for k, v in out.metrics.items() if "loss" in k}
    assert losses and all(np.isfinite(v).all() for v in losses.values()), env_id
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(out.state.params))
    obs_rank = len(trainer.env.obs_shape)
    assert trainer.networks.actor.torso.kind == ("cnn" if obs_rank == 3 else "mlp")  # the documented default
