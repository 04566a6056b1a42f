"""The `pgjax` command line: `pgjax COMMAND ...`, one module per command in `pgjax.commands`.

Each command module exposes `register(subparsers)` and `run(args) -> int`; add a command by
adding its module name to `COMMANDS`. Exit codes: 0 success, 2 bad command-line usage
(argparse), 1 bad configuration or input, 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM).

The commands that compute (`DEVICE_COMMANDS`) take `--host-devices N`: before JAX starts,
the CPU is split into N devices (default `$PGJAX_HOST_DEVICES`, else one per usable core;
1 turns it off) and seeds or sweep cells are sharded over them (`pgjax.runtime.sharding`), and
they keep compiled programs in JAX's persistent compilation cache (`pgjax.runtime.compile_cache`;
`--no-compile-cache` or `PGJAX_COMPILE_CACHE=0` turns it off). With
`--coordinator HOST:PORT --num-processes N --process-id I` (or `$PGJAX_COORDINATOR`,
`$PGJAX_NUM_PROCESSES`, `$PGJAX_PROCESS_ID`; `--coordinator auto` on SLURM) the command
joins JAX's multi-process runtime: started once per process, it shards over the devices
of all processes, and process 0 writes the files.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Module names under pgjax/commands/, in the order `pgjax --help` lists them.
COMMANDS = [
    "train",
    "sweep",
    "eval",
    "plot",
]
DEVICE_COMMANDS = {"train", "sweep", "eval"}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): `pgjax train: error: ... (see --help)`, exit 2.
    Subcommand parsers are of this class too (`add_subparsers` uses the parent's class)."""

    def error(self, message: str):
        # "argument --seeds: --seeds '0': ..." -> "--seeds '0': ..." (our type errors name the flag)
        head, _, rest = message.partition(": ")
        if head.startswith("argument ") and rest.startswith(head.removeprefix("argument ").split("/")[0]):
            message = rest
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pgjax", description="Policy-gradient RL in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"pgjax.commands.{name}")
        before = set(sub.choices)
        module.register(sub)
        for added in set(sub.choices) - before:  # the subparser(s) this module registered
            sub.choices[added].set_defaults(command_module=module)
            if added in DEVICE_COMMANDS:
                sub.choices[added].add_argument(
                    "--host-devices", type=_positive("--host-devices", "1 turns it off"), default=None, metavar="N",
                    help="CPU devices to shard seeds/cells over (default $PGJAX_HOST_DEVICES, else one per usable "
                         "core; 1: off). Results do not depend on it. No effect on GPU")
                _add_process_arguments(sub.choices[added])
                sub.choices[added].add_argument(
                    "--no-compile-cache", action="store_true",
                    help="compile from scratch, without JAX's persistent compilation cache (default: on, in "
                         "$PGJAX_COMPILE_CACHE, else $XDG_CACHE_HOME/pgjax/jax or ~/.cache/pgjax/jax; "
                         "PGJAX_COMPILE_CACHE=0 turns it off)")
    return parser


def _add_process_arguments(parser) -> None:
    group = parser.add_argument_group("several processes (jax.distributed; the same command on every process)")
    group.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="address of process 0's coordinator (default $PGJAX_COORDINATOR; 'auto': from the "
                            "cluster, e.g. SLURM); without it the command runs as one process")
    group.add_argument("--num-processes", type=_positive("--num-processes"), default=None, metavar="N",
                       help="processes taking part (default $PGJAX_NUM_PROCESSES)")
    group.add_argument("--process-id", type=_positive("--process-id", "process 0 coordinates", minimum=0), default=None,
                       metavar="I",
                       help="this process's rank in [0, N); process 0 writes the files (default $PGJAX_PROCESS_ID)")
    group.add_argument("--coordinator-timeout", type=_seconds, default=None, metavar="SECONDS",
                       help="how long every process waits for all of them to join before giving up with an error "
                            "(default $PGJAX_COORDINATOR_TIMEOUT, else 300)")


