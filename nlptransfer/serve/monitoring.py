"""The server's Prometheus metrics (prometheus-client), named by Prometheus conventions. Each app has its own
registry; with several worker processes (PROMETHEUS_MULTIPROC_DIR set) /metrics aggregates all of them."""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536)
CONFIDENCE_BUCKETS = tuple(i / 10 for i in range(1, 11))


class Monitoring:
    """Every metric the server exports."""

    def __init__(self):
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        r = self.registry if not self.multiprocess else None  # multiprocess: values go to files, read at scrape time
        kw = {"registry": r} if r is not None else {"registry": None}
        self.requests = Counter("nlptransfer_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], **kw)
        self.latency = Histogram("nlptransfer_request_duration_seconds", "Request latency", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, **kw)
        self.queue_wait = Histogram("nlptransfer_queue_wait_seconds", "Time a text waits for its batch",
                                    buckets=LATENCY_BUCKETS, **kw)
        self.batch_size = Histogram("nlptransfer_batch_size", "Texts per model batch", buckets=SIZE_BUCKETS, **kw)
        self.batch_tokens = Histogram("nlptransfer_batch_tokens", "Tokens per model batch", buckets=TOKEN_BUCKETS,
                                      **kw)
        self.predicted = Counter("nlptransfer_predictions", "Predicted labels", ["label"], **kw)
        self.confidence = Histogram("nlptransfer_prediction_confidence", "Probability of the predicted label",
                                    buckets=CONFIDENCE_BUCKETS, **kw)
        gauge = {"multiprocess_mode": "max"} if self.multiprocess else {}
        self.queue_size = Gauge("nlptransfer_queue_size", "Texts waiting for a batch",
                                **({"multiprocess_mode": "livesum"} if self.multiprocess else {}), **kw)
        self.label_psi = Gauge("nlptransfer_drift_label_psi", "PSI of the predicted-label mix against the reference",
                               **gauge, **kw)
        self.confidence_psi = Gauge("nlptransfer_drift_confidence_psi",
                                    "PSI of the confidence histogram against the reference", **gauge, **kw)
        self.mmd = Gauge("nlptransfer_drift_embedding_mmd", "MMD^2 between live and reference embeddings", **gauge,
                         **kw)
        self.mmd_p = Gauge("nlptransfer_drift_embedding_p_value", "Permutation p-value of the embedding MMD",
                           **({"multiprocess_mode": "min"} if self.multiprocess else {}), **kw)
        self.alarm = Gauge("nlptransfer_drift_alarm", "1 when drift is detected", **gauge, **kw)
        self.window = Gauge("nlptransfer_drift_window_texts", "Live texts in the drift window", **gauge, **kw)

    def drift(self, figures: dict) -> None:
        """Set the drift gauges from DriftMonitor figures (unknown values stay at their last setting)."""
        for gauge, key in ((self.label_psi, "label_psi"), (self.confidence_psi, "confidence_psi"),
                           (self.mmd, "embedding_mmd"), (self.mmd_p, "embedding_p_value")):
            if figures.get(key) is not None:
                gauge.set(figures[key])
        self.alarm.set(1 if figures.get("alarm") else 0)
        self.window.set(figures.get("window_texts") or 0)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (of every worker process, in multiprocess mode)."""
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
