"""The one carving of validation/test splits out of train: stratified, seeded, the rows scikit-learn's
train_test_split picks (its StratifiedShuffleSplit step by step, on arrays), written without its private helpers; for a
multi-label matrix, iterative stratification (`iterative`, through iterstrat)."""
from __future__ import annotations

import math

import numpy as np


def approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows to draw from each class: the floored shares, then one more for the largest remainders (ties broken by
    `rng`), summing to `n_draws`; as sklearn.utils.extmath._approximate_mode, draw for draw."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (at,) = np.where(remainder == value)
            add = min(len(at), need)
            floored[rng.choice(at, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(int)


def split_sizes(rows: int, test: int) -> tuple[int, int]:
    """(train rows, carved rows) of carving `test` rows out of `rows`; a ValueError worded as sklearn's when it
    cannot be done."""
    if test >= rows or test <= 0:
        raise ValueError(f"test_size={test} should be either positive and smaller than the number of samples {rows} "
                         "or a float in the (0, 1) range")
    return rows - test, test


def _classes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, each row's class index, rows per class), classes in sorted order."""
    if labels.dtype.kind in "iu":  # ranks: no inverse to build (the indices sort as the classes do)
        counts = np.bincount(labels)
        classes = np.flatnonzero(counts)
        return classes, labels, counts[classes]
    return np.unique(labels, return_inverse=True, return_counts=True)


def _check_classes(classes: np.ndarray, counts: np.ndarray, n_train: int, n_test: int) -> None:
    """ValueError, worded as sklearn's, when a class has one row or a side has fewer rows than classes."""
    if np.min(counts) < 2:
        raise ValueError(f"The least populated classes in y have only 1 member, which is too few. The minimum "
                         f"number of groups for any class cannot be less than 2. Classes with too few members "
                         f"are: {classes[counts < 2].tolist()}")
    for what, n in (("train_size", n_train), ("test_size", n_test)):
        if n < len(classes):
            raise ValueError(f"The {what} = {n} should be greater or equal to the number of classes = {len(classes)}")


def stratified(labels: np.ndarray, fractions: list[tuple[str, float]], seed: int) -> dict[str, np.ndarray]:
    """The sorted positions of each carved split (ceil(fraction x rows) rows, stratified by `labels`, seeded) and of
    the rows left for train: the rows sklearn's train_test_split(..., test_size=n, stratify=labels, random_state=seed)
    picks, one split after another (on arrays: sklearn gathers the picked rows in a Python list, 40 bytes a row).
    Only the order of the label values matters (names, or their ranks in sorted order, give the same splits). Raises
    ValueError as sklearn does (too few rows or classes)."""
    total = len(labels)
    parts, rest, rest_labels = {}, np.arange(total, dtype=np.int32 if total < 2**31 else np.int64), np.asarray(labels)
    for name, fraction in fractions:
        n_train, n_test = split_sizes(len(rest), math.ceil(fraction * total))
        classes, y_indices, class_counts = _classes(rest_labels)
        _check_classes(classes, class_counts, n_train, n_test)
        by_class = np.split(np.argsort(y_indices, kind="stable").astype(rest.dtype), np.cumsum(class_counts)[:-1])
        del y_indices
        rng = np.random.RandomState(seed)
        n_i = approximate_mode(class_counts, n_train, rng)
        t_i = approximate_mode(class_counts - n_i, n_test, rng)
        train, test = [], []
        for i, members in enumerate(by_class):
            picked = members.take(rng.permutation(class_counts[i]), mode="clip")
            train.append(picked[:n_i[i]])
            test.append(picked[n_i[i]:n_i[i] + t_i[i]])
        del by_class, picked
        train = rng.permutation(np.concatenate(train))
        test = rng.permutation(np.concatenate(test))
        rest, parts[name], rest_labels = rest[train], rest[test], rest_labels[train]
    parts["train"] = rest
    return {k: np.sort(v) for k, v in parts.items()}


def _to_exact_size(labels: np.ndarray, in_test: np.ndarray, n_test: int) -> np.ndarray:
    """`in_test` with exactly `n_test` rows: iterative stratification prefers balance to size, so the rows it misses
    or adds are moved one at a time, each time the row that best mends the labels' test counts without taking the last
    row of a label from the side it leaves, where another row can go (ties to the first position)."""
    in_test = in_test.copy()
    totals = labels.sum(0)
    wanted = totals * (n_test / len(labels))  # each label's share of positives for the test side
    weights = labels.astype(np.float64)
    while (size := int(in_test.sum())) != n_test:
        held = weights[in_test].sum(0)
        surplus = held - wanted  # > 0: the test side holds too many of that label
        shrink = size > n_test  # give back a test row whose labels the test side can spare, else take a train row
        leaving = held if shrink else totals - held
        score = (weights @ surplus) * (1 if shrink else -1) - 1e9 * labels[:, leaving == 1].any(1)
        score[in_test != shrink] = -np.inf
        in_test[int(np.argmax(score))] = not shrink
    return in_test


def iterative(matrix: np.ndarray, fractions: list[tuple[str, float]], seed: int) -> dict[str, np.ndarray]:
    """The sorted positions of each carved split (ceil(fraction x rows) rows, one split after another) and of the
    rows left for train, stratified on the 0/1 label matrix [rows, K] by iterative stratification (Sechidis et al.
    2011, iterstrat's MultilabelStratifiedShuffleSplit, seeded); rows with no label are spread as a label's. Raises
    ValueError when a split cannot be carved from the rows left."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    matrix = np.asarray(matrix)
    matrix = (matrix.reshape(len(matrix), -1) != 0)
    # "no label" as one more label: iterstrat places label-less rows last, into whatever room is left, so a split
    # the labelled rows overfill would get none of them
    matrix = np.concatenate([matrix, ~matrix.any(1, keepdims=True)], 1)
    if matrix.shape[1] < 2:  # iterstrat wants a multilabel-indicator matrix; an empty label changes nothing
        matrix = np.concatenate([matrix, np.zeros((len(matrix), 2 - matrix.shape[1]), dtype=bool)], 1)
    total = len(matrix)
    parts, rest = {}, np.arange(total, dtype=np.int32 if total < 2**31 else np.int64)
    for name, fraction in fractions:
        n_test = math.ceil(fraction * total)
        if n_test <= 0 or n_test >= len(rest):
            raise ValueError(f"cannot carve the {name} split: {fraction:g} x {total} rows = {n_test} rows, from the "
                             f"{len(rest)} rows left (it needs at least one row, and must leave one for train)")
        labels = matrix[rest]
        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
        _, test = next(splitter.split(np.zeros((len(rest), 1), dtype=np.int8), labels))
        in_test = np.zeros(len(rest), dtype=bool)
        in_test[test] = True
        in_test = _to_exact_size(labels, in_test, n_test)
        parts[name], rest = rest[in_test], rest[~in_test]
    parts["train"] = rest
    return {k: np.sort(v) for k, v in parts.items()}
