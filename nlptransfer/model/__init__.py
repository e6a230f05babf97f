"""The model the loop trains: TransferModel (an encoder, its pooling and a head per task), the masked-LM heads, and
the first-token speed-up."""
from .heads import HEAD, TASK_MODULES, add_task_heads, task_labels
from .mlm import MaskedLM, MlmHead
from .transfer import TransferModel, mean_pool

__all__ = ["HEAD", "TASK_MODULES", "add_task_heads", "task_labels", "MaskedLM", "MlmHead", "TransferModel",
           "mean_pool"]
