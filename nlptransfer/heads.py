"""TransferModel, what the loop trains: an encoder with its classification head, pooling, and the frozen parts
whose output can be cached. Its forward returns what every objective needs: logits per head, and on request the
pooled features the head reads."""
from __future__ import annotations

import copy
import threading
from contextlib import contextmanager

import torch
from torch import nn

from .architectures import HEAD_MODULES, architecture, core_model, final_linear, head_forward, layer_stack

#: the name of a single-task model's classification head in its outputs: outputs["logits"][HEAD]; a multi-task
#: model's heads are named by their tasks (label columns)
HEAD = "label"
#: where a multi-task model keeps its other tasks' heads and learned task weights: modules of the transformers model,
#: beside its own classifier (which serves the first task), so they are saved, trained and frozen with it and go in
#: an adapter's modules_to_save
TASK_MODULES = ("task_heads", "task_weights")
#: the config attribute that lists a multi-task model's tasks and each one's labels (saved in config.json)
TASKS_CONFIG = "nlptransfer_tasks"


def task_labels(net: nn.Module) -> dict[str, list[str]] | None:
    """A multi-task model's tasks in order, each with its label names (None for a single-task model)."""
    return getattr(core_model(net).config, TASKS_CONFIG, None) or None


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


def add_task_heads(net: nn.Module, tasks: dict, uncertainty: bool = False) -> None:
    """Make `net` (a transformers sequence classifier whose own head is for the first task) multi-task: a head for
    every other task of `tasks` (task -> LabelMap or label names, in order), the tasks listed in its config, and with
    `uncertainty`, learned task weights. Call it before any PEFT wrapping."""
    from .errors import RecipeError

    core = core_model(net)
    if architecture(core.config.model_type) is None:
        raise RecipeError(f"multi-task heads read the encoder the way the model's own head does, which nlptransfer "
                          f"knows for {', '.join(sorted(_known_types()))}, not '{core.config.model_type}'")
    names = {task: [str(n) for n in getattr(labels, "names", labels)] for task, labels in tasks.items()}
    setattr(core.config, TASKS_CONFIG, names)
    try:
        core.task_heads = TaskHeads(core, [len(v) for v in list(names.values())[1:]])
    except NotImplementedError as e:
        raise RecipeError(str(e)) from None
    if uncertainty:
        core.task_weights = TaskWeights(len(names))


def _known_types() -> list[str]:
    from .architectures import ARCHITECTURES

    return list(ARCHITECTURES)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, shaped [batch, 1, hidden] so a first-token head can read it."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1e-9)


#: held while a forward pass runs with swapped layers (`TransferModel._layers`): threads that predict with one model
#: at once (a user's thread pool) must not see each other's swap; a module-level lock, since a lock attribute
#: would stop the model from being copied (merging an adapter copies it)
_SWAPPING = threading.RLock()


