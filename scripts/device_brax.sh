#!/usr/bin/env bash
# The Brax rows of issue 31 (pgjax's Ant/HalfCheetah PPO and Hopper SAC rows at a reduced
# budget, 3 seeds, and brax's own ppo.train on Ant beside them) in ONE command of a GPU
# session, about 8 minutes; tested only on CPU, at tiny size (DEVICE_BRAX_SMOKE=1).
#
# On the device (repository root; the wheels come from scripts/fetch_device_wheels.py):
#     run(command="bash scripts/device_brax.sh", carry=[".device-wheels"], timeout_s=600)
# Here, the CPU smoke test (brax/fast everywhere; the wheels step runs only with .device-wheels/
# and Python 3.12, the image's):
#     DEVICE_BRAX_SMOKE=1 PYTHON=.venv/bin/python OUT=/tmp/out bash scripts/device_brax.sh
# Options through the environment: DEVICE_BRAX_MINUTES (default 8: everything, install
# included, ends by then), DEVICE_BRAX_PHASES=a,b (only those phases, e.g. the rows a first
# command had no time for), PYTHON (default python3), OUT (default /tmp/device_brax_out).
#
# Budget (per seed): PPO 8 updates of Brax's batch shape, 8 x 327,680 = 2,621,440 steps
# (10% of the notebook's 25M-step Ant run; brax: num_evals 5, 4 epochs of 2 updates);
# SAC Hopper 8,192 random steps + 1,000 iterations of 128 envs = 136,192 steps (64,000
# gradient steps of 512). pgjax's rows train in 8 chunks, each followed by a checkpoint and a
# 32-episode greedy evaluation (reproduce.py --chunks 8: SAC's checkpoints hold the replay
# buffers, ~350 MB for 3 seeds), and end with 32 episodes per seed, greedy and sampled;
# brax evaluates 128 sampled episodes after each of its 4 epochs and before the first.
#
# What each part costs, estimated (no GPU has run this yet; the anchor is brax's notebook,
# Ant PPO at 4096 envs on an unnamed accelerator: 33 s to its first evaluation, 25M steps
# in 156 s, ~160k env steps/s; Brax's physics makes the Ant and HalfCheetah programs pgjax's
# slowest to compile, benchmarks/README.md):
#   wheels install (22 wheels, 33 MiB, --no-deps) ~20 s
#   preflight (versions, devices, requirements)  ~15 s
#   brax Ant seed 0 (compile ~30 s, first eval ~30 s, 2.6M steps ~16 s, evals) ~90 s
#   pgjax Ant row, 3 seeds in one vmap: process start, compile ~40-60 s, 7.9M steps at
#     ~160k/s ~50 s, 8 chunk evaluations and checkpoints ~20 s, then two `pgjax eval`
#     processes (greedy, sampled) ~35 s each: ~200 s
#   brax Ant seeds 1, 2 (programs from the persistent compile cache) ~40 s each
#   pgjax Hopper SAC row ~120 s;  pgjax HalfCheetah PPO row ~200 s
#   table, figure, archive ~10 s (20 s kept, plus 25 s for a stopped phase to end)
# So 8 minutes hold the Ant pair (pgjax 3 seeds, brax 3 seeds) for certain and the other
# rows only if compilation is faster than estimated. Phases run in that order, each as a
# fresh process (alternating pgjax and brax on Ant); one starts only if its least cost fits
# before the deadline, and a running one is stopped there (SIGTERM: pgjax keeps its last
# checkpoint, brax's harness has written every finished seed), so the command ends cleanly
# with what finished in $OUT: summary.md (side-by-side table, phase times), summary.json,
# device_brax.log and brax_results.tar.gz. A second command with
# DEVICE_BRAX_PHASES=pgjax-hopper-sac,pgjax-halfcheetah-ppo runs the rest on a warm machine.
set -u
export DEVICE_BRAX_START=${DEVICE_BRAX_START:-$(date +%s)}
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/device_brax_out}
mkdir -p "$OUT"
PYV=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if compgen -G ".device-wheels/*.whl" >/dev/null && [ "$PYV" = 3.12 ]; then
  SITE=/tmp/device-brax-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    .device-wheels/*.whl || { echo "device_brax: installing .device-wheels failed" >&2; exit 1; }
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "device_brax: installed $(ls .device-wheels/*.whl | wc -l) wheels in $(( $(date +%s) - DEVICE_BRAX_START )) s"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "device_brax: no wheels installed (.device-wheels/ holds CPython 3.12 wheels; $PY is $PYV): using its packages as they are"
fi
export PYTHONUNBUFFERED=1
exec "$PY" scripts/device_brax.py --out "$OUT" "$@"
