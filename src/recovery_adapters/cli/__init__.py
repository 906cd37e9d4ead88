"""The ``recovery`` command line."""

from recovery_adapters.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
