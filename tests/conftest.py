import os
import shutil
import sys
import tempfile

# Two pytest-xdist workers share the two cores: one host device each (pgjax's commands would
# otherwise split the CPU per process; tests of several devices ask for them explicitly).
os.environ.setdefault("PGJAX_HOST_DEVICES", "1")
# One persistent compilation cache for the whole session, in a temporary folder (never the
# user's ~/.cache): the test workers and every command they start use it, so a program (a
# config's train chunk, an evaluation) compiles once per session instead of once per test
# process. Most of the suite's time is XLA compiling the same tiny configs in many
# processes; a cached program is the same executable, so every number is unchanged (the
# cache itself is tested in test_compile_cache.py). The xdist controller makes the folder
# before its workers start (they inherit the variable) and removes it at the end;
# PGJAX_COMPILE_CACHE=0 (or a folder) set by the caller is kept.
if "PGJAX_COMPILE_CACHE" not in os.environ:
    os.environ["PGJAX_COMPILE_CACHE"] = SESSION_COMPILE_CACHE = tempfile.mkdtemp(prefix="pgjax-test-compile-cache-")
else:
    SESSION_COMPILE_CACHE = None

import jax

from pgjax.runtime.compile_cache import configured_cache_dir, enable_compile_cache

# Let tests import the probe environments and the NumPy oracles beside them.
sys.path.insert(0, os.path.dirname(__file__))

# A silent [B, 1] vs [B] broadcast is a classic RL bug: make implicit rank promotion an
# error everywhere in the tests (as rlax does), so pgjax broadcasts only on purpose.
jax.config.update("jax_numpy_rank_promotion", "raise")
if (compile_cache_dir := configured_cache_dir()) is not None:
    # Before anything compiles: JAX decides once per process whether the cache is used.
    enable_compile_cache(compile_cache_dir)

from probe_envs import register_probes

register_probes()


def pytest_unconfigure(config):
    if SESSION_COMPILE_CACHE is not None:  # this process made it: the controller, or a run without xdist
        shutil.rmtree(SESSION_COMPILE_CACHE, ignore_errors=True)
