"""Typer command line: thin commands that parse options and call the modules that do the work."""

from __future__ import annotations

import sys

import typer

from .dataset import DatasetError
from .music import MusicError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Compose folk melodies with a dual-GRU rhythm/pitch model.")

# Errors a user can cause; they are reported in one line with exit code 2, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (MusicError, DatasetError, FileNotFoundError)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


# --- commands are added below, one function each ------------------------------------------


def main() -> None:
    """Entry point of the `composer` command."""
    try:
        app()
    except USER_ERRORS as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
