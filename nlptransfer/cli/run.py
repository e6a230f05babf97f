"""`nlptransfer run`: fine-tune a recipe on a data file."""
from __future__ import annotations

from .flags import data_changes, file_flags, resume_flag, trust_flag


def add_parser(sub) -> None:
    """The `run` verb and its flags."""
    p = sub.add_parser("run", help="fine-tune a recipe on a data file")
    p.add_argument("recipe", help="shipped recipe name (see `nlptransfer recipes list`) or a YAML path")
    p.add_argument("--data", help="training file (CSV, TSV, JSONL, Parquet), a Dataset.save_to_disk folder or "
                   "hf://datasets/NAME[:config]; overrides data.train")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN",
                   help="continue an interrupted run (its folder, or the recipe's output name) from its last checkpoint")
    p.add_argument("--report", action="store_true",
                   help="after training, write report/: tf-idf baseline, transfer indicators, verdict (extra fits)")
    file_flags(p)
    p.add_argument("--output", metavar="DIR", help="parent folder of the run folder; overrides output.dir")
    p.add_argument("--name", help="run folder name; overrides output.name")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. training.epochs=2")
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Train the recipe into a new run folder (or finish an interrupted one)."""
    from ..api import finetune

    changes = data_changes(args) | ({"report.enabled": True} if args.report else {})
    finetune(args.recipe, args.data, overrides=changes, resume=resume_flag(args))
    return 0
