"""The research notebooks: each committed `.ipynb` is built from its `notebooks/NN_*.py` source,
carries the outputs of a full-budget run, and runs headless on the reduced budget without error.

The reduced run uses a kernel on this interpreter (`scripts/build_notebooks.py` writes its
kernelspec for `sys.executable`) with `PGJAX_NOTEBOOK_BUDGET=ci` and, as in the other tests,
implicit rank promotion made an error. The reduced runs write to a temporary folder: the
committed notebooks are never touched by the tests.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
build_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_notebooks)

SOURCES = build_notebooks.sources()
REBUILD = "rebuild it: .venv/bin/python scripts/build_notebooks.py"


def test_the_notebooks_are_there():
    names = [s.stem for s in SOURCES]
    assert "01_reinforce_and_variance" in names and "02_nstep_and_gae" in names, names
    assert sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) == names


def test_percent_parser_splits_code_and_markdown():
    text = "# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n# %%\n# a comment\ny = 2\n"
    assert build_notebooks.parse_percent(text) == [
        ("markdown", "# Title\n\ntext"), ("code", "x = 1"), ("code", "# a comment\ny = 2"),
    ]
    with pytest.raises(ValueError, match="before the first"):
        build_notebooks.parse_percent("x = 1\n# %%\n")


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.stem)
def test_committed_notebook_matches_its_source_and_has_full_budget_outputs(source):
    committed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    nbformat.validate(committed)
    assert build_notebooks.cell_sources(committed) == build_notebooks.cell_sources(build_notebooks.build(source)), (
        f"{source.with_suffix('.ipynb').name} differs from {source.name}: {REBUILD}"
    )
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), f"not executed in order: {REBUILD}"
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors[0]
    first_output = "".join(out.get("text", "") for out in code[0].outputs)
    assert "budget: full" in first_output, f"committed outputs are not from a full-budget run: {REBUILD}"
    assert any(out.get("data", {}).get("image/png") for cell in code for out in cell.outputs), "no figure"


@pytest.mark.parametrize("text", ["-5", "1.5", "soon"])
def test_a_cell_timeout_that_is_not_seconds_is_one_line(capsys, text):
    """Was: `--timeout -5` accepted (nbclient then failed each cell at once)."""
    with pytest.raises(SystemExit) as stop:
        build_notebooks.main(["--timeout", text, "--no-execute", "--out-dir", "/nonexistent"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err == (f"build_notebooks.py: error: --timeout {text!r}: must be a whole number "
                                            "of seconds >= 1, or 0 for no limit\n"), err


def test_a_cell_timeout_of_0_is_no_limit():
    assert build_notebooks.cell_timeout("0") is None and build_notebooks.cell_timeout("30") == 30


@pytest.mark.parametrize("text", ["JAX_PLATFORMS", "=cpu"])
def test_an_env_item_that_is_not_key_value_is_one_line(capsys, text):
    """Was: `--env X` (no `=`) ended in a ValueError traceback from `dict(...)`."""
    with pytest.raises(SystemExit) as stop:
        build_notebooks.main(["--env", text, "--no-execute", "--out-dir", "/nonexistent"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err == (f"build_notebooks.py: error: --env {text!r}: must be KEY=VALUE (an "
                                            "environment variable and its value)\n"), err
    assert build_notebooks.env_item("A=b=c") == ("A", "b=c")


def test_a_missing_out_dir_is_made_before_any_notebook_runs(tmp_path):
    """Was: a FileNotFoundError traceback after the notebook had run, losing its outputs."""
    out = tmp_path / "new" / "folder"
    assert build_notebooks.main([SOURCES[0].stem, "--no-execute", "--out-dir", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == [f"{SOURCES[0].stem}.ipynb"]  # no partial file left beside it


def test_an_out_dir_that_is_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit) as stop:
        build_notebooks.main([SOURCES[0].stem, "--no-execute", "--out-dir", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err == f"build_notebooks.py: error: --out-dir '{tmp_path / 'f'}': is a file, not a folder\n"


def test_markdown_only_without_an_executed_notebook_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        build_notebooks.main([SOURCES[0].stem, "--markdown-only", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("build_notebooks.py: error: --markdown-only: ") and \
        "does not exist" in err and err.count("\n") == 1, err


def run_reduced(source, out_dir):
    """One notebook's reduced-budget run in its own `scripts/build_notebooks.py` process and
    kernel. One per test, so the two test workers run two notebooks at once and no notebook
    runs twice (a shared fixture started every selected notebook in each worker)."""
    command = [sys.executable, str(ROOT / "scripts" / "build_notebooks.py"), source.stem, "--budget", "ci",
               "--out-dir", str(out_dir), "--env", "JAX_NUMPY_RANK_PROMOTION=raise"]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)


# The default run executes the cheapest notebooks and 07 (the trust-region family, about a
# CPU-minute and a half: its reduced run is the CI check the notebook promises); the three
# others that take over a CPU-minute on the reduced budget (01 REINFORCE variance, 03 trust
# regions, 06 MinAtar and memory) run with -m slow. Every notebook's committed copy is
# checked above either way.
SLOW_NOTEBOOKS = {"01_reinforce_and_variance", "03_trust_regions", "06_minatar_and_memory"}


@pytest.mark.parametrize("source", [pytest.param(s, marks=pytest.mark.slow) if s.stem in SLOW_NOTEBOOKS else s
                                    for s in SOURCES], ids=lambda s: s.stem)
def test_notebook_runs_on_the_reduced_budget(source, tmp_path):
    result = run_reduced(source, tmp_path)
    # nbclient's CellExecutionError names the failing cell and carries its traceback.
    assert result.returncode == 0, f"{source.stem} failed:\n{result.stderr[-6000:]}"
    nb = nbformat.read(tmp_path / f"{source.stem}.ipynb", as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "a cell did not run"
    assert "budget: ci" in "".join(out.get("text", "") for out in code[0].outputs)
