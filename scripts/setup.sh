#!/usr/bin/env bash
# Sets up pgjax in ./.venv (created if missing) with the package, its dependencies, the
# development tools and the environment-suite extras the tests cover (brax, xminigrid).
# Idempotent: re-running it with an unchanged pyproject.toml is quick.
# Needs Python >= 3.11 (override with PYTHON=/path/to/python3.11) and access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: pgjax needs Python >= 3.11; '$PYTHON' is $("$PYTHON" --version 2>&1 || echo missing)." >&2
  echo "          Run again with PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup.sh: creating .venv with $("$PYTHON" --version)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.pgjax-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c 'import pgjax, gymnax, brax, xminigrid' 2>/dev/null; then
  echo "setup.sh: installing pgjax, its dependencies and the brax and xminigrid extras into .venv (a few minutes the first time)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  # [track]: TensorBoard and W&B writers; [brax], [xminigrid]: the environment suites. All are
  # installed so that CI tests the tracking sinks and the suite adapters.
  .venv/bin/python -m pip install --quiet -e ".[dev,track,brax,xminigrid]" >&2
  echo "$want" > "$stamp"
fi
