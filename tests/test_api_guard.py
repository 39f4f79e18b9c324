"""The web API facing the public: hosts, origins, security headers, ETags and byte-identical
answers, strict input, and work that stops when its client leaves."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from composer import cancel
from composer.api import create_app
from composer.httpguard import Access, json_problem

BASE = "http://localhost:8000"


@pytest.fixture(scope="module")
def client(tiny_model_dir):
    access = Access.for_server("127.0.0.1", ["music.example.org"], ["https://friend.example"])
    with TestClient(create_app(tiny_model_dir, access=access), base_url=BASE) as c:
        yield c


def error_of(r, status: int, field: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == field, body
    assert body["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# --- hosts and origins ----------------------------------------------------------------------

@pytest.mark.parametrize("host,ok", [("localhost:8000", True), ("127.0.0.1:8000", True),
                                     ("[::1]:8000", True), ("10.1.2.3", True),
                                     ("music.example.org", True), ("evil.example", False),
                                     ("localhost.evil.example:8000", False)])
def test_only_served_host_names_and_ip_addresses_are_answered(client, host, ok):
    # A DNS-rebinding page reaches a laptop's server under the attacker's name, never an IP.
    r = client.get("/api/health", headers={"Host": host})
    if ok:
        assert r.status_code == 200
    else:
        assert "--allow-host" in error_of(r, 400)


def test_any_host_when_the_server_allows_it():
    access = Access.for_server("0.0.0.0", ["*"], [])
    assert access.host_ok("anything.example") and access.host_ok("")
    bound = Access.for_server("composer.internal", [], [])
    assert bound.host_ok("composer.internal:8000") and not bound.host_ok("other.internal")


@pytest.mark.parametrize("headers,status", [
    ({"Origin": "https://evil.example"}, 403),
    ({"Origin": "null"}, 403),  # a sandboxed frame or a file:// page
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Origin": "http://localhost:8000"}, 200),  # the server's own page
    ({"Origin": "https://friend.example"}, 200),  # --allow-origin
    ({}, 200),  # curl and scripts send no Origin
])
def test_posts_from_other_sites_pages_are_refused(client, headers, status):
    # A "simple" cross-origin POST runs without a preflight: both kinds must be refused.
    r = client.post("/api/compose", content=b"", headers=headers)
    assert r.status_code == status, r.text
    files = {"file": ("t.abc", b"X:1\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|edcB A2A2|]\n")}
    r = client.post("/api/score", files=files, headers=headers)
    assert r.status_code == status, r.text
    if status == 403:
        assert "--allow-origin" in error_of(r, 403)


def test_an_allowed_origin_gets_cors_headers_and_a_preflight(client):
    r = client.post("/api/compose", json={"bars": 2, "seed": 1},
                    headers={"Origin": "https://friend.example"})
    assert r.headers["access-control-allow-origin"] == "https://friend.example"
    r = client.options("/api/compose", headers={"Origin": "https://friend.example",
                                                "Access-Control-Request-Method": "POST",
                                                "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 200 and "POST" in r.headers["access-control-allow-methods"]
    r = client.get("/api/options", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


# --- headers ----------------------------------------------------------------------------------

def test_every_answer_has_security_headers_and_the_pages_a_strict_policy(client):
    for path in ("/", "/app.js", "/docs", "/api/health", "/api/nothing-here"):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        policy = dict(p.strip().split(" ", 1) for p in
                      r.headers["content-security-policy"].split(";"))
        assert policy["frame-ancestors"] == "'none'" and policy["script-src"] == "'self'", path
    page = client.get("/")
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    docs = client.get("/docs").text
    assert "<script>" not in docs and docs.count("<script src=") == 2  # no inline script


# --- the same request, the same bytes ---------------------------------------------------------

def test_the_same_request_gives_the_same_bytes_and_an_etag(tiny_model_dir, client):
    body = {"bars": 4, "seed": 11}
    first = client.post("/api/compose", json=body)
    assert first.status_code == 200 and "<svg" in first.json()["svg"]
    with TestClient(create_app(tiny_model_dir), base_url=BASE) as other:  # a restarted server
        again = other.post("/api/compose", json=body)
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    r = client.post("/api/compose", json=body, headers={"If-None-Match": first.headers["etag"]})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == first.headers["etag"]
    r = client.post("/api/compose", json=body, headers={"If-None-Match": '"something-else"'})
    assert r.status_code == 200 and r.content == first.content
    other_seed = client.post("/api/compose", json={**body, "seed": 12})
    assert other_seed.headers["etag"] != first.headers["etag"]


# --- strict input -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, "8", 2.0, [4]])
def test_json_numbers_are_numbers(client, value):
    error_of(client.post("/api/compose", json={"bars": value}), 422, "bars")


def test_a_form_field_is_text_and_still_parsed(client):
    files = {"file": ("t.abc", b"X:1\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|edcB A2A2|]\n")}
    r = client.post("/api/continue", files=files, data={"bars": "2", "seed": "3"})
    assert r.status_code == 200, r.text


def test_endless_numbers_and_deep_nesting_name_their_field(client):
    big = b'{"seed": 1, "bars": ' + b"9" * 5000 + b"}"
    assert "too long" in error_of(client.post("/api/compose", content=big,
                                              headers={"Content-Type": "application/json"}),
                                  422, "bars")
    deep = b'{"bars": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nested" in error_of(client.post("/api/compose", content=deep,
                                            headers={"Content-Type": "application/json"}),
                                422, "bars")
    assert json_problem(b'{"form": "[[[[[[[[[[[[[[[[[["}') is None  # brackets inside a string
    assert json_problem(b'{"a": {"b": 1}, "seed": 12345678901234567890}') is None


def test_an_unknown_mode_lists_only_the_modes_the_model_takes(client):
    message = error_of(client.post("/api/compose", json={"mode": "bogus"}), 422, "mode")
    listed = message.split("valid modes: ")[1].split(", ")
    for mode in listed:
        assert client.post("/api/compose", json={"mode": mode, "bars": 1, "seed": 1}
                           ).status_code == 200, mode
    assert set(listed) == set(client.get("/api/options").json()["modes"])


def test_a_query_field_given_twice_is_refused(client):
    r = client.post("/api/compose?format=mid&format=abc", json={"bars": 2})
    assert "more than once" in error_of(r, 422, "format")


def test_a_malformed_multipart_body_is_a_4xx_and_prints_nothing(client, capfd):
    r = client.post("/api/score", content=b"--x\r\ngarbage without an end",
                    headers={"Content-Type": "multipart/form-data; boundary=yyy"})
    assert 400 <= r.status_code < 500
    assert "boundary" not in capfd.readouterr().err


def test_unreadable_files_get_plain_words_not_the_librarys(client):
    for data in (b"X:1\nM:4/4\nK:C\nL:1/0\nabc|def|\n", b"MThd\x00\x00\x00\x06garbage"):
        for name in ("t.abc", "t.mid"):
            message = error_of(client.post("/api/score", files={"file": (name, data)}), 400,
                               "file")
            assert "Exception" not in message and "Handler" not in message, message


# --- abandoned work ---------------------------------------------------------------------------

def _asgi_call(app, body: dict, leave: threading.Event) -> list[dict]:
    """POST /api/compose straight to the ASGI app, as a client that leaves once `leave` is set;
    returns the messages the app sent."""
    sent: list[dict] = []
    payload = json.dumps(body).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/compose", "raw_path": b"/api/compose",
             "query_string": b"", "root_path": "", "client": ("127.0.0.9", 5000),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(payload)).encode())]}
    messages = [{"type": "http.request", "body": payload, "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop()
        while not leave.is_set():
            await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_work_stops_when_its_client_leaves_and_queued_work_never_starts(tiny_model_dir,
                                                                        monkeypatch):
    app = create_app(tiny_model_dir, workers=1, queue_limit=4, client_share=4, max_wait=60)
    with TestClient(app, base_url=BASE):
        started, runs, stopped = threading.Event(), [], []

        def endless(req):  # a compose that only a cancel ends, as a long one would
            runs.append(req)
            started.set()
            try:
                while True:
                    cancel.check()
                    time.sleep(0.005)
            except cancel.Cancelled:
                stopped.append(time.monotonic())
                raise

        monkeypatch.setattr(app.state.composer, "compose", endless)
        leave_first, leave_second = threading.Event(), threading.Event()
        first = threading.Thread(target=_asgi_call, args=(app, {"bars": 2}, leave_first))
        first.start()
        assert started.wait(10)
        # The second waits in the queue behind the first, and its client leaves there.
        second = threading.Thread(target=_asgi_call, args=(app, {"bars": 2}, leave_second))
        second.start()
        deadline = time.monotonic() + 10
        while len(app.state.admission.jobs) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        leave_second.set()
        second.join(10)
        left = time.monotonic()
        leave_first.set()
        first.join(10)
        deadline = time.monotonic() + 5
        while app.state.admission.jobs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(runs) == 1  # the queued one never ran
        assert stopped and stopped[0] - left < 1.0  # the running one stopped at once
        assert not app.state.admission.jobs  # both slots are free again


def test_cancel_stops_sampling_and_scoring_between_steps(tiny_model_dir, monkeypatch):
    from composer.sample import ComposeRequest, Composer

    composer = Composer.load(tiny_model_dir)
    flag = threading.Event()
    flag.set()
    with pytest.raises(cancel.Cancelled), cancel.cancellable(flag):  # set before it starts
        composer.compose(ComposeRequest(bars=4))
    flag = threading.Event()
    tune = composer.compose(ComposeRequest(bars=8)).melody
    with cancel.cancellable(flag):
        assert composer.score(tune).notes  # never set: runs to the end
    # Set while the loop runs: the next check between steps stops it.
    checks, real_check = [], cancel.check

    def set_on_second_check() -> None:
        checks.append(1)
        if len(checks) == 2:
            flag.set()
        real_check()

    monkeypatch.setattr(cancel, "check", set_on_second_check)
    with pytest.raises(cancel.Cancelled), cancel.cancellable(flag):
        composer.compose(ComposeRequest(bars=64))
    assert len(checks) == 2


# --- admission ----------------------------------------------------------------------------------

def test_admission_plays_the_queue_forward_and_refuses_beyond_the_wait():
    from composer.admission import Admission, Busy

    a = Admission(workers=2, capacity=100, max_wait=1.0, client_share=100)
    a.rate["compose"] = 0.001  # 400 units: 0.4 s
    for i in range(2):
        a.start(a.admit(f"c{i}", "compose", 400))  # both workers busy for 0.4 s
    for i in range(4):  # start at 0.4, 0.4, 0.8, 0.8 s: within the second
        a.admit(f"q{i}", "compose", 400)
    with pytest.raises(Busy) as refused:
        a.admit("late", "compose", 400)  # it would start at 1.2 s
    assert 0.1 < refused.value.retry_after < 0.3  # 1.2 s less the 1 s allowed
    a.jobs[-1].cancel.set()  # a queued request whose client left no longer counts
    a.admit("late", "compose", 400)


def test_one_client_cannot_take_every_slot():
    from composer.admission import Admission, Busy

    a = Admission(workers=2, capacity=100, max_wait=60.0)  # share: 2, the workers
    mine = [a.admit("10.0.0.1", "score", 10) for _ in range(2)]
    with pytest.raises(Busy, match="you have 2 requests in progress"):
        a.admit("10.0.0.1", "score", 10)
    a.admit("10.0.0.2", "score", 10)  # another client still gets in
    a.start(mine[0])
    time.sleep(0.02)
    a.finish(mine[0])  # done: the share frees, and its time teaches the estimate
    a.admit("10.0.0.1", "score", 10)
    assert a.rate["score"] > 0.02 / 10 * 0.2


def test_503_says_when_to_come_back(tiny_model_dir, monkeypatch):
    app = create_app(tiny_model_dir, workers=1, queue_limit=8, max_wait=0.5, client_share=8)
    with TestClient(app, base_url=BASE) as c:
        app.state.admission.rate["compose"] = 0.01  # each 2-bar compose is thought to take ~0.3 s
        release = threading.Event()
        real = app.state.composer.compose
        monkeypatch.setattr(app.state.composer, "compose",
                            lambda req: (release.wait(30), real(req))[1])
        threads = [threading.Thread(target=c.post, args=("/api/compose",),
                                    kwargs={"json": {"bars": 2}}) for _ in range(3)]
        for t in threads:
            t.start()
            time.sleep(0.2)
        r = c.post("/api/compose", json={"bars": 2})
        release.set()
        for t in threads:
            t.join(30)
    error_of(r, 503)
    body = r.json()
    assert 0 < body["retry_after_s"] <= int(r.headers["retry-after"]) < body["retry_after_s"] + 1
