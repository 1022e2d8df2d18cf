"""Command-line entry point: `hicgen <command>`. Bad input becomes one line on stderr and exit code 2."""

from __future__ import annotations

import sys

import click

from hicgen.cli.app import app
from hicgen.errors import HicgenError

# Each module registers its commands on the shared app objects when imported.
from hicgen.cli import info as _info  # noqa: F401,E402
from hicgen.cli import truth as _truth  # noqa: F401,E402
from hicgen.cli import data as _data  # noqa: F401,E402


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; HicgenError and usage errors end as one line and exit code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except HicgenError as exc:
        print(f"hicgen: error: {exc}", file=sys.stderr)
        return 2
    except click.exceptions.NoArgsIsHelp:
        return 0
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print(f"hicgen: error: {exc.format_message()}{hint}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        print("hicgen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
