"""Build the research notebooks from their readable sources, and execute them headless.

Each notebook has a source `notebooks/NN_name.py` in the "percent" format (`# %%` starts a
code cell, `# %% [markdown]` a markdown cell whose lines start with `# `), which is what
one edits and reviews; `notebooks/NN_name.ipynb` is built from it and committed with its
outputs (executed with the full budget) so it reads well on a code host.

    python scripts/build_notebooks.py                    # build and execute all (full budget)
    python scripts/build_notebooks.py 02 --budget ci     # one notebook, reduced budget
    python scripts/build_notebooks.py --no-execute       # cells only, no outputs
    python scripts/build_notebooks.py 01 --markdown-only # new prose, the committed outputs kept
    python scripts/build_notebooks.py 02 --budget ci --out-dir /tmp/nb --env JAX_NUMPY_RANK_PROMOTION=raise
    python scripts/build_notebooks.py 07 --timeout 0                # no time limit per cell (long full runs)

The budget reaches the notebooks through the environment variable PGJAX_NOTEBOOK_BUDGET
("full" or "ci"), read by each notebook's first cell. The kernel is always the Python
running this script (a kernelspec written for `sys.executable`), so a notebook sees the
same pgjax and JAX as the tests, whatever other kernels the machine has.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUDGETS = ("full", "ci")
KERNEL_NAME = "pgjax-notebooks"
CELL_MARK = "# %%"
MARKDOWN_MARK = "# %% [markdown]"


def sources() -> list[Path]:
    """Every notebook source `notebooks/NN_*.py`, in order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def parse_percent(text: str) -> list[tuple[str, str]]:
    """Split a percent-format source into `(cell_type, source)` pairs ("code" or "markdown")."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith(MARKDOWN_MARK):
            cells.append(("markdown", []))
        elif line.startswith(CELL_MARK):
            cells.append(("code", []))
        elif not cells:
            if line.strip():
                raise ValueError(f"text before the first '{CELL_MARK}' cell marker: {line!r}")
        elif cells[-1][0] == "markdown":
            if line and not line.startswith("#"):
                raise ValueError(f"markdown line must start with '# ': {line!r}")
            cells[-1][1].append(line[2:] if line.startswith("# ") else line[1:])
        else:
            cells[-1][1].append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook (no outputs) for one percent-format source."""
    nb = nbformat.v4.new_notebook()
    for kind, text in parse_percent(source.read_text()):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(text))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def cell_sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells]


@contextlib.contextmanager
def kernel_manager(budget: str, extra_env: dict[str, str] | None = None):
    """A kernel manager whose kernel runs `sys.executable` with the budget in its environment."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    if budget not in BUDGETS:
        raise ValueError(f"budget={budget!r}: expected one of {BUDGETS}")
    env = {"PGJAX_NOTEBOOK_BUDGET": budget, **(extra_env or {})}
    with tempfile.TemporaryDirectory() as kernels:
        write_kernel_spec(str(Path(kernels) / KERNEL_NAME), overrides={"env": env})
        specs = KernelSpecManager(kernel_dirs=[kernels], ensure_native_kernel=False)
        yield KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def execute(nb: nbformat.NotebookNode, budget: str, timeout: int | None = 1200,
            extra_env: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel started in `notebooks/`; raises on the first error."""
    from nbclient import NotebookClient

    with kernel_manager(budget, extra_env) as km:
        client = NotebookClient(
            nb, km=km, timeout=timeout, allow_errors=False,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def with_outputs_of(nb: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` with the outputs of `executed`, whose code cells must be the same, in the same order.

    For a change to markdown cells only: the outputs stay exactly what that code produced.
    """
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    done = [cell for cell in executed.cells if cell.cell_type == "code"]
    if [c.source for c in code] != [c.source for c in done]:
        raise ValueError("code cells changed since the notebook was executed: rebuild it with execution")
    for cell, old in zip(code, done):
        cell.outputs, cell.execution_count, cell.metadata = old.outputs, old.execution_count, old.metadata
    nb.metadata = executed.metadata
    return nb


def write_atomic(nb: nbformat.NotebookNode, target: Path) -> None:
    """Write `nb` to `target` through a temporary file in the same folder: a failed write leaves the old file."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        nbformat.write(nb, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit code 2."""

    def error(self, message: str):
        head, _, rest = message.partition(": ")  # "argument --timeout: --timeout '-5': ..." names the flag once
        if head.startswith("argument ") and rest.startswith(head.removeprefix("argument ")):
            message = rest
        self.exit(2, f"{self.prog}: error: {message}\n")


def cell_timeout(text: str) -> int | None:
    """An argparse `type` for `--timeout`: seconds per cell, a whole number >= 1, or 0 for none (None)."""
    try:
        seconds = int(text)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"--timeout {text!r}: must be a whole number of seconds >= 1, or 0 for no "
                                         "limit")
    return seconds or None


def env_item(text: str) -> tuple[str, str]:
    """An argparse `type` for `--env`: `KEY=VALUE` with a non-empty KEY."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--env {text!r}: must be KEY=VALUE (an environment variable and its value)")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--budget", choices=BUDGETS, default="full")
    parser.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    parser.add_argument("--markdown-only", action="store_true",
                        help="keep the outputs of the existing .ipynb (its code cells must be unchanged)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="write the .ipynb files here instead of next to their sources")
    parser.add_argument("--env", action="append", default=[], type=env_item, metavar="KEY=VALUE",
                        help="extra environment variable for the kernel (repeatable)")
    parser.add_argument("--timeout", type=cell_timeout, default=1200, metavar="SECONDS",
                        help="limit on each cell's run time in seconds, >= 1 (default 1200; 0: none)")
    args = parser.parse_args(argv)
    extra_env = dict(args.env)
    chosen = [s for s in sources() if not args.names or any(s.stem.startswith(n) for n in args.names)]
    if not chosen:
        parser.error(f"no notebook source matches {args.names}; have {[s.stem for s in sources()]}")
    if args.out_dir is not None:  # made before any notebook runs, so a finished run always has somewhere to go
        if args.out_dir.exists() and not args.out_dir.is_dir():
            parser.error(f"--out-dir {str(args.out_dir)!r}: is a file, not a folder")
        args.out_dir.mkdir(parents=True, exist_ok=True)
    for source in chosen:
        nb = build(source)
        start = time.perf_counter()
        target = (args.out_dir or source.parent) / f"{source.stem}.ipynb"
        if args.markdown_only:
            if not target.is_file():
                parser.error(f"--markdown-only: {target} does not exist; it keeps the outputs of an executed "
                             "notebook, so build that first")
            nb = with_outputs_of(nb, nbformat.read(target, as_version=4))
        elif not args.no_execute:
            execute(nb, args.budget, timeout=args.timeout, extra_env=extra_env)
        write_atomic(nb, target)
        print(f"{target}: {len(nb.cells)} cells, {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
