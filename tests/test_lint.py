"""The linter pyproject's [tool.ruff] configures passes on the library, tests and scripts.

CI runs the README's test command and nothing else, so the lint is gated here. ruff comes
with the dev extra that `scripts/setup.sh` installs.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    ruff = str(ruff) if ruff.exists() else shutil.which("ruff")
    assert ruff, "ruff is not installed: pip install -e '.[dev]' (scripts/setup.sh does)"
    done = subprocess.run([ruff, "check", "--no-cache", "pgjax", "tests", "scripts"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
