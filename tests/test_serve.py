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
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
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
