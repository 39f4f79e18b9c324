"""Running the web app: `composer serve` in one process, or in several that share the port,
with timeouts on every connection. The app and the model are imported when the server starts,
so the CLI reads ServeConfig cheaply."""

from __future__ import annotations

import json
import os
import resource
import sys
from dataclasses import asdict, dataclass, field

from .admission import DEFAULT_MAX_WAIT_S


@dataclass
class ServeConfig:
    """How `composer serve` runs: address, model, how much work it takes on, how long it waits
    for a client, and whom it answers."""

    host: str = "127.0.0.1"
    port: int = 8000
    model_dir: str | None = None
    workers: int = 2  # generation threads per process
    queue_limit: int = 16  # requests that may wait, per process, before 503
    processes: int = 1  # server processes sharing the port, each with its own model
    threads: int = 1  # matrix-product threads per process
    engine: str = "auto"  # what runs the model: auto (numpy where it can), numpy or torch
    max_wait: float = DEFAULT_MAX_WAIT_S  # predicted wait to start beyond which a request gets 503
    client_share: int | None = None  # requests in flight per client address (None: workers)
    request_timeout: float = 10.0  # seconds a client has to send a whole request
    keep_alive: float = 5.0  # seconds an idle kept-alive connection stays open
    max_connections: int = 2048  # open connections per process; beyond, 503
    allow_hosts: list[str] = field(default_factory=list)  # Host names served beyond localhost
    allow_origins: list[str] = field(default_factory=list)  # other sites whose pages may POST


SERVE_ENV = "COMPOSER_SERVE_CONFIG"
SWITCH_INTERVAL_S = 0.001  # carries a ServeConfig to uvicorn's worker processes


def _app_factory(cfg: ServeConfig):
    from .api import create_app
    from .engine import set_threads
    from .httpguard import Access
    from .sample import Composer

    # Sampling runs one small step at a time: more intra-op threads only contend for the cores
    # (measured: 16-bar compose 19 ms with 1 thread, 230 ms with 2 on a busy 2-core machine).
    set_threads(cfg.threads)
    # The event loop shares the GIL with the sampling threads: switching every millisecond
    # (Python's default is 5) lets it answer health checks and refusals promptly under load.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return create_app(cfg.model_dir, cfg.workers, cfg.queue_limit,
                      composer=Composer.load(cfg.model_dir, engine=cfg.engine),
                      access=Access.for_server(cfg.host, cfg.allow_hosts, cfg.allow_origins),
                      max_wait=cfg.max_wait, client_share=cfg.client_share)


def app_from_env():
    """App factory for uvicorn's worker processes (see `serve`): a FastAPI app."""
    return _app_factory(ServeConfig(**json.loads(os.environ.get(SERVE_ENV, "{}"))))


def _open_files_for(connections: int) -> None:
    """Raise this process's open-file limit so that `connections` sockets fit, if allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY
                                                    else min(want, hard), hard))


def serve(cfg: ServeConfig) -> None:
    """Load the model (a bad one is a one-line error before anything starts) and run uvicorn."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .connections import TimedH11Protocol

    _open_files_for(cfg.max_connections)
    options = dict(host=cfg.host, port=cfg.port, log_level="info", http=TimedH11Protocol,
                   timeout_keep_alive=cfg.keep_alive, limit_concurrency=cfg.max_connections)
    if cfg.processes <= 1:
        config = uvicorn.Config(_app_factory(cfg), **options)
        config.request_timeout = cfg.request_timeout
        uvicorn.Server(config).run()
        return
    # The sampler is Python between small array operations and mostly holds the GIL, so more
    # cores need more processes. They share the socket; each loads the model.
    _app_factory(cfg)  # a bad model fails here, once, before any process starts
    os.environ[SERVE_ENV] = json.dumps(asdict(cfg))
    config = uvicorn.Config("composer.serve:app_from_env", factory=True, workers=cfg.processes,
                            **options)
    config.request_timeout = cfg.request_timeout
    Multiprocess(config, sockets=[config.bind_socket()]).run()
