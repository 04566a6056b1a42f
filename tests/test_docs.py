"""The documentation: the site builds in strict mode, and the README stays a landing page.

`mkdocs build --strict` fails on a broken link between pages, a page missing from the nav
or the disk, a `:::` reference to an object that does not exist, or a config-table marker
(docs/_hooks.py) naming an unknown algorithm, so every such break fails here. The README
is read on GitHub, outside the site: its relative links must name files that exist, and
its links into the docs must name headings that exist in the built pages.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 250
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(text: str) -> list[str]:
    links = [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]
    return [target for target in links if not target.startswith("#")]


def _need_mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed; the dev extra installs it (scripts/setup.sh)")
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")


def test_readme_is_a_landing_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; keep it at most {MAX_README_LINES}"


def test_readme_keeps_the_two_commands():
    text = README.read_text()
    assert "./scripts/setup.sh && .venv/bin/pgjax train\n" in text
    # .ci/run runs the README's test command verbatim
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command == "./scripts/setup.sh && .venv/bin/python -m pytest"
    assert ci_command + "\n" in text


def test_readme_relative_links_resolve():
    links = _relative_links(README.read_text())
    assert links, "the README links into docs/"
    missing = [target for target in links if not (ROOT / target.split("#")[0]).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_relative_link_parsing():
    text = "[a](docs/cli.md) ![g](assets/x.gif) [b](https://x.org/y) [c](#top) [d](docs/x.md#part)"
    assert _relative_links(text) == ["docs/cli.md", "assets/x.gif", "docs/x.md#part"]


def test_site_builds_strict(tmp_path):
    """One build (about 15 s on 2 cores) serves both checks: strict mode, and the README's
    links into the docs landing on headings that exist in the built pages."""
    _need_mkdocs()
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    problems = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems or result.stderr.splitlines()[-30:])
    assert not list(tmp_path.glob(".cache")), "the build wrote a cache into the working directory"

    missing = []
    for target in _relative_links(README.read_text()):
        path, _, anchor = target.partition("#")
        if not (path.startswith("docs/") and path.endswith(".md") and anchor):
            continue
        page = path.removeprefix("docs/").removesuffix(".md")
        page = page.removesuffix("index")  # docs/x/index.md is served as x/
        html = (site / page / "index.html").read_text()
        if f'id="{anchor}"' not in html:
            missing.append(target)
    assert not missing, f"README.md links to headings the docs do not have: {missing}"

    # Scripts, styles and fonts come with the site, not from a CDN: pages render offline
    # (MathJax from the dev extra; the theme's Google Fonts are off, `theme.font: false`).
    assert (site / "mathjax" / "tex-mml-chtml.js").is_file() and list((site / "mathjax").rglob("*.woff"))
    loads = re.compile(r'<script[^>]*\bsrc="https?://|<link[^>]*\bhref="https?://[^"]*"[^>]*>')
    cdn = {str(page.relative_to(site)): loads.findall(page.read_text()) for page in site.rglob("*.html")}
    assert not any(cdn.values()), f"pages load files from other hosts: { {p: f for p, f in cdn.items() if f} }"

    # An included file's title (`pgjax:include PATH demote=N`) must not make a second page title.
    titles = {str(page.relative_to(site)): page.read_text().count("<h1") for page in site.rglob("index.html")}
    assert all(n == 1 for n in titles.values()), {page: n for page, n in titles.items() if n != 1}


def test_included_headings_are_demoted_outside_code_blocks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    text = "# Title\ntext #1\n## Part\n```sh\n# a comment\n```\n###### Deep\n#hashtag\n"
    assert hooks.demote_headings(text, 2) == "### Title\ntext #1\n#### Part\n```sh\n# a comment\n```\n###### Deep\n#hashtag\n"
    assert hooks.demote_headings(text, 0) == text


def test_the_docs_name_ppo_kl_ratio_eps_as_the_code_sets_it():
    """Was: "RATIO_EPS = 0.2" written in two pages, a literal that would not follow PPO's
    default `clip_eps`, which the code reads it from. A value a page writes must be the code's."""
    from pgjax.algos import ppo, ppo_kl

    assert ppo_kl.RATIO_EPS == ppo.PPOHParams().clip_eps
    for page in ("ppo_kl.md", "spo.md"):
        text = (ROOT / "docs" / "algorithms" / page).read_text()
        assert "RATIO_EPS" in text and "PPOHParams().clip_eps" in text, page
        for written in re.findall(r"RATIO_EPS\s*=\s*([0-9.eE+-]+)", text):
            assert float(written) == ppo_kl.RATIO_EPS, (page, written)
