"""`nlptransfer evaluate`: the metrics of a finished run on a labelled file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .flags import data_changes, trust_flag


def add_parser(sub) -> None:
    """The `evaluate` verb and its flags."""
    p = sub.add_parser("evaluate", help="metrics of a finished run on a labelled file")
    p.add_argument("run", help="run folder")
    p.add_argument("--data", required=True, help="labelled file")
    p.add_argument("--text-column", action="append",
                   help="text column (repeat to join several); default: the run's, else inferred")
    p.add_argument("--label-column", help="label column; default: the run's, else inferred")
    p.add_argument("--slice-by", action="append", metavar="COLUMN",
                   help="also give accuracy, macro-F1 and recall per value of this column (repeatable)")
    p.add_argument("--output", help="also write the metrics as JSON here")
    p.add_argument("overrides", nargs="*", metavar="data.key=value",
                   help="how to read the file, e.g. data.delimiter=';' (default: as the run read its data)")
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Print the metrics (and write them as JSON with --output)."""
    from ..api import evaluate_run

    result = evaluate_run(args.run, args.data, text_columns=args.text_column, label_column=args.label_column,
                          trust_remote_code=args.trust_remote_code,
                          changes=data_changes(argparse.Namespace(overrides=args.overrides)),
                          slice_by=args.slice_by)
    result.pop("data_report")
    if args.output:
        from ..fsio import atomic_write_json

        atomic_write_json(Path(args.output), result)
    for task, scores in result.get("tasks", {None: result}).items():
        if task is not None:
            print(f"{task}:")
        if "micro_f1" in scores:  # multi-label: each label at or above its threshold
            print(f"micro-F1 {scores['micro_f1']:.4f}  macro-F1 {scores['macro_f1']:.4f}  sample-F1 "
                  f"{scores['samples_f1']:.4f}  subset accuracy {scores['subset_accuracy']:.4f}  Hamming loss "
                  f"{scores['hamming_loss']:.4f}  rows {scores['n']}")
        else:
            print(f"accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}  rows {scores['n']}")
        for name, c in scores["per_class"].items():
            at = f"  threshold {c['threshold']:g}" if "threshold" in c else ""
            print(f"  {name:>16}  P {c['precision']:.3f}  R {c['recall']:.3f}  F1 {c['f1']:.3f}  n {c['support']}{at}")
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if result.get("tasks_missing"):
        print(f"not scored (no such column in {args.data}): {', '.join(result['tasks_missing'])}")
    return 0
