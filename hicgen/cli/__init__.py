"""Command-line entry point: `hicgen <command>`. Bad input becomes one line on stderr and exit code 2.

SIGTERM (kill, a batch system's time limit) stops every command as Ctrl-C does, so a stopped command removes its
partial files, or keeps the whole events written, instead of dying with them; exit code 130. The long runs with
writer or reader threads (run, spectra, truth hydro and angantyr, train) take both signals as a request to stop at
their next batch instead (hicgen.engine.stopping).
"""

from __future__ import annotations

import sys

from hicgen.cli.app import app
from hicgen.engine.stopping import signal_handlers
from hicgen.errors import HicgenError

try:  # typer >= 0.22 ships its own copy of click; older ones use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors

# Each module registers its commands on the shared app objects when imported.
from hicgen.cli import info as _info  # noqa: F401,E402
from hicgen.cli import truth as _truth  # noqa: F401,E402
from hicgen.cli import data as _data  # noqa: F401,E402
from hicgen.cli import run as _run  # noqa: F401,E402
from hicgen.cli import train as _train  # noqa: F401,E402
from hicgen.cli import spectra as _spectra  # noqa: F401,E402
from hicgen.cli import validate as _validate  # noqa: F401,E402
from hicgen.cli import truth_hydro as _truth_hydro  # noqa: F401,E402


class _Interrupts:
    """A handler that makes SIGINT and SIGTERM raise KeyboardInterrupt and remembers that one did (typer turns the
    KeyboardInterrupt into a silent exit code 130, which a command also returns after its own message)."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, signum, frame) -> None:
        self.raised = True
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; HicgenError and usage errors end as one line and exit code 2, Ctrl-C and SIGTERM as 130."""
    interrupts = _Interrupts()
    try:
        with signal_handlers(interrupts):
            code = app(args=argv, standalone_mode=False)  # typer.Exit(n) raised by a command comes back as n
    except HicgenError as exc:
        print(f"hicgen: error: {exc}", file=sys.stderr)
        return 2
    except click_errors.UsageError as exc:
        if type(exc).__name__.startswith("NoArgsIsHelp") and exc.ctx is not None:
            print(exc.ctx.get_help())
            return 0
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print(f"hicgen: error: {exc.format_message()}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hicgen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # Exit/Abort of typer's click
        if type(exc).__name__ == "Exit":
            return int(getattr(exc, "exit_code", 0))
        if type(exc).__name__ == "Abort":
            print("hicgen: interrupted", file=sys.stderr)
            return 130
        raise
    if interrupts.raised:
        print("hicgen: interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
