"""``guichet programme …``: the pool subcommands (to be built)."""

from __future__ import annotations

import argparse


def register(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommands (none yet)."""
