"""Prediction backends: each gives the logits of an evaluation loader's rows, in file order. `torch` runs the
TransferModel; `onnx` and `onnx-int8` run the run's ONNX export (`nlptransfer export RUN --onnx`) in ONNX Runtime,
which needs `pip install "nlptransfer[onnx]"` (onnx, onnxruntime)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..batching import predict_logits
from ..errors import RunError
from ..model import HEAD

#: ONNX backends and the file of each in a run's onnx/ folder
FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
BACKENDS = ("torch", *FILES)


class TorchBackend:
    """The PyTorch model on its device."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()
        self.device = next(model.parameters()).device

    def logits(self, loader) -> np.ndarray:
        logits, _ = predict_logits(_OnDevice(self.model, self.device), loader)
        return logits

    def outputs(self, loader) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and the pooled features the head reads (the same forward pass)."""
        return predict_outputs(_OnDevice(self.model, self.device), loader)

    @torch.inference_mode()
    def batch_outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Logits and pooled features of one padded batch (no loader: the server's batches are made already); a
        multi-task model's logits are every task's, side by side in task order."""
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device),
                         return_features=True)
        logits = out["logits"]
        if HEAD not in logits:  # a multi-task model: every task's, side by side in task order
            return (np.hstack([v.float().cpu().numpy() for v in logits.values()]), out["features"].float().cpu().numpy())
        return logits[HEAD].float().cpu().numpy(), out["features"].float().cpu().numpy()


class _OnDevice(torch.nn.Module):
    """Moves each batch to the model's device before the forward pass."""

    def __init__(self, model, device):
        super().__init__()
        self.model, self.device = model, device

    def forward(self, **batch):
        return self.model(**{k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})


def require_onnx_runtime():
    """The onnxruntime module; RunError saying how to install it when it is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise RunError('the ONNX path needs onnx and onnxruntime: pip install "nlptransfer[onnx]"') from None
    return onnxruntime


class OnnxBackend:
    """An ONNX Runtime session over an exported model."""

    def __init__(self, path: Path):
        ort = require_onnx_runtime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        #: newer exports also give the pooled features (the server's drift monitor reads them)
        self.gives_features = "features" in {o.name for o in self.session.get_outputs()}

    @classmethod
    def of_folder(cls, root: Path, backend: str) -> "OnnxBackend":
        """The `backend` (onnx | onnx-int8) export in a run folder's onnx/."""
        path = Path(root) / "onnx" / FILES[backend]
        if not path.is_file():
            raise RunError(f"{path} not found: run `nlptransfer export {root} --onnx` first")
        return cls(path)

    def outputs(self, loader) -> tuple[np.ndarray, None]:
        """Logits; an ONNX export gives no pooled features."""
        return self.logits(loader), None

    def batch_outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits of one padded batch, and its pooled features when the export gives them."""
        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        if self.gives_features:
            logits, features = self.session.run(["logits", "features"], feed)
            return logits, features
        return self.session.run(["logits"], feed)[0], None

    def logits(self, loader) -> np.ndarray:
        out, order = [], []
        for batch in loader:
            order.append(batch["index"].numpy())
            out.append(self.session.run(["logits"], {"input_ids": batch["input_ids"].numpy(),
                                                     "attention_mask": batch["attention_mask"].numpy()})[0])
        logits, index = np.concatenate(out), np.concatenate(order)
        return logits[np.argsort(index)]


@torch.no_grad()
def predict_outputs(model, loader) -> tuple[np.ndarray, np.ndarray]:
    """Logits and pooled features (what the head reads) for every row of the loader, in file order (a multi-task
    model's first task's logits: the drift profile and the server's monitoring follow that task)."""
    model.eval()
    logits, features, index = [], [], []
    for batch in loader:
        index.append(batch.pop("index"))
        batch.pop("labels", None)
        out = model(**batch, return_features=True)
        logits.append(next(iter(out["logits"].values())).float().cpu())
        features.append(out["features"].float().cpu())
    if not logits:
        return np.zeros((0, 0)), np.zeros((0, 0))
    order = torch.argsort(torch.cat(index))
    return torch.cat(logits)[order].numpy(), torch.cat(features)[order].numpy()
