"""The optional ONNX Runtime path for prediction: export a run's model to ONNX (float32, and int8 by dynamic
quantization of the weights), check both against the PyTorch model, and predict with them.

    nlptransfer export RUN --onnx                     # writes RUN/onnx/{model.onnx, model.int8.onnx, check.json}
    nlptransfer predict RUN --input new.csv --output out.csv --backend onnx-int8

Needs `pip install "nlptransfer[onnx]"` (onnx, onnxruntime).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import RunError
from .run import RunFolder, atomic_dir, atomic_write_json

FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
#: the float32 export must give the PyTorch model's probabilities within this (it is the same arithmetic)
TOLERANCE = 1e-4


def _require_runtime():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise RunError('the ONNX path needs onnx and onnxruntime: pip install "nlptransfer[onnx]"') from None
    return onnxruntime


def export_onnx(run_path: str | Path, log=print) -> dict:
    """Write RUN/onnx/ (float32 and int8 models, check.json), each checked against the PyTorch model."""
    import torch

    from .classifier import TextClassifier
    from .repo_folder import reference

    _require_runtime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    run = RunFolder.existing(run_path, need=("labels", "recipe", "tokenizer"))
    clf = TextClassifier.load(run.root, device="cpu")
    texts, _ = reference(run)
    expected = clf.predict_proba(texts)

    class Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask)

    ids = torch.full((2, 8), clf.tokenizer.pad_token_id or 0, dtype=torch.long)
    ids[:, 0] = clf.tokenizer.cls_token_id or 0
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # trace with padding so the mask path is the general one
    with atomic_dir(run.root / "onnx") as tmp:
        import warnings

        with warnings.catch_warnings():  # the tracer's notes on shape-dependent Python branches: checked below
            warnings.simplefilter("ignore")
            torch.onnx.export(Logits(clf.model.eval()), (ids, mask), str(tmp / FILES["onnx"]), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["logits"], opset_version=17,
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"}, "logits": {0: "batch"}})
        quantize_dynamic(str(tmp / FILES["onnx"]), str(tmp / FILES["onnx-int8"]), weight_type=QuantType.QInt8)
        check = {"texts": len(texts), "tolerance_float32": TOLERANCE}
        for backend in FILES:
            clf.onnx = OnnxModel(tmp / FILES[backend])
            got = clf.predict_proba(texts)
            diff = float(np.abs(got - expected).max())
            agree = float((got.argmax(1) == expected.argmax(1)).mean())
            check[backend] = {"max_abs_prob_diff": diff, "label_agreement": agree}
            if backend == "onnx" and not diff <= TOLERANCE:
                raise RunError(f"the ONNX export predicts probabilities up to {diff:.2e} away from the run's "
                               f"(tolerance {TOLERANCE:g}); nothing was written")
        atomic_write_json(tmp / "check.json", check)
    log(f"wrote {run.root / 'onnx'}: float32 within {check['onnx']['max_abs_prob_diff']:.1e} of PyTorch; int8 "
        f"within {check['onnx-int8']['max_abs_prob_diff']:.3f}, same label on "
        f"{check['onnx-int8']['label_agreement']:.1%} of {len(texts)} texts")
    return check


class OnnxModel:
    """An ONNX Runtime session over an exported model: logits of token batches."""

    def __init__(self, path: Path):
        ort = _require_runtime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @classmethod
    def of_run(cls, run_root: Path, backend: str) -> "OnnxModel":
        path = Path(run_root) / "onnx" / FILES[backend]
        if not path.is_file():
            raise RunError(f"{path} not found: run `nlptransfer export {run_root} --onnx` first")
        return cls(path)

    def logits(self, loader) -> np.ndarray:
        """Logits in file order for every row of an eval loader."""
        out, order = [], []
        for batch in loader:
            order.append(batch["index"].numpy())
            out.append(self.session.run(["logits"], {"input_ids": batch["input_ids"].numpy(),
                                                     "attention_mask": batch["attention_mask"].numpy()})[0])
        logits, index = np.concatenate(out), np.concatenate(order)
        return logits[np.argsort(index)]