def _positive(flag: str, note: str = "", minimum: int = 1):
    """An argparse `type`: an integer >= `minimum`, else one line naming `flag`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: must be {allowed}" + (f" ({note})" if note else ""))
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--coordinator-timeout {text!r}: must be a number of seconds > 0")
    return value


def _start_host_devices(argv: list[str]) -> str | None:
    """`use_host_devices` for a computing command, before anything (even building the parser,
    which imports the algorithms) starts JAX. Returns an error message, or None."""
    from pgjax.runtime.sharding import initialize_processes, use_host_devices

    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in DEVICE_COMMANDS:
        return None
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--host-devices", default=None)
    early.add_argument("--coordinator", default=None)
    early.add_argument("--num-processes", default=None)
    early.add_argument("--process-id", default=None)
    early.add_argument("--coordinator-timeout", default=None)
    known, _ = early.parse_known_args(argv)
    try:
        count = None if known.host_devices is None else _positive("--host-devices")(known.host_devices)
        processes = None if known.num_processes is None else _positive("--num-processes")(known.num_processes)
        process_id = None if known.process_id is None else _positive("--process-id", minimum=0)(known.process_id)
        timeout = None if known.coordinator_timeout is None else _seconds(known.coordinator_timeout)
    except (argparse.ArgumentTypeError, ValueError):
        return None  # the full parser reports it (exit code 2)
    if "-h" in argv or "--help" in argv:
        return None  # help: nothing to join
    try:
        use_host_devices(count)
        initialize_processes(known.coordinator, processes, process_id, timeout)
    except (ValueError, RuntimeError) as err:
        return f"pgjax {command}: {err}"
    return None


def _start_compile_cache(argv: list[str]) -> None:
    """JAX's persistent compilation cache for a computing command (`pgjax.runtime.compile_cache`),
    unless `--no-compile-cache` or `PGJAX_COMPILE_CACHE=0`. A folder that cannot be written
    is reported in a note and the run compiles without it."""
    from pgjax.runtime.compile_cache import configured_cache_dir, enable_compile_cache

    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in DEVICE_COMMANDS or "-h" in argv or "--help" in argv:
        return
    folder = configured_cache_dir(disabled="--no-compile-cache" in argv)
    if folder is not None:
        try:
            enable_compile_cache(folder)
        except OSError as err:
            print(f"pgjax {command}: note: {err}; compiling without the cache", file=sys.stderr)


def _is_override(text: str) -> bool:
    return "=" in text and not text.startswith("-")


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`parser.parse_args(argv)`, except that `KEY=VALUE` overrides may stand anywhere (before,
    between and after flags: `train hparams.gamma=0.9 --env X num_envs=8`), and an unknown
    argument is reported by the subcommand's parser, so the error points to its `--help`."""
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if _is_override(a)]
    if overrides and isinstance(getattr(args, "overrides", None), list):
        args.overrides = [*args.overrides, *overrides]
        extra = [a for a in extra if not _is_override(a)]
    if extra:
        sub = getattr(parser, "_subparsers", None)
        choices = next((a.choices for a in (sub._group_actions if sub else ()) if a.choices), {})
        (choices.get(getattr(args, "command", None)) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _hear_sigint() -> None:
    """Let SIGINT stop a command started with it ignored (the shell ignores it for a job run
    with `&` in a script). Training and sweeps replace that disposition with their own
    handlers, but only once they train: a SIGINT while starting, compiling or evaluating
    would otherwise be lost, the command running on to the end."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    import signal

    from pgjax.runtime.resumable import Interrupted

    _hear_sigint()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    name = f"pgjax{f' {command}' if command in COMMANDS else ''}"
    try:
        return _main(argv)
    except KeyboardInterrupt:  # outside training, which handles SIGINT itself (also while importing): nothing to keep
        print(f"{name}: interrupted", file=sys.stderr)
        _forget_the_interrupt()
        return 130
    except Interrupted as err:  # a second signal outside training, with several processes (`hold_signals`)
        print(f"{name}: interrupted by {signal.Signals(err.signum).name}: this process stopped alone", file=sys.stderr)
        return 128 + err.signum


def _forget_the_interrupt() -> None:
    """CPython (3.11) notes a KeyboardInterrupt that escapes code run from a string (`exec`;
    dataclasses and namedtuple build their methods so, and jax's imports define many) and,
    under `python -m pgjax`, ends the process by SIGINT after `main` returns, whatever its exit
    code. Running any code from a string clears that note, so the exit code stays 130."""
    exec("")  # noqa: S102  (an empty, constant string)


def _main(argv: list[str]) -> int:
    error = _start_host_devices(argv)
    _start_compile_cache(argv)
    from pgjax.records.checkpoint import quiet_orbax_failure_noise

    quiet_orbax_failure_noise()  # a damaged checkpoint or failed write is reported in one line, not echoed
    args = parse(build_parser(), argv)
    if error is not None:
        print(error, file=sys.stderr)
        return 1
    return args.command_module.run(args)


if __name__ == "__main__":
    sys.exit(main())
