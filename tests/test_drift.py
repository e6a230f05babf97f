"""Drift statistics on constructed cases with known answers: PSI, the MMD permutation test, and the monitor's
alarm rule (both PSI thresholds, and significance with a material MMD for embeddings)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nlptransfer.inference.profile import Profile, histogram, mix
from nlptransfer.serve.drift import MIN_WINDOW, DriftMonitor, DriftSettings, mmd_test, psi


def test_psi_is_zero_for_equal_mixes_and_the_known_value_for_swapped_ones():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.9, 0.1], [0.1, 0.9]) == pytest.approx(2 * 0.8 * math.log(9))
    assert mix(np.array([0, 1, 1, 1]), 3) == [0.25, 0.75, 0.0]
    assert histogram(np.array([0.05, 0.55, 0.95, 1.0])) == [0.25, 0, 0, 0, 0, 0.25, 0, 0, 0, 0.5]


def test_the_mmd_test_accepts_one_distribution_and_rejects_a_shifted_one():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(150, 16))
    same, p_same = mmd_test(rng.normal(size=(150, 16)), reference, permutations=200)
    moved, p_moved = mmd_test(rng.normal(size=(150, 16)) + np.eye(16)[0] * 3, reference, permutations=200)
    assert p_same > 0.05 and abs(same) < 0.01
    assert p_moved == pytest.approx(1 / 201) and moved > 0.1


def _profile(rng) -> Profile:
    return Profile(["neg", "pos"], [0.5, 0.5], histogram(rng.uniform(0.5, 1.0, 500)), rng.normal(size=(200, 16)),
                   500, "validation")


def test_the_monitor_waits_for_a_window_then_alarms_only_on_real_drift():
    rng = np.random.default_rng(1)
    monitor = DriftMonitor(_profile(rng), DriftSettings(window=300, embed_sample=150))
    for i in range(MIN_WINDOW - 1):
        monitor.observe(i % 2, rng.uniform(0.5, 1.0), rng.normal(size=16))
    assert monitor.update()["status"] == f"waiting for {MIN_WINDOW} texts ({MIN_WINDOW - 1} so far)"
    for i in range(200):
        monitor.observe(i % 2, rng.uniform(0.5, 1.0), rng.normal(size=16))
    calm = monitor.update()
    assert calm["alarm"] is False and calm["status"] == "no drift" and calm["label_psi"] < 0.05
    for _ in range(300):  # one label only, confident, from elsewhere
        monitor.observe(1, 0.99, rng.normal(size=16) + np.eye(16)[0] * 3)
    drifted = monitor.update()
    assert drifted["alarm"] is True
    assert "label-mix PSI" in drifted["status"] and "confidence PSI" in drifted["status"]
    assert "embedding MMD p-value" in drifted["status"]
    assert DriftMonitor(None).update()["status"] == "no reference profile for this model"


def test_the_monitor_recomputes_after_enough_texts_and_not_more_often_than_its_interval():
    monitor = DriftMonitor(None, DriftSettings(every=10, interval_s=60))
    for _ in range(9):
        monitor.observe(0, 0.9, None)
    assert not monitor.due()
    monitor.observe(0, 0.9, None)
    assert monitor.due()
    monitor.update()
    for _ in range(50):
        monitor.observe(0, 0.9, None)
    assert not monitor.due()  # 50 new texts, but the last figures are not a minute old
    assert DriftMonitor(None, DriftSettings(every=1, interval_s=0)).due() is False  # nothing seen yet
