"""The `pgjax` command line: `pgjax COMMAND ...`, one module per command in `pgjax.commands`.

Each command module exposes `register(subparsers)` and `run(args) -> int`; add a command by
adding its module name to `COMMANDS`. Exit codes: 0 success, 2 bad command-line usage
(argparse), 1 bad configuration or input.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pgjax.commands import load_config  # noqa: F401  (public: notebooks and tests load configs here)

# Module names under pgjax/commands/, in the order `pgjax --help` lists them.
COMMANDS = [
    "train",
    "sweep",
    "eval",
    "plot",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgjax", description="Policy-gradient RL in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"pgjax.commands.{name}")
        before = set(sub.choices)
        module.register(sub)
        for added in set(sub.choices) - before:  # the subparser(s) this module registered
            sub.choices[added].set_defaults(command_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.command_module.run(args)


if __name__ == "__main__":
    sys.exit(main())
