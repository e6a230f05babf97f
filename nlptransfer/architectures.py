"""The one per-model_type table: what nlptransfer needs to know of an encoder family beyond what transformers and
PEFT already say. How its own classification head reads encoder output (for mean pooling and cached features),
whether its encoder runs the layer list as a plain loop (so the top layers can run alone from cached states),
which layer class can run for the first token alone, and adapter targets where PEFT has no default."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


def _bert_head(model: nn.Module, seq: torch.Tensor) -> torch.Tensor:
    pooled = model.bert.pooler(seq) if model.bert.pooler is not None else seq[:, 0]
    return model.classifier(model.dropout(pooled))


def _first_token_classifier(model: nn.Module, seq: torch.Tensor) -> torch.Tensor:
    return model.classifier(seq)  # RoBERTa-style heads read seq[:, 0] themselves


def _distilbert_head(model: nn.Module, seq: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.dropout(torch.relu(model.pre_classifier(seq[:, 0]))))


def _deberta_head(model: nn.Module, seq: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.dropout(model.pooler(seq)))


def _cls_mlm(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    return model.cls(hidden)


def _lm_head_mlm(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    return model.lm_head(hidden)


def _electra_mlm(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    return model.generator_lm_head(model.generator_predictions(hidden))


def _distilbert_mlm(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    return model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(hidden))))


#: names of the classification head's top-level modules in the families' sequence classifiers
HEAD_MODULES = ("classifier", "pre_classifier", "score")

#: (target modules, feed-forward subset) of an adapter method; feed-forward is None for methods without one
Targets = tuple[list[str], list[str] | None]
_IA3_BERT: Targets = (["key", "value", "output.dense"], ["output.dense"])
_LN: Targets = (["LayerNorm"], None)  #: ln_tuning: the layer norms (PEFT has no default for encoders)


@dataclass(frozen=True)
class Architecture:
    """What nlptransfer knows of one model_type."""

    #: logits from encoder output [batch, tokens, hidden] through the model's own head, reading the first token
    head: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    #: the encoder runs its layer list as a plain loop: the top layers can run alone from the states entering them
    #: (DeBERTa's encoder treats its first layer specially, so it has False)
    layer_loop: bool = False
    #: class name of a layer that FirstTokenLayer can run for the first token alone; a layer wrapped by FSDP or
    #: renamed by fully_shard has another name, so sharded training keeps the plain path
    first_token_layer: str | None = None
    #: adapter method (lower case) -> targets, only where PEFT has no default for this model_type
    adapter_targets: dict[str, Targets] = field(default_factory=dict)
    #: token logits from encoder output at chosen positions [n, hidden] through the AutoModelForMaskedLM's own head
    #: (its modules, by their attribute names); None: a family without one here
    mlm: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "bert": Architecture(_bert_head, layer_loop=True, first_token_layer="BertLayer",
                         adapter_targets={"ln_tuning": _LN}, mlm=_cls_mlm),
    "roberta": Architecture(_first_token_classifier, layer_loop=True, first_token_layer="RobertaLayer",
                            adapter_targets={"ln_tuning": _LN}, mlm=_lm_head_mlm),
    "xlm-roberta": Architecture(_first_token_classifier, layer_loop=True, first_token_layer="XLMRobertaLayer",
                                adapter_targets={"ia3": _IA3_BERT, "ln_tuning": _LN}, mlm=_lm_head_mlm),
    "camembert": Architecture(_first_token_classifier, layer_loop=True, first_token_layer="CamembertLayer",
                              adapter_targets={"lora": (["query", "value"], None), "ia3": _IA3_BERT,
                                               "ln_tuning": _LN}, mlm=_lm_head_mlm),
    "electra": Architecture(_first_token_classifier, layer_loop=True, first_token_layer="ElectraLayer",
                            adapter_targets={"ia3": _IA3_BERT, "ln_tuning": _LN}, mlm=_electra_mlm),
    "distilbert": Architecture(_distilbert_head, layer_loop=True,
                               adapter_targets={"lora": (["q_lin", "v_lin"], None),
                                                "ia3": (["k_lin", "v_lin", "lin2"], ["lin2"]),
                                                "ln_tuning": (["sa_layer_norm", "output_layer_norm"], None)},
                               mlm=_distilbert_mlm),
    "deberta-v2": Architecture(_deberta_head, adapter_targets={"ln_tuning": _LN}, mlm=_cls_mlm),
    "deberta": Architecture(_deberta_head, adapter_targets={"ln_tuning": _LN}, mlm=_cls_mlm),
}


def architecture(model_type: str) -> Architecture | None:
    """The table's row for `model_type`, or None for a family nlptransfer has no facts about."""
    return ARCHITECTURES.get(model_type)


def core_model(net: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    from peft import PeftModel

    return net.base_model.model if isinstance(net, PeftModel) else net


def head_forward(model: nn.Module, seq: torch.Tensor) -> torch.Tensor:
    """Logits from encoder output `seq` [batch, tokens, hidden], using only the first token like the model's own head."""
    kind = model.config.model_type
    found = architecture(kind)
    if found is None:
        raise NotImplementedError(f"mean pooling and cached features are not supported for model type '{kind}'")
    return found.head(model, seq)


def final_linear(model: nn.Module) -> nn.Linear:
    """The last linear layer of the model's own classification head (the one that gives the logits): what an
    embedding head (pooling: embedding) keeps, reading the normalised sentence embedding directly."""
    core = core_model(model)
    n = core.config.num_labels
    found = [m for name, m in core.named_modules() if name.split(".")[0] in HEAD_MODULES
             and isinstance(m, nn.Linear) and m.out_features == n and m.in_features == core.config.hidden_size]
    if not found:
        raise NotImplementedError(f"cannot find the output layer of the classification head of model type "
                                  f"'{core.config.model_type}' (a linear layer from hidden_size to the labels)")
    return found[-1]


def supports_head_path(model: nn.Module) -> bool:
    """True when head_forward knows this architecture (needed for mean pooling and feature caching)."""
    return architecture(core_model(model).config.model_type) is not None


def layer_stack(model: nn.Module) -> tuple[nn.Module, nn.ModuleList] | None:
    """The module that owns the encoder's list of transformer layers, and that list (None if not found)."""
    base = core_model(model).base_model
    for owner_name in ("encoder", "transformer"):
        owner = getattr(base, owner_name, None)
        if isinstance(getattr(owner, "layer", None), nn.ModuleList):
            return owner, owner.layer
    return None


def adapter_targets(method: str, model_type: str) -> Targets | tuple[None, None]:
    """Target (and feed-forward) modules of adapter `method` for `model_type`: ours where PEFT has none, else PEFT's
    own default (None, None when neither knows the pair: PEFT then says so)."""
    found = architecture(model_type)
    if found is not None and method in found.adapter_targets:
        return found.adapter_targets[method]
    from peft.utils import constants

    targets = getattr(constants, f"TRANSFORMERS_MODELS_TO_{method.upper()}_TARGET_MODULES_MAPPING", {})
    feedforward = getattr(constants, f"TRANSFORMERS_MODELS_TO_{method.upper()}_FEEDFORWARD_MODULES_MAPPING", None)
    if model_type not in targets:
        return None, None
    return list(targets[model_type]), (list(feedforward.get(model_type, [])) if feedforward is not None else None)
