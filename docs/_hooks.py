"""mkdocs hook: tables generated from the code, so the algorithm pages cannot drift from it.

A page may hold these markers, each replaced at build time:

    <!-- pgjax:config-fields ALGO -->     every config field of ALGO: name, default, allowed
                                          values, doc (what `pgjax train --algo ALGO
                                          --list-fields` prints)
    <!-- pgjax:shipped-configs ALGO -->   the files in configs/ with `algo = "ALGO"`: each one's
                                          header comment, and its settings (collapsed)
    <!-- pgjax:include PATH -->           the file at PATH, relative to the repository root
                                          (docs/benchmarks.md includes benchmarks/README.md)
    <!-- pgjax:include PATH demote=N -->  the same, each heading N levels lower (`# T` becomes
                                          `### T` for N = 2), so a file's title sits under the
                                          page's section instead of making a second page title

and `on_files` serves the reproduction figures, benchmarks/results/*.png, as results/*.png,
and MathJax's browser build (`tex-mml-chtml.js` and its fonts, from the installed
`django-static-mathjax` of the dev extra) as mathjax/, so formulas render without a CDN.

An unknown algorithm or a marker that fails raises, which fails the build.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!--\s*pgjax:(config-fields|shipped-configs)\s+([a-z0-9_]+)\s*-->")
INCLUDE = re.compile(r"<!--\s*pgjax:include\s+([\w./-]+)(?:\s+demote=(\d))?\s*-->")
HEADING = re.compile(r"^(#{1,6})(?=\s)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(config, prefix: str = ""):
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _rows(value, prefix=f"{prefix}{f.name}.")
            continue
        check = f.metadata.get("check")
        allowed = check[1] if check else ""
        yield f"| `{prefix}{f.name}` | `{value!r}` | {_cell(allowed)} | {_cell(f.metadata.get('doc', ''))} |"


def config_fields(algo: str) -> str:
    import pgjax

    config = pgjax.load_config(algo)
    head = [
        (
            f"Defaults of `{type(config).__name__}` (`pgjax.load_config({algo!r})`); fields under `hparams.` are "
            "traced (a sweep over them is a `vmap`), the others are static (a change recompiles)."
        ),
        "",
        "| field | default | allowed | what it does |",
        "|---|---|---|---|",
    ]
    return "\n".join(head + list(_rows(config)))


def shipped_configs(algo: str) -> str:
    blocks = []
    for path in sorted((ROOT / "configs").glob("*.toml")):
        text = path.read_text()
        if tomllib.loads(text).get("algo") != algo:
            continue
        lines = text.splitlines()
        header = [line.lstrip("#").strip() for line in lines if line.startswith("#")]
        settings = [line for line in lines if line.strip() and not line.startswith("#")]
        body = "\n".join("    " + line for line in ["```toml", *settings, "```"])
        blocks.append(f"**`configs/{path.name}`**: {' '.join(header)}\n\n??? example \"its settings\"\n{body}")
    if not blocks:
        raise ValueError(f"no file in configs/ has algo = {algo!r}")
    return "\n\n".join(blocks)


def demote_headings(text: str, levels: int) -> str:
    """`text` with each Markdown heading `levels` lower (at most level 6); code blocks untouched."""
    out, in_code = [], False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and levels:
            line = HEADING.sub(lambda m: "#" * min(6, len(m.group(1)) + levels), line)
        out.append(line)
    return "".join(out)


def include(match: re.Match) -> str:
    path, levels = match.group(1), int(match.group(2) or 0)
    return demote_headings((ROOT / path).read_text(), levels)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        kind, algo = match.groups()
        return config_fields(algo) if kind == "config-fields" else shipped_configs(algo)

    markdown = INCLUDE.sub(include, markdown)
    return MARKER.sub(replace, markdown)


def on_files(files, config):
    """The reproduction figures (benchmarks/results/*.png) served as results/NAME.png, so
    docs/results.md shows the committed figures without a copy in docs/."""
    from mkdocs.structure.files import File

    for png in sorted((ROOT / "benchmarks" / "results").glob("*.png")):
        files.append(File.generated(config, f"results/{png.name}", abs_src_path=str(png)))
    es5 = mathjax_es5()
    for path in [es5 / "tex-mml-chtml.js", *sorted((es5 / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))]:
        files.append(File.generated(config, f"mathjax/{path.relative_to(es5).as_posix()}", abs_src_path=str(path)))
    return files


def mathjax_es5() -> Path:
    """The `es5/` folder of the installed MathJax (the `mathjax` package of django-static-mathjax)."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    es5 = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5" if spec else None
    if es5 is None or not (es5 / "tex-mml-chtml.js").is_file():
        raise FileNotFoundError("MathJax's tex-mml-chtml.js is not installed: the docs need the dev extra "
                                "(pip install -e '.[dev]', which installs django-static-mathjax)")
    return es5
