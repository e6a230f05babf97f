"""The data stage: read CSV/TSV/JSONL/Parquet, choose columns, check, split; see load_splits."""
from .read import read_table
from .schema import DataReport, DataSpec, LabelledTexts, LabelMap, Splits
from .stage import load_multitask_splits, load_splits
from .unlabelled import read_texts

__all__ = ["DataSpec", "DataReport", "LabelMap", "LabelledTexts", "Splits", "load_multitask_splits", "load_splits",
           "read_texts", "read_table"]
