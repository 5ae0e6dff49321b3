"""The lesion-attention term of the demo training (training only, nothing exported): one head of
one language-model layer is told where to look when the model writes a report, a diagnosis or
a VQA answer about a slice with a lesion: on the image tokens that cover the lesion.

The place words of a report ("in the left frontal lobe") must be read off one or two of a
slice's 64 image tokens. From the cross-entropy of those words alone the language model has to
find those tokens by itself, and in 30 minutes of vision-language training it never did: every
report said 'right' (see the model card). With this term the head's query learns to find the
lesion's tokens directly, and the words have only to be read from what the head brings back.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from unibiomed_ref.language import rotate_half, rope_cos_sin
from unibiomed_ref.tiny import training_forward


def forward_with_head(lm: torch.nn.Module, embeds: torch.Tensor, layer_index: int,
                      head: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``unibiomed_ref.tiny.training_forward`` that also returns the attention probabilities
    [B, T, T] of query head ``head`` of layer ``layer_index`` (the same scores the layer
    computes, recomputed from its normed input, caught on the way)."""
    layers = lm.model.layers
    if not 0 <= layer_index < len(layers):
        raise ValueError(f"lesion attention: layer {layer_index} of a "
                         f"{len(layers)}-layer language model")
    caught: List[torch.Tensor] = []
    hook = layers[layer_index].input_layernorm.register_forward_hook(
        lambda _m, _i, out: caught.append(out))
    try:
        logits, hidden = training_forward(lm, embeds)
    finally:
        hook.remove()
    cfg = lm.config
    cos, sin = rope_cos_sin(0, embeds.shape[1], cfg.head_dim, cfg.rope_theta, embeds)
    return logits, hidden, _head_probs(layers[layer_index].self_attn, caught[0], cos, sin, head)


def _head_probs(attn: torch.nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                head: int) -> torch.Tensor:
    """Causal attention probabilities [B, T, T] of one query head (its KV head by HF's
    repeat_kv order, head // groups)."""
    b, t, _ = x.shape
    d = attn.head_dim
    kv = head // attn.groups
    q = attn.q_proj(x).view(b, t, attn.num_heads, d)[:, :, head]
    k = attn.k_proj(x).view(b, t, attn.num_kv_heads, d)[:, :, kv]
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    scores = torch.matmul(q, k.transpose(1, 2)) * attn.scaling
    blocked = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
    return torch.softmax(scores.float().masked_fill(blocked, float("-inf")), dim=-1)


def attention_loss(probs: torch.Tensor,
                   rows: Sequence[Tuple[int, Sequence[int], torch.Tensor, Sequence[int]]]
                   ) -> torch.Tensor:
    """Cross-entropy of the head's attention against the lesion's share of each image token.

    ``rows``: (batch row, the query positions (those that predict the answer's tokens), the
    lesion's share of each image token [n], the positions of those n image tokens). The target
    of every query is the shares normalised to sum to one; the loss is their mean."""
    losses: List[torch.Tensor] = []
    for r, queries, share, positions in rows:
        target = share / share.sum()
        picked = probs[r][list(queries)][:, list(positions)]  # [Q, n]
        losses.append(-(torch.log(picked.clamp(min=1e-8)) * target).sum(1).mean())
    return torch.stack(losses).mean() if losses else probs.sum() * 0
