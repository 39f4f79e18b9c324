"""Running the web app: `composer serve` in one process, or in several that share the port.
The app and the model are imported when the server starts, so the CLI reads ServeConfig cheaply."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass


@dataclass
class ServeConfig:
    """How `composer serve` runs: address, model, and how much work it takes on at once."""

    host: str = "127.0.0.1"
    port: int = 8000
    model_dir: str | None = None
    workers: int = 2  # generation threads per process
    queue_limit: int = 16  # requests that may wait, per process, before 503
    processes: int = 1  # server processes sharing the port, each with its own model
    threads: int = 1  # matrix-product threads per process
    engine: str = "auto"  # what runs the model: auto (numpy where it can), numpy or torch


SERVE_ENV = "COMPOSER_SERVE_CONFIG"  # carries a ServeConfig to uvicorn's worker processes


def app_from_env():
    """App factory for uvicorn's worker processes (see `serve`): a FastAPI app."""
    from .api import create_app
    from .engine import set_threads
    from .sample import Composer

    cfg = ServeConfig(**json.loads(os.environ.get(SERVE_ENV, "{}")))
    set_threads(cfg.threads)
    return create_app(cfg.model_dir, workers=cfg.workers, queue_limit=cfg.queue_limit,
                      composer=Composer.load(cfg.model_dir, engine=cfg.engine))


def serve(cfg: ServeConfig) -> None:
    """Load the model (a bad one is a one-line error before anything starts) and run uvicorn."""
    import uvicorn

    from .api import create_app
    from .engine import set_threads
    from .sample import Composer

    # Sampling runs one small step at a time: more intra-op threads only contend for the cores
    # (measured: 16-bar compose 19 ms with 1 thread, 230 ms with 2 on a busy 2-core machine).
    set_threads(cfg.threads)
    composer = Composer.load(cfg.model_dir, engine=cfg.engine)
    if cfg.processes <= 1:
        app = create_app(cfg.model_dir, cfg.workers, cfg.queue_limit, composer=composer)
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info")
        return
    # The sampler is Python between small tensor ops and mostly holds the GIL, so more cores
    # need more processes. They share the socket; each loads the model.
    del composer
    os.environ[SERVE_ENV] = json.dumps(asdict(cfg))
    uvicorn.run("composer.serve:app_from_env", factory=True, host=cfg.host, port=cfg.port,
                workers=cfg.processes, log_level="info")