class FirstTokenLayer(nn.Module):
    """A BERT-style encoder's last layer run for the first token only.

    With first-token pooling the classifier reads nothing of the last layer but the first token's output, so
    keys and values are computed for every token and everything else (query, attention output, feed-forward)
    for the first token alone: about 5/6 of the last layer's work is skipped, with the same result."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        import sys

        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        attention = self.layer.attention.self
        first = hidden_states[:, :1]
        batch, tokens, _ = hidden_states.shape
        size = attention.attention_head_size
        query = attention.query(first).view(batch, 1, -1, size).transpose(1, 2)
        key = attention.key(hidden_states).view(batch, tokens, -1, size).transpose(1, 2)
        value = attention.value(hidden_states).view(batch, tokens, -1, size).transpose(1, 2)
        if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[2] != 1:
            attention_mask = attention_mask[:, :, :1]  # the first query's row
        eager = sys.modules[type(attention).__module__].eager_attention_forward
        interface = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager)
        context, _ = interface(attention, query, key, value, attention_mask,
                               dropout=attention.dropout.p if attention.training else 0.0, scaling=attention.scaling)
        out = self.layer.attention.output(context.reshape(batch, 1, -1), first)
        return self.layer.output(self.layer.intermediate(out), out)


def first_token_layer_ok(model: nn.Module) -> bool:
    """True when the last encoder layer of `model` can run for the first token alone (FirstTokenLayer)."""
    found = layer_stack(model)
    if found is None:
        return False
    last = found[1][-1]
    known = architecture(core_model(model).config.model_type)
    return (known is not None and type(last).__name__ == known.first_token_layer and not getattr(last, "add_cross_attention", False)
            and hasattr(last.attention.self, "attention_head_size"))


class _Captured(Exception):
    """Ends a forward pass once the hidden states entering a layer have been captured."""


def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs.get("hidden_states", kwargs.get("hidden_state"))


class TransferModel(nn.Module):
    """What the loop trains: a sequence classifier (maybe PEFT-wrapped) with its pooling and frozen parts.

    forward() takes token batches, or cached encoder `features` when the encoder is frozen.
    Frozen modules stay in eval mode so that cached features equal a fresh forward pass.
    """

    def __init__(self, net: nn.Module, pooling: str = "native", frozen: list[nn.Module] | None = None,
                 first_trained_layer: int | None = None):
        super().__init__()
        self.net = net
        self.pooling = pooling
        self._frozen = frozen or []
        #: top_k: the first layer that trains; everything below it is frozen and its output can be cached
        self.first_trained_layer = first_trained_layer
        #: native pooling reads only the first token of the last layer: run that layer for it alone
        self.first_token_only = pooling == "native" and first_token_layer_ok(net)
        #: a masked-LM head on the encoder's token states (adapt.method mlm+ce attaches one; never saved with the run)
        self.mlm_head: MlmHead | None = None
        #: a multi-task model's task names, in order (the first is the model's own head); None for one task
        self.tasks = list(task_labels(net) or []) or None

    @property
    def core(self) -> nn.Module:
        return core_model(self.net)

    @property
    def encoder_frozen(self) -> bool:
        """True when the whole encoder is frozen (in eval mode): its output can be computed once and reused."""
        return any(m is self.core.base_model for m in self._frozen)

    def train(self, mode: bool = True) -> "TransferModel":
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        """What the head reads: first-token states [batch, 1, hidden] (native) or the masked mean (mean)."""
        with self._layers():
            return self._pool(input_ids, attention_mask, **extra)

    def _pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        hidden = self.core.base_model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.pooling == "mean":
            return mean_pool(hidden, attention_mask)
        if self.pooling == "embedding":
            return nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)
        return hidden[:, :1]

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from what the head reads [batch, 1, hidden]: through the architecture's own head, or (embedding
        pooling) its output layer alone."""
        if self.pooling == "embedding":
            return final_linear(self.net)(pooled[:, 0])
        return head_forward(self.core, pooled)

    @torch.no_grad()
    def frozen_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering the first trained layer [batch, tokens, hidden]: the frozen part's output."""
        _, layers = layer_stack(self.core)
        captured = []

        def capture(module, args, kwargs):
            captured.append(_hidden_arg(args, kwargs))
            raise _Captured

        handle = layers[self.first_trained_layer].register_forward_pre_hook(capture, with_kwargs=True)
        try:
            self.core.base_model(input_ids=input_ids, attention_mask=attention_mask)
        except _Captured:
            pass
        finally:
            handle.remove()
        return captured[0]

    @contextmanager
    def _layers(self, states: torch.Tensor | None = None):
        """Within: the encoder runs its last layer for the first token only (when first_token_only), and with
        cached `states`, skips its frozen layers while its first trained layer reads `states` instead; with
        neither, the encoder is left as it is."""
        if states is None and not self.first_token_only:
            yield
            return
        with _SWAPPING:  # the swap is visible to every thread: one swapped forward pass at a time
            with self._swapped(states):
                yield

    @contextmanager
    def _swapped(self, states: torch.Tensor | None):
        owner, layers = layer_stack(self.core)
        first = self.first_trained_layer if states is not None else 0
        run = list(layers[first:])
        if self.first_token_only:
            run[-1] = FirstTokenLayer(run[-1])
        handle = None
        if states is not None:
            def inject(module, args, kwargs):
                if args:
                    return (states, *args[1:]), kwargs
                key = "hidden_states" if "hidden_states" in kwargs else "hidden_state"
                return args, {**kwargs, key: states}

            handle = run[0].register_forward_pre_hook(inject, with_kwargs=True)
        owner.layer = nn.ModuleList(run)
        try:
            yield
        finally:
            owner.layer = layers
            if handle is not None:
                handle.remove()

    def forward(self, input_ids=None, attention_mask=None, features=None, states=None, return_features: bool = False,
                mlm_mask=None, **extra) -> dict:
        """{"logits": {HEAD: [batch, labels]}}, plus "features" [batch, hidden] (what the head reads) when asked;
        from cached head `features` (head) or cached frozen-layer `states` (top_k) when given. A batch with an
        `mlm_mask` (masked-LM targets, for the mlm+ce objective) gives {"mlm_logits": [masked tokens, vocabulary]}
        from the attached masked-LM head instead."""
        if mlm_mask is not None:
            if self.mlm_head is None:
                raise ValueError("a masked-LM batch needs a masked-LM head: adapt.method mlm+ce attaches one")
            hidden = self.core.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return {"logits": {}, "mlm_logits": self.mlm_head(hidden[mlm_mask])}
        if self.tasks:
            if features is None:
                with self._layers(states):
                    features = self._pool(input_ids, attention_mask, **extra)
            return self._task_outputs(features, return_features)
        if features is not None:
            return self._outputs(self.head(features), features, return_features)
        with self._layers(states):
            if self.pooling == "native" and not return_features:
                return self._outputs(self.net(input_ids=input_ids, attention_mask=attention_mask, **extra).logits)
            pooled = self._pool(input_ids, attention_mask, **extra)
            return self._outputs(self.head(pooled), pooled, return_features)

    def _task_outputs(self, pooled: torch.Tensor, with_features: bool) -> dict:
        """A multi-task model's outputs: {"logits": {task: [batch, labels]}}, "task_log_vars" [tasks] when it learns its
        task weights, and "features" when asked."""
        core = self.core
        out = {"logits": dict(zip(self.tasks, [self.head(pooled), *core.task_heads(core, pooled)]))}
        if with_features:
            out["features"] = pooled[:, 0]
        weights = getattr(core, "task_weights", None)
        if weights is not None:
            out["task_log_vars"] = weights(None)
        return out

    @staticmethod
    def _outputs(logits: torch.Tensor, pooled: torch.Tensor | None = None, with_features: bool = False) -> dict:
        out = {"logits": {HEAD: logits}}
        if with_features:
            out["features"] = pooled[:, 0]
        return out


