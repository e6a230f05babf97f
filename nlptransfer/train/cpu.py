"""CPU training speed-ups that leave the computation as it was: cheaper dropout masks (module and attention
dropout), and an allocator setting that stops every step from re-faulting its large buffers.

On CPU, torch draws one Bernoulli sample per element for dropout, and SDPA with attention dropout leaves its
fused kernel for a slow reference path: on all-MiniLM-L6-v2 with SST-2 batches the two were about a fifth of a
full fine-tuning step and more of a LoRA step. Everything here is a no-op off CPU.
"""
from __future__ import annotations

import ctypes
import sys
from contextlib import contextmanager

import torch
from torch import nn

#: name under which the attention function below is registered with transformers
ATTENTION = "nlptransfer_cpu"


def cpu_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout with a cheaper mask: each 64-bit random draw gives four 16-bit uniforms, one per element (2.4x
    faster than torch's CPU dropout here). An element is kept with probability round((1 - p) * 65536) / 65536,
    within 1/131072 of 1 - p, and scaled by the inverse of that, so the expectation is exact. Uses the global
    RNG, so set_seed makes it repeatable and a resumed run replays it."""
    keep = round((1 - p) * 65536)
    if keep == 0:
        return torch.zeros_like(x)
    if keep == 65536:  # p below 1/131072: nothing is dropped (and 32768 would not fit the int16 comparison)
        return x.clone()
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2 ** 63, 2 ** 63 - 1)
    mask = bits.view(torch.int16)[:n].view(x.shape) < keep - 32768
    return torch.where(mask, x * (65536 / keep), 0.0)


class CpuDropout(nn.Dropout):
    """nn.Dropout that uses cpu_dropout for CPU tensors while training, and torch's dropout everywhere else."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace or not x.is_floating_point():
            return super().forward(x)
        return cpu_dropout(x, self.p)


def cpu_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                  **kwargs):
    """transformers attention function: SDPA, except while training with attention dropout on CPU, where
    SDPA's reference path is slow; there, plain attention with cpu_dropout on the probabilities."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if (not dropout or query.device.type != "cpu" or getattr(module, "num_key_value_groups", 1) > 1
            or kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:  # SDPA's mask: True where attending, or additive floats
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probs = cpu_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, cpu_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)


@contextmanager
def cpu_training(model: nn.Module, enabled: bool = True):
    """Within: `model`'s plain dropout modules use cpu_dropout, its SDPA attention uses cpu_attention, and glibc
    keeps freed memory for reuse. Everything is put back on exit."""
    if not enabled:
        yield
        return
    dropouts = [m for m in model.modules() if type(m) is nn.Dropout]
    for m in dropouts:
        m.__class__ = CpuDropout
    configs = list({id(m.config): m.config for m in model.modules()  # modules share one config
                    if getattr(getattr(m, "config", None), "_attn_implementation", None) == "sdpa"}.values())
    if configs:
        _register_attention()
    for config in configs:
        config._attn_implementation = ATTENTION
    try:
        with reuse_freed_memory():
            yield
    finally:
        for m in dropouts:
            m.__class__ = nn.Dropout
        for config in configs:
            config._attn_implementation = "sdpa"


@contextmanager
def reuse_freed_memory():
    """Within: glibc serves every allocation from its heap and keeps freed memory for the next one.

    A CPU training step frees and re-allocates the same large buffers (activations, a dense embedding gradient of
    tens of MB); by default glibc maps each large one fresh from the OS and unmaps it when freed, so every step
    pays page faults to zero new pages (about 40% of a MiniLM run's page faults). Restored, and the kept memory
    released, on exit. A no-op off glibc."""
    libc = None
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt  # noqa: B018  (absent on musl and others)
        except (OSError, AttributeError):
            libc = None
    if libc is None:
        yield
        return
    m_trim_threshold, m_mmap_max = -1, -4
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 2 ** 31 - 1)
    try:
        yield
    finally:
        libc.mallopt(m_mmap_max, 65536)  # glibc's defaults
        libc.mallopt(m_trim_threshold, 128 * 1024)
        libc.malloc_trim(0)
