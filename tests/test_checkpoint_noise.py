"""Damaged-checkpoint fallbacks are reported in one line each, without orbax's echoes (issue
34): tensorstore's late callbacks into a closed event loop and the restore's abandoned
coroutines printed 60 to 1,740 traceback lines depending on timing. The subprocess test
provokes them reliably (eleven damaged checkpoints of 200 arrays, restored three times)
and shows the `pgjax` command's hooks leave nothing of them."""

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from pgjax.records import checkpoint

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    import jax, jax.numpy as jnp
    from pgjax.records.checkpoint import Checkpointer, quiet_orbax_failure_noise
    if sys.argv[1] == "quiet":
        quiet_orbax_failure_noise()
    root = Path(sys.argv[2])
    state = {f"leaf{i}": jnp.arange(2000, dtype=jnp.float32) + i for i in range(200)}
    expected = {"algo": "x", "config": {}, "num_seeds": 1}
    writer = Checkpointer(root, max_to_keep=20)
    for step in range(1, 13):
        writer.save(step, state, expected)
    writer.close()
    for step in range(2, 13):  # every checkpoint but the first: its array files torn in half
        for path in (root / str(step)).rglob("*"):
            if path.is_file() and "/d/" in str(path):
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    abstract = jax.eval_shape(lambda: state)
    for _ in range(3):
        skipped = []
        _, meta = Checkpointer(root, max_to_keep=20).restore(abstract, expected, on_skip=skipped.append)
        print("restored", meta["updates_done"], "skipped", len(skipped), flush=True)
""")


def _restore_damaged(tmp_path, mode):
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(tmp_path / mode)], capture_output=True, text=True,
                            cwd=ROOT, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["restored 1 skipped 11"] * 3
    return result.stderr


@pytest.mark.slow  # ~1 min: 12 saves and 33 failed restores of 200 arrays, twice
def test_damaged_checkpoint_fallbacks_print_no_orbax_echoes(tmp_path):
    noisy = _restore_damaged(tmp_path, "noisy")
    if "Event loop is closed" not in noisy and "Exception ignored" not in noisy:
        pytest.skip("this machine's timing produced no echoes to silence")  # not seen here in 10 runs
    assert _restore_damaged(tmp_path, "quiet").strip() == ""


def _coroutine_from(filename: str):
    namespace: dict = {}
    exec(compile("async def read():\n    return 1\n", filename, "exec"), namespace)  # noqa: S102 (a code object with that file name)
    return namespace["read"]()


def test_the_hook_drops_abandoned_restore_coroutines_only(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u))
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a))
    checkpoint.quiet_orbax_failure_noise()
    ours = _coroutine_from("/venv/site-packages/orbax/checkpoint/serialization.py")
    theirs = _coroutine_from("/home/me/notebook.py")
    try:
        for obj, exc in [(ours, ValueError("DATA_LOSS: Error reading ...")), (None, RuntimeError("Event loop is closed")),
                         (theirs, ValueError("a user's own coroutine failing")), (None, KeyError("other"))]:
            sys.unraisablehook(types.SimpleNamespace(exc_type=type(exc), exc_value=exc, exc_traceback=None,
                                                     err_msg=None, object=obj))
    finally:
        ours.close()
        theirs.close()
    assert [u.object for u in seen] == [theirs, None]
    assert isinstance(seen[1].exc_value, KeyError)
