"""RunFolder: the on-disk layout of a run; every file is written atomically (fsio: write a temp file, then rename)."""
from __future__ import annotations

import csv
import io
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import RunError
from .fsio import atomic_dir, atomic_write_json, atomic_write_text, make_dir, read_json_file, writing

LAYOUT = {
    "recipe": "recipe.yaml",
    "model": "model",
    "adapter": "adapter",
    "tokenizer": "tokenizer",
    "labels": "labels.json",
    "data_report": "data_report.json",
    "metrics": "metrics.json",
    "predictions": "predictions.csv",
    "log": "train_log.jsonl",
    "checkpoints": "checkpoints",
    "onnx": "onnx",  # optional: `nlptransfer export RUN --onnx`
    "reference": "reference.json",  # the reference profile drift is measured against (inference/profile.py)
    "reference_embeddings": "reference.safetensors",
    "encoder": "encoder",  # `nlptransfer adapt` (masked-LM pretraining): the adapted encoder, a model folder
    "adapt": "adapt",  # adapt.method mlm: the run's masked-LM pretraining, itself a run folder with its encoder/
    "body": "body",  # strategy contrastive: the encoder trained on pairs, itself a run folder with its encoder/
    "report": "report",  # the transfer report (report/render.py)
}

#: what each LAYOUT entry holds and when it is written (the documentation's run folder page is generated from it)
FILES = {
    "recipe": ("the resolved recipe: every key, defaults filled in; the run can be repeated from it",
               "after the data is read, before training"),
    "model": ("the trained model (safetensors weights and config.json), for every strategy but the adapter ones",
              "at the end of training"),
    "adapter": ("the trained adapter with the task head (PEFT's adapter_model.safetensors and adapter_config.json)",
                "at the end of training, for an adapter strategy (lora, ia3, ...)"),
    "tokenizer": ("the tokenizer files", "at the end of training"),
    "labels": ("the label map (id2label and label2id, in training order); a multi-task run adds each task's map "
               "under tasks", "after the data is read, before training"),
    "data_report": ("rows read, used, dropped (by reason) and truncated, what was inferred (columns, format), class "
                    "balance per split", "after the data is read, before training"),
    "metrics": ("test metrics (accuracy, macro-F1, per class, confusion matrix, ECE) and timings; its "
                "presence marks a finished run", "at the end of the run"),
    "predictions": ("the test rows: text, gold label, predicted label, probability of each label",
                    "at the end of the run, when there is a test split"),
    "log": ("one JSON line per logged step and per evaluation (loss, learning rate, validation metrics)",
            "while training"),
    "checkpoints": ("last/: everything a resumed run needs (model, optimizer, scheduler, RNG states, data position, "
                    "each part's sha256); best/: the trainable weights of the best evaluation", "while training"),
    "onnx": ("the model exported to ONNX, float32 and int8, with check.json: how far each is from PyTorch",
             "by `nlptransfer export RUN --onnx`"),
    "reference": ("the reference profile live drift is measured against: the predicted-label mix and the "
                  "confidence histogram on held-out texts", "at the end of training"),
    "reference_embeddings": ("pooled embeddings of a sample of held-out texts, for the drift test on embeddings",
                             "at the end of training"),
    "encoder": ("the domain-adapted encoder, a model folder any recipe can start from",
                "by `nlptransfer adapt` (masked-LM pretraining)"),
    "adapt": ("the masked-LM pretraining of the run, itself a run folder with its encoder/",
              "with adapt.method mlm, before the classifier trains"),
    "body": ("the encoder trained on pairs, itself a run folder with its encoder/",
             "with strategy contrastive, before the head trains"),
    "report": ("the transfer report: report.html (its figures inside), report.md and report.json",
               "by `nlptransfer report RUN` or `nlptransfer run --report`"),
}


class RunFolder:
    """A run's folder: named paths for every file, atomic writers, and the training log."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder('{self.root}')"

    def path(self, key: str) -> Path:
        """The path of a layout entry (see LAYOUT)."""
        return self.root / LAYOUT[key]

    @classmethod
    def new(cls, parent: str | Path, name: str) -> "RunFolder":
        """A new, empty run folder under `parent`, named `name` or `name-2`, `name-3`... if taken."""
        parent = Path(parent)
        parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while True:  # mkdir claims a name atomically: concurrent callers each get their own
            candidate = parent / (name if n == 1 else f"{name}-{n}")
            try:
                make_dir(candidate)
                return cls(candidate)
            except FileExistsError:
                n += 1

    @classmethod
    def existing(cls, root: str | Path, need: tuple[str, ...] = ("labels", "recipe")) -> "RunFolder":
        """An existing run folder, checked to hold `need`; RunError says what is missing."""
        run = cls(root)
        if not run.root.is_dir():
            raise RunError(f"run folder not found: {root}")
        missing = [LAYOUT[k] for k in need if not run.path(k).exists()]
        if missing:
            raise RunError(f"{root} is not a complete run folder: missing {', '.join(missing)}")
        return run

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Within: this process holds the folder's exclusive lock (checkpoints/.lock); RunError at once when another
        process holds it. The system drops the lock when the process ends, even when it is killed."""
        from filelock import FileLock, Timeout

        path = self.path("checkpoints") / ".lock"
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunError(f"{self.root} is in use: another process is training in it (it holds {path}); wait for it "
                           "to finish, or stop it first") from None
        try:
            yield
        finally:
            lock.release()

    @property
    def weights_dir(self) -> Path:
        """The adapter/ folder for adapter runs, else model/."""
        return self.path("adapter") if self.path("adapter").exists() else self.path("model")

    @property
    def is_complete(self) -> bool:
        return self.path("metrics").exists()

    def write_text(self, key: str, text: str) -> None:
        atomic_write_text(self.path(key), text)

    def write_json(self, key: str, data: Any) -> None:
        atomic_write_json(self.path(key), data)

    def read_json(self, key: str) -> Any:
        """A JSON file of the run; RunError when it is damaged (not JSON)."""
        return read_json_file(self.path(key))

    def write_csv(self, key: str, header: list[str], rows: list[list[Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write_text(self.path(key), buffer.getvalue())

    def append_log(self, record: dict) -> None:
        """Append one JSON line to train_log.jsonl."""
        with writing(self.path("log")), open(self.path("log"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict]:
        path = self.path("log")
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_log(self, step: int) -> None:
        """Keep only log records up to `step` (a resumed run replays the steps after its checkpoint)."""
        kept = [r for r in self.read_log() if r.get("step", 0) <= step]
        atomic_write_text(self.path("log"), "".join(json.dumps(r) + "\n" for r in kept))

    def save_weights(self, net, tokenizer, is_adapter: bool) -> None:
        """Save the model (or adapter with its head) and tokenizer, each folder replaced atomically."""
        with writing(self.path("adapter" if is_adapter else "model")):
            with atomic_dir(self.path("adapter" if is_adapter else "model")) as tmp:
                net.save_pretrained(tmp, safe_serialization=True)
        with writing(self.path("tokenizer")), atomic_dir(self.path("tokenizer")) as tmp:
            tokenizer.save_pretrained(tmp)
