"""Host devices: `pgjax train` and `eval` give the same numbers on one CPU device or several.

The device count is fixed when JAX starts, so each count runs in its own subprocess
(`--host-devices N`). Seeds 0..2 with `--width 1` on 2 devices is an uneven split (2 + 1,
one padded seed); 4 devices for 3 seeds leaves one device idle.
"""

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pgjax.runtime import sharding
from pgjax.runtime.experiment import SeedLayout, default_seed_width
from pgjax.runtime.seed_cells import padding_note

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--config", "configs/ppo_cartpole.toml", "--seeds", "3", "--width", "1", "--chunks", "3", "--no-progress",
        "total_timesteps=3072", "num_steps=64", "hidden_sizes=[16]", "update_epochs=1"]

# One process per device count: a whole run, and (2 devices) a run stopped after one chunk,
# then (1 device) that run resumed; `pgjax eval` of the 2-device run on this count (4
# devices: only the evaluation, 3 seeds on 3 of the 4 devices).
SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    from pgjax.commands.cli import main

    devices, out, tiny = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    flag = ["--host-devices", devices]
    if devices != "4":
        assert main(["train", *tiny, *flag, "--eval-episodes", "4", "--out", str(out / f"whole{devices}")]) == 0
    if devices == "2":
        assert main(["train", *tiny, *flag, "--eval-episodes", "4", "--out", str(out / "stopped"),
                     "--stop-after", "1"]) == 0
    elif devices == "1":
        (stopped,) = (out / "stopped").iterdir()
        assert main(["train", "--resume", str(stopped), *flag, "--no-progress", "--eval-episodes", "4"]) == 0
    (first,) = (out / "whole2").iterdir()
    assert main(["eval", str(first), *flag, "--episodes", "5", "--out", str(out / f"eval{devices}.json")]) == 0
    import jax
    print("devices", len(jax.devices()))
""")


def _run(*args, devices=None):
    env = {k: v for k, v in os.environ.items() if k not in (sharding.ENV_VAR, "XLA_FLAGS")}
    env["JAX_PLATFORMS"] = "cpu"
    if devices is not None:
        env[sharding.ENV_VAR] = str(devices)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800,
                          check=False)


@pytest.fixture(scope="module")
def runs_on_1_and_2_devices(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostdev")
    for devices in ("2", "1", "4"):
        done = _run("-c", SCRIPT, devices, str(out), *TINY)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"devices {devices}" in done.stdout
    return out


def _run_dir(parent: Path) -> Path:
    (run_dir,) = parent.iterdir()
    return run_dir


def test_train_on_1_and_2_devices_writes_identical_metrics_and_checkpoints(runs_on_1_and_2_devices):
    from pgjax.commands.eval import load_run

    one, two = _run_dir(runs_on_1_and_2_devices / "whole1"), _run_dir(runs_on_1_and_2_devices / "whole2")
    assert (one / "metrics.csv").read_bytes() == (two / "metrics.csv").read_bytes()
    rows = list(csv.DictReader((two / "metrics.csv").open()))
    assert sorted({r["seed"] for r in rows}) == ["0", "1", "2"] and len(rows) == 3 * 12  # no padded seed
    a, b = load_run(one), load_run(two)
    assert a.updates_done == b.updates_done == 12 and a.width == b.width == 1
    leaves_a, leaves_b = _leaves(a.state), _leaves(b.state)
    assert len(leaves_a) == len(leaves_b) > 10
    for x, y in zip(leaves_a, leaves_b):
        assert x.shape[0] == 3 and x.dtype == y.dtype and x.tobytes() == y.tobytes()
    summary_a, summary_b = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert (summary_a["host_devices"], summary_b["host_devices"]) == (1, 2)
    for key in ("final_train_return", "eval_return_mean"):
        assert summary_a[key] == summary_b[key]


def test_resume_on_another_device_count_is_exact(runs_on_1_and_2_devices):
    whole = _run_dir(runs_on_1_and_2_devices / "whole2")
    resumed = _run_dir(runs_on_1_and_2_devices / "stopped")  # 1 chunk on 2 devices, the rest on 1
    assert (resumed / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["final_train_return"] == json.loads((whole / "summary.json").read_text())["final_train_return"]


def test_eval_on_1_2_and_4_devices_is_identical(runs_on_1_and_2_devices):
    one, two, four = (json.loads((runs_on_1_and_2_devices / f"eval{n}.json").read_text()) for n in (1, 2, 4))
    assert one["per_seed"] == two["per_seed"] == four["per_seed"] and set(one["per_seed"]) == {"0", "1", "2"}


def test_memory_estimate_is_per_device_and_checked(tmp_path):
    """A limit below one seed's state fails before compiling, naming the per-device need;
    two devices each hold half of the (padded) seeds, so half the bytes."""
    script = textwrap.dedent("""
        import sys
        from pgjax.commands.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    need = {}
    for devices in (1, 2):
        done = _run("-c", script, "train", *TINY, "--seeds", "4", "--memory-limit", "1KB", "--out", str(tmp_path),
                    "--host-devices", str(devices))
        assert done.returncode == 1, done.stderr[-2000:]
        message = done.stderr.strip().splitlines()[-1]
        assert f"({4 // devices} seeds on each of {devices} device(s))" in message, message
        assert "more than the limit 0.00 MB" in message and "--host-devices" in message
        need[devices] = float(message.split("about ")[1].split(" MB")[0])
    assert need[2] == pytest.approx(need[1] / 2, rel=0.02) and need[1] > 0
    assert not any(tmp_path.iterdir())  # nothing was started


