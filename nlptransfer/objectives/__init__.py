"""Loss terms: a registry (`register_objective`) and one file per built-in objective. The training loop builds
the recipe's weighted terms (`Losses`) once per run and sums them."""
from . import cross_entropy, mlm, mmd, pairs  # noqa: F401  the built-in objectives register themselves
from .registry import Losses, Objective, ObjectiveContext, objective_names, register_objective

__all__ = ["register_objective", "objective_names", "Losses", "Objective", "ObjectiveContext"]
