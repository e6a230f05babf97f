"""`nlptransfer recipes`: list, show, validate or copy the shipped recipes."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import RecipeError


def add_parser(sub) -> None:
    """The `recipes` verb and its actions."""
    p = sub.add_parser("recipes", help="list, show, validate or copy shipped recipes")
    rsub = p.add_subparsers(dest="action", required=True)
    rsub.add_parser("list", help="the shipped recipes' names")
    rsub.add_parser("show", help="print a recipe's YAML").add_argument("name", help="shipped recipe name or a YAML path")
    v = rsub.add_parser("validate", help="check a recipe with its overrides: every problem at once, or 'valid'")
    v.add_argument("name", help="shipped recipe name or a YAML path")
    v.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. training.epochs=3")
    c = rsub.add_parser("cp", help="copy a shipped recipe to a file, to edit it")
    c.add_argument("name", help="shipped recipe name or a YAML path")
    c.add_argument("path", help="where to write it")
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Do the action asked for."""
    from .. import recipe as recipes

    if args.action == "list":
        for name in recipes.shipped_names():
            r = recipes.load(name)
            print(f"{name:28} {r.strategy:7} {r.model:18} {r.description}")
    elif args.action == "show":
        print(recipes.find(args.name).read_text(encoding="utf-8"), end="")
    elif args.action == "validate":
        r = recipes.load(args.name, args.overrides)
        print(f"{args.name}: valid ({r.task}, {r.strategy}, {r.model})")
    elif args.action == "cp":
        source, target = recipes.find(args.name), Path(args.path)
        if target.is_dir():
            target = target / source.name
        if target.exists():
            raise RecipeError(f"{target} already exists; choose another path")
        shutil.copyfile(source, target)
        print(f"copied {source.name} to {target}")
    return 0
