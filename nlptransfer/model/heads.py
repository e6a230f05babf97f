"""A model's classification heads by task: the single-task head's name, a multi-task model's other tasks' heads
(copies of the architecture's own head) and its learned task weights."""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..architectures import HEAD_MODULES, architecture, core_model

#: the name of a single-task model's classification head in its outputs: outputs["logits"][HEAD]; a multi-task
#: model's heads are named by their tasks (label columns)
HEAD = "label"
#: where a multi-task model keeps its other tasks' heads and learned task weights: modules of the transformers model,
#: beside its own classifier (which serves the first task), so they are saved, trained and frozen with it and go in
#: an adapter's modules_to_save
TASK_MODULES = ("task_heads", "task_weights")
#: the config attribute that lists a multi-task model's tasks and each one's labels (saved in config.json), as
#: [task, labels] pairs: transformers writes config.json with its keys sorted, so a mapping would lose the tasks' order
TASKS_CONFIG = "nlptransfer_tasks"


def task_labels(net: nn.Module) -> dict[str, list[str]] | None:
    """A multi-task model's tasks in order, each with its label names (None for a single-task model). Runs saved
    before the pairs hold a mapping, in the order config.json gives it."""
    saved = getattr(core_model(net).config, TASKS_CONFIG, None) or None
    return dict(saved) if isinstance(saved, list) else saved


class _Borrowed:
    """The model as the architecture's head function sees it for another task: that task's head modules in place of
    the model's own, every other module (dropout, BERT's pooler) the model's."""

    def __init__(self, core: nn.Module, head: nn.Module):
        self._core, self._head = core, head

    def __getattr__(self, name: str):
        modules = self._head._modules
        own = name + TaskHead.SUFFIX
        return modules[own] if own in modules else getattr(self._core, name)


class TaskHead(nn.Module):
    """Another task's classification head: copies of the model's own head modules (so it reads the encoder the way the
    model's head does), newly initialised, with an output layer for this task's labels. Its modules' names end in
    SUFFIX (classifier_of_task): PEFT picks modules_to_save by how a name ends, and would wrap a second "classifier"."""

    SUFFIX = "_of_task"

    def __init__(self, core: nn.Module, n_labels: int):
        super().__init__()
        for name, module in core.named_children():
            if name in HEAD_MODULES:
                self.add_module(name + self.SUFFIX, copy.deepcopy(module))
        outputs = [n for n, m in self.named_modules()
                   if isinstance(m, nn.Linear) and m.out_features == core.config.num_labels]
        if not outputs:
            raise NotImplementedError(f"cannot find the output layer of model type '{core.config.model_type}''s "
                                      "classification head to give another task its own")
        parent, _, leaf = outputs[-1].rpartition(".")
        owner = self.get_submodule(parent) if parent else self
        old = getattr(owner, leaf)
        setattr(owner, leaf, nn.Linear(old.in_features, n_labels, bias=old.bias is not None))
        std = getattr(core.config, "initializer_range", 0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


class TaskHeads(nn.Module):
    """The heads of a multi-task model's tasks after the first: their logits from encoder output [batch, tokens,
    hidden], each through the architecture's own head path."""

    def __init__(self, core: nn.Module, sizes: list[int]):
        super().__init__()
        self.heads = nn.ModuleList(TaskHead(core, n) for n in sizes)

    def forward(self, core: nn.Module, seq: torch.Tensor) -> list[torch.Tensor]:
        head = architecture(core.config.model_type).head
        return [head(_Borrowed(core, h), seq) for h in self.heads]


class TaskWeights(nn.Module):
    """Learned task weights (training.task_weighting: uncertainty): one s per task; a task's loss counts exp(-s)
    times, plus s (Kendall, Gal & Cipolla, 2018)."""

    def __init__(self, n: int):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n))

    def forward(self, _=None) -> torch.Tensor:  # an argument: PEFT's modules_to_save wrapper passes one on
        return self.log_vars


def add_task_heads(net: nn.Module, tasks: dict, uncertainty: bool = False, sizes: list[int] | None = None) -> None:
    """Make `net` (a transformers sequence classifier whose own head is for the first task) multi-task: a head for
    every other task of `tasks` (task -> LabelMap or label names, in order; `sizes`: those heads' widths, as their
    task kinds give them, else one output per label), the tasks listed in its config, and with `uncertainty`, learned
    task weights. Call it before any PEFT wrapping."""
    from ..errors import RecipeError

    core = core_model(net)
    if architecture(core.config.model_type) is None:
        raise RecipeError(f"multi-task heads read the encoder the way the model's own head does, which nlptransfer "
                          f"knows for {', '.join(sorted(_known_types()))}, not '{core.config.model_type}'")
    names = {task: [str(n) for n in getattr(labels, "names", labels)] for task, labels in tasks.items()}
    setattr(core.config, TASKS_CONFIG, [[task, labels] for task, labels in names.items()])
    try:
        core.task_heads = TaskHeads(core, sizes if sizes is not None else [len(v) for v in list(names.values())[1:]])
    except NotImplementedError as e:
        raise RecipeError(str(e)) from None
    if uncertainty:
        core.task_weights = TaskWeights(len(names))


def _known_types() -> list[str]:
    from ..architectures import ARCHITECTURES

    return list(ARCHITECTURES)
