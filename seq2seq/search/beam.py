"""Beam search, vectorised over batch x beam.

Each sentence keeps ``K = beam_size`` open hypotheses; a step scores all K x V
extensions, takes the best 2K, moves those among the first K ranks that end
(``<eos>``, or any token at the length cap) to the sentence's finished set, and
continues with the best K that do not end (fairseq's scheme, so K hypotheses
stay open).  Open hypotheses are ranked by log-probability (they all have the
same length); finished ones by s(Y, X) with the length and coverage penalties of
:mod:`seq2seq.search.common`.

A finished hypothesis is never extended.  A sentence stops when it has ``nbest``
finished hypotheses and no open one can beat the worst of them: log-probabilities
only fall as a hypothesis grows, and lp(Y) grows with |Y|, so an open
hypothesis's best reachable score is its log-probability over lp(cap) (the
coverage penalty is <= 0 and only adds to this bound).  Finished sentences
leave the batch; the others never see them, so results do not depend on the
batch size or the other sentences.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from seq2seq.data.batching import Batch
from seq2seq.errors import Seq2SeqError
from seq2seq.search.common import (NEG_INF, NBest, DecodeOptions, Hypothesis, block_repeated_ngrams,
                                   coverage_penalty, forbid_early_eos, length_caps, length_penalty, start_state)


class _Finished:
    """The best ``size`` finished hypotheses of each active sentence, as tensors.

    Attributes (A active sentences, T = longest cap, S = src_len):
        score, log_prob: (A, size), -inf where empty; sorted best first.
        length: (A, size) output tokens without ``<eos>``; eos: (A, size) ended by ``<eos>``.
        tokens: (A, size, T); attention: (A, size, T, S) or None.
    """

    def __init__(self, batch: int, size: int, max_steps: int, src_len: int, attention: bool, device):
        self.score = torch.full((batch, size), NEG_INF, device=device)
        self.log_prob = torch.full((batch, size), NEG_INF, device=device)
        self.length = torch.zeros(batch, size, dtype=torch.long, device=device)
        self.eos = torch.zeros(batch, size, dtype=torch.bool, device=device)
        self.tokens = torch.zeros(batch, size, max_steps, dtype=torch.long, device=device)
        self.attention = torch.zeros(batch, size, max_steps, src_len, device=device) if attention else None

    def merge(self, score: Tensor, log_prob: Tensor, length: Tensor, eos: Tensor, tokens: Tensor,
              attention: Optional[Tensor]) -> None:
        """Add candidates (A, C) (score -inf: not finishing) and keep the best ``size``.

        tokens: (A, C, T); attention: (A, C, T, S) or None.  Ties keep the earlier
        finished hypothesis (a stable sort).
        """
        size = self.score.size(1)
        all_score = torch.cat([self.score, score], 1)
        order = all_score.sort(dim=1, descending=True, stable=True).indices[:, :size]   # (A, size)
        pick = lambda old, new: torch.cat([old, new], 1).gather(1, order)             # noqa: E731
        self.score, self.log_prob = all_score.gather(1, order), pick(self.log_prob, log_prob)
        self.length, self.eos = pick(self.length, length), pick(self.eos, eos)
        t = self.tokens.size(2)
        self.tokens = torch.cat([self.tokens, tokens], 1).gather(1, order.unsqueeze(-1).expand(-1, -1, t))
        if self.attention is not None:
            s = self.attention.size(3)
            self.attention = torch.cat([self.attention, attention], 1).gather(
                1, order[:, :, None, None].expand(-1, -1, t, s))

    def select(self, keep: Tensor) -> None:
        """Keep the sentences at positions ``keep`` (a (A',) index)."""
        for name in ("score", "log_prob", "length", "eos", "tokens", "attention"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, keep))

    def hypotheses(self, a: int, src_len: int) -> list[Hypothesis]:
        """The finished hypotheses of active sentence ``a``, best first."""
        out = []
        scores, log_probs = self.score[a].tolist(), self.log_prob[a].tolist()
        lengths, eos = self.length[a].tolist(), self.eos[a].tolist()
        for f, (s, lp, n, e) in enumerate(zip(scores, log_probs, lengths, eos)):
            if s == NEG_INF:
                continue
            att = self.attention[a, f, :n + int(e), :src_len].cpu() if self.attention is not None else None
            out.append(Hypothesis(self.tokens[a, f, :n].tolist(), s, lp, att))
        return out


@torch.no_grad()
def beam_search(model, batch: Batch, bos_id: int, eos_id: int, options: DecodeOptions) -> NBest:
    """Batched beam search with length / coverage penalties and constraints.

    Args:
        model: an encoder-decoder with ``encode(src, src_lengths, src_mask) -> (enc, state)``
            and ``decoder.step(prev, state) -> (logits, state, attention)``, whose state
            has ``reorder(index, beam)``.
        batch: the source side of a :class:`Batch`: src (B, S), src_lengths (B,),
            src_mask (B, S).
        bos_id: the target's ``<bos>`` id.
        eos_id: the target's ``<eos>`` id.
        options: beam_size K, nbest, length_penalty / length_normalization,
            coverage_penalty, min_len, max_len / max_len_a / max_len_b,
            no_repeat_ngram, return_attention.

    Returns:
        Per sentence, ``nbest`` hypotheses best first (score = s(Y, X)).

    Raises:
        Seq2SeqError: a coverage penalty on a model without attention.
    """
    k, nbest = options.beam_size, options.nbest
    state = start_state(model, batch)
    bsz, src_len = batch.src.shape
    device = batch.src.device
    src_mask = batch.src_mask.to(device)
    src_lengths = batch.src_lengths.tolist()
    cap_all = length_caps(batch.src_lengths.to(device), options)            # (B,)
    max_steps = int(cap_all.max())
    want_attention = options.return_attention
    use_coverage = options.coverage_penalty > 0

    alive = torch.arange(bsz, device=device)                                # active sentence -> batch row
    # Open rows per sentence: the first step extends the one start hypothesis (W = 1),
    # so the decoder runs B rows, not B*K copies of it; every later step runs W = K.
    width = 1
    scores = torch.zeros(bsz, width, device=device)
    history = torch.zeros(bsz * width, 0, dtype=torch.long, device=device)   # (A*W, t)
    attn_history = torch.zeros(bsz * width, 0, src_len, device=device) if want_attention else None
    coverage = torch.zeros(bsz * width, src_len, device=device) if use_coverage else None
    prev = torch.full((bsz * width,), bos_id, dtype=torch.long, device=device)
    finished = _Finished(bsz, nbest, max_steps, src_len, want_attention, device)
    results: list[Optional[list[Hypothesis]]] = [None] * bsz

    for t in range(max_steps):
        n_alive = alive.numel()
        logits, state, weights = model.decoder.step(prev, state)
        logp = torch.log_softmax(logits.float(), dim=-1)                    # (A*W, V)
        forbid_early_eos(logp, t, options, eos_id)
        if options.no_repeat_ngram:
            block_repeated_ngrams(logp, history, options.no_repeat_ngram)
        if (want_attention or use_coverage) and weights is None:
            raise Seq2SeqError("attention output and the coverage penalty need a model with attention")
        if use_coverage:
            coverage = coverage + weights.float()
        vocab = logp.size(1)

        # Best 2K extensions of the W open hypotheses of each sentence.
        cand = (scores.unsqueeze(2) + logp.view(n_alive, width, vocab)).view(n_alive, width * vocab)
        n_cand = min(2 * k, width * vocab)
        top_scores, top_index = cand.topk(n_cand, dim=1)                    # (A, 2K), best first
        if n_cand < k:                      # fewer extensions than beams: pad with dead (-inf) ones
            top_scores = F.pad(top_scores, (0, k - n_cand), value=NEG_INF)
            top_index = F.pad(top_index, (0, k - n_cand))
            n_cand = k
        top_beam, top_token = top_index // vocab, top_index % vocab
        parent = top_beam + (torch.arange(n_alive, device=device) * width).unsqueeze(1)   # rows of A*W
        cap = cap_all[alive]
        at_cap = (t + 1 >= cap).unsqueeze(1)
        ending = ((top_token == eos_id) | at_cap) & (top_scores > NEG_INF)
        finishing = ending & (torch.arange(n_cand, device=device) < k)

        if bool(finishing.any()):
            is_eos = top_token == eos_id
            length = torch.full_like(top_token, t + 1)                      # |Y|, <eos> included
            final = top_scores / length_penalty(length, options.length_penalty, options.length_normalization)
            if use_coverage:
                final = final + coverage_penalty(coverage[parent], src_mask[alive].unsqueeze(1),
                                                 options.coverage_penalty)
            tokens = torch.cat([history[parent], top_token.unsqueeze(2)], 2)   # (A, 2K, t+1)
            tokens = F.pad(tokens, (0, max_steps - t - 1), value=eos_id)
            attention = None
            if want_attention:
                attention = torch.cat([attn_history[parent], weights.float()[parent].unsqueeze(2)], 2)
                attention = F.pad(attention, (0, 0, 0, max_steps - t - 1))
            finished.merge(final.masked_fill(~finishing, NEG_INF), top_scores, length - is_eos.long(), is_eos,
                           tokens, attention)

        # Continue with the best K candidates that do not end.
        rank = torch.arange(n_cand, device=device).expand(n_alive, n_cand)
        chosen = torch.where(ending, rank + n_cand, rank).argsort(dim=1)[:, :k]        # (A, K)
        new_scores = top_scores.gather(1, chosen).masked_fill(ending.gather(1, chosen), NEG_INF)
        new_parent, new_token = parent.gather(1, chosen), top_token.gather(1, chosen)

        # A sentence is done when no open hypothesis can beat its nbest-th finished one.
        best_open = new_scores.max(dim=1).values
        bound = best_open / length_penalty(cap, options.length_penalty, options.length_normalization)
        done = at_cap.squeeze(1) | (finished.score[:, -1] >= bound)
        if bool(done.any()):
            for a in done.nonzero().flatten().tolist():
                b = int(alive[a])
                results[b] = finished.hypotheses(a, src_lengths[b])
            keep = (~done).nonzero().flatten()
            if keep.numel() == 0:
                break
            alive = alive[keep]
            finished.select(keep)
            new_scores, new_parent, new_token = new_scores[keep], new_parent[keep], new_token[keep]

        rows = new_parent.reshape(-1)                                       # (A' * K,)
        state = state.reorder(rows, beam=k)
        width = k
        history = torch.cat([history[rows], new_token.reshape(-1, 1)], 1)
        if want_attention:
            attn_history = torch.cat([attn_history[rows], weights.float()[rows].unsqueeze(1)], 1)
        if use_coverage:
            coverage = coverage[rows]
        scores = new_scores
        prev = new_token.reshape(-1)
    return results
