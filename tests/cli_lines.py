"""Running `pgjax` in-process as the bad-input tests do: the exit code and its one line."""

from pgjax.commands.cli import main


def exit_and_line(argv, capsys) -> tuple[int, str]:
    """`(exit code, stderr)` of `pgjax ARGV` in-process; stderr must be exactly one line."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return code, lines[0]
