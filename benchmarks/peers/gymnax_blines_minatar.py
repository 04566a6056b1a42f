"""Train gymnax-blines' own PPO (the source of gymnax's MinAtar anchors) at one seed.

gymnax-blines is not a package: `train.py` builds the model (`utils/models.py`) and runs
`utils/ppo.py:train_ppo` with `agents/<Game>-MinAtar/ppo.yaml`. This harness runs that code
unchanged from a snapshot of the repository (`git archive` into a temporary folder; nothing
of it is copied here), with the yaml's config and the seed from the command line, as
`python train.py -config agents/<Game>-MinAtar/ppo.yaml -seed SEED` does. Its one import it
does not use for PPO, `evosax.NetworkMapper` (the ES models), is stubbed.

It needs gymnax 0.0.x's five-value `step` and tensorflow-probability's JAX substrate, so it
runs in its own virtual environment:

    python3 -m venv ~/.cache/pgjax-peers/gymnax-blines
    ~/.cache/pgjax-peers/gymnax-blines/bin/pip install jax==0.10.2 gymnax==0.0.9 flax optax chex \
        tfp-nightly dotmap tqdm pyyaml

usage: python gymnax_blines_minatar.py BLINES_GIT_DIR GAME SEED OUT.pkl [STEPS]

STEPS replaces the yaml's `num_train_steps` (1e7) for a smoke test.
Writes what gymnax-blines' `train.py` stores (`log_steps`, `log_return`, `network`) plus the
wall seconds, as a pickle; `scripts/anchor_policies.py --peer-runs` then evaluates the
networks on pgjax's evaluation episodes.
"""

import atexit
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import types


def main(blines: str, game: str, seed: int, out: str, steps: int | None = None) -> None:
    out = os.path.abspath(out)  # the code below runs from the snapshot's folder
    workdir = tempfile.mkdtemp(prefix="gymnax-blines-")
    archive = subprocess.run(["git", "--git-dir", blines, "archive", "HEAD", "utils", f"agents/{game}-MinAtar/ppo.yaml"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(workdir, filter="data")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    sys.path.insert(0, workdir)
    os.chdir(workdir)
    sys.modules["evosax"] = types.SimpleNamespace(NetworkMapper={})  # ES models only

    import jax
    from utils.helpers import load_config
    from utils.models import get_model_ready
    from utils.ppo import train_ppo

    config = load_config(f"agents/{game}-MinAtar/ppo.yaml", seed, 5e-4).train_config
    if steps is not None:
        config.num_train_steps = steps
    rng = jax.random.PRNGKey(config.seed_id)  # as train.py:main
    rng, rng_init = jax.random.split(rng)
    model, params = get_model_ready(rng_init, config)
    start = time.time()
    log_steps, log_return, network = train_ppo(rng, config, model, params, None)
    wall = time.time() - start
    with open(out + ".tmp", "wb") as f:
        pickle.dump({"log_steps": [int(s) for s in log_steps], "log_return": [float(r) for r in log_return],
                     "network": jax.tree.map(lambda x: __import__("numpy").asarray(x), dict(network)),
                     "seed": seed, "game": game, "wall_seconds": wall}, f)
    os.replace(out + ".tmp", out)
    print(f"gymnax-blines {game} seed {seed}: final logged return {float(log_return[-1]):.2f}, {wall:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit("usage: python gymnax_blines_minatar.py BLINES_GIT_DIR GAME SEED OUT.pkl [STEPS]")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(float(sys.argv[5])) if len(sys.argv) == 6 else None)
