#!/usr/bin/env bash
# Issue 31's GPU rows, one suite per device command (scripts/device_rows.py): tested only on CPU,
# at tiny size (DEVICE_ROWS_SMOKE=1).
#
# On the device (repository root; the wheels come from scripts/fetch_device_wheels.py), the Brax
# suite first, then XLand-MiniGrid on the same warm machine with what the session has left:
#     run(command="bash scripts/device_rows.sh brax", carry=[".device-wheels"], timeout_s=600)
#     run(command="bash scripts/device_rows.sh xminigrid", carry=[".device-wheels"], timeout_s=360)
# (the wheels are installed once per machine: a second call on the same machine skips it; a
# fresh machine installs them again). MinAtar's CNN rows (`minatar`, ~9 minutes) need a session
# of their own. Here, the CPU smoke test (the wheels step runs only with .device-wheels/ and
# Python 3.12, the image's):
#     DEVICE_ROWS_SMOKE=1 PYTHON=.venv/bin/python OUT=/tmp/out bash scripts/device_rows.sh xminigrid
# Options through the environment: DEVICE_ROWS_MINUTES (everything, install included, ends by
# then; default brax 8, xminigrid 5.5, minatar 9), DEVICE_ROWS_PHASES=a,b (only those phases, e.g.
# the rows a first command had no time for), DEVICE_ROWS_STEPS (env steps per seed of every row,
# to fit less time), PYTHON (default python3), OUT (default /tmp/device_rows_out).
#
# brax. Budget (per seed): PPO 8 updates of Brax's batch shape, 8 x 327,680 = 2,621,440 steps
# (10% of the notebook's 25M-step Ant run; brax: num_evals 5, 4 epochs of 2 updates);
# SAC Hopper 8,192 random steps + 1,000 iterations of 128 envs = 136,192 steps (64,000
# gradient steps of 512). pgjax's rows train in 8 chunks, each followed by a checkpoint and a
# 32-episode greedy evaluation (reproduce.py --chunks 8: SAC's checkpoints hold the replay
# buffers, ~350 MB for 3 seeds), and end with 32 episodes per seed, greedy and sampled;
# brax evaluates 128 sampled episodes after each of its 4 epochs and before the first.
# What each part costs, estimated (no GPU has run this yet; the anchor is brax's notebook,
# Ant PPO at 4096 envs on an unnamed accelerator: 33 s to its first evaluation, 25M steps
# in 156 s, ~160k env steps/s; Brax's physics makes the Ant and HalfCheetah programs pgjax's
# slowest to compile, benchmarks/README.md):
#   wheels install (23 wheels, 33 MiB, --no-deps) ~20 s
#   preflight (versions, devices, requirements)  ~15 s
#   brax Ant seed 0 (compile ~30 s, first eval ~30 s, 2.6M steps ~16 s, evals) ~90 s
#   pgjax Ant row, 3 seeds in one vmap: process start, compile ~40-60 s, 7.9M steps at
#     ~160k/s ~50 s, 8 chunk evaluations and checkpoints ~20 s, then two `pgjax eval`
#     processes (greedy, sampled) ~35 s each: ~200 s
#   brax Ant seeds 1, 2 (programs from the persistent compile cache) ~40 s each
#   pgjax Hopper SAC row ~120 s;  pgjax HalfCheetah PPO row ~200 s
#   table, figure, archive ~10 s (20 s kept, plus 25 s for a stopped phase to end)
# So 8 minutes hold the Ant pair (pgjax 3 seeds, brax 3 seeds) for certain and the other
# rows only if compilation is faster than estimated. Phases run in that order (alternating
# pgjax and brax on Ant). DEVICE_ROWS_PHASES=pgjax-hopper-sac,pgjax-halfcheetah-ppo runs the
# rest in another call.
#
# xminigrid. DoorKey-8x8, the GRU row then the CNN row (configs/ppo_doorkey8x8_xminigrid{_gru,}.toml:
# xminigrid's single-task shape, 8,192 envs x 16 steps = 131,072 steps per update), 3 seeds in
# one vmap (24,576 environments), 128 updates = 2^24 = 16,777,216 steps per seed (of the
# configs' 1e8; the learning rate anneals over the shorter run), 4 chunks, 32 final episodes
# per seed and mode. Memory: XLA's count on the CPU for one chunk of the GRU row is about
# 1.2 GB per seed (1.07 GB of intermediates, 0.1 GB of rollout observations), so 3 seeds
# need ~4 GB and the suite's 5 (6 wide on one device) 7.5 GB: far below a GPU's 80 GB; pgjax refuses
# before training where XLA's count exceeds the device. Estimated cost, from xminigrid's
# published PPO throughput (about 1.5M env steps/s at 8,192 environments on one GPU; pgjax's
# 3 seeds are 3 x 8,192 environments; 1.5M/s for all of them together is assumed here):
#   wheels install ~20 s on a fresh machine, ~1 s on the Brax call's;  preflight ~15 s
#   per row: process start ~10 s, compile ~30 s, 50.3M steps ~35 s (~45 s at 1.1M/s),
#     4 chunk evaluations and checkpoints ~10 s, two `pgjax eval` processes ~20 s each:
#     ~125 s for the GRU row, ~110 s for the CNN row
#   table, figure, archive ~10 s (20 s kept, plus 25 s for a stopped phase to end)
#   a row starts only with most of its cost left (GRU 100 s, CNN 90 s): one stopped early
#     leaves no record (its checkpoint stays in /tmp/device_rows: a rerun there resumes it)
# So 5.5 minutes hold both rows (the GRU first) if compilation takes no longer than estimated;
# 4 minutes hold the GRU row, and DEVICE_ROWS_PHASES=pgjax-doorkey8-cnn runs the CNN row in
# another call (~2.5 minutes); DEVICE_ROWS_STEPS=8388608 (64 updates) saves ~20 s per row.
#
# minatar. The four CNN rows (configs/ppo_<game>_minatar_cnn.toml) at their full budget, 1e7
# steps per seed, 5 seeds, 8 chunks, 164 final episodes per seed and mode (the suite's
# default): ~6 hours per row on the 2-core CPU; on a GPU the 1,220 sequential updates of 64
# envs are latency-bound, estimated ~1-2 minutes per row. Its records, like every suite's,
# come back in $OUT (minatar_results.tar.gz) for a later session to copy into benchmarks/results.
#
# In every suite a phase starts only if its least cost fits before the deadline, and a running
# one is stopped there (SIGTERM: pgjax keeps its last checkpoint, brax's harness has written
# every finished seed), so the command ends cleanly with what finished in $OUT:
# SUITE_summary.md (the table, phase times), SUITE_summary.json, device_rows.log and
# SUITE_results.tar.gz.
set -u
export DEVICE_ROWS_START=${DEVICE_ROWS_START:-$(date +%s)}
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/device_rows_out}
mkdir -p "$OUT"
PYV=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if compgen -G ".device-wheels/*.whl" >/dev/null && [ "$PYV" = 3.12 ]; then
  SITE=/tmp/device-rows-site
  # the same wheels already installed by an earlier call on this machine: skip the install
  WANT=$(cd .device-wheels && ls -l --time-style=+ *.whl | awk '{print $5, $NF}')
  if [ "$(cat "$SITE/.carried-wheels" 2>/dev/null)" = "$WANT" ]; then
    echo "device_rows: the $(ls .device-wheels/*.whl | wc -l) carried wheels are installed already"
  else
    rm -rf "$SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
      .device-wheels/*.whl || { echo "device_rows: installing .device-wheels failed" >&2; exit 1; }
    printf '%s' "$WANT" > "$SITE/.carried-wheels"
    echo "device_rows: installed $(ls .device-wheels/*.whl | wc -l) wheels in $(( $(date +%s) - DEVICE_ROWS_START )) s"
  fi
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "device_rows: no wheels installed (.device-wheels/ holds CPython 3.12 wheels; $PY is $PYV): using its packages as they are"
fi
export PYTHONUNBUFFERED=1
exec "$PY" scripts/device_rows.py "$@" --out "$OUT"
