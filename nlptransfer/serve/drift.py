"""Live drift: a rolling window of what the server saw (predicted labels, confidences, pooled embeddings of a
sample), compared with the model's reference profile. The population stability index (PSI) of the predicted-label
mix and of the confidence histogram, and a kernel two-sample test (MMD, permutation p-value) between live and
reference embeddings (unit-length, as sentence embeddings are compared). The alarm is on when either PSI is above
its threshold, or the embeddings differ both significantly (p-value below its threshold) and materially (MMD^2 at
least min_mmd): over hundreds of texts the test finds any real difference, even one too small to act on (SST-2's
dev sentences against its training phrases: p = 0.005 at MMD^2 0.017; another domain: 0.12)."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from ..inference.profile import Profile, histogram, mix
from .config import DriftSettings

#: below this many texts in the window nothing is judged
MIN_WINDOW = 100


def psi(reference: list[float], live: list[float], floor: float = 1e-4) -> float:
    """Population stability index between two distributions over the same bins (shares; empty bins floored)."""
    ref = np.maximum(np.asarray(reference, dtype=float), floor)
    cur = np.maximum(np.asarray(live, dtype=float), floor)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """Squared MMD (unbiased, Gaussian kernel with the median-distance bandwidth) between the unit-length rows of
    samples x and y, and its permutation p-value (all permutations in one matrix product)."""
    pooled = np.concatenate([x, y]).astype(np.float64)
    pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    distances = np.maximum(2 - 2 * pooled @ pooled.T, 0)  # squared distances of unit vectors
    size, n = len(pooled), len(x)
    m = size - n
    off = distances[~np.eye(size, dtype=bool)]
    kernel = np.exp(-distances / max(float(np.median(off)) if len(off) else 1.0, 1e-12))
    rng = np.random.default_rng(seed)
    groups = np.zeros((size, permutations + 1))
    groups[:n, 0] = 1  # column 0: the observed split; the others: random splits of the same sizes
    for b in range(1, permutations + 1):
        groups[rng.permutation(size)[:n], b] = 1
    kg = kernel @ groups
    total = kernel.sum()
    within_x = np.einsum("ib,ib->b", groups, kg)  # sum of k over pairs in x (diagonal included: n ones)
    across = kg.sum(0) - within_x
    within_y = total - within_x - 2 * across
    stats = (within_x - n) / (n * (n - 1)) + (within_y - m) / (m * (m - 1)) - 2 * across / (n * m)
    return float(stats[0]), float((1 + np.sum(stats[1:] >= stats[0])) / (1 + permutations))


class DriftMonitor:
    """The live window and the latest drift figures; `observe` is called for each predicted text (any thread)."""

    def __init__(self, profile: Profile | None, settings: DriftSettings = DriftSettings()):
        self.profile, self.settings = profile, settings
        self.labels: deque[int] = deque(maxlen=settings.window)
        self.confidence: deque[float] = deque(maxlen=settings.window)
        self.embeddings: deque[np.ndarray] = deque(maxlen=settings.embed_sample)
        self.seen = 0
        self._since = 0
        self._last = float("-inf")
        self._lock = threading.Lock()
        self.latest: dict = self._empty("no texts yet")

    def _empty(self, why: str) -> dict:
        return {"alarm": False, "status": why, "window_texts": len(self.labels), "label_psi": None,
                "confidence_psi": None, "embedding_mmd": None, "embedding_p_value": None}

    def observe(self, label, confidence: float, embedding: np.ndarray | None) -> None:
        """One predicted text: its label id (a multi-label model's: its 0/1 row of labels), confidence, features."""
        with self._lock:
            self.labels.append(label if isinstance(label, tuple) else int(label))
            self.confidence.append(float(confidence))
            if embedding is not None:
                self.embeddings.append(np.asarray(embedding, dtype=np.float32))
            self.seen += 1
            self._since += 1

    def due(self) -> bool:
        return self._since >= self.settings.every and time.monotonic() - self._last >= self.settings.interval_s

    def update(self) -> dict:
        """Recompute the drift figures from the window (a few hundred ms at most: call it off the event loop)."""
        with self._lock:
            labels, confidence = np.array(self.labels), np.array(self.confidence)
            embeddings = np.stack(self.embeddings) if self.embeddings else None
            self._since, self._last = 0, time.monotonic()
        if self.profile is None:
            self.latest = self._empty("no reference profile for this model")
        elif len(labels) < MIN_WINDOW:
            self.latest = self._empty(f"waiting for {MIN_WINDOW} texts ({len(labels)} so far)")
        else:
            self.latest = self._judge(labels, confidence, embeddings)
        self.latest["updated"] = time.time()
        return self.latest

    def _judge(self, labels: np.ndarray, confidence: np.ndarray, embeddings: np.ndarray | None) -> dict:
        s, p = self.settings, self.profile
        rates = None
        if p.kind == "multi_label":  # each label's rate, judged on its own (PSI of on/off); the worst is label_psi
            live = labels.reshape(len(labels), -1).mean(0)
            rates = {n: {"reference": r, "live": float(x), "psi": psi([r, 1 - r], [float(x), 1 - float(x)])}
                     for n, r, x in zip(p.labels, p.label_mix, live)}
            label_psi = max((v["psi"] for v in rates.values()), default=0.0)
        else:
            label_psi = psi(p.label_mix, mix(labels, len(p.labels)))
        confidence_psi = psi(p.confidence, histogram(confidence))
        mmd = p_value = None
        if embeddings is not None and len(embeddings) >= 20 and len(p.embeddings) >= 20:
            mmd, p_value = mmd_test(embeddings, p.embeddings, s.permutations)
        reasons = [f"{name} PSI {value:.3f} > {s.psi_threshold}" for name, value in
                   (("label-mix", label_psi), ("confidence", confidence_psi)) if value > s.psi_threshold]
        if p_value is not None and p_value < s.p_threshold and mmd >= s.min_mmd:
            reasons.append(f"embedding MMD p-value {p_value:.4f} < {s.p_threshold} with MMD^2 {mmd:.3f} >= "
                           f"{s.min_mmd}")
        return {"alarm": bool(reasons), "status": "; ".join(reasons) or "no drift", "window_texts": int(len(labels)),
                "label_psi": label_psi, "confidence_psi": confidence_psi, "embedding_mmd": mmd,
                "embedding_p_value": p_value, "embedded_texts": 0 if embeddings is None else int(len(embeddings)),
                **({"label_rates": rates} if rates is not None else {})}

    def report(self) -> dict:
        """The latest figures with the settings they were judged by."""
        s = self.settings
        return {**self.latest, "thresholds": {"psi": s.psi_threshold, "p_value": s.p_threshold, "mmd": s.min_mmd},
                "window": s.window, "reference": None if self.profile is None else {
                    "texts": self.profile.texts, "embedded": int(len(self.profile.embeddings)),
                    "source": self.profile.source}}
