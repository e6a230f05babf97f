"""`nlptransfer predict`: labels for a file of texts, from a finished run or a pushed repo."""
from __future__ import annotations

import argparse
from pathlib import Path

from .flags import data_changes, positive_int, trust_flag


def add_parser(sub) -> None:
    """The `predict` verb and its flags."""
    p = sub.add_parser("predict", help="predict labels for a file with a finished run")
    p.add_argument("run", help="run folder, or a pushed repo NAMESPACE/NAME")
    p.add_argument("--input", required=True, help="file of texts (CSV, TSV, JSONL, Parquet)")
    p.add_argument("--output", required=True, help="where to write the predictions (.csv, .tsv, .jsonl or .parquet)")
    p.add_argument("--text-column", action="append", help="text column (repeat to join several); default: inferred")
    p.add_argument("--batch-size", type=positive_int, default=64, help="texts per batch (default %(default)s)")
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="torch",
                   help="onnx / onnx-int8: ONNX Runtime on the run's onnx/ export (`nlptransfer export RUN --onnx`)")
    p.add_argument("--revision", help="with a hub repo: branch or commit (default main)")
    p.add_argument("--hub", metavar="PATH", help="with a hub repo: a folder hub instead of the Hugging Face Hub")
    p.add_argument("--keep-formulas", action="store_true",
                   help="CSV/TSV output: write text cells that begin with = + - @ (or a tab or carriage return) as they "
                        "are; by default they get a leading ' so a spreadsheet shows them instead of running them")
    p.add_argument("overrides", nargs="*", metavar="data.key=value",
                   help="how to read the input, e.g. data.delimiter=';' (default: as the run read its data)")
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Write the predictions file."""
    from ..api import predict_file

    if args.hub or args.revision or not Path(args.run).exists():  # maybe a pushed repo NAMESPACE/NAME
        from ..hub import locate

        args.run = str(locate(args.run, hub=args.hub, revision=args.revision))
    n = predict_file(args.run, args.input, args.output, text_columns=args.text_column, batch_size=args.batch_size,
                     backend=args.backend, trust_remote_code=args.trust_remote_code,
                     changes=data_changes(argparse.Namespace(overrides=args.overrides)),
                     keep_formulas=args.keep_formulas)
    print(f"wrote {n} predictions to {args.output}")
    return 0
