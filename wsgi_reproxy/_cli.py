"""``check`` and ``explain`` subcommands (placeholder)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``check`` and ``explain`` on the command line."""
