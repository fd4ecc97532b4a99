"""The ``wsgi-reproxy`` command line (also ``python -m wsgi_reproxy``).

Subcommands::

    wsgi-reproxy check CONF [--strict]        parse, report warnings
    wsgi-reproxy explain CONF URL [--host H]  which sections match, merged
    wsgi-reproxy serve CONF MODULE:APP        run an app under gunicorn
    wsgi-reproxy demo                         a self-contained working demo
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .run import cli, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgi-reproxy",
        description="X-Reproxy-Url for WSGI apps, configured like mod_reproxy.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli.add_commands(commands)
    serve.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
