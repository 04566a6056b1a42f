import os
import sys

# Two pytest-xdist workers share the two cores: one host device each (pgjax's commands would
# otherwise split the CPU per process; tests of several devices ask for them explicitly).
os.environ.setdefault("PGJAX_HOST_DEVICES", "1")
# The pgjax commands that tests start must not fill the user's ~/.cache with test programs:
# the persistent compilation cache is off unless a test turns it on in a temporary folder.
os.environ.setdefault("PGJAX_COMPILE_CACHE", "0")

import jax  # noqa: E402

# Let tests import the probe environments and the NumPy oracles beside them.
sys.path.insert(0, os.path.dirname(__file__))

# A silent [B, 1] vs [B] broadcast is a classic RL bug: make implicit rank promotion an
# error everywhere in the tests (as rlax does), so pgjax broadcasts only on purpose.
jax.config.update("jax_numpy_rank_promotion", "raise")

from probe_envs import register_probes

register_probes()
