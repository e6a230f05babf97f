"""The HTTP app (FastAPI on uvicorn): predict with dynamic batching, health and readiness, metadata, Prometheus
metrics, live drift, an optional prediction log, an optional API key. It imports only the inference side."""

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StringConstraints, create_model, field_validator
from starlette.exceptions import HTTPException

from ..data.problems import NO_TEXT
from ..errors import RunError
from ..inference import TextClassifier
from ..inference.classifier import head_prediction, observed_label
from ..inference.profile import profile_for
from .batcher import Batcher, DeadlineExceeded, QueueFull
from .config import ServeConfig, prediction_log_problem
from .drift import DriftMonitor
from .monitoring import Monitoring

#: requests with at most this many characters are tokenized on the event loop; larger ones in a thread
INLINE_CHARS = 4000
OPEN = ("/health", "/ready", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")
#: the environment variable through which `serve` hands its worker processes the one random log key they share
RANDOM_LOG_KEY = "NLPTRANSFER_SERVE_RANDOM_LOG_KEY"


class ErrorBody(BaseModel):
    error: dict


class Health(BaseModel):
    status: str


class TaskPredictionOut(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]
    labels: list[str] | None = Field(None, description="a multi-label task's labels at or above their thresholds")


class PredictionOut(BaseModel):
    label: str = Field(description="the predicted label (a multi-label model's labels, joined as it read them)")
    score: float
    probabilities: dict[str, float]
    labels: list[str] | None = Field(None, description="a multi-label model's labels at or above their thresholds")
    truncated: bool = Field(description="the text was longer than the model's token limit and was cut")
    tasks: dict[str, TaskPredictionOut] | None = Field(
        None, description="a multi-task model's prediction for every task, in task order (label, score and "
                          "probabilities above are its first task's); absent for a single-task model")


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


ERRORS = {code: {"model": ErrorBody, "description": what} for code, what in (
    (400, "the body is not JSON (or not UTF-8)"), (401, "missing or wrong API key"), (413, "body too large"),
    (422, "the JSON does not fit the schema: empty, too many texts, a text too long or empty, wrong types"),
    (500, "the model failed on a text of this request (the other requests of its batch are answered)"),
    (503, "the queue is full: retry after the Retry-After seconds"), (504, "the texts waited past the deadline"))}


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    kind = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
            422: "invalid_request", 500: "internal", 503: "overloaded", 504: "timeout"}.get(status, "error")
    return JSONResponse({"error": {"status": status, "type": kind, "message": message}}, status, headers=headers)


