"""The server's HTTP connections: uvicorn's HTTP/1.1 protocol with a deadline on each request."""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol, h11

DEFAULT_REQUEST_TIMEOUT = 10.0  # seconds; the server's config may set `request_timeout`


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline on each request: a connection that has not
    sent a whole request (headers and body) within `request_timeout` seconds of its first byte,
    or of opening, is closed. uvicorn itself only times out idle kept-alive connections, so
    a client that sends nothing, or a byte at a time, would hold its connection forever."""

    def __init__(self, config, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        self.request_timeout = getattr(config, "request_timeout", DEFAULT_REQUEST_TIMEOUT)
        self.deadline = None

    def _arm(self) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _timed_out(self) -> None:
        self.deadline = None
        if not self.transport.is_closing() and self.conn.their_state is not h11.DONE:
            self.logger.debug("closing a connection that sent no whole request in %.0f s",
                             self.request_timeout)
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is h11.DONE:
            self._disarm()  # the request is whole: the answer may take as long as it takes

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)
