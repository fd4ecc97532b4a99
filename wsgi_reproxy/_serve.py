"""``serve`` and ``demo`` subcommands (placeholder until issue 6 lands)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``serve`` and ``demo`` on the command line."""