class MlmHead(nn.Module):
    """The masked-LM head of an AutoModelForMaskedLM (its modules under their own names, without its encoder), its
    decoder tied to `embeddings` (the classifier's word embeddings): token logits from token states [n, hidden]."""

    def __init__(self, masked_lm: nn.Module, embeddings: nn.Embedding):
        super().__init__()
        known = architecture(masked_lm.config.model_type)
        if known is None or known.mlm is None:
            raise ValueError(f"nlptransfer has no masked-LM head path for model_type '{masked_lm.config.model_type}'")
        self._logits = known.mlm
        for name, module in masked_lm.named_children():
            if name != masked_lm.base_model_prefix and not isinstance(module, nn.modules.loss._Loss):
                self.add_module(name, module)
        masked_lm.get_output_embeddings().weight = embeddings.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._logits(self, hidden)


class MaskedLM(nn.Module):
    """What the loop trains for masked-LM pretraining (adapt.method mlm): an AutoModelForMaskedLM whose forward
    returns {"logits": {}, "mlm_logits": [masked tokens, vocabulary]}, the logits at the batch's `mlm_mask` only (15% of
    the tokens: the vocabulary projection of the others would be thrown away)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        known = architecture(net.config.model_type)
        if known is None or known.mlm is None:
            raise ValueError(f"nlptransfer has no masked-LM head path for model_type '{net.config.model_type}'")
        self.net = net
        self._logits = known.mlm

    def forward(self, input_ids, attention_mask, mlm_mask, **extra) -> dict:
        hidden = self.net.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return {"logits": {}, "mlm_logits": self._logits(self.net, hidden[mlm_mask])}
