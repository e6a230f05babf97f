"""The command line: parses arguments, calls the API, prints results. One module per verb, each adding its own
subparser and handler; errors print one message, exit 2."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import NlpTransferError
from . import adapt, cache, check, compare, evaluate, export, predict, push, recipes, report, run, serve
from .console import configure_logging

#: the verbs, in the order `nlptransfer --help` lists them
VERBS = (run, adapt, check, report, compare, predict, serve, push, export, evaluate, cache, recipes)


def build_parser() -> argparse.ArgumentParser:
    """The `nlptransfer` parser, a subparser per verb."""
    parser = argparse.ArgumentParser(prog="nlptransfer", description="Transfer learning for text classification.")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nlptransfer` command."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come before or after options: argparse stops collecting positionals at an option
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides or []) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if "TOKENIZERS_PARALLELISM" not in os.environ:  # off for what else runs here; on again for a bulk pass (tokens.py)
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        os.environ["NLPTRANSFER_TOKENIZER_THREADS"] = "bulk"  # tokens.BULK_THREADS
    configure_logging()
    import warnings

    # peft 0.21 calls an attribute transformers 5 renamed; the warning is theirs and says nothing to a user
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        code = args.func(args)
    except NlpTransferError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _leave(code)
    return code


def _leave(code: int) -> None:
    """End a process of a multi-process run (torchrun, accelerate launch) once its work is done and written: the exit
    handlers run (the process group is destroyed), then the process ends without the interpreter's teardown, where
    gloo's threads can still abort it (SIGABRT, "terminate called without an active exception") and make torchrun
    report a finished run as failed."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
