"""The package layout and its import rule, read from the source with `ast` (nothing is imported).

pgjax's subpackages are layers; a module may import its own layer and the layers below it,
never one above:

    level 0  pgjax.types (data containers), pgjax.kernels (pure jnp)
    level 1  pgjax.envs
    level 2  pgjax.networks
    level 3  pgjax.config       (validation asks envs and networks whether a config fits)
    level 4  pgjax.algos
    level 5  pgjax.records, pgjax.reports   (neither imports the other)
    level 6  pgjax.runtime
    level 7  pgjax.commands

`pgjax/__init__.py` (the curated, lazily loaded public namespace) and `pgjax/__main__.py`
sit above everything and may import anything; nothing imports them. Within level 0, kernels
may import types, not the reverse: `types` imports nothing from pgjax.

Besides the levels: no import cycles between modules; kernels import no flax (they are
functions of arrays) and no pgjax package but kernels and types; the command line holds no
training logic, so `pgjax.commands` imports none of `jax.lax`, `optax` or `flax`.

Every import counts, at any depth (function-level imports and `if TYPE_CHECKING:` blocks
included), and `importlib.import_module("...")` with a literal name. `import pkg.mod` and
`from pkg import mod` are edges to the module `pkg.mod`; `from pgjax.pkg import name` of
anything but a module is an edge to `pgjax.pkg` (its `__init__`).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pgjax"

LEVELS = {
    "pgjax.types": 0,
    "pgjax.kernels": 0,
    "pgjax.envs": 1,
    "pgjax.networks": 2,
    "pgjax.config": 3,
    "pgjax.algos": 4,
    "pgjax.records": 5,
    "pgjax.reports": 5,
    "pgjax.runtime": 6,
    "pgjax.commands": 7,
}
TOP = ("pgjax", "pgjax.__main__")  # exempt importers; importing them is importing upward
SAME_LEVEL_ALLOWED = {("pgjax.kernels", "pgjax.types")}  # (importer's layer, imported layer)
KERNELS_MAY_IMPORT = ("pgjax.kernels", "pgjax.types")
COMMANDS_MAY_NOT_IMPORT = ("jax.lax", "optax", "flax")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_imports(root: Path = ROOT) -> dict[str, list[tuple[str, int]]]:
    """Every module under `root/pgjax` -> `(imported module, line)` for each of its imports, pgjax's or not."""
    paths = {module_name(p, root): p for p in sorted((root / "pgjax").rglob("*.py"))}
    return {name: list(_imports(name, path, set(paths))) for name, path in paths.items()}


def _imports(name: str, path: Path, known: set[str]):
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module
            if node.level:
                parts = package.split(".")
                source = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                child = f"{source}.{alias.name}"
                # outside pgjax a name may be a module (`from jax import lax`): keep it, the checks match prefixes
                yield (child if child in known or not source.startswith("pgjax") else source), node.lineno
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            yield from ((arg.value, node.lineno) for arg in node.args
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str))


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer(name: str) -> str | None:
    """The layer (a key of LEVELS) `name` belongs to, or None for the top-level namespace or an unknown module."""
    return next((key for key in LEVELS if is_within(name, key)), None)


