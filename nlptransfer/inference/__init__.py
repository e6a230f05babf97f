"""The prediction side: load a run or repo folder and predict (classifier.py), with the torch or ONNX Runtime
backend (backends.py), on length-sorted batches (loader.py). It imports nothing of training, reports or publishing,
so a server can import it alone."""
from .classifier import Prediction, TextClassifier

__all__ = ["TextClassifier", "Prediction"]
