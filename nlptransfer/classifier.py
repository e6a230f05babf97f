"""TextClassifier: load a run folder and predict, fast (length-sorted batches, dynamic padding)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import models
from .batching import tokenize
from .data import LabelMap
from .recipe import Recipe, read_saved
from .run import RunFolder
from .tasks import TransferModel
from .train import eval_loader, predict_logits, softmax


@dataclass(frozen=True)
class Prediction:
    """One text's predicted label, its probability, and the probability of every label."""

    label: str
    score: float
    probabilities: dict[str, float]


class TextClassifier:
    """A trained classifier: `TextClassifier.load(run_folder).predict(["great phone"])`."""

    def __init__(self, model: TransferModel, tokenizer, label_map: LabelMap, max_length: int, recipe: Recipe | None = None,
                 onnx=None):
        self.model = model.eval()
        self.onnx = onnx  # an onnx_runtime.OnnxModel that predicts instead of `model` (backend onnx / onnx-int8)
        self.tokenizer = tokenizer
        self.label_map = label_map
        self.max_length = max_length
        self.recipe = recipe
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, merge: bool = True,
             backend: str = "torch") -> "TextClassifier":
        """Load a run folder (model/ or adapter/ with tokenizer/, labels.json, recipe.yaml) or a pushed repo folder.

        merge: fold adapter weights into the base model (LoRA, IA3): the same predictions within float
        tolerance, without the adapter's extra matmuls at every layer.
        backend: torch | onnx | onnx-int8 (ONNX Runtime on the run's onnx/ export: `nlptransfer export RUN --onnx`).
        """
        if backend != "torch":
            from .onnx_runtime import FILES, OnnxModel

            if backend not in FILES:
                from .errors import RunError

                raise RunError(f"unknown backend '{backend}'; choose torch, onnx or onnx-int8")
            onnx = OnnxModel.of_run(Path(path), backend)
            clf = cls.load(path, "cpu", merge)
            clf.onnx = onnx
            return clf
        if (Path(path) / "nlptransfer.json").is_file():  # a pushed/pulled repo (hub layout): see repo_folder.py
            from .repo_folder import load_repo_folder

            return load_repo_folder(path, device, merge)
        run = RunFolder.existing(path, need=("labels", "recipe", "tokenizer"))
        recipe = read_saved(run.path("recipe"))
        label_map = LabelMap.from_dict(run.read_json("labels"))
        tokenizer = models.load_tokenizer(models.ResolvedModel(str(path), str(run.path("tokenizer"))))
        if run.path("adapter").exists():
            from peft import PeftModel

            base = models.resolve(recipe.model, recipe.model_revision)
            net, _ = models.load_classifier(base, label_map, recipe.trust_remote_code)
            net = PeftModel.from_pretrained(net, str(run.path("adapter")))
            net = merge_adapter(net) if merge else net
        elif run.path("model").exists():
            net, _ = models.load_classifier(models.ResolvedModel(str(path), str(run.path("model"))), label_map)
        else:
            from .errors import RunError

            raise RunError(f"{path} has neither model/ nor adapter/: the run did not finish")
        limit = models.max_length(tokenizer, net.config, recipe.data.max_length)
        model = TransferModel(net, recipe.pooling).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(model, tokenizer, label_map, limit, recipe)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None, hub: str | Path | None = None,
                        token: str | None = None, device: str | None = None) -> "TextClassifier":
        """Load a run folder, or fetch a pushed repo NAMESPACE/NAME (Hugging Face Hub, or the folder hub `hub`)."""
        from .hub import load as load_from_hub

        return load_from_hub(name_or_path, revision=revision, hub=hub, token=token, device=device)

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities [texts, labels], columns in label-map order."""
        if not texts:
            return np.zeros((0, len(self.label_map)))
        encoded = tokenize(self.tokenizer, [str(t) for t in texts], self.max_length)
        loader = eval_loader(encoded, batch_size, self.tokenizer.pad_token_id or 0)
        if self.onnx is not None:
            logits = self.onnx.logits(loader)
        else:
            logits, _ = predict_logits(_OnDevice(self.model, self.device), loader)
        return softmax(logits)

    def predict(self, texts: list[str] | str, batch_size: int = 64) -> list[Prediction] | Prediction:
        """The predicted label and probabilities of each text (one Prediction for a single string)."""
        single = isinstance(texts, str)
        probs = self.predict_proba([texts] if single else list(texts), batch_size)
        names = self.label_map.names
        out = [Prediction(names[int(row.argmax())], float(row.max()), {n: float(p) for n, p in zip(names, row)})
               for row in probs]
        return out[0] if single else out


def merge_adapter(net: torch.nn.Module) -> torch.nn.Module:
    """`net` with its adapter folded into the base weights, or `net` itself when the method cannot merge
    (prompt tuning, methods that add inputs rather than weight deltas, and PEFT's IA3 with a RoBERTa-style head).
    The merge runs on a copy, so a merge that fails half way leaves `net` as it was."""
    import copy

    try:
        return copy.deepcopy(net).merge_and_unload()
    except (AttributeError, ValueError, NotImplementedError, TypeError):
        return net


class _OnDevice(torch.nn.Module):
    """Moves each batch to the model's device before the forward pass."""

    def __init__(self, model, device):
        super().__init__()
        self.model, self.device = model, device

    def forward(self, **batch):
        return self.model(**{k: v.to(self.device) for k, v in batch.items()})
