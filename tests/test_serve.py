"""`composer serve` as a real process: it starts on a free loopback port, answers, and stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:]
            raise AssertionError(f"server exited with {proc.returncode}: {err}")
        try:
            r = httpx.get(f"{base}/api/health", timeout=2)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become healthy")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server as Ctrl+C does; kill it if it does not stop."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_serve_starts_composes_and_stops(tiny_model_dir, processes):
    port = free_port()
    cmd = [sys.executable, "-m", "composer", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--model", str(tiny_model_dir), "--workers", "1", "--processes", str(processes)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_healthy(base, proc)
        assert health == {"status": "ok", "model": "tiny"}
        r = httpx.post(f"{base}/api/compose", json={"bars": 4, "seed": 3}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["notes"] and r.json()["seed"] == 3
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text
    finally:
        stop(proc)
    assert proc.returncode in (0, -signal.SIGINT, 130), proc.returncode
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/api/health", timeout=2)


def test_serve_with_a_missing_model_is_a_one_line_error(tmp_path):
    missing = tmp_path / "no-model"
    proc = subprocess.run([sys.executable, "-m", "composer", "serve", "--port", str(free_port()),
                           "--model", str(missing)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def _closed_after(sock: socket.socket, send: list[bytes], gap: float, limit: float) -> float:
    """Send `send` a piece every `gap` seconds until the server closes; seconds it took."""
    t0 = time.monotonic()
    sock.settimeout(limit)
    try:
        for piece in send:
            sock.sendall(piece)
            time.sleep(gap)
        while sock.recv(4096):  # an answer, if any, then the close
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    return time.monotonic() - t0


@pytest.mark.slow
def test_connections_that_send_no_whole_request_are_closed_in_time(tiny_model_dir):
    port = free_port()
    cmd = [sys.executable, "-m", "composer", "serve", "--port", str(port), "--model",
           str(tiny_model_dir), "--request-timeout", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        header = b"POST /api/compose HTTP/1.1\r\nHost: localhost\r\n"
        cases = {
            "sends nothing": ([], 0),
            "a header line a second": ([header] + [b"X-Slow: 1\r\n"] * 20, 0.3),
            "a body shorter than its Content-Length": (
                [header + b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n{}"], 0),
        }
        socks = {name: socket.create_connection(("127.0.0.1", port)) for name in cases}
        for name, (pieces, gap) in cases.items():
            took = _closed_after(socks[name], pieces, gap, limit=10)
            assert took < 2.5, (name, took)
        # Content-Length and Transfer-Encoding together: refused, and the connection closed.
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(header + b"Content-Type: application/json\r\nContent-Length: 2\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            s.settimeout(10)
            answer = b""
            while chunk := s.recv(4096):  # the server closes after its answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400") and b"Transfer-Encoding" in answer
        # A whole request is answered however long the work takes, and clients still get in.
        r = httpx.post(f"{base}/api/compose", json={"bars": 8, "seed": 1}, timeout=30)
        assert r.status_code == 200
    finally:
        stop(proc)
