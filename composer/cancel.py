"""Cancelling work that nobody waits for any more. A server runs a request's work under
`cancellable(flag)` and sets the flag when the client leaves; the sampling and scoring loops
call `check()` between steps, which stops the work with `Cancelled` once the flag is set."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_flag: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("cancel",
                                                                              default=None)


class Cancelled(Exception):
    """The work was cancelled: its result is no longer wanted."""


def check() -> None:
    """Raise Cancelled if the work running in this thread has been cancelled."""
    flag = _flag.get()
    if flag is not None and flag.is_set():
        raise Cancelled("cancelled")


@contextmanager
def cancellable(flag: threading.Event) -> Iterator[None]:
    """Run the block as work that `flag.set()` cancels (at its next check); a flag already set
    cancels it before it starts."""
    token = _flag.set(flag)
    try:
        check()
        yield
    finally:
        _flag.reset(token)
