"""Transfer indicators: what the pretrained encoder knows alone (zero-shot, linear probe) and time to the baseline."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from .. import models
from ..data import LabelledTexts
from ..recipe import Recipe
from ..sections import threshold_objective
from ..model import mean_pool
from ..strategies.zero_shot import descriptions
from ..tasks import Task
from .baseline import scores


class FrozenEncoder:
    """The recipe's pretrained encoder, untouched by training: mean-pooled token states of texts."""

    def __init__(self, recipe: Recipe, batch_size: int = 64):
        from transformers import AutoModel

        base = models.resolve(recipe.model, recipe.model_revision)
        self.tokenizer = models.load_tokenizer(base, recipe.trust_remote_code)
        config = models.load_config(base, recipe.trust_remote_code)
        self.max_length = models.max_length(self.tokenizer, config, recipe.data.max_length)
        self.model = AutoModel.from_pretrained(base.path, revision=base.revision,
                                               trust_remote_code=recipe.trust_remote_code).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def embed(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled last hidden states [texts, hidden], in the order given (batched by length)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.random.fork_rng(devices=[]):
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], truncation=True, max_length=self.max_length,
                                       padding=True, return_tensors="pt")
                hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                out[rows] = mean_pool(hidden, batch["attention_mask"])[:, 0].float().numpy()
        return out


def zero_shot(test_features: np.ndarray, label_features: np.ndarray, gold: list[int]) -> dict:
    """Each text gets the label whose text is nearest by cosine similarity; accuracy and macro-F1 on `gold`."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)

    similarity = unit(test_features) @ unit(label_features).T
    return scores(gold, similarity.argmax(1))


def linear_probe(train_features: np.ndarray, train_labels: list[int], test_features: np.ndarray,
                 gold: list[int], seed: int = 0) -> dict:
    """Logistic regression on frozen features: test accuracy and macro-F1, fit seconds and parameters."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed))
    probe.fit(train_features, train_labels)
    seconds = time.perf_counter() - started
    model = probe[-1]
    return {**scores(gold, probe.predict(test_features)), "fit_seconds": round(seconds, 3),
            "parameters": int(model.coef_.size + model.intercept_.size)}


#: why a multi-label report has no zero-shot score
NO_ZERO_SHOT = ("zero-shot is left out for multi-label: strategy zero_shot refuses task multi_label (it picks the one "
                "nearest label), and a label-by-label similarity threshold would have to be chosen on labelled rows")


def tuned_probe(train_features: np.ndarray, train_labels, validation_features: np.ndarray | None, validation_labels,
                test_features: np.ndarray, gold, task: Task, threshold: float | None, seed: int = 0,
                objective: str = "label_f1") -> dict:
    """One-vs-rest logistic regression on frozen features, thresholds tuned on validation as the run tuned its own
    (0.5 each without a validation split, or `threshold`): test scores, fit seconds and parameters."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    probe = make_pipeline(StandardScaler(),
                          OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=2000, random_state=seed)))
    probe.fit(train_features, np.asarray(train_labels))
    seconds = time.perf_counter() - started
    kind = task.kind

    def outputs(features):
        return np.asarray(probe.predict_proba(features), dtype=np.float64).reshape(len(features), len(task.labels))

    val = None if validation_features is None else outputs(validation_features)
    labels, chosen = kind.tune(task, None if val is None else kind.gold(validation_labels)[0], val, threshold,
                               objective)
    tuned = dataclasses.replace(task, labels=labels)
    scores_ = kind.metrics(tuned, kind.gold(gold)[0], outputs(test_features))
    return {**{k: v for k, v in scores_.items() if isinstance(v, float)}, "thresholds": chosen["summary"],
            "fit_seconds": round(seconds, 3),
            "parameters": int(sum(m.coef_.size + m.intercept_.size for m in probe[-1].estimators_))}


def knowledge_alone(recipe: Recipe, train: LabelledTexts, test: LabelledTexts, names: tuple[str, ...],
                    validation: LabelledTexts | None = None, task: Task | None = None) -> dict:
    """Indicator 1: zero-shot and linear-probe test scores of the frozen pretrained encoder; for a kind that tunes
    thresholds (multi_label, `task`), the probe's tuned on `validation` and no zero-shot (NO_ZERO_SHOT)."""
    started = time.perf_counter()
    encoder = FrozenEncoder(recipe)
    if task is not None and task.kind.tunes:
        test_features = encoder.embed(test.texts)
        val = validation if validation is not None and len(validation) and validation.labels is not None else None
        probe = tuned_probe(encoder.embed(train.texts), train.labels, encoder.embed(val.texts) if val else None,
                            val.labels if val else None, test_features, test.labels, task,
                            recipe.evaluation.threshold, recipe.training.seed,
                            threshold_objective(recipe.training.metric))
        return {"encoder": recipe.model, "pooling": "mean", "zero_shot": None, "zero_shot_left_out": NO_ZERO_SHOT,
                "linear_probe": probe, "seconds": round(time.perf_counter() - started, 3)}
    described = descriptions(recipe, names)  # as strategy zero_shot reads them: labels.descriptions, else the name
    flat = encoder.embed([t for group in described for t in group])
    flat /= np.clip(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12, None)
    bounds = np.cumsum([0] + [len(g) for g in described])
    label_features = np.stack([flat[a:b].mean(0) for a, b in zip(bounds, bounds[1:])])
    test_features = encoder.embed(test.texts)
    result = {
        "encoder": recipe.model,
        "pooling": "mean",
        "label_texts": {n: " | ".join(g) for n, g in zip(names, described)},
        "zero_shot": zero_shot(test_features, label_features, test.labels),
        "linear_probe": linear_probe(encoder.embed(train.texts), train.labels, test_features, test.labels,
                                     recipe.training.seed),
    }
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def time_to_score(log: list[dict], target: float | None, metric: str, train_seconds: float, steps: int,
                  examples_seen: int) -> dict:
    """Indicator 2: the first evaluation of the transfer run that reaches `target` (the baseline's validation
    score), with the wall time and examples seen by then.

    A log record's own "seconds" is used when the loop wrote one; otherwise the time is interpolated from the
    run's total training time by optimizer steps (steps take about equally long within a run).
    """
    evals = [r for r in log if "eval" in r and metric in r["eval"]]
    curve = [{"step": r["step"], "score": r["eval"][metric]} for r in evals]
    if target is None or not evals:
        why = "no validation split" if target is None else "the run logged no evaluations"
        return {"reached": None, "why": why, "target": target, "curve": curve}
    hit = next((r for r in evals if r["eval"][metric] >= target), None)
    best = max(r["eval"][metric] for r in evals)
    result = {"target": target, "metric": metric, "best": best, "curve": curve,
              "timing": "logged" if all("seconds" in r for r in evals) else "interpolated by step"}
    if hit is None:
        return {**result, "reached": False, "seconds": None, "examples": None, "step": None}
    share = hit["step"] / max(steps, 1)
    seconds = hit.get("seconds", train_seconds * share)
    return {**result, "reached": True, "step": hit["step"], "seconds": round(float(seconds), 3),
            "examples": int(round(examples_seen * share))}
