"""nlptransfer: transfer learning for text classification on a pretrained encoder, in one command."""
from .errors import DataError, HubError, ModelNotFound, NlpTransferError, RecipeError, RunError

__version__ = "0.1.0"

__all__ = ["finetune", "evaluate_run", "predict_file", "TextClassifier", "TrainedRun", "load_recipe",
           "push", "pull", "export_merged", "export_onnx", "PushResult",
           "NlpTransferError", "DataError", "RecipeError", "ModelNotFound", "HubError", "RunError"]


def __getattr__(name: str):
    # Heavy imports (torch, transformers) wait until a function is used, so `nlptransfer --help` is quick.
    if name in ("finetune", "evaluate_run", "predict_file", "TrainedRun"):
        from . import api

        return getattr(api, name)
    if name == "TextClassifier":
        from .classifier import TextClassifier

        return TextClassifier
    if name in ("push", "pull", "export_merged", "PushResult"):
        from . import hub

        return getattr(hub, name)
    if name == "export_onnx":
        from .onnx_runtime import export_onnx

        return export_onnx
    if name == "load_recipe":
        from .recipe import load

        return load
    raise AttributeError(f"module 'nlptransfer' has no attribute '{name}'")
