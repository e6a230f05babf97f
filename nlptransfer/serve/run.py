"""Run the app on uvicorn: one process, or several worker processes sharing the port (their Prometheus metrics
aggregated through a multiprocess directory). SIGTERM stops accepting, lets in-flight requests finish (up to
grace_s), and exits 0."""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from .app import create_app
from .config import DriftSettings, ServeConfig

ENV = "NLPTRANSFER_SERVE"  #: what worker processes are told to load, as JSON


def serve(source: str | Path, *, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch", workers: int = 1,
          config: ServeConfig | None = None, hub: str | None = None, revision: str | None = None,
          trust_remote_code: bool = False, grace_s: float = 30.0) -> None:
    """Serve a run folder, repo folder or hub repo NAMESPACE/NAME until stopped (SIGTERM or SIGINT)."""
    import uvicorn

    from ..hub import locate

    folder = str(locate(source, hub=hub, revision=revision))
    config = config or ServeConfig()
    spec = {"folder": folder, "backend": backend, "trust_remote_code": trust_remote_code,
            "config": {**asdict(config), "drift": asdict(config.drift)}}
    options = dict(host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=grace_s)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it found: this one
    # ignores it, so a stop that went well ends with status 0
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    # the event loop, the tokenizer and the model thread hand work to each other: switch threads every 1 ms, not
    # Python's default 5 ms, so a request never waits for the interpreter while a batch is prepared
    sys.setswitchinterval(0.001)
    if workers > 1:
        os.environ[ENV] = json.dumps(spec)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="nlptransfer-metrics-"))
        uvicorn.run("nlptransfer.serve.run:app_from_environment", factory=True, workers=workers, **options)
    else:
        uvicorn.run(_app(spec), **options)


def _app(spec: dict):
    from ..inference import TextClassifier

    settings = dict(spec["config"])
    settings["drift"] = DriftSettings(**settings["drift"])
    classifier = TextClassifier.load(spec["folder"], backend=spec["backend"],
                                     trust_remote_code=spec["trust_remote_code"])
    return create_app(classifier, ServeConfig(**settings), spec["folder"])


def app_from_environment():
    """The app a uvicorn worker process builds (its spec in NLPTRANSFER_SERVE)."""
    return _app(json.loads(os.environ[ENV]))
