"""`nlptransfer check`: the data as a run would read it, without training."""
from __future__ import annotations

import json

from ..errors import DataError
from .flags import data_changes, file_flags, trust_flag


def add_parser(sub) -> None:
    """The `check` verb and its flags."""
    p = sub.add_parser("check", help="check the data as a run would read it, without training (like spaCy's "
                       "debug data): exit 0 when a run could start, 2 when not")
    p.add_argument("recipe", help="shipped recipe name or a YAML path (its data settings and model's tokenizer)")
    p.add_argument("--data", help="training file (CSV, TSV, JSONL, Parquet), a Dataset.save_to_disk folder or "
                   "hf://datasets/NAME[:config]; overrides data.train")
    file_flags(p)
    p.add_argument("--json", action="store_true", help="print the data report (the schema of data_report.json)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. data.delimiter=';'")
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Print the data report; DataError when a run could not start."""
    from ..api import resolve_data
    from ..logs import quiet
    from ..pipeline import check_data

    recipe = resolve_data(args.recipe, args.data, data_changes(args))
    with quiet():
        report = check_data(recipe)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        for line in report.describe():
            print(line)
    if report.problems:
        raise DataError(report.problems)
    if not args.json:
        print("the data is ready: a run can start")
    return 0
