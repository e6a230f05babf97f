"""`nlptransfer compare`: several strategies fine-tuned on the same splits, side by side."""
from __future__ import annotations

import argparse


def _weights(text: str) -> list[float]:
    """A comma-separated list of weights, each 0 or more (argparse type)."""
    try:
        weights = [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.03,0.1,0.3, got '{text}'") from None
    if not weights or any(w < 0 for w in weights):
        raise argparse.ArgumentTypeError(f"expected weights of 0 or more, got '{text}'")
    return weights


def add_parser(sub) -> None:
    """The `compare` verb and its flags."""
    p = sub.add_parser("compare", help="fine-tune several strategies on the same splits and compare them")
    p.add_argument("--data", help="training file; overrides data.train")
    p.add_argument("--strategies", default="head,top_k,lora,full", help="comma-separated (default: %(default)s)")
    p.add_argument("--adapt-weights", metavar="W,W,...", type=_weights, help="also compare these adapt.weight values (a recipe that "
                   "adapts); the one kept is chosen by source validation, never by target labels")
    p.add_argument("overrides", nargs="*", metavar="[recipe] key=value",
                   help="a recipe name or YAML path first (default sentiment-minilm), then overrides")
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Train each strategy and write the comparison."""
    from ..report import compare_strategies

    recipe, overrides = "sentiment-minilm", list(args.overrides or [])
    if overrides and "=" not in overrides[0]:
        recipe, overrides = overrides[0], overrides[1:]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    compare_strategies(recipe, args.data, strategies, overrides, adapt_weights=args.adapt_weights)
    return 0
