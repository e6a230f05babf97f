"""`nlptransfer recipes`: list, show, validate or copy the shipped recipes."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import RecipeError


def add_parser(sub) -> None:
    """The `recipes` verb and its actions."""
    p = sub.add_parser("recipes", help="list, show, validate or copy shipped recipes")
    rsub = p.add_subparsers(dest="action", required=True)
    rsub.add_parser("list")
    rsub.add_parser("show").add_argument("name")
    v = rsub.add_parser("validate")
    v.add_argument("name")
    v.add_argument("overrides", nargs="*", metavar="key=value")
    c = rsub.add_parser("cp")
    c.add_argument("name")
    c.add_argument("path")
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
