"""JAX's persistent compilation cache as the `pgjax` commands use it (`pgjax.runtime.compile_cache`).

conftest.py turns the cache off for every command the tests start (`PGJAX_COMPILE_CACHE=0`);
the tests here turn it on in a temporary folder, never in the user's ~/.cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgjax.runtime import compile_cache

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--config", "configs/ppo_cartpole.toml", "--seeds", "0,1", "--width", "1", "--no-progress",
        "--eval-episodes", "3", "--chunks", "2", "--no-checkpoint", "total_timesteps=4096", "num_steps=64",
        "hidden_sizes=[16]", "update_epochs=1", "num_minibatches=2"]


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.configured_cache_dir() == tmp_path / "xdg" / "pgjax" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert compile_cache.default_cache_dir() == Path.home() / ".cache" / "pgjax" / "jax"
    assert compile_cache.configured_cache_dir(disabled=True) is None  # --no-compile-cache
    for off in ("0", "off", "OFF", ""):
        monkeypatch.setenv(compile_cache.ENV_VAR, off)
        assert compile_cache.configured_cache_dir() is None
    monkeypatch.setenv(compile_cache.ENV_VAR, str(tmp_path / "elsewhere"))
    assert compile_cache.configured_cache_dir() == tmp_path / "elsewhere"


def test_an_unusable_cache_folder_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match=r"compile cache .*file/jax: cannot create it"):
        compile_cache.enable_compile_cache(tmp_path / "file" / "jax")


CLI_CASES = """
import json, os, sys, jax
from pgjax.commands import cli
out = []
for argv, value in json.loads(sys.argv[1]):
    os.environ.pop("PGJAX_COMPILE_CACHE", None)
    if value is not None:
        os.environ["PGJAX_COMPILE_CACHE"] = value
    cli._start_compile_cache(argv)
    out.append(jax.config.jax_compilation_cache_dir)
    jax.config.update("jax_compilation_cache_dir", None)
print(json.dumps(out))
"""


def test_the_cli_enables_the_cache_unless_told_not_to(tmp_path):
    """What the CLI's start-up configures JAX with, in a fresh process (nothing compiled)."""
    folder = str(tmp_path / "cache")
    cases = [(["train"], folder), (["sweep", "--no-compile-cache"], folder), (["eval", "x"], "0"),
             (["plot", "x"], str(tmp_path / "unused"))]  # plot compiles nothing
    done = subprocess.run([sys.executable, "-c", CLI_CASES, json.dumps(cases)], capture_output=True, text=True,
                          cwd=ROOT, check=True, timeout=300)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [folder, None, None, None]
    assert Path(folder).is_dir() and not (tmp_path / "unused").exists()


def train(out: Path, cache: str, host_devices: int) -> tuple[dict, bytes, bytes]:
    """`pgjax train TINY` in a fresh process through the benchmark's child mode, which
    counts the programs JAX found in (hits) or added to (misses) the persistent cache."""
    # JAX stores only programs that took at least a second to compile: one near that line was
    # stored by one run and not by the next on a loaded machine. Store all, so the count is exact.
    env = {**os.environ, compile_cache.ENV_VAR: cache, "PGJAX_HOST_DEVICES": str(host_devices), "PYTHONPATH": str(ROOT),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    result = subprocess.run([sys.executable, "scripts/bench_compile_cache.py", "--child", *TINY, "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=900, check=False)
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    assert result.returncode == 0 and line, result.stderr
    (run_dir,) = out.iterdir()
    return json.loads(line[-1][len("RESULT "):]), (run_dir / "metrics.csv").read_bytes(), \
        (run_dir / "eval.csv").read_bytes()


def test_a_second_run_loads_its_programs_and_computes_the_same_numbers_on_two_host_devices(tmp_path):
    """Cached executables keep the host-device sharding: the second run of the same command
    on 2 CPU devices compiles nothing (every program from the cache) and writes
    byte-identical metrics and evaluations."""
    cache = str(tmp_path / "cache")
    first, metrics, evals = train(tmp_path / "a", cache, 2)
    assert first["exit"] == 0 and first["cache_misses"] >= 2  # init, chunk, eval (a repeat within the run hits)
    second, metrics2, evals2 = train(tmp_path / "b", cache, 2)
    assert second["cache_misses"] == 0 and second["cache_hits"] == first["cache_hits"] + first["cache_misses"]
    assert metrics2 == metrics and evals2 == evals


@pytest.mark.slow
def test_a_cache_filled_on_two_devices_serves_one_device_runs_correctly(tmp_path):
    """A run on 1 device with a cache filled by a 2-device run compiles its own programs
    (JAX keys entries by devices and XLA flags) and computes what an uncached run does."""
    cache = str(tmp_path / "cache")
    _, metrics2dev, evals2dev = train(tmp_path / "a", cache, 2)
    one, metrics1dev, evals1dev = train(tmp_path / "b", cache, 1)
    assert one["cache_misses"] >= 2
    _, metrics_plain, evals_plain = train(tmp_path / "c", "0", 1)
    assert metrics1dev == metrics2dev == metrics_plain and evals1dev == evals2dev == evals_plain


def test_train_runs_the_chunk_program_its_memory_check_compiled():
    """`pgjax train` compiles its largest chunk before training, to read XLA's memory count
    (`SeedCells.check_memory`). A fresh run and a resumed one must both run that program, not trace
    (and compile) another: a second compile would double the time to the first chunk. The
    resumed state is `[S]` host rows, as a checkpoint gives them."""
    import types

    import jax
    import numpy as np

    from pgjax.commands import load_config
    from pgjax.runtime import sweep
    from pgjax.runtime.seed_cells import SeedCells

    overrides = ["total_timesteps=1024", "num_steps=64", "hidden_sizes=[16]", "update_epochs=1"]
    _, module, config = load_config(None, ROOT / "configs/ppo_cartpole.toml", None, overrides)
    real = module.make_trainer(config)
    traced = []

    def run(state, hparams, size):
        traced.append(size)
        return real.run(state, hparams, size)

    trainer = types.SimpleNamespace(init=real.init, run=run, config=real.config)
    seeds = SeedCells.build(trainer, {"seeds": [0, 1], "width": 1, "root_seed": 0})
    size = config.num_updates
    assert sweep.compiled_bytes(seeds.compile_chunk(size)) > 0 and traced == [size]
    fresh = seeds.train(None, 0, 1, lambda *_: None)
    assert traced == [size]

    def is_key(x):
        return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)

    def to_host(x):  # as a checkpoint stores a leaf
        return np.asarray(jax.random.key_data(x) if is_key(x) else x)

    init, _ = seeds.functions
    rows = jax.tree.map(to_host, seeds.rows(init(seeds.keys, seeds.hparams)))
    restored = jax.tree.map(lambda like, x: jax.random.wrap_key_data(x) if is_key(like) else x,
                            seeds.abstract_state(), rows)
    again = seeds.train(restored, 0, 1, lambda *_: None)
    assert traced == [size]
    assert all(np.array_equal(to_host(a), to_host(b)) for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(again)))
