"""Recurrent decoder with attention: one set of step equations, run one position at
a time or a whole target at once.

Two placements of attention (chosen by ``attention``):

- Luong et al. 2015 (``luong_dot|general|concat``): run the cell, then attend with
  its new state h_t and form the attentional state ``o_t = tanh(W_c [h_t; c_t])``
  (eq. 5); with input feeding (sec. 3.3) o_{t-1} joins the next cell input.
- Bahdanau et al. 2015 (``bahdanau``): attend with the previous state h_{t-1},
  feed the context c_t into the cell with y_{t-1} (eq. 4, appendix A.2.2), then
  ``o_t = tanh(W_c [h_t; c_t])``.
- ``none``: o_t = h_t (Sutskever et al. 2014; Cho et al. 2014 without the
  per-step context).

Decoder inputs (Cho et al. 2014, sec. 2.1 and appendix A.1.2):

- ``feed_previous_output``: y_{t-1} (its embedding) is part of the cell input;
- ``context_every_step``: the fixed source context c (see
  :class:`~seq2seq.modules.bridge.EncoderContext`) joins every cell input,
  s_t = f(s_{t-1}, y_{t-1}, c), and the output reads it through Cho's maxout readout.

Coverage (Tu et al. 2016; See et al. eqs. 10-11): the sum of past attention
weights enters every attention score.  Output heads (:mod:`seq2seq.modules.heads`):
logits ``W_out o_t + b`` (W_out optionally the target embedding matrix: tied), Cho's
maxout readout, See et al.'s pointer-generator (copy: log-probabilities over an
extended vocabulary in place of logits, which a log-softmax leaves unchanged).

Since c_t = sum_j a_tj h_j, the context half of W_c [h_t; c_t] equals
sum_j a_tj (W_cc h_j): ``memory_proj = W_cc h_j`` is computed once per source
(:class:`SourceMemory`) and each step needs only the attention weights.

The equations are written once, in :meth:`RNNDecoder._reference_step`, which
:meth:`RNNDecoder.step` (search) and the teacher-forced loop of
:meth:`RNNDecoder.forward` both call.  Two kernels compute the same for a whole
target, faster: without input feeding, Bahdanau attention and coverage, nothing
depends on the previous output, so the RNN runs once over the target and
attention is one batched product; with input feeding (LSTM, no coverage),
:class:`~seq2seq.modules.input_feeding.InputFeedingLoop` runs the loop with a
hand-written backward (:attr:`RNNDecoder.fused_loop`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.modules.activations import logistic_tanh
from seq2seq.modules.attention import AdditiveAttention, build_attention
from seq2seq.modules.dropout import Dropout, dropout_mask
from seq2seq.modules.encoders import EncoderOutput
from seq2seq.modules.heads import Generator, MaxoutReadout, PointerGenerator
from seq2seq.modules.input_feeding import LoopWeights, input_feeding_loop
from seq2seq.modules.rnn import CellWeights, RNNState, autocast_cast, cell_step, make_rnn, run_rnn


@dataclass(frozen=True)
class SourceMemory:
    """What the decoder reads of each source sentence, shared by all its hypotheses.

    Attributes:
        mask: (sources, src_len) True on real source tokens.
        states: (sources, src_len, M) encoder states h_j, or None without attention.
        keys: (sources, src_len, K) their attention keys, or None.
        memory_proj: (sources, src_len, H) W_cc h_j, the context half of W_c, or None.
        context: (sources, M) the fixed source context c (context_every_step), or None.
        src_ext: (sources, src_len) the source in the extended vocabulary (copy), or None.
        ext_size: size of the extended vocabulary (copy: V + the batch's unknown words).
    """

    mask: Tensor
    states: Optional[Tensor] = None
    keys: Optional[Tensor] = None
    memory_proj: Optional[Tensor] = None
    context: Optional[Tensor] = None
    src_ext: Optional[Tensor] = None
    ext_size: int = 0

    def select(self, sources: Tensor) -> "SourceMemory":
        """The memory of the sources at ``sources`` (new_sources,), in that order."""
        pick = lambda t: t.index_select(0, sources) if t is not None else None  # noqa: E731
        return SourceMemory(pick(self.mask), pick(self.states), pick(self.keys), pick(self.memory_proj),
                            pick(self.context), pick(self.src_ext), self.ext_size)


def reselect_sources(source, index: Tensor, beam_before: int, beam_after: int):
    """The per-source memory for the rows ``index`` picks (see :meth:`DecoderState.reorder`).

    Args:
        source: the memory of the current sources (anything with ``mask: (sources, src_len)``
            and ``select(sources)``: :class:`SourceMemory`, the Transformer's memory).
        index: (new_rows,) indices of current rows, in groups of ``beam_after`` rows that
            come from one source each.
        beam_before: rows per source now; beam_after: rows per source after the reorder.

    Returns:
        ``source`` itself when the new groups are the same sources in the same order
        (a beam step), else ``source.select`` of the new groups' sources.
    """
    sources = index[::beam_after] // beam_before                           # (new_sources,)
    if sources.numel() == source.mask.size(0) and bool(
            (sources == torch.arange(sources.numel(), device=sources.device)).all()):
        return source
    return source.select(sources)


class StepCache(NamedTuple):
    """What the :meth:`RNNDecoder.step` calls of one decoding run reuse; the first makes it."""

    cell: CellWeights                       # the cell's weight views (cast for autocast)
    w_ch: Optional[Tensor]                  # (H, H) the h half of W_c (cast), or None without attention
    input_table: Optional[Tensor] = None    # (V, G) W e(y) + b of every token (inference, see step), or None


@dataclass(frozen=True)
class DecoderState:
    """The state of each hypothesis (row) after a target prefix.

    Beam search runs ``beam`` consecutive rows per source sentence; the rows of a
    source share its :class:`SourceMemory` (stored once per source, not per row).

    Attributes:
        hidden: (layers, rows, H) or the LSTM pair (h, c).
        source: the memory of the rows' sources (sources = rows / beam).
        feed: (rows, H) the previous attentional state o_{t-1} (input feeding), or None.
        coverage: (rows, src_len) the sum of past attention weights (coverage), or None.
        beam: rows per source.
        cache: made by the first :meth:`RNNDecoder.step` of a decoding run and carried by
            the states it returns (never written onto a state passed in), or None.
    """

    hidden: RNNState
    source: SourceMemory
    feed: Optional[Tensor] = None
    coverage: Optional[Tensor] = None
    beam: int = 1
    cache: Optional[StepCache] = None

    def reorder(self, index: Tensor, beam: Optional[int] = None) -> "DecoderState":
        """Select / reorder / repeat rows, e.g. for beam search.

        Args:
            index: (new_rows,) indices of current rows.  The new rows form groups of
                ``beam`` consecutive rows; all rows of a group must come from one
                source (as beam search's do), whose memory they share.
            beam: rows per source after the reorder (default: unchanged), e.g.
                ``state.reorder(torch.arange(B).repeat_interleave(K), beam=K)`` starts a beam.

        Returns:
            The new state; the source memory is only re-selected when the set of
            sources changes.
        """
        beam = self.beam if beam is None else beam
        hidden = (tuple(h.index_select(1, index) for h in self.hidden) if isinstance(self.hidden, tuple)
                  else self.hidden.index_select(1, index))
        source = reselect_sources(self.source, index, self.beam, beam)
        row = lambda t: t.index_select(0, index) if t is not None else None  # noqa: E731
        return DecoderState(hidden, source, row(self.feed), row(self.coverage), beam, self.cache)

    def per_row(self, t: Tensor, like: Tensor) -> Tensor:
        """A per-source tensor t (sources, ...) for each row (rows, ...) when ``like``
        is (rows,), or for each position (rows, T, ...) when ``like`` is (rows, T).

        Rows per source come from the shapes (rows / sources), not from ``beam``, so
        a traced step (:mod:`seq2seq.export`) serves any beam size."""
        if like.dim() == 2:
            return t.unsqueeze(1).expand(-1, like.size(1), *t.shape[1:])
        rows, sources = like.size(0), t.size(0)
        return t.unsqueeze(1).expand(sources, rows // sources, *t.shape[1:]).reshape(rows, *t.shape[1:])


class RNNDecoder(nn.Module):
    """Embedding + RNN/GRU/LSTM decoder with optional attention.

    Args:
        vocab_size: target vocabulary size V.
        cell: ``rnn``, ``gru`` or ``lstm``.
        embedding_size: E.
        hidden_size: H.
        layers: stacked layers.
        dropout: on embeddings, between layers and on o_t.
        attention: ``none``, ``bahdanau``, ``luong_dot``, ``luong_general``, ``luong_concat``.
        memory_size: encoder output size M (directions concatenated).
        attention_size: hidden size of additive scorers (default H).
        input_feeding: feed o_{t-1} into the next cell input (Luong only).
        context_every_step: feed the source context c (size M) into every cell input
            and the readout (Cho et al. 2014).
        feed_previous_output: feed the embedding of y_{t-1} into the cell.
        tie_embeddings: share W_out with the target embedding (needs E == H).
        pad_id: padding id.
        copy: pointer-generator output over the extended vocabulary (needs attention).
        coverage: coverage vector in the attention scores (needs attention).
        unk_id: id fed in place of a copied unknown word (copy attention).
        bos_id: id never predicted (copy attention).

    Attributes:
        fused_loop: run the teacher-forced input-feeding loop through
            :class:`~seq2seq.modules.input_feeding.InputFeedingLoop` where it applies
            (default True; False runs the reference step under autograd).

    Raises:
        ValueError: a cell with no input at all (no previous output, context,
            Bahdanau context or input feeding), or copy / coverage without attention.
    """

    def __init__(self, vocab_size: int, cell: str, embedding_size: int, hidden_size: int,
                 layers: int, dropout: float, attention: str, memory_size: int,
                 attention_size: Optional[int] = None, input_feeding: bool = False,
                 tie_embeddings: bool = False, pad_id: int = 0, context_every_step: bool = False,
                 feed_previous_output: bool = True, copy: bool = False, coverage: bool = False,
                 unk_id: int = 1, bos_id: int = 2):
        super().__init__()
        self.fused_loop = True
        if (copy or coverage) and attention == "none":
            raise ValueError("copy attention and coverage need an attention type")
        self.copy, self.coverage = copy, coverage
        self.vocab_size, self.pad_id, self.unk_id, self.bos_id = vocab_size, pad_id, unk_id, bos_id
        self.style = "none" if attention == "none" else ("bahdanau" if attention == "bahdanau" else "luong")
        self.input_feeding = input_feeding and self.style == "luong"
        self.context_every_step, self.feed_previous_output = context_every_step, feed_previous_output
        self.hidden_size = hidden_size
        need_embedding = feed_previous_output or tie_embeddings or context_every_step or copy
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id) if need_embedding else None
        self.dropout = Dropout(dropout)
        # Layer-0 input columns: [e(y_{t-1}) | c | Bahdanau context c_t | o_{t-1}]; the first
        # two ("leading") go through one product for the whole target.
        self.leading = (embedding_size if feed_previous_output else 0) + (memory_size if context_every_step else 0)
        rnn_input = self.leading + (memory_size if self.style == "bahdanau" else 0) + (
            hidden_size if self.input_feeding else 0)
        if rnn_input == 0:
            raise ValueError("the decoder cell has no input: feed the previous output, the context, "
                             "Bahdanau attention or input feeding")
        self.rnn = make_rnn(cell, rnn_input, hidden_size, layers, dropout)
        self.attention = build_attention(attention, hidden_size, memory_size, attention_size, coverage)
        # W_c of o_t = tanh(W_c [h_t; c_t] + b): columns [:H] act on h_t, [H:] on c_t.
        self.combine = nn.Linear(hidden_size + memory_size, hidden_size) if self.attention else None
        self.readout = MaxoutReadout(hidden_size, embedding_size, memory_size) if context_every_step else None
        self.copy_gate = PointerGenerator(memory_size, hidden_size, embedding_size, vocab_size,
                                          (pad_id, bos_id)) if copy else None
        self.tied = tie_embeddings
        if tie_embeddings:
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.output = Generator(hidden_size, vocab_size)

    # ------------------------------------------------------------------ state
    def init_state(self, encoded: EncoderOutput, hidden: RNNState, context: Optional[Tensor] = None,
                   src_ext: Optional[Tensor] = None) -> DecoderState:
        """The start state of a decoding run.

        Args:
            encoded: the encoder output: states h_j (batch, src_len, M) and mask (batch, src_len).
            hidden: the bridge's initial state, (layers, batch, H) or the LSTM pair.
            context: (batch, M) the source context c, which ``context_every_step`` needs.
            src_ext: (batch, src_len) the source in the extended vocabulary, which copy needs.

        Raises:
            ValueError: ``context_every_step`` without a context, copy without src_ext.
        """
        if self.context_every_step and context is None:
            raise ValueError("context_every_step needs the source context c")
        if self.copy and src_ext is None:
            raise ValueError("copy attention needs the source in the extended vocabulary (batch.src_ext)")
        source = SourceMemory(encoded.mask, context=context if self.context_every_step else None)
        if self.attention is not None:
            memory = encoded.outputs
            source = replace(source, states=memory, keys=self.attention.precompute(memory),
                             memory_proj=F.linear(memory, self.combine.weight[:, self.hidden_size:]))
        if self.copy:
            source = replace(source, src_ext=src_ext, ext_size=max(self.vocab_size, int(src_ext.max()) + 1))
        feed = encoded.outputs.new_zeros(encoded.outputs.size(0), self.hidden_size) if self.input_feeding else None
        coverage = encoded.mask.new_zeros(encoded.mask.shape, dtype=torch.float) if self.coverage else None
        return DecoderState(hidden, source, feed, coverage)

    @property
    def can_run_parallel(self) -> bool:
        """True when a teacher-forced pass can run the RNN over the whole target at once."""
        return self.style != "bahdanau" and not self.input_feeding and not self.coverage

    # ------------------------------------------------------------------ pieces
    def _embed(self, tokens: Tensor) -> Optional[Tensor]:
        """Dropped-out embeddings e(y) (..., E), or None when nothing reads them."""
        return self.dropout(self.embedding(tokens)) if self.embedding is not None else None

    def _known(self, tokens: Tensor) -> Tensor:
        """Copied unknown words (ids >= V) are read back as ``<unk>`` (See et al. 2017)."""
        return tokens.masked_fill(tokens >= self.vocab_size, self.unk_id) if self.copy else tokens

    def _lead(self, emb: Optional[Tensor], state: DecoderState, like: Tensor) -> Tensor:
        """The leading layer-0 inputs [e(y_{t-1}); c] (..., leading), for one step
        (emb (B, E)) or a whole target (emb (B, T, E)); ``like`` (B,) or (B, T) gives the shape."""
        parts = [emb] if self.feed_previous_output else []
        if self.context_every_step:
            parts.append(state.per_row(state.source.context, like))
        if not parts:
            return state.source.mask.new_zeros(*like.shape, 0, dtype=torch.float)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def _scores(self, o: Tensor, emb: Optional[Tensor], weights: Optional[Tensor], state: DecoderState,
                like: Tensor) -> Tensor:
        """Scores of y_t from the output heads: logits, or with copy attention log P
        over the extended vocabulary.

        o: (..., H) attentional states; emb: (..., E) inputs e(y_{t-1}); weights:
        (..., S) attention; one step (rows, .) or a whole target (B, T, .) as ``like``.
        """
        src = state.source
        readout = o if self.readout is None else self.readout(o, emb, state.per_row(src.context, like))
        logits = self.logits(readout)
        if self.copy_gate is None:
            return logits
        # c_t: one step's rows query their source in groups of ``beam`` (beam search)
        context = torch.bmm(weights.view(src.states.size(0), -1, weights.size(-1)), src.states)
        return self.copy_gate(logits, context.view(*o.shape[:-1], -1), o, emb, weights,
                              state.per_row(src.src_ext, like), src.ext_size)

    def logits(self, o: Tensor) -> Tensor:
        """Output layer. o: (..., H) -> (..., V)."""
        if self.tied:
            return F.linear(o, self.embedding.weight, self.output_bias)
        return self.output(o)

    def _attentional(self, h: Tensor, weights: Tensor, source: SourceMemory, w_ch: Tensor) -> Tensor:
        """o = tanh(W_ch h + b + sum_j a_j W_cc h_j) (Luong eq. 5).
        h: (B, T, H), weights: (B, T, S) -> (B, T, H)."""
        return logistic_tanh(F.linear(h, w_ch, self.combine.bias) + torch.bmm(weights, source.memory_proj))

    def _step_cache(self) -> StepCache:
        """Weight views for a run of steps: the cell's, and W_ch cast once for autocast."""
        w_ch = self.combine.weight[:, :self.hidden_size] if self.combine is not None else None
        if w_ch is not None:
            w_ch = autocast_cast(w_ch)(w_ch)
        return StepCache(CellWeights(self.rnn, self.leading), w_ch)

    def _reference_step(self, gates0: Tensor, state: DecoderState, cache: StepCache,
                        keep: Optional[Tensor] = None) -> tuple[Tensor, DecoderState, Optional[Tensor]]:
        """The reference step: every variant's equations for one position.

        Bahdanau: a_t = softmax(score(h_{t-1}, h_j)), c_t = sum_j a_tj h_j, then the
        cell reads [e(y_{t-1}); c; c_t]; Luong: the cell reads [e(y_{t-1}); c; o_{t-1}]
        (o_{t-1} with input feeding), then a_t = softmax(score(h_t, h_j)); both:
        o_t = tanh(W_c [h_t; c_t] + b).  Without attention o_t = h_t.  Coverage adds
        a_t to the sum that enters the next scores.

        The ``beam`` rows of a source query its states together: (sources, beam, .)
        against (sources, src_len, .), so the source side is never copied per row.

        Args:
            gates0: (rows, G) the layer-0 input products of the leading inputs.
            state: the state after y_{t-1} (not modified).
            cache: the weight views (:meth:`_step_cache`).
            keep: (rows, H) dropout mask of o_t, or None to draw one (training).

        Returns:
            o_t (rows, H) after dropout, the new state (carrying ``cache``), the
            attention weights (rows, S) or None.
        """
        src, rows = state.source, gates0.size(0)
        # (rows, d) -> (sources, beam, d); sources from the memory's shape, so a traced step serves any beam
        grouped = lambda x: x.view(src.mask.size(0), -1, x.size(-1))  # noqa: E731
        coverage = grouped(state.coverage) if state.coverage is not None else None
        weights = None
        if self.style == "bahdanau":
            h_prev = (state.hidden[0] if isinstance(state.hidden, tuple) else state.hidden)[-1]
            weights = self.attention.probabilities(grouped(h_prev), src.keys, src.mask, coverage)  # (N, beam, S)
            top, hidden = cell_step(cache.cell, gates0, torch.bmm(weights, src.states).view(rows, -1), state.hidden)
        else:
            top, hidden = cell_step(cache.cell, gates0, state.feed, state.hidden)
            if self.attention is not None:
                weights = self.attention.probabilities(grouped(top), src.keys, src.mask, coverage)
        o = top if weights is None else self._attentional(grouped(top), weights, src, cache.w_ch).view(rows, -1)
        o = self.dropout(o) if keep is None else o * keep
        weights = weights.view(rows, -1) if weights is not None else None
        coverage = state.coverage + weights if self.coverage else None
        return o, DecoderState(hidden, src, o if self.input_feeding else None, coverage, state.beam, cache), weights

    # ------------------------------------------------------------------ API
    def step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Optional[Tensor]]:
        """Advance one target position (:meth:`_reference_step` and the output heads).

        Args:
            prev_tokens: (batch,) the previous output y_{t-1} (``<bos>`` at t=1).
            state: the state after y_{t-1}; it is not modified, so a state can be
                stepped more than once.

        Returns:
            logits: (batch, V) unnormalised scores of y_t (copy: log-probabilities over
                the extended vocabulary, (batch, ext_size)).
            state: the new state.
            attention: (batch, src_len) weights a_t, or None without attention.

        The first step of a run builds a :class:`StepCache`, which the states it
        returns carry.  In inference (eval mode, no gradients) with e(y) the only
        leading input and V <= 4 x rows, the cache also holds the layer-0 input gates
        W e(y) + b of all V tokens, and each step looks its rows up instead of a
        (rows x E) x (E x G) product.
        """
        prev_tokens = self._known(prev_tokens)
        cache = state.cache if state.cache is not None else self._step_cache()
        lookup = (not self.training and not torch.is_grad_enabled() and self.feed_previous_output
                  and not self.context_every_step)
        if lookup and cache.input_table is None and self.embedding.num_embeddings <= 4 * prev_tokens.numel():
            cache = cache._replace(input_table=cache.cell.input_gates(self.embedding.weight))   # (V, G)
        if lookup and cache.input_table is not None:
            gates0 = cache.input_table.index_select(0, prev_tokens)
            emb = self.embedding(prev_tokens) if self.readout is not None or self.copy else None
        else:
            emb = self._embed(prev_tokens)
            gates0 = cache.cell.input_gates(self._lead(emb, state, prev_tokens))
        o, state, weights = self._reference_step(gates0, state, cache)
        return self._scores(o, emb, weights, state, prev_tokens), state, weights

    def _input_feeding_loop(self, lead: Tensor, state: DecoderState, cache: StepCache, keep: Optional[Tensor]
                            ) -> tuple[Tensor, Tensor]:
        """The teacher-forced steps through :class:`~seq2seq.modules.input_feeding.InputFeedingLoop`.

        lead: (B, T, leading) the cell inputs [e(y_{t-1}); c]; keep: (B, T, H) dropout
        mask of o_t or None.  Returns o: (B, T, H) after dropout and the weights (B, T, S).
        """
        cell, src, cast = cache.cell, state.source, autocast_cast(cache.w_ch)
        dtype, (h0, c0), keep_up = cell.w_hh_t[0].dtype, state.hidden, None
        w_hh, w_up, b_up = cell.w_hh_t[0].t().unsqueeze(0), None, None
        if cell.layers > 1:
            w_hh = torch.stack([w.t() for w in cell.w_hh_t])                  # (N, 4H, H)
            w_up = torch.stack([w.t() for w in cell.w_in_t[1:]])             # (N - 1, 4H, H)
            b_up = cast(torch.stack(cell.b_in[1:]))                          # (N - 1, 4H)
            if cell.training and cell.dropout > 0:                           # dropout between layers
                keep_up = dropout_mask((cell.layers - 1, *lead.shape[:2], self.hidden_size), cell.dropout, lead)
        att = self.attention
        scorer = (cast(att.query_layer.weight), cast(att.query_layer.bias), cast(att.energy.weight[0])) \
            if isinstance(att, AdditiveAttention) else (None, None, None)
        weights = LoopWeights(cast(cell.w_lead), cast(cell.b_lead), cell.w_in_t[0].t(), w_hh, w_up, b_up,
                              cache.w_ch, cast(self.combine.bias), *scorer)
        neg_mask = torch.zeros(src.mask.shape, dtype=torch.promote_types(dtype, torch.float32),
                               device=src.mask.device).masked_fill_(~src.mask, float("-inf"))
        return input_feeding_loop(lead.to(dtype), h0, c0, src.keys.to(dtype), src.memory_proj.to(dtype), neg_mask,
                                  keep, keep_up, weights)

    def forward(self, tgt_in: Tensor, state: DecoderState, return_attention: bool = False
                ) -> tuple[Tensor, Optional[Tensor]]:
        """Teacher-forced pass over a whole target.

        Args:
            tgt_in: (batch, tgt_len) ``<bos> y_1 .. y_{n}`` padded.
            state: from :meth:`init_state` (not modified).
            return_attention: also return the attention weights.

        Returns:
            logits: (batch, tgt_len, V) (copy: log-probabilities, (batch, tgt_len, ext_size)).
            attention: (batch, tgt_len, src_len) or None.
        """
        tgt_in = self._known(tgt_in)
        emb = self._embed(tgt_in)                                      # (B, T, E)
        lead = self._lead(emb, state, tgt_in)                          # (B, T, leading)
        weights = None
        if self.can_run_parallel:                                      # the one-call kernel
            o, _ = run_rnn(self.rnn, lead, state.hidden)               # (B, T, H)
            if self.attention is not None:
                weights = self.attention.probabilities(o, state.source.keys, state.source.mask)
                o = self._attentional(o, weights, state.source, self.combine.weight[:, :self.hidden_size])
            o = self.dropout(o)
        else:
            cache = self._step_cache()
            keep = None                                                # one dropout mask for all steps
            if self.training and self.dropout.p > 0:
                keep = dropout_mask((*tgt_in.shape, self.hidden_size), self.dropout.p, lead)
            if self.fused_loop and isinstance(self.rnn, nn.LSTM) and self.input_feeding and not self.coverage:
                o, weights = self._input_feeding_loop(lead, state, cache, keep)
            else:                                                      # the reference step, position by position
                outs, ws = [], []
                for t, gates0_t in enumerate(cache.cell.input_gates(lead).unbind(1)):
                    o_t, state, w_t = self._reference_step(gates0_t, state, cache, None if keep is None else keep[:, t])
                    outs.append(o_t)
                    ws.append(w_t)
                o = torch.stack(outs, dim=1)
                weights = torch.stack(ws, dim=1) if ws[0] is not None else None
        return self._scores(o, emb, weights, state, tgt_in), (weights if return_attention else None)
