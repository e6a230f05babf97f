"""Multi-kernel maximum mean discrepancy between the pooled features of a source batch and a target batch (the
domain-adaptation term of `Error(f(X_s), Y_s) + lambda * Distance(f(X_s), f(X_t))`, Long et al. 2015's MK-MMD).
The target batch comes from the run's second batch stream `target` (recipe `adapt.target`)."""
from __future__ import annotations

import torch

from .registry import TARGET_STREAM, Objective, ObjectiveContext, register_objective

#: bandwidth multipliers around the median heuristic (the median pairwise squared distance of the pooled batch)
BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


def mk_mmd(source: torch.Tensor, target: torch.Tensor, multipliers=BANDWIDTHS) -> torch.Tensor:
    """The biased MMD² estimate between rows of `source` [n, d] and `target` [m, d] under a sum of Gaussian kernels
    exp(-|x - y|² / (2 s² h)) with h the median pairwise squared distance (detached: the bandwidth follows the data
    but is not a way to shrink the loss) and s in `multipliers`. Zero for identical batches; never negative."""
    source, target = source.float(), target.float()
    joint = torch.cat([source, target])
    squared = torch.cdist(joint, joint).pow(2)
    n = len(source)
    off_diagonal = squared[~torch.eye(len(joint), dtype=torch.bool, device=joint.device)]
    median = off_diagonal.detach().median().clamp(min=1e-6)
    kernel = sum(torch.exp(-squared / (2 * s * s * median)) for s in multipliers) / len(multipliers)
    ss, tt, st = kernel[:n, :n].mean(), kernel[n:, n:].mean(), kernel[:n, n:].mean()
    return (ss + tt - 2 * st).clamp(min=0)


def _mmd(context: ObjectiveContext) -> Objective:
    def mmd(outputs: dict, batch: dict) -> dict:
        streams = outputs.get("streams") or {}
        if TARGET_STREAM not in streams:
            raise ValueError("the mmd objective needs the target texts: set adapt.target (and adapt.method: mmd)")
        return {"mmd": mk_mmd(outputs["features"], streams[TARGET_STREAM]["features"])}

    return mmd


register_objective("mmd", _mmd, needs_features=True)