def pgjax_graph(table: dict[str, list[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    return {name: [(t, line) for t, line in targets if is_within(t, "pgjax")] for name, targets in table.items()}


def find_cycles(graph: dict[str, list[tuple[str, int]]]) -> list[set[str]]:
    """Strongly connected components (Tarjan) with more than one module, or one that imports itself."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in graph[node]:
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while node not in component:
                component.add(stack.pop())
            on_stack.difference_update(component)
            if len(component) > 1 or any(t == node for t, _ in graph[node]):
                cycles.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def layer_offenders(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    offenders = []
    for name, targets in graph.items():
        if name in TOP:
            continue
        own = layer(name)
        for target, line in targets:
            other = layer(target)
            if other is None:
                offenders.append(f"{name}:{line} ({own}) imports {target}, the top-level namespace")
            elif LEVELS[other] > LEVELS[own]:
                offenders.append(f"{name}:{line} ({own}, level {LEVELS[own]}) imports {target} "
                                 f"({other}, level {LEVELS[other]}): upward")
            elif LEVELS[other] == LEVELS[own] and other != own and (own, other) not in SAME_LEVEL_ALLOWED:
                offenders.append(f"{name}:{line} ({own}) imports {target} ({other}), a sibling layer")
    return offenders


def kernel_offenders(table: dict[str, list[tuple[str, int]]]) -> list[str]:
    offenders = []
    for name, targets in table.items():
        if layer(name) != "pgjax.kernels":
            continue
        for target, line in targets:
            if is_within(target, "flax"):
                offenders.append(f"{name}:{line} imports {target}: kernels hold no flax modules")
            elif is_within(target, "pgjax") and layer(target) not in KERNELS_MAY_IMPORT:
                offenders.append(f"{name}:{line} imports {target}: kernels import only kernels and types")
    return offenders


def command_offenders(table: dict[str, list[tuple[str, int]]]) -> list[str]:
    return [f"{name}:{line} imports {target}: training logic belongs in the library, not the command line"
            for name, targets in table.items() if layer(name) == "pgjax.commands"
            for target, line in targets if any(is_within(target, bad) for bad in COMMANDS_MAY_NOT_IMPORT)]


IMPORTS = read_imports()
GRAPH = pgjax_graph(IMPORTS)


def test_every_module_is_in_a_layer():
    unplaced = [name for name in GRAPH if name not in TOP and layer(name) is None]
    assert not unplaced, f"modules in no layer of LEVELS (tests/test_layout.py): {unplaced}"


def test_no_import_cycles():
    cycles = find_cycles(GRAPH)
    details = ["; ".join(f"{a}:{line} imports {b}" for a in sorted(c) for b, line in GRAPH[a] if b in c)
               for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(details)


def test_nothing_imports_upward():
    offenders = layer_offenders(GRAPH)
    assert not offenders, "imports against the layer order:\n" + "\n".join(offenders)


def test_kernels_import_no_flax_and_nothing_above_them():
    offenders = kernel_offenders(IMPORTS)
    assert not offenders, "\n".join(offenders)


def test_the_command_line_holds_no_training_logic():
    offenders = command_offenders(IMPORTS)
    assert not offenders, "\n".join(offenders)


def test_the_parser_sees_every_kind_of_import():
    assert len(GRAPH) > 50
    targets = {name: {t for t, _ in found} for name, found in GRAPH.items()}
    # a function-level import (config checks the torso against the observation shape)
    assert "pgjax.networks.torsos" in targets["pgjax.config"]
    # `from pgjax.kernels import returns` is an edge to the module, not the package
    assert "pgjax.kernels.returns" in targets["pgjax.algos.a2c"]
    # `from pgjax.algos import ALGORITHMS` is an edge to the package's __init__
    assert "pgjax.algos" in targets["pgjax.runtime.loading"]


def test_the_checks_catch_what_they_guard(tmp_path):
    """Planted offenders: an upward import, a cycle, a flax kernel, a sibling import, lax in a command."""
    planted = {
        "pgjax/kernels/__init__.py": "",
        "pgjax/kernels/bad.py": "import flax.linen\nfrom pgjax.envs import VecEnv\n",
        "pgjax/envs/__init__.py": "def f():\n    from pgjax.kernels import bad\n",
        "pgjax/records/__init__.py": "from pgjax.reports import plots\n",
        "pgjax/reports/plots.py": "",
        "pgjax/commands/bad.py": "from jax import lax\nfrom . import other\nfrom ..kernels import bad\n",
        "pgjax/commands/other.py": "import pgjax\n",
    }
    for relative, text in planted.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    table = read_imports(tmp_path)
    assert table["pgjax.commands.bad"] == [("jax.lax", 1), ("pgjax.commands.other", 2), ("pgjax.kernels.bad", 3)]
    graph = pgjax_graph(table)
    assert find_cycles(graph) == [{"pgjax.envs", "pgjax.kernels.bad"}]
    assert sorted(layer_offenders(graph)) == [
        "pgjax.commands.other:1 (pgjax.commands) imports pgjax, the top-level namespace",
        "pgjax.kernels.bad:2 (pgjax.kernels, level 0) imports pgjax.envs (pgjax.envs, level 1): upward",
        "pgjax.records:1 (pgjax.records) imports pgjax.reports.plots (pgjax.reports), a sibling layer",
    ]
    assert [o.split(":")[0] for o in kernel_offenders(table)] == ["pgjax.kernels.bad"] * 2
    assert command_offenders(table) == [
        "pgjax.commands.bad:1 imports jax.lax: training logic belongs in the library, not the command line"]
