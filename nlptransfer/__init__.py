"""nlptransfer: transfer learning for text classification on a pretrained encoder, in one command."""
from .errors import DataError, HubError, ModelNotFound, NlpTransferError, RecipeError, RunError
from .version import __version__

__all__ = ["finetune", "adapt_encoder", "evaluate_run", "predict_file", "TextClassifier", "TrainedRun", "load_recipe",
           "push", "pull", "export_merged", "export_onnx", "PushResult", "__version__",
           "NlpTransferError", "DataError", "RecipeError", "ModelNotFound", "HubError", "RunError"]

def __getattr__(name: str):
    # heavy imports (torch, transformers) wait until a name is used, so `nlptransfer --help` is quick
    if name in ("finetune", "adapt_encoder", "evaluate_run", "predict_file"):
        from . import api

        return getattr(api, name)
    if name == "TrainedRun":
        from .pipeline import TrainedRun

        return TrainedRun
    if name == "TextClassifier":
        from .inference import TextClassifier

        return TextClassifier
    if name in ("push", "PushResult", "export_merged", "export_onnx"):
        from . import publish

        return getattr(publish, name)
    if name == "pull":
        from .hub import pull

        return pull
    if name == "load_recipe":
        from .recipe import load

        return load
    raise AttributeError(f"module 'nlptransfer' has no attribute '{name}'")
