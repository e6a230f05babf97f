"""What each strategy trains: frozen parts, parameter groups, adapter presets and the saved head."""
from __future__ import annotations

import pytest

from nlptransfer import models
from nlptransfer import recipe as recipes
from nlptransfer.data import LabelMap
from nlptransfer.architectures import adapter_targets
from nlptransfer.model import HEAD
from nlptransfer.strategies import encoder_layers, get_strategy, prepare
from nlptransfer.train.cache import cache_kind

KINDS = ["bert", "roberta", "distilbert", "deberta-v2", "electra", "xlm-roberta"]


def _prepared(tiny_models, kind="bert", **overrides):
    r = recipes.load("sentiment-minilm", {"model": str(tiny_models[kind]), **overrides})
    net, new = models.load_classifier(models.resolve(r.model), LabelMap(["negative", "positive"]))
    return prepare(net, r, new), r


def _cache(prepared, strategy: str) -> str | None:
    return cache_kind(get_strategy(strategy).cacheable, prepared.model)


def _logits(outputs: dict):
    return outputs["logits"][HEAD]


def _trainable(prepared) -> set[str]:
    return {n for n, p in prepared.model.named_parameters() if p.requires_grad}


def test_head_trains_only_the_classifier_and_caches(tiny_models):
    p, _ = _prepared(tiny_models, strategy="head")
    assert _trainable(p) == {"net.classifier.weight", "net.classifier.bias"}
    assert p.trainable == 32 * 2 + 2 and _cache(p, "head") == "features"
    p.model.train()
    assert not p.model.net.bert.training and p.model.net.dropout.training  # frozen encoder stays in eval mode


