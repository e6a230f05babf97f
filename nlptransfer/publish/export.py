"""Exports of a finished run that run without nlptransfer's training side: a standalone transformers model with the
adapter merged (`export --merge`), and ONNX models for ONNX Runtime (`export --onnx`: float32, and int8 by dynamic
quantization of the weights). Each is checked against the run before anything is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..logs import get_logger
from ..data.schema import tasks_from_json
from ..errors import RunError
from ..model import HEAD
from ..inference import TextClassifier
from ..inference.backends import FILES, OnnxBackend, require_onnx_runtime
from ..recipe import read_saved
from ..fsio import atomic_dir, atomic_write_json
from ..run import RunFolder
from .repo_folder import RELOAD_TOLERANCE, reference

logger = get_logger(__name__)
#: the float32 ONNX export must give the PyTorch model's probabilities within this (it is the same arithmetic)
ONNX_TOLERANCE = 1e-4


def export_merged(run_path: str | Path, out: str | Path, trust_remote_code: bool = False) -> dict:
    """Write a standalone transformers model (adapter merged) to `out`, checked to predict as the run does."""
    from peft import PeftModel

    run = RunFolder.existing(run_path, need=("labels", "recipe", "tokenizer"))
    pooling = read_saved(run.path("recipe")).pooling
    if pooling != "native":
        raise RunError(f"{run.root} uses pooling: {pooling}, which plain transformers models cannot do (their head "
                       f"reads the first token), so a merged export would predict differently. Share it with "
                       f"`nlptransfer push` instead (it loads with nlptransfer), or train with pooling: native")
    tasks = tasks_from_json(run.read_json("labels"))
    if tasks:
        raise RunError(f"{run.root} is a multi-task run ({', '.join(tasks)}): a plain transformers model has one "
                       f"classification head, so a merged export would drop the other tasks. Share it with "
                       f"`nlptransfer push` (it loads with nlptransfer, every head included)")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already exists; choose a new folder for the export")
    clf = TextClassifier.load(run.root, merge=False, trust_remote_code=trust_remote_code)  # merge here, and check the merge against the adapter
    texts, _ = reference(run)
    expected = clf.predict_proba(texts)
    net = clf.model.net
    merged = net.merge_and_unload() if isinstance(net, PeftModel) else net
    if clf.label_map.kind == "multi_label":  # transformers.pipeline then applies a sigmoid per label
        merged.config.problem_type = "multi_label_classification"
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        clf.tokenizer.model_max_length = clf.max_length  # plain `truncation=True` then cuts where training did
        clf.tokenizer.save_pretrained(tmp)
        diff = _plain_transformers_diff(tmp, texts, expected)
        if not diff <= RELOAD_TOLERANCE:
            raise RunError(f"the merged model predicts up to {diff:.2e} away from the run (tolerance {RELOAD_TOLERANCE:g}); "
                           f"nothing was written")
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    what = "adapter merged" if isinstance(net, PeftModel) else "whole model, nothing to merge"
    logger.info(f"exported {run.root} ({what}) to {out}: {size / 1e6:.2f} MB; plain transformers reproduces the run's "
        f"probabilities on {len(texts)} texts (max difference {diff:.1e})")
    return {"path": out, "rows": len(texts), "max_abs_diff": diff, "bytes": size}


def _plain_transformers_diff(folder: Path, texts: list[str], expected: np.ndarray) -> float:
    """Largest probability difference of the folder loaded by plain transformers against `expected`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        logits = model(**batch).logits.double()
        multi = model.config.problem_type == "multi_label_classification"
        probs = (torch.sigmoid(logits) if multi else torch.softmax(logits, -1)).numpy()
    return float(np.abs(probs - expected).max())


def export_onnx(run_path: str | Path, trust_remote_code: bool = False) -> dict:
    """Write RUN/onnx/ (float32 and int8 models, check.json), each checked against the PyTorch model."""
    import torch

    require_onnx_runtime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    run = RunFolder.existing(run_path, need=("labels", "recipe", "tokenizer"))
    tasks = tasks_from_json(run.read_json("labels"))
    if tasks:
        raise RunError(f"{run.root} is a multi-task run ({', '.join(tasks)}): its ONNX export is not supported (the "
                       "ONNX path has one output); predict with the PyTorch backend")
    clf = TextClassifier.load(run.root, device="cpu", trust_remote_code=trust_remote_code)
    texts, _ = reference(run)
    expected = clf.predict_proba(texts)

    class Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):  # the features feed the server's drift monitor
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_features=True)
            return out["logits"][HEAD], out["features"]

    ids = torch.full((2, 8), clf.tokenizer.pad_token_id or 0, dtype=torch.long)
    ids[:, 0] = clf.tokenizer.cls_token_id or 0
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # trace with padding so the mask path is the general one
    with atomic_dir(run.root / "onnx") as tmp:
        import warnings

        with warnings.catch_warnings():  # the tracer's notes on shape-dependent Python branches: checked below
            warnings.simplefilter("ignore")
            torch.onnx.export(Logits(clf.model.eval()), (ids, mask), str(tmp / FILES["onnx"]), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["logits", "features"],
                              opset_version=17, dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                                              "attention_mask": {0: "batch", 1: "tokens"},
                                                              "logits": {0: "batch"}, "features": {0: "batch"}})
        quantize_dynamic(str(tmp / FILES["onnx"]), str(tmp / FILES["onnx-int8"]), weight_type=QuantType.QInt8)
        check = {"texts": len(texts), "tolerance_float32": ONNX_TOLERANCE}
        for backend in FILES:
            got = clf.with_backend(OnnxBackend(tmp / FILES[backend])).predict_proba(texts)
            diff = float(np.abs(got - expected).max())
            agree = float((got.argmax(1) == expected.argmax(1)).mean())
            check[backend] = {"max_abs_prob_diff": diff, "label_agreement": agree}
            if backend == "onnx" and not diff <= ONNX_TOLERANCE:
                raise RunError(f"the ONNX export predicts probabilities up to {diff:.2e} away from the run's "
                               f"(tolerance {ONNX_TOLERANCE:g}); nothing was written")
        atomic_write_json(tmp / "check.json", check)
    logger.info(f"wrote {run.root / 'onnx'}: float32 within {check['onnx']['max_abs_prob_diff']:.1e} of PyTorch; int8 "
        f"within {check['onnx-int8']['max_abs_prob_diff']:.3f}, same label on "
        f"{check['onnx-int8']['label_agreement']:.1%} of {len(texts)} texts")
    return check
