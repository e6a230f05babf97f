"""CPU training speed-ups: cheaper dropout masks and attention dropout that compute what torch's would."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nlptransfer import models
from nlptransfer.train import cpu
from nlptransfer.train.cpu import CpuDropout, cpu_attention, cpu_dropout, cpu_training
from nlptransfer.data import LabelMap


def test_cpu_dropout_keeps_the_right_share_and_scales_exactly():
    torch.manual_seed(0)
    x = torch.rand(1_000_000) + 0.5
    for p in (0.1, 0.5):
        y = cpu_dropout(x, p)
        kept = y != 0
        keep = round((1 - p) * 65536) / 65536
        assert kept.float().mean().item() == pytest.approx(1 - p, abs=0.002)  # 1M draws: sd 0.0005
        torch.testing.assert_close(y[kept], x[kept] / keep)
        assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.005)
    # each of the four 16-bit pieces of a draw is used: no position in a group of 4 is biased
    kept = (cpu_dropout(torch.ones(400_000), 0.5) != 0).view(-1, 4).float().mean(0)
    assert torch.all((kept - 0.5).abs() < 0.01), kept
    torch.manual_seed(1)
    a = cpu_dropout(torch.ones(3, 5, 7), 0.3)
    torch.manual_seed(1)
    assert torch.equal(a, cpu_dropout(torch.ones(3, 5, 7), 0.3)) and a.shape == (3, 5, 7)  # seeded: repeatable


def test_cpu_dropout_module_is_identity_in_eval_and_backpropagates_the_mask():
    m = CpuDropout(0.25)
    x = torch.randn(64, 33, requires_grad=True)
    m.eval()
    assert torch.equal(m(x), x)
    m.train()
    torch.manual_seed(0)
    y = m(x)
    y.sum().backward()
    kept = y != 0
    scale = 65536 / round(0.75 * 65536)
    torch.testing.assert_close(x.grad, kept.float() * scale)


def _tiny(tiny_models, kind, dropout):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    net = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_models[kind]), num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=dropout)
    batch = {"input_ids": torch.randint(5, 40, (4, 9)),
             "attention_mask": torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 7 + [0] * 2, [1] * 2 + [0] * 7])}
    return net, batch


@pytest.mark.parametrize("kind", ["bert", "roberta", "electra"])
def test_attention_with_cpu_dropout_equals_sdpa_on_padded_batches(tiny_models, kind, monkeypatch):
    # attention dropout so small that no element is dropped: the plain-attention path must equal SDPA exactly
    net, batch = _tiny(tiny_models, kind, dropout=1e-9)
    assert net.config._attn_implementation == "sdpa"
    net.train()
    expected = net(**batch).logits
    calls = []
    monkeypatch.setattr(cpu, "cpu_dropout", lambda x, p: calls.append(x.shape) or x)
    with cpu_training(net):
        got = net(**batch).logits
    assert len(calls) == 3 and calls[0] == (4, 2, 9, 9)  # one per layer, on the attention probabilities
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_cpu_training_swaps_and_restores(tiny_models):
    net, batch = _tiny(tiny_models, "bert", dropout=0.1)
    n_dropout = sum(type(m) is nn.Dropout for m in net.modules())
    with cpu_training(net):
        assert sum(type(m) is CpuDropout for m in net.modules()) == n_dropout > 0
        assert net.config._attn_implementation == cpu.ATTENTION
        net.train()
        torch.manual_seed(0)
        a = net(**batch).logits
        torch.manual_seed(0)
        assert torch.equal(a, net(**batch).logits)  # seeded dropout repeats
        net.eval()
        eval_logits = net(**batch).logits
    assert sum(type(m) is nn.Dropout for m in net.modules()) == n_dropout
    assert net.config._attn_implementation == "sdpa"
    torch.testing.assert_close(net(**batch).logits, eval_logits, rtol=1e-5, atol=1e-6)  # eval: no change at all
    with cpu_training(net, enabled=False):
        assert net.config._attn_implementation == "sdpa"


def test_cpu_attention_falls_back_to_sdpa_without_dropout():
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[1, ..., 3:] = False
    out, _ = cpu_attention(nn.Module(), q, k, v, mask, dropout=0.0)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)
    torch.testing.assert_close(out, ref)
    out, _ = cpu_attention(nn.Module(), q, k, v, mask, dropout=1e-9)  # plain path, nothing dropped
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
