"""What several verbs share: argument types, the file and trust flags, and the recipe changes flags make."""
from __future__ import annotations

import argparse


def data_changes(args) -> dict:
    """The key=value overrides, plus what the file and folder flags say (paths kept as given, not read as YAML)."""
    from ..recipe import overrides

    changes = overrides(list(args.overrides or []))
    for flag, key in (("validation", "data.validation"), ("test", "data.test"), ("output", "output.dir"),
                      ("name", "output.name")):
        if getattr(args, flag, None):
            changes[key] = getattr(args, flag)
    if getattr(args, "trust_remote_code", False):
        changes["trust_remote_code"] = True
    return changes


def resume_flag(args) -> str | bool:
    """--resume as the API takes it: the run folder named, or True/False."""
    return args.resume if args.resume not in (None, True) else bool(args.resume)


def positive_int(text: str) -> int:
    """A whole number of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def file_flags(parser: argparse.ArgumentParser) -> None:
    """--validation and --test: the recipe's data.validation and data.test."""
    parser.add_argument("--validation", metavar="FILE", help="validation file; overrides data.validation")
    parser.add_argument("--test", metavar="FILE", help="test file; overrides data.test")


def trust_flag(parser: argparse.ArgumentParser) -> None:
    """--trust-remote-code."""
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let a model that ships its own code run it (a loaded folder never grants this itself)")

