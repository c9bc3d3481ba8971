"""Greedy decoding and ancestral sampling: one token per row per step.

Both run every sentence of the batch at once; a row stops at ``<eos>`` or at its
length cap and the loop ends when all rows have stopped.  Sampling repeats each
sentence ``num_samples`` times and draws y_t ~ softmax(log p / T), optionally
restricted to the top-k tokens (Fan et al. 2018) or the nucleus of mass p
(Holtzman et al. 2020).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from seq2seq.data.batching import Batch
from seq2seq.search.common import (NBest, DecodeOptions, Hypothesis, block_repeated_ngrams, filter_logits,
                                   forbid_early_eos, length_caps, start_state)


def _rows_to_hypotheses(out: Tensor, logp_sum: Tensor, cap: Tensor, eos_id: int, src_lengths: Tensor,
                        attention: Optional[Tensor]) -> list[Hypothesis]:
    """Cut each row of ``out`` (rows, steps) at its first ``<eos>`` or its cap."""
    steps = out.size(1)
    is_eos = out == eos_id
    first_eos = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(cap, steps))
    with_eos = first_eos < cap                      # otherwise the row stopped at its cap
    lengths = torch.where(with_eos, first_eos, cap)
    rows = out.tolist()
    scores = logp_sum.tolist()
    hyps = []
    for i, (row, n, e, s) in enumerate(zip(rows, lengths.tolist(), with_eos.tolist(), scores)):
        a = None
        if attention is not None:
            a = attention[i, :min(n + int(e), attention.size(1)), :int(src_lengths[i])].cpu()
        hyps.append(Hypothesis(row[:n], s, s, a))
    return hyps


def _decode_rows(model, batch: Batch, bos_id: int, eos_id: int, options: DecodeOptions, repeats: int,
                 pick: Callable[[Tensor], Tensor]) -> NBest:
    """The shared loop: ``pick(logp) -> (rows,)`` chooses each row's next token.

    Rows that have stopped leave the decoder's batch once they are at least an
    eighth of it (the state is reordered then, not at every step), so long
    outputs do not make the short ones pay for their steps.
    """
    state = start_state(model, batch)
    bsz, device = batch.src.size(0), batch.src.device
    src_lengths = batch.src_lengths.to(device)
    if repeats > 1:
        index = torch.arange(bsz, device=device).repeat_interleave(repeats)
        state, src_lengths = state.reorder(index, beam=repeats), src_lengths[index]
    rows = bsz * repeats
    cap = length_caps(src_lengths, options)
    steps = int(cap.max())
    out = torch.full((rows, steps), eos_id, dtype=torch.long, device=device)
    logp_sum = torch.zeros(rows, device=device)
    attention = None
    active = torch.arange(rows, device=device)             # decoder row -> output row
    prev = torch.full((rows,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)   # per decoder row
    for t in range(steps):
        logits, state, weights = model.decoder.step(prev, state)
        logp = torch.log_softmax(logits.float(), dim=-1)
        forbid_early_eos(logp, t, options, eos_id)
        if options.no_repeat_ngram:
            block_repeated_ngrams(logp, out[active, :t], options.no_repeat_ngram)
        tok = pick(logp).masked_fill(finished, eos_id)
        out[active, t] = tok
        logp_sum[active] += logp.gather(1, tok.unsqueeze(1)).squeeze(1).masked_fill(finished, 0.0)
        if options.return_attention and weights is not None:
            if attention is None:
                attention = weights.new_zeros(rows, steps, weights.size(1))
            attention[active, t] = weights
        finished |= (tok == eos_id) | (t + 1 >= cap[active])
        done = int(finished.sum())
        if done == finished.numel():
            break
        prev = tok
        if 8 * done >= finished.numel():                    # drop the stopped rows
            keep = (~finished).nonzero().squeeze(1)
            state = state.reorder(keep, beam=1)
            active, prev, finished = active[keep], prev[keep], finished[keep]
    hyps = _rows_to_hypotheses(out, logp_sum.cpu(), cap, eos_id, src_lengths.cpu(), attention)
    nbest = [hyps[b * repeats:(b + 1) * repeats] for b in range(bsz)]
    return [sorted(h, key=lambda x: -x.score) for h in nbest]


@torch.no_grad()
def greedy_search(model, batch: Batch, bos_id: int, eos_id: int, options: Optional[DecodeOptions] = None
                  ) -> NBest:
    """Batched greedy decoding: y_t = argmax_y log p(y | y_<t, x), all sentences at once.

    Args:
        model: an encoder-decoder with ``encode(src, src_lengths, src_mask) -> (enc, state)``
            and ``decoder.step(prev, state) -> (logits, state, attention)``.
        batch: the source side of a :class:`Batch`: src (batch, src_len), src_lengths
            (batch,), src_mask (batch, src_len).
        bos_id: the target's ``<bos>`` id.
        eos_id: the target's ``<eos>`` id.
        options: min/max length, n-gram blocking, attention (default: greedy defaults).

    Returns:
        Per sentence, one :class:`Hypothesis` (score = log-probability).
    """
    options = options or DecodeOptions()
    return _decode_rows(model, batch, bos_id, eos_id, options, 1, lambda logp: logp.argmax(dim=-1))


@torch.no_grad()
def sample(model, batch: Batch, bos_id: int, eos_id: int, options: DecodeOptions) -> NBest:
    """Ancestral sampling with temperature, top-k and top-p.

    Each sentence is sampled ``options.num_samples`` times; rows draw
    independently from one generator (seeded by ``options.seed``), so a seed
    reproduces the samples of the same batch.

    Args:
        model: as :func:`greedy_search`.
        batch: as :func:`greedy_search`.
        bos_id: as :func:`greedy_search`.
        eos_id: as :func:`greedy_search`.
        options: temperature, top_k, top_p, num_samples, seed, and the length limits.

    Returns:
        Per sentence, ``num_samples`` hypotheses sorted by log-probability under the
        model (temperature 1, no filtering), best first.
    """
    generator = None
    if options.seed is not None:
        generator = torch.Generator(device=batch.src.device).manual_seed(options.seed)

    def pick(logp: Tensor) -> Tensor:
        logits = filter_logits(logp / options.temperature, options.top_k, options.top_p)
        return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(1)

    return _decode_rows(model, batch, bos_id, eos_id, options, options.num_samples, pick)