def test_top_k_trains_top_layers_pooler_and_head_with_layer_decay(tiny_models):
    p, _ = _prepared(tiny_models, strategy="top_k", top_k=2, layer_lr_decay=0.5, **{"training.lr": 1e-3})
    names = _trainable(p)
    assert not any("layer.0." in n or "embeddings" in n for n in names)
    assert any("layer.1." in n for n in names) and any("layer.2." in n for n in names)
    assert {"net.bert.pooler.dense.weight", "net.classifier.weight"} <= names
    lr_of = {id(q): g["lr"] for g in p.param_groups for q in g["params"]}
    params = dict(p.model.named_parameters())
    assert lr_of[id(params["net.bert.encoder.layer.2.attention.self.query.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(params["net.bert.encoder.layer.1.attention.self.query.weight"])] == pytest.approx(5e-4)
    assert lr_of[id(params["net.classifier.weight"])] == pytest.approx(1e-3)
    # biases and LayerNorm weights get no weight decay
    wd_of = {id(q): g["weight_decay"] for g in p.param_groups for q in g["params"]}
    assert wd_of[id(params["net.bert.encoder.layer.2.output.LayerNorm.weight"])] == 0.0
    assert wd_of[id(params["net.bert.encoder.layer.2.output.dense.weight"])] == 0.01
    assert sum(len(g["params"]) for g in p.param_groups) == len(names)


def test_full_with_layer_decay_lowers_the_embeddings_most(tiny_models):
    p, _ = _prepared(tiny_models, strategy="full", layer_lr_decay=0.5, **{"training.lr": 1e-3})
    assert p.trainable == p.total
    params = dict(p.model.named_parameters())
    lr_of = {id(q): g["lr"] for g in p.param_groups for q in g["params"]}
    assert lr_of[id(params["net.bert.embeddings.word_embeddings.weight"])] == pytest.approx(1e-3 * 0.5 ** 3)


def test_top_k_larger_than_the_model_is_refused(tiny_models):
    from nlptransfer.errors import RecipeError

    with pytest.raises(RecipeError, match="top_k=5 but the model has only 3 layers"):
        _prepared(tiny_models, strategy="top_k", top_k=5)


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_presets_match_every_architecture(tiny_models, kind):
    for strategy in ("lora", "ia3"):
        p, _ = _prepared(tiny_models, kind, strategy=strategy)
        names = _trainable(p)
        marker = "lora_A" if strategy == "lora" else "ia3_l"
        adapted = {n for n in names if marker in n}
        assert adapted, f"{strategy} adapted nothing on {kind}"
        wanted, _ = adapter_targets(strategy, kind)
        assert all(any(t.split(".")[-1] in n for t in wanted) for n in adapted)
        # the head trains with the adapter (modules_to_save) and nothing else of the encoder does
        assert any("classifier" in n and "modules_to_save" in n for n in names)
        adapter_marks = ("lora_A", "lora_B") if strategy == "lora" else ("ia3_l",)
        assert all(any(m in n for m in adapter_marks) or "modules_to_save" in n for n in names), sorted(names)
        assert 0 < p.trainable < p.total / 2


def test_encoder_layers_found_for_every_architecture(tiny_models):
    for kind in KINDS:
        p, _ = _prepared(tiny_models, kind, strategy="full")
        assert len(encoder_layers(p.model)) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_top_layers_from_cached_states_give_the_full_forward_logits(tiny_models, kind):
    import torch

    p, _ = _prepared(tiny_models, kind, strategy="top_k", top_k=1)
    cacheable = _cache(p, "top_k") == "states"
    assert cacheable == (kind != "deberta-v2")  # DeBERTa's encoder treats its first layer specially
    if not cacheable:
        return
    model = p.model.eval()
    ids = torch.randint(5, 30, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    states = model.frozen_states(ids, mask)
    assert states.shape == (3, 9, model.core.config.hidden_size)
    states = states * mask.unsqueeze(-1)  # padding positions are zeros in a cached batch
    with torch.no_grad():
        torch.testing.assert_close(_logits(model(ids, mask, states=states)), _logits(model(ids, mask)), rtol=1e-5,
                                   atol=1e-7)
        assert not torch.allclose(_logits(model(ids, mask, states=states + 0.1 * mask.unsqueeze(-1))),
                                  _logits(model(ids, mask)),
                                  rtol=1e-5, atol=1e-7)
    assert len(encoder_layers(model)) == 3  # the layer list is put back after each cached forward


@pytest.mark.parametrize("kind", KINDS)
def test_last_layer_run_for_the_first_token_only_gives_the_same_logits_and_gradients(tiny_models, kind, monkeypatch):
    import torch

    from nlptransfer.model.first_token import FirstTokenLayer

    p, _ = _prepared(tiny_models, kind, strategy="full")
    model = p.model
    assert model.first_token_only == (kind in ("bert", "roberta", "electra", "xlm-roberta"))
    if not model.first_token_only:
        return
    torch.manual_seed(0)
    ids = torch.randint(5, 30, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    model.eval()
    calls = []
    real = FirstTokenLayer.forward
    monkeypatch.setattr(FirstTokenLayer, "forward", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    with torch.no_grad():
        torch.testing.assert_close(_logits(model(ids, mask)), model.net(input_ids=ids, attention_mask=mask).logits,
                                   rtol=1e-5, atol=1e-6)
        # the head's cached features (encode) take the same short cut
        plain = model.core.base_model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :1]
        torch.testing.assert_close(model.encode(ids, mask), plain, rtol=1e-5, atol=1e-6)
    assert len(calls) == 2  # forward and encode, not the plain calls
    for m in model.modules():  # no dropout, so both paths see the same (no) noise
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train()
    grads = []
    for first_token in (True, False):
        model.first_token_only = first_token
        model.zero_grad()
        torch.nn.functional.cross_entropy(_logits(model(ids, mask)), torch.tensor([0, 1, 1, 0])).backward()
        grads.append({n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-7, msg=name)
    assert len(encoder_layers(model)) == 3  # the layer list is put back after each forward
    mean, _ = _prepared(tiny_models, kind, strategy="full", pooling="mean")
    assert not mean.model.first_token_only  # mean pooling reads every token of the last layer


def test_threads_predicting_with_one_first_token_model_at_once_get_their_own_answers(tiny_models):
    """The first-token short cut swaps the encoder's layer list during a forward pass: threads sharing the model (a
    user's thread pool, the server's model thread beside a profile computed on first use) must not see each other's
    swap (before the lock: "'FirstTokenLayer' object has no attribute 'attention'")."""
    import threading

    import torch

    p, _ = _prepared(tiny_models, "bert", strategy="full")
    model = p.model.eval()
    assert model.first_token_only
    torch.manual_seed(1)
    batches = [torch.randint(5, 30, (3, 4 + i % 5)) for i in range(40)]
    with torch.no_grad():
        expected = [_logits(model(ids, torch.ones_like(ids))) for ids in batches]
    got, errors = [None] * len(batches), []

    def work(start):
        try:
            with torch.no_grad():
                for i in range(start, len(batches), 4):
                    got[i] = _logits(model(batches[i], torch.ones_like(batches[i])))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    assert len(encoder_layers(model)) == 3