class _BodyLimit:
    """ASGI middleware: a body larger than the limit (announced or streamed) is answered 413 before it is read."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _error(413, f"the body is larger than {self.limit} bytes")(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"the body is larger than {self.limit} bytes")
            return message

        return await self.app(scope, limited, send)


class _Guard:
    """ASGI middleware: without the API key, every path but the open ones is answered 401 before its body is read
    (a body that is not JSON must not tell an unauthorized caller more than a wrong key does)."""

    def __init__(self, app, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode("utf-8")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN:
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            return await _error(401, "send the API key as 'Authorization: Bearer <key>'")(scope, receive, send)
        return await self.app(scope, receive, send)


def _has_text(texts: str | list[str]) -> str | list[str]:
    # predict's rule (data/readers.py strips every cell): a text of whitespace only is no text
    for i, text in enumerate([texts] if isinstance(texts, str) else texts):
        if not text.strip():
            raise ValueError(NO_TEXT if isinstance(texts, str) else f"text {i}: {NO_TEXT}")
    return texts


def _request_model(config: ServeConfig):
    # the pattern says in the schema what _has_text checks: a character that str.strip() keeps
    text = Annotated[str, StringConstraints(max_length=config.max_chars),
                     Field(json_schema_extra={"pattern": r"[^\s\x1c-\x1f]"})]
    texts = Annotated[list[text], Field(min_length=1, max_length=config.max_texts)]
    return create_model("PredictRequest", texts=(text | texts, Field(
        description=f"one text, or a list of 1 to {config.max_texts} texts (each at most {config.max_chars} "
                    "characters, none empty)")), __config__={"extra": "forbid"},
        __validators__={"has_text": field_validator("texts")(_has_text)})


def _prediction_logger(config: ServeConfig):
    if not config.prediction_log:
        return None
    from logging.handlers import RotatingFileHandler

    problem = prediction_log_problem(config.prediction_log)
    if problem:
        raise RunError(problem)
    logger = logging.getLogger(f"nlptransfer.serve.predictions.{id(config)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = RotatingFileHandler(config.prediction_log, maxBytes=config.log_max_bytes,
                                  backupCount=config.log_backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return logger


class Service:
    """What the endpoints share: the classifier, its batcher, the drift monitor, the metrics."""

    def __init__(self, classifier: TextClassifier, config: ServeConfig, folder: Path | None):
        self.classifier, self.config, self.folder = classifier, config, folder
        self.monitoring = Monitoring()
        self.names = list(classifier.label_map.names)
        #: each head's (task, label names, its columns of the probabilities); a single-task model's task is None
        self.heads, start = [], 0
        for (task, m), kind in zip((classifier.tasks or {None: classifier.label_map}).items(),
                                   classifier.all_tasks.values()):
            self.heads.append((task, kind, slice(start, start + len(m))))
            start += len(m)
        self.drift = DriftMonitor(profile_for(classifier, folder) if folder else None, config.drift)
        self.batcher = Batcher(self.run_batch, config.max_batch_size, config.max_batch_tokens, config.max_wait_ms,
                               config.max_queue, self._batched)
        self.ready, self.overhead_tokens, self._batches = False, 0.0, 0
        self._drift_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlptransfer-drift")
        self._drifting = None
        self.prediction_log = _prediction_logger(config)
        self.log_key, self.log_key_name = _log_key(config)
        self.api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if config.api_key_env and not self.api_key:
            raise ValueError(f"--api-key-env {config.api_key_env}: that environment variable is empty or unset")

    def _batched(self, size: int, tokens: int) -> None:
        self.monitoring.batch_size.observe(size)
        self.monitoring.batch_tokens.observe(tokens)

    def run_batch(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray | None]:
        """One model batch (in the model thread); drift figures are refreshed here when due."""
        probs, features = self.classifier.batch_outputs(ids, self.overhead_tokens)
        self._batches += 1
        if features is None and self.drift.profile is not None and self._batches % 8 == 1:
            # an ONNX export from before it gave features: a few texts of every 8th batch through PyTorch
            from ..batching import Collator
            from ..inference.backends import TorchBackend

            take = Collator(self.classifier.tokenizer.pad_token_id or 0)([{"input_ids": i} for i in ids[:4]])
            _, sample = TorchBackend(self.classifier.model).batch_outputs(take["input_ids"], take["attention_mask"])
            features = np.full((len(ids), sample.shape[1]), np.nan, dtype=np.float32)
            features[: len(sample)] = sample
        first = probs[:, self.heads[0][2]]  # drift follows the first task (the reference profile is of its head)
        for j in range(len(ids)):
            feature = None if features is None or np.isnan(features[j]).any() else features[j]
            self.drift.observe(observed_label(first[j], self.heads[0][1]), float(first[j].max()), feature)
        if self.drift.due() and (self._drifting is None or self._drifting.done()):  # off the model thread
            self._drifting = self._drift_pool.submit(lambda: self.monitoring.drift(self.drift.update()))
        return probs, features

    def warm_up(self) -> None:
        """Run the model once, and measure what a forward pass costs beyond its tokens (the batch cutting uses it)."""
        self.classifier.predict_proba(["warm up"])
        self.overhead_tokens = self.classifier.calibrate()
        logging.getLogger("nlptransfer").info(
            "a forward pass costs as much as %.0f tokens beyond its own: batches are cut by length accordingly",
            self.overhead_tokens)
        self.ready = True

    def metadata(self) -> dict:
        from ..version import __version__

        recipe, metrics = self.classifier.recipe, {}
        if self.folder and (self.folder / "metrics.json").is_file():
            metrics = json.loads((self.folder / "metrics.json").read_text(encoding="utf-8"))
        base = {}
        if self.folder and (self.folder / "nlptransfer.json").is_file():
            base = json.loads((self.folder / "nlptransfer.json").read_text(encoding="utf-8")).get("base_model", {})
        if not base and recipe:
            base = {"name": Path(recipe.model).name if Path(recipe.model).is_absolute() else recipe.model,
                    "revision": recipe.model_revision}
        first = self.classifier.label_map  # a multi-label model's thresholds: {label: threshold}
        return {"labels": self.names, "base_model": base, "kind": first.kind, **(
                {"thresholds": dict(zip(first.names, first.thresholds))} if first.thresholds else {}),
                **({"tasks": {task: list(t.labels.names) for task, t, _ in self.heads},
                    "task_kinds": {task: t.labels.kind for task, t, _ in self.heads},
                    "task_thresholds": {n: t.labels.to_dict()["thresholds"] for n, t, _ in self.heads if t.labels.thresholds}}
                   if self.classifier.tasks else {}),
                "strategy": recipe.strategy if recipe else None, "pooling": recipe.pooling if recipe else None,
                "max_length": self.classifier.max_length, "test_metrics": metrics.get("test"),
                "nlptransfer_version": __version__, "backend": type(self.classifier.backend).__name__,
                "limits": {k: v for k, v in asdict(self.config).items() if k in (
                    "max_batch_size", "max_batch_tokens", "max_wait_ms", "max_queue", "timeout_s", "max_texts",
                    "max_chars", "max_body_bytes")}}

    def log(self, texts: list[str], rows: list[dict]) -> None:
        if self.prediction_log is None:
            return
        for text, row in zip(texts, rows):
            if self.config.log_texts:
                said = {"text": text}
            else:
                said = {"text_hmac_sha256": hmac.new(self.log_key, text.encode("utf-8"), hashlib.sha256).hexdigest(),
                        "hmac_key": self.log_key_name}
            self.prediction_log.info(json.dumps({"time": round(time.time(), 3), **said, "label": row["label"],
                                                 "score": round(row["score"], 6)}, ensure_ascii=False))


def _log_key(config: ServeConfig) -> tuple[bytes, str]:
    """The key of the prediction log's text hashes and how the log names it: the user's (from --log-key-env), or one
    drawn at random when the server starts; the name ends in a fingerprint that tells keys apart, never the key."""
    if config.log_key_env:
        secret, source = os.environ.get(config.log_key_env, ""), f"env {config.log_key_env}"
        if not secret:
            raise RunError(f"--log-key-env {config.log_key_env}: that environment variable is empty or unset")
    else:
        secret, source = os.environ.get(RANDOM_LOG_KEY) or secrets.token_hex(32), "random per server start"
    key = secret.encode("utf-8")
    return key, f"{source} {hmac.new(key, b'nlptransfer key id', hashlib.sha256).hexdigest()[:8]}"


def create_app(classifier: TextClassifier, config: ServeConfig | None = None, folder: str | Path | None = None
               ) -> FastAPI:
    """The ASGI app serving `classifier` (mount it in your own stack, or run `nlptransfer serve`). `folder`: the run
    or repo folder it was loaded from (metadata, test metrics, the drift reference)."""
    config = config or ServeConfig()
    service = Service(classifier, config, Path(folder) if folder else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.batcher.start()
        await asyncio.get_running_loop().run_in_executor(service.batcher.pool, service.warm_up)  # the model thread
        yield
        await service.batcher.stop()

    app = FastAPI(title="nlptransfer", version="1", lifespan=lifespan,
                  description="Text classification with a model trained by nlptransfer.")
    app.state.service = service
    PredictRequest = _request_model(config)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return _error(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors())
        return _error(422, problems[:2000])

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception):
        logging.getLogger("nlptransfer").error("%s %s failed: %s: %s", request.method, request.url.path,
                                               type(error).__name__, str(error).splitlines()[0][:300] if str(error) else "")
        return _error(500, f"the server failed on this request ({type(error).__name__}); its log says more")

    @app.get("/health", response_model=Health, summary="the process is alive")
    async def health():
        return {"status": "ok"}

    @app.get("/ready", response_model=Health, summary="the model is loaded and warm", responses={503: {
        "model": ErrorBody, "description": "the model is still loading: retry after the Retry-After seconds"}})
    async def ready():
        if not service.ready:
            return _error(503, "the model is still loading", {"Retry-After": "1"})
        return {"status": "ready"}

    @app.get("/metadata", responses={401: ERRORS[401]})
    async def metadata() -> dict:
        return service.metadata()

    @app.get("/metrics", responses={401: ERRORS[401]},
             response_class=Response, summary="Prometheus text format")
    async def metrics():
        service.monitoring.queue_size.set(service.batcher.waiting)
        return Response(service.monitoring.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/drift", responses={401: ERRORS[401]})
    async def drift() -> dict:
        figures = await asyncio.get_running_loop().run_in_executor(None, service.drift.update)
        service.monitoring.drift(figures)
        return service.drift.report()

    @app.post("/v1/predict", response_model=PredictResponse,
              responses={k: ERRORS[k] for k in (400, 401, 413, 422, 500, 503, 504)})
    async def predict(body: PredictRequest) -> dict:
        texts = [body.texts] if isinstance(body.texts, str) else list(body.texts)
        if sum(map(len, texts)) <= INLINE_CHARS:  # a fast tokenizer does a few short texts in microseconds
            encoded = service.classifier.encode(texts)
        else:
            encoded = await asyncio.get_running_loop().run_in_executor(None, service.classifier.encode, texts)
        cut = set(encoded.cut)
        try:
            futures = service.batcher.submit(encoded.input_ids, config.timeout_s)
        except QueueFull:
            raise HTTPException(503, f"the queue is full ({config.max_queue} texts waiting)",
                                headers={"Retry-After": "1"}) from None
        try:
            results = await asyncio.wait_for(asyncio.gather(*futures), config.timeout_s + 1)
        except (DeadlineExceeded, asyncio.TimeoutError):
            for f in futures:
                f.cancel()
            raise HTTPException(504, f"the texts waited more than {config.timeout_s:g} s") from None
        rows = []
        for i, result in enumerate(results):
            heads = {}
            for task, kind, columns in service.heads:
                heads[task] = head_prediction(result.probabilities[columns], kind)
            first = next(iter(heads.values()))
            rows.append({**first, "truncated": i in cut, **({"tasks": heads} if service.classifier.tasks else {})})
            for label in first.get("labels", [first["label"]]):  # a multi-label text counts for each of its labels
                service.monitoring.predicted.labels(label).inc()
            service.monitoring.confidence.observe(first["score"])
            service.monitoring.queue_wait.observe(result.waited)
        service.log(texts, rows)
        # the rows fit PredictResponse by construction: answer them as they are (FastAPI would validate them again
        # through the model, a third of a short request's time); the schema in /openapi.json stays the same
        return Response(json.dumps({"predictions": rows}), media_type="application/json")

    if config.max_body_bytes:
        app.add_middleware(_BodyLimit, limit=config.max_body_bytes)
    if service.api_key is not None:
        app.add_middleware(_Guard, key=service.api_key)
    app.add_middleware(_Measure, monitoring=service.monitoring)
    return app


class _Measure:
    """ASGI middleware: requests by endpoint and status, and their latency."""

    def __init__(self, app, monitoring: Monitoring):
        self.app, self.monitoring = app, monitoring

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            endpoint = getattr(scope.get("route"), "path", "other")
            self.monitoring.requests.labels(endpoint, str(status[0])).inc()
            self.monitoring.latency.labels(endpoint).observe(time.perf_counter() - started)
