"""Publishing a finished run: push it to a hub with a model card (push.py, repo_folder.py, card.py), or export it
as a standalone transformers model or ONNX (export.py)."""
from .export import export_merged, export_onnx
from .push import PushResult, push

__all__ = ["push", "PushResult", "export_merged", "export_onnx"]
