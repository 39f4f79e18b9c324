"""What the server checks before a request reaches the app, and adds to every answer: bounded
bodies, known hosts and origins, query fields given once, strict JSON, security headers, and
ETags (304 for a client that has the answer already). Pure ASGI middleware."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .apischemas import MAX_JSON_BYTES, busy_response, error_response

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_JSON_DEPTH = 8  # a request body is a flat object
MAX_NUMBER_CHARS = 40
# The page needs no inline script and no other origin; the notation is an <img> of a blob.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: "
               "data:; connect-src 'self'; media-src 'self' blob:; font-src 'self'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Swagger UI sets style attributes and draws its icons from data: URLs
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer")]


@dataclass(frozen=True)
class Access:
    """Who may talk to the server. `hosts`: the Host names served (None: any), besides IP
    literals, which a DNS-rebinding page cannot use; `origins`: other sites whose pages may
    POST (browsers send Origin), besides the server's own; "*" allows every one."""

    hosts: frozenset[str] | None = None
    origins: frozenset[str] = frozenset()

    @classmethod
    def for_server(cls, host: str, allow_hosts: list[str], allow_origins: list[str]) -> Access:
        """The hosts of a server bound to `host`: localhost, that name, and `allow_hosts`."""
        names = {*LOCAL_HOSTS, *(h.lower() for h in allow_hosts)}
        if host not in ("0.0.0.0", "::", ""):
            names.add(host.lower())
        return cls(None if "*" in names else frozenset(names),
                   frozenset(o.rstrip("/").lower() for o in allow_origins))

    def host_ok(self, host: str) -> bool:
        if self.hosts is None or not host:
            return True
        name = _host_name(host)
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return name in self.hosts

    def origin_ok(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if "*" in self.origins or origin in self.origins:
            return True
        return origin != "null" and urlsplit(origin).netloc == host.lower()


def _host_name(host: str) -> str:
    """The name of a Host header, without its port (IPv6 literals lose their brackets)."""
    host = host.lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def json_problem(body: bytes) -> tuple[str | None, str] | None:
    """(the top-level field, what is wrong) for a JSON body nested too deeply or holding a
    number too long to be one; None when neither."""
    depth, key, last_string = 0, None, None
    for m in re.finditer(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:]|[-+0-9.eE]+', body):
        tok = m.group()
        if tok in (b"{", b"["):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return key, "nested too deeply"
        elif tok in (b"}", b"]"):
            depth -= 1
        elif tok == b":":
            if depth == 1 and last_string is not None:
                key = last_string
        elif tok.startswith(b'"'):
            last_string = tok[1:-1].decode("utf-8", "replace")[:64]
            continue
        elif len(tok) > MAX_NUMBER_CHARS:
            return key, f"a number of {len(tok)} characters is too long"
        last_string = None
    return None


class Guard:
    """ASGI middleware: refuses requests the app must not see, and adds the security headers,
    an ETag and 304 to its answers."""

    def __init__(self, app: Any, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers: dict[bytes, bytes] = {}  # the first of each name
        for k, v in scope.get("headers") or []:
            headers.setdefault(k, v)
        refusal = self._refusal(scope, headers)
        send = self._answer(scope, headers, send)
        if refusal is not None:
            return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict, headers: dict[bytes, bytes]) -> Callable | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.access.host_ok(host):
            return error_response(400, f"this server does not serve the host {host!r}; start it "
                                       "with --allow-host to add a name")
        if b"content-length" in headers and b"transfer-encoding" in headers:
            return error_response(400, "a request may not carry both Content-Length and "
                                       "Transfer-Encoding", headers={"Connection": "close"})
        origin = headers.get(b"origin", b"").decode("latin-1")
        cross_site = headers.get(b"sec-fetch-site") == b"cross-site"
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and (
                (origin and not self.access.origin_ok(origin, host)) or (cross_site and not origin)):
            return error_response(403, f"requests from pages of {origin or 'another site'} are "
                                       "not allowed; start the server with --allow-origin to "
                                       "allow a site")
        admission = getattr(getattr(scope.get("app"), "state", None), "admission", None)
        if scope["method"] == "POST" and admission is not None:
            wait = admission.full()
            if wait is not None:
                return busy_response(wait)
        seen: set[str] = set()
        for name, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                 keep_blank_values=True):
            if name in seen:
                return error_response(422, f"{name}: given more than once", name)
            seen.add(name)
        return None

    def _answer(self, scope: dict, headers: dict[bytes, bytes], send: Callable) -> Callable:
        """`send`, with the security headers added, and an API answer's body held back to tag
        it: 304 without the body when the client's If-None-Match has that tag."""
        path = scope.get("path", "")
        policy = DOCS_POLICY if path.startswith("/docs") else PAGE_POLICY
        extra = [*SECURITY_HEADERS, (b"content-security-policy", policy.encode())]
        tagged = path.startswith("/api/") and scope["method"] in ("GET", "POST")
        wanted = headers.get(b"if-none-match", b"")
        start: dict | None = None
        chunks: list[bytes] = []

        async def guarded_send(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
                if not tagged or message["status"] != 200:
                    return await send(message)
                start = message
                return None
            if message["type"] != "http.response.body" or start is None:
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return None
            body = b"".join(chunks)
            etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
            headers = [(k, v) for k, v in start["headers"] if k != b"etag"] + [(b"etag", etag)]
            if etag in [t.strip() for t in wanted.split(b",")]:
                headers = [(k, v) for k, v in headers if k not in (b"content-length",
                                                                   b"content-type")]
                await send({**start, "status": 304, "headers": headers})
                return await send({"type": "http.response.body", "body": b""})
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return guarded_send


class BodyLimit:
    """ASGI middleware: reads request bodies up to `limit` bytes into memory, else answers 413.
    A JSON body nested too deeply or holding an endless number is a 422 naming its field, and
    one over MAX_JSON_BYTES is a 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        is_json = headers.get(b"content-type", b"").split(b";")[0].strip() == b"application/json"
        limit = self.limit
        too_large = error_response(413, f"the upload is larger than {_size(limit)}", "file")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await too_large(scope, receive, send)
        chunks, size = [], 0
        while True:  # chunked uploads have no Content-Length: count what arrives
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await too_large(scope, receive, send)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False
        problem = json_problem(body[:MAX_JSON_BYTES]) if is_json else None
        if problem is not None:
            name, what = problem
            return await error_response(422, f"{name}: {what}" if name else f"the body: {what}",
                                        name)(scope, receive, send)
        if is_json and len(body) > MAX_JSON_BYTES:
            return await error_response(413, f"the JSON body is larger than "
                                             f"{_size(MAX_JSON_BYTES)}")(scope, receive, send)

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"