def test_seed_layouts_uneven_and_more_devices_than_groups():
    three_on_two = SeedLayout.plan(3, 1, 2)
    assert (three_on_two.num_devices, three_on_two.padded, three_on_two.per_device) == (2, 4, 2)
    two_on_four = SeedLayout.plan(2, 1, 4)  # only as many devices as groups
    assert (two_on_four.num_devices, two_on_four.padded, two_on_four.per_device) == (2, 2, 1)
    five_by_two = SeedLayout.plan(5, 2, 8)  # groups of 2: 3 groups, 3 devices, one padded seed
    assert (five_by_two.num_devices, five_by_two.padded, five_by_two.per_device) == (3, 6, 2)
    wide = SeedLayout.plan(3, 8, 2)  # a width above the seed count is the seed count
    assert (wide.width, wide.num_devices, wide.padded) == (3, 1, 3)
    # The compile line says what the padding costs: its share of the time.
    assert padding_note(three_on_two) == ", computed as 4: 2 devices x 2 vmaps of 1, the 1 extra seed dropped"
    assert padding_note(five_by_two) == ", computed as 6: 3 devices x 1 vmap of 2, the 1 extra seed dropped"
    assert padding_note(SeedLayout.plan(5, 4, 1)) == ", computed as 8: 1 device x 2 vmaps of 4, the 3 extra seeds dropped"
    assert padding_note(two_on_four) == padding_note(wide) == ""


def test_default_width_follows_cores_not_devices(monkeypatch):
    monkeypatch.setattr(sharding, "usable_cores", lambda: 4)
    assert [default_seed_width(s, "cpu") for s in (1, 3, 4, 5, 16)] == [1, 1, 1, 2, 4]
    assert default_seed_width(16, "gpu") == 16  # one vmap on an accelerator, as before


def test_host_device_count_sources_and_errors(monkeypatch):
    monkeypatch.delenv(sharding.ENV_VAR, raising=False)
    assert sharding.host_device_count() == sharding.usable_cores() == len(os.sched_getaffinity(0))
    assert sharding.host_device_count(3) == 3
    monkeypatch.setenv(sharding.ENV_VAR, "5")
    assert sharding.host_device_count() == 5 and sharding.host_device_count(2) == 2  # the argument wins
    monkeypatch.setenv(sharding.ENV_VAR, "two")
    with pytest.raises(ValueError, match="PGJAX_HOST_DEVICES='two': must be a positive integer"):
        sharding.host_device_count()
    with pytest.raises(ValueError, match="host devices=0: must be a positive integer"):
        sharding.host_device_count(0)


def test_use_host_devices_once_jax_runs(monkeypatch):
    """In a running process the devices stay; asking for another count explicitly is an error."""
    import jax

    jax.numpy.zeros(1).block_until_ready()  # JAX is running
    have = len(jax.devices("cpu"))
    monkeypatch.delenv(sharding.ENV_VAR, raising=False)
    assert sharding.use_host_devices() == have
    assert sharding.use_host_devices(have) == have
    with pytest.raises(RuntimeError, match=f"host devices={have + 1}: JAX already runs with {have} CPU device"):
        sharding.use_host_devices(have + 1)


# Imports every pgjax module, then says whether a JAX backend (and so its device count) was
# fixed by the imports alone.
IMPORT_ALL = textwrap.dedent("""
    import importlib, pkgutil, sys
    import jax._src.xla_bridge as xla_bridge
    import pgjax

    names = [m.name for m in pkgutil.walk_packages(pgjax.__path__, "pgjax.") if m.name != "pgjax.__main__"]
    for name in names:
        importlib.import_module(name)
        assert not xla_bridge._backends, f"importing {name} started a JAX backend"
    assert "distrax" not in sys.modules, "the library imports distrax, a test-only dependency"
    print("imported", len(names))
""")


def test_importing_pgjax_leaves_the_devices_to_choose():
    """No module computes a JAX array at import: that would start the backend and fix the
    device count before `use_host_devices` (or a notebook's XLA_FLAGS) could choose it. Nor
    does any import distrax, which only the tests use (the GPU image has none)."""
    done = _run("-c", IMPORT_ALL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 40


def test_cli_rejects_a_bad_device_count():
    done = _run("-m", "pgjax", "train", "--host-devices", "0")
    assert done.returncode == 2 and "--host-devices '0': must be a positive integer" in done.stderr
    done = _run("-m", "pgjax", "train", "--list-fields", devices="x")
    assert done.returncode == 1 and "PGJAX_HOST_DEVICES='x': must be a positive integer" in done.stderr


def _leaves(state):
    import jax

    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(state)]
