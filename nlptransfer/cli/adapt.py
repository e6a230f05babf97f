"""`nlptransfer adapt`: masked-LM pretraining of a recipe's encoder on a new domain's texts, alone."""
from __future__ import annotations

from .flags import data_changes, resume_flag, trust_flag


def add_parser(sub) -> None:
    """The `adapt` verb and its flags."""
    p = sub.add_parser("adapt", help="masked-LM pretraining of a recipe's encoder on a new domain's unlabelled "
                       "texts, alone: an encoder folder any recipe can start from")
    p.add_argument("recipe", help="shipped recipe name or a YAML path (its model, data.max_length, adapt.* settings)")
    p.add_argument("--target", metavar="FILE", help="the target domain's unlabelled texts; overrides adapt.target")
    p.add_argument("--data", help="the source training file (used when adapt.include_source=true)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN",
                   help="continue an interrupted pretraining (its folder) from its last checkpoint")
    p.add_argument("--output", metavar="DIR", help="parent folder of the run folder; overrides output.dir")
    p.add_argument("--name", help="run folder name (default: <recipe name>-encoder); overrides output.name")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. adapt.epochs=3")
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Pretrain the encoder and say where it is."""
    from ..api import adapt_encoder

    folder = adapt_encoder(args.recipe, args.target, overrides=data_changes(args) | (
        {"data.train": args.data} if args.data else {}), resume=resume_flag(args))
    print(f"adapted encoder: {folder / 'encoder'}\nuse it in any recipe: model={folder / 'encoder'}")
    return 0
