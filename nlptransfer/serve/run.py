"""Run the app on uvicorn: one process, or several worker processes sharing the port (their Prometheus metrics
aggregated through a multiprocess directory). SIGTERM stops accepting, lets in-flight requests finish (up to
grace_s), and exits 0. What would stop the server (the port, the prediction log) is checked before the model loads."""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from ..errors import RunError
from .app import RANDOM_LOG_KEY, create_app
from .config import DriftSettings, ServeConfig, prediction_log_problem

ENV = "NLPTRANSFER_SERVE"  #: what worker processes are told to load, as JSON


def serve(source: str | Path, *, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch", workers: int = 1,
          config: ServeConfig | None = None, hub: str | None = None, revision: str | None = None,
          trust_remote_code: bool = False, grace_s: float = 30.0) -> None:
    """Serve a run folder, repo folder or hub repo NAMESPACE/NAME until stopped (SIGTERM or SIGINT)."""
    import uvicorn

    from ..hub import locate

    config = config or ServeConfig()
    preflight(host, port, config)
    if not config.api_key_env and not _loopback(host):
        logging.getLogger("nlptransfer").warning(
            f"serving on {host} without an API key: anyone who can reach this machine can use the model (set "
            "--api-key-env, or listen on 127.0.0.1)")
    folder = str(locate(source, hub=hub, revision=revision))
    spec = {"folder": folder, "backend": backend, "trust_remote_code": trust_remote_code,
            "config": {**asdict(config), "drift": asdict(config.drift)}}
    options = dict(host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=grace_s,
                   http=HeaderTimeout, timeout_keep_alive=HEADER_TIMEOUT_S, h11_max_incomplete_event_size=16_384)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it found: this one
    # ignores it, so a stop that went well ends with status 0
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    # the event loop, the tokenizer and the model thread hand work to each other: switch threads every 1 ms, not
    # Python's default 5 ms, so a request never waits for the interpreter while a batch is prepared
    sys.setswitchinterval(0.001)
    if workers > 1:
        os.environ[ENV] = json.dumps(spec)
        if config.prediction_log and not config.log_key_env:  # the workers' one random key: their hashes match
            os.environ.setdefault(RANDOM_LOG_KEY, secrets.token_hex(32))
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="nlptransfer-metrics-"))
        uvicorn.run("nlptransfer.serve.run:app_from_environment", factory=True, workers=workers, **options)
    else:
        uvicorn.run(_app(spec), **options)


#: seconds a connection may take to send a request's header (and may stay idle between requests)
HEADER_TIMEOUT_S = 5


class HeaderTimeout(AutoHTTPProtocol):
    """uvicorn's HTTP protocol, closing a connection whose request header is not complete HEADER_TIMEOUT_S seconds
    after it opened or after the request's first byte (uvicorn times out only the idle time between requests, so
    half-open connections would be held for ever)."""

    _header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.timeout_keep_alive, self._header_late)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._waiting_for_header():
            self._stop_header_timer()
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(self.timeout_keep_alive, self._header_late)

    def connection_lost(self, exc) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _waiting_for_header(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_late(self) -> None:
        self._header_timer = None
        if self._waiting_for_header() and not self.transport.is_closing():
            self.transport.close()


def preflight(host: str, port: int, config: ServeConfig) -> None:
    """RunError for what would stop the server once the model is loaded: the prediction log, the key variables, the
    port."""
    problem = config.prediction_log and prediction_log_problem(config.prediction_log)
    if problem:
        raise RunError(problem)
    for flag, name in (("--api-key-env", config.api_key_env), ("--log-key-env", config.log_key_env)):
        if name and not os.environ.get(name):
            raise RunError(f"{flag} {name}: that environment variable is empty or unset")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as e:
        raise RunError(f"cannot listen on {host}:{port}: {e.strerror or e} (another server on that port? choose "
                       "another with --port)") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another host name may reach beyond this machine
        return False


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
