"""Serving KPIs measured on this machine: latency per text, throughput, cost per 1,000 predictions, artifact size."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np


def folder_bytes(path: Path) -> int:
    """Total bytes of the files under `path`."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def serving_speed(predict: Callable[[list[str]], object], texts: list[str], single: int = 50,
                  batch: int = 256) -> dict:
    """Latency of one text at a time (p50, p95 ms over `single` texts) and batched throughput (texts/s)."""
    if not texts:
        return {"latency_ms_p50": None, "latency_ms_p95": None, "throughput_per_s": None, "timed_texts": 0}
    predict(texts[:1])  # warm-up: first-call allocations are not serving cost
    timings = []
    for text in (texts * (single // len(texts) + 1))[:single]:
        started = time.perf_counter()
        predict([text])
        timings.append(time.perf_counter() - started)
    pool = (texts * (batch // len(texts) + 1))[:batch]
    started = time.perf_counter()
    predict(pool)
    seconds = max(time.perf_counter() - started, 1e-9)
    p50, p95 = np.percentile(np.asarray(timings) * 1000, [50, 95])
    return {"latency_ms_p50": round(float(p50), 3), "latency_ms_p95": round(float(p95), 3),
            "throughput_per_s": round(len(pool) / seconds, 2), "timed_texts": len(timings), "batch_texts": len(pool)}


def cost_per_1000(throughput_per_s: float | None, price_per_hour: float) -> float | None:
    """Machine cost of 1,000 predictions at the measured batched throughput and the given hourly price."""
    if not throughput_per_s:
        return None
    return price_per_hour * (1000 / throughput_per_s) / 3600
