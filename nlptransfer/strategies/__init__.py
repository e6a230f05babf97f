"""Transfer strategies: what trains and what may be cached; they never fork the loop. Each is one registering call
(`register_strategy`); the built-in ones are head, top_k, full (frozen.py), zero_shot,
contrastive (their files) and every PEFT method (adapters.py)."""
from . import adapters, contrastive, frozen, zero_shot  # noqa: F401  the built-in strategies register themselves
from .parameters import HEAD_MODULES, encoder_layers, freeze_all_but, head_modules, plain_groups, prepared
from .registry import (Prepared, Strategy, find_strategy, get_strategy, learning_rate,
                       learning_rate_warnings, prepare, register_strategy,
                       register_strategy_family, strategy_names, unknown_strategy)

__all__ = ["Prepared", "Strategy", "register_strategy", "register_strategy_family", "get_strategy", "find_strategy",
           "strategy_names", "unknown_strategy", "learning_rate", "learning_rate_warnings", "prepare", "prepared",
           "freeze_all_but", "head_modules", "encoder_layers", "plain_groups", "HEAD_MODULES"]
