import os
import sys

# Let tests import the probe environments and the NumPy oracles beside them.
sys.path.insert(0, os.path.dirname(__file__))

from probe_envs import register_probes  # noqa: E402

register_probes()
