"""A sweep sharded over 4 forced CPU devices writes the same cells, byte for byte, as on one.

XLA_FLAGS must be set before jax is imported, so the sweep runs in a subprocess.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    import jax

    from pgjax.runtime import sweep as sw

    assert jax.device_count() == 4, jax.devices()
    base = {"env_id": "CartPole-v1", "num_envs": 2, "num_steps": 8, "total_timesteps": 64, "update_epochs": 1,
            "num_minibatches": 1, "hidden_sizes": [8]}
    groups = sw.plan("ppo", base, {"hparams.learning_rate": [2.5e-4, 1e-2]}, [0, 1, 2, 3])
    out = Path(sys.argv[1])
    for name, devices in [("sharded", jax.devices()), ("single", jax.devices()[:1])]:
        settings = sw.SweepSettings(width=2, max_chunks=2, devices=devices)
        stats = sw.run_sweep(out / name, "ppo", groups, 0, settings)
        print(name, stats["launches"], stats["groups"][0]["cells_per_launch"])
""")


def test_sharded_sweep_equals_unsharded(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], check=False, capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sharded 1 8" in result.stdout and "single 1 8" in result.stdout  # 8 cells, one launch each
    sharded = sorted((tmp_path / "sharded" / "cells").glob("*.json"))
    single = sorted((tmp_path / "single" / "cells").glob("*.json"))
    assert len(sharded) == len(single) == 8
    for a, b in zip(sharded, single):
        assert a.read_bytes() == b.read_bytes(), a.name
