"""Decoding strategies over the decoder's ``step``.

The loop lives here, apart from the model (fairseq's split): a strategy sees only
``model.encode`` and ``model.decoder.step`` and the decoder state, never the cell
type.  This module holds batched greedy decoding; beam search and sampling plug
in beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from seq2seq.data.batching import Batch


@dataclass
class Hypotheses:
    """Decoded outputs of one batch, in batch order.

    Attributes:
        tokens: per sentence, the output ids without ``<bos>``/``<eos>``.
        scores: (batch,) total log-probability of each output (``<eos>`` included
            when produced), in nats.
        attention: per sentence, (out_len, src_len) weights, or None.
    """

    tokens: list[list[int]]
    scores: Tensor
    attention: Optional[list[Tensor]] = None


def max_lengths(src_lengths: Tensor, a: float, b: int) -> Tensor:
    """(batch,) output length caps ``floor(a * src_len + b)``, in tokens (>= 1)."""
    return (src_lengths.float() * a + b).floor().long().clamp(min=1)


@torch.no_grad()
def greedy_search(model, batch: Batch, bos_id: int, eos_id: int, max_len_a: float = 1.5,
                  max_len_b: int = 10, return_attention: bool = False) -> Hypotheses:
    """Batched greedy decoding: y_t = argmax p(y | y_<t, x) for every sentence at once.

    A sentence stops at ``<eos>`` or after ``max_len_a * src_len + max_len_b``
    tokens; the loop ends when all have stopped.

    Args:
        model: an :class:`~seq2seq.models.encoder_decoder.EncoderDecoder`.
        batch: source side of a :class:`Batch` (src, src_lengths, src_mask).
        bos_id, eos_id: target specials.
        max_len_a, max_len_b: the length cap.
        return_attention: also collect attention weights.

    Returns:
        :class:`Hypotheses` in batch order.
    """
    _, state = model.encode(batch.src, batch.src_lengths, batch.src_mask)
    bsz = batch.src.size(0)
    device = batch.src.device
    cap = max_lengths(batch.src_lengths, max_len_a, max_len_b).to(device)
    steps = int(cap.max())
    prev = torch.full((bsz,), bos_id, dtype=torch.long, device=device)
    out = torch.full((bsz, steps), eos_id, dtype=torch.long, device=device)
    scores = torch.zeros(bsz, device=device)
    finished = torch.zeros(bsz, dtype=torch.bool, device=device)
    attn = []
    for t in range(steps):
        logits, state, weights = model.decoder.step(prev, state)
        logp = torch.log_softmax(logits.float(), dim=-1)
        best_logp, best = logp.max(dim=-1)
        best = best.masked_fill(finished, eos_id)
        scores += best_logp.masked_fill(finished, 0.0)
        out[:, t] = best
        if return_attention and weights is not None:
            attn.append(weights)
        finished |= (best == eos_id) | (t + 1 >= cap)
        prev = best
        if bool(finished.all()):
            break
    # Length of each output: position of the first <eos>, or the cap.
    is_eos = out == eos_id
    first_eos = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(cap, steps))
    lengths = torch.minimum(first_eos, cap).tolist()
    rows = out.tolist()
    tokens = [row[:n] for row, n in zip(rows, lengths)]
    attention = None
    if return_attention and attn:
        a = torch.stack(attn, dim=1)                    # (B, steps_run, S)
        src_lens = batch.src_lengths.tolist()
        # keep the <eos> step too: its weights show where the model stopped
        attention = [a[i, :min(n + 1, a.size(1)), :src_lens[i]].cpu() for i, n in enumerate(lengths)]
    return Hypotheses(tokens, scores.cpu(), attention)


@torch.no_grad()
def decode_dataset(model, dataset, bos_id: int, eos_id: int, batch_size: int, max_len_a: float,
                   max_len_b: int, device: torch.device, return_attention: bool = False) -> Hypotheses:
    """Greedy-decode a whole :class:`~seq2seq.data.batching.ParallelDataset`.

    Sentences are decoded in length-sorted batches of ``batch_size`` (least
    padding); results come back in dataset order.

    Returns:
        :class:`Hypotheses` with one entry per dataset row.
    """
    from seq2seq.data.batching import BucketSampler

    was_training = model.training
    model.eval()
    n = len(dataset)
    tokens: list = [None] * n
    attention: list = [None] * n
    scores = torch.zeros(n)
    for idx in BucketSampler(dataset.src_lengths, batch_size, shuffle=False).batches():
        batch = dataset.batch(idx).to(device)
        hyp = greedy_search(model, batch, bos_id, eos_id, max_len_a, max_len_b, return_attention)
        for j, row in enumerate(idx.tolist()):
            tokens[row] = hyp.tokens[j]
            if hyp.attention is not None:
                attention[row] = hyp.attention[j]
        scores[idx] = hyp.scores
    model.train(was_training)
    return Hypotheses(tokens, scores, attention if return_attention else None)
