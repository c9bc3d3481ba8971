"""Recurrent decoder with attention, one step at a time or a whole target at once.

Two placements of attention (chosen by ``attention``):

- Luong et al. 2015 (``luong_dot|general|concat``): run the cell, then attend with
  its new state h_t and form the attentional state ``o_t = tanh(W_c [h_t; c_t])``
  (eq. 5); with input feeding (sec. 3.3) o_{t-1} joins the next cell input.
- Bahdanau et al. 2015 (``bahdanau``): attend with the previous state h_{t-1},
  feed the context c_t into the cell with y_{t-1} (eq. 4, appendix A.2.2), then
  ``o_t = tanh(W_c [h_t; c_t])``.
- ``none``: o_t = h_t (Sutskever et al. 2014; Cho et al. 2014 without the
  per-step context).

Logits are ``W_out o_t + b`` (W_out optionally the target embedding matrix: tied).

Decoder inputs (Cho et al. 2014, sec. 2.1 and appendix A.1.2):

- ``feed_previous_output``: y_{t-1} (its embedding) is part of the cell input;
- ``context_every_step``: the fixed source context c (see
  :class:`~seq2seq.modules.bridge.EncoderContext`) joins every cell input,
  s_t = f(s_{t-1}, y_{t-1}, c), and the output layer reads it too through Cho's
  maxout readout ``o'_t = max-pool_2(O_h o_t + O_y e(y_{t-1}) + O_c c)`` (A.1.2).

Copy attention (pointer-generator, See et al. 2017, eqs. 8-9): the output is
``P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{j: x_j = w} a_tj`` over the target
vocabulary extended by the sentence's unknown source words, with
``p_gen = sigmoid(w_c^T c_t + w_o^T o_t + w_x^T e(y_{t-1}) + b)`` (See uses the
decoder state s_t where this uses the attentional state o_t).  The decoder then
returns log-probabilities in place of logits (a log-softmax leaves them
unchanged).  Coverage (Tu et al. 2016; See et al. eqs. 10-11): the sum of past
attention weights c^t enters every attention score, so attention runs step by step.

Since c_t = sum_j a_tj h_j, the context half of W_c [h_t; c_t] equals
sum_j a_tj (W_cc h_j): ``memory_proj = W_cc h_j`` is computed once per batch and
each step needs only the attention weights.

:meth:`RNNDecoder.step` advances one position for search; :meth:`RNNDecoder.forward`
runs a teacher-forced target.  Without input feeding and with Luong attention or
none, nothing depends on the previous step's output, so the whole target goes
through the RNN in one call and attention is one batched matrix product: the fast
training path.  Otherwise the loop runs the cell equations on precomputed input
products (see :mod:`seq2seq.modules.rnn`); for the common input-feeding case (LSTM
layers, Luong attention, no coverage) that loop is
:class:`~seq2seq.modules.input_feeding.InputFeedingLoop`, whose backward through
time is written by hand (:attr:`RNNDecoder.fused_loop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.modules.activations import logistic_tanh
from seq2seq.modules.attention import AdditiveAttention, build_attention
from seq2seq.modules.dropout import Dropout, dropout_mask
from seq2seq.modules.encoders import EncoderOutput
from seq2seq.modules.input_feeding import Workspace, input_feeding_loop
from seq2seq.modules.rnn import CellWeights, RNNState, autocast_cast, cell_step, make_rnn, run_rnn


@dataclass
class DecoderState:
    """Everything the decoder carries from one step to the next.

    Rows (hypotheses) and sources: beam search runs ``beam`` consecutive rows per
    source sentence, and the source-side tensors are stored once per source, not
    once per row (the rows of a sentence attend to the same states).

    Attributes:
        hidden: (layers, rows, hidden) or the LSTM pair (h, c).
        feed: (rows, hidden) previous attentional state o_{t-1} (input feeding), or None.
        memory: (sources, src_len, memory_size) encoder states h_j, or None without attention.
        keys: (sources, src_len, K) precomputed attention keys, or None.
        memory_proj: (sources, src_len, hidden) W_cc h_j, the context half of W_c, or None.
        mask: (sources, src_len) True on real source tokens.
        context: (sources, M) the fixed source context c (context_every_step), or None.
        beam: rows per source (rows = sources * beam).
        coverage: (rows, src_len) the sum of past attention weights (coverage), or None.
        src_ext: (sources, src_len) the source in the extended vocabulary (copy), or None.
        ext_size: size of the extended vocabulary (copy: V + the batch's unknown words).
        input_table: (V, G) layer-0 input gates of every target token, ``W e(y) + b``,
            built at the first search step (see :meth:`RNNDecoder.step`), or None.
        weights: the cell's weight views for :meth:`RNNDecoder.step`, made at its
            first call and reused by the following steps of the same batch.
    """

    hidden: RNNState
    feed: Optional[Tensor]
    memory: Optional[Tensor]
    keys: Optional[Tensor]
    memory_proj: Optional[Tensor]
    mask: Tensor
    context: Optional[Tensor] = None
    beam: int = 1
    coverage: Optional[Tensor] = None
    src_ext: Optional[Tensor] = None
    ext_size: int = 0
    input_table: Optional[Tensor] = None
    weights: Optional[tuple] = None

    def reorder(self, index: Tensor, beam: Optional[int] = None) -> "DecoderState":
        """Select / reorder / repeat rows, e.g. for beam search.

        Args:
            index: (new_rows,) indices of current rows.  The new rows form groups of
                ``beam`` consecutive rows; all rows of a group must come from one
                source (as beam search's do), whose source-side tensors they share.
            beam: rows per source after the reorder (default: unchanged), e.g.
                ``state.reorder(torch.arange(B).repeat_interleave(K), beam=K)`` starts a beam.

        Returns:
            The new state; the source-side tensors are only copied when the set of
            sources changes.
        """
        beam = self.beam if beam is None else beam
        hidden = (tuple(h.index_select(1, index) for h in self.hidden) if isinstance(self.hidden, tuple)
                  else self.hidden.index_select(1, index))
        sources = index[::beam] // self.beam                                 # (new_sources,)
        if sources.numel() == self.mask.size(0) and bool((sources == torch.arange(
                sources.numel(), device=sources.device)).all()):
            src = lambda t: t  # noqa: E731
        else:
            src = lambda t: t.index_select(0, sources) if t is not None else None  # noqa: E731
        row = lambda t: t.index_select(0, index) if t is not None else None  # noqa: E731
        return DecoderState(hidden, row(self.feed), src(self.memory), src(self.keys), src(self.memory_proj),
                            src(self.mask), src(self.context), beam, row(self.coverage), src(self.src_ext),
                            self.ext_size, self.input_table, self.weights)

    def row_context(self) -> Optional[Tensor]:
        """The fixed context c per row, (rows, M), or None."""
        if self.context is None or self.beam == 1:
            return self.context
        return self.context.repeat_interleave(self.beam, dim=0)


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
        unk_id, bos_id: ids fed in place of copied unknown words / never predicted (copy).

    Attributes:
        fused_loop: run the teacher-forced input-feeding loop through
            :class:`~seq2seq.modules.input_feeding.InputFeedingLoop` where it applies
            (default True; False runs the same equations under autograd, step by step).
        workspace: that loop's reusable buffers.

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
        self.workspace = Workspace()
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
        # Cho et al. 2014's readout: O_h o_t + O_y e(y_{t-1}) + O_c c, maxout over pairs.
        self.readout = nn.Linear(hidden_size + embedding_size + memory_size, 2 * hidden_size) \
            if context_every_step else None
        # See et al. 2017 eq. 8: p_gen from the context, the (attentional) state and the input.
        self.copy_gate = nn.Linear(memory_size + hidden_size + embedding_size, 1) if copy else None
        self.tied = tie_embeddings
        if tie_embeddings:
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.output = nn.Linear(hidden_size, vocab_size)

    # ------------------------------------------------------------------ state
    def init_state(self, encoded: EncoderOutput, hidden: RNNState, context: Optional[Tensor] = None,
                   src_ext: Optional[Tensor] = None) -> DecoderState:
        """Start state from the encoder output, the bridge's initial hidden state,
        the source context c (batch, M), which ``context_every_step`` needs, and the
        source in the extended vocabulary src_ext (batch, src_len), which copy needs.

        Raises:
            ValueError: ``context_every_step`` without a context, copy without src_ext.
        """
        if self.context_every_step and context is None:
            raise ValueError("context_every_step needs the source context c")
        if self.copy and src_ext is None:
            raise ValueError("copy attention needs the source in the extended vocabulary (batch.src_ext)")
        memory = keys = memory_proj = None
        if self.attention is not None:
            memory = encoded.outputs
            keys = self.attention.precompute(memory)
            memory_proj = F.linear(memory, self.combine.weight[:, self.hidden_size:])
        feed = None
        if self.input_feeding:
            feed = encoded.outputs.new_zeros(encoded.outputs.size(0), self.hidden_size)
        coverage = encoded.mask.new_zeros(encoded.mask.shape, dtype=torch.float) if self.coverage else None
        ext_size = max(self.vocab_size, int(src_ext.max()) + 1) if self.copy else 0
        return DecoderState(hidden, feed, memory, keys, memory_proj, encoded.mask,
                            context if self.context_every_step else None, 1, coverage,
                            src_ext if self.copy else None, ext_size)

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

    def _output(self, o: Tensor, emb: Optional[Tensor], weights: Optional[Tensor], state: DecoderState) -> Tensor:
        """Scores of y_t: logits, or with copy attention log P over the extended vocabulary.

        o: (..., H) attentional states; emb: (..., E) inputs e(y_{t-1}); weights:
        (..., S) attention; one step (rows, .) or a whole target (B, T, .).
        """
        logits = self.logits(self._readout(o, emb, state))
        if not self.copy:
            return logits
        step = o.dim() == 2
        if step:                                            # rows grouped by source (beam search)
            context = torch.bmm(weights.view(-1, state.beam, weights.size(-1)), state.memory).view(o.size(0), -1)
            src_ext = state.src_ext.repeat_interleave(state.beam, 0) if state.beam > 1 else state.src_ext
        else:
            context = torch.bmm(weights, state.memory)
            src_ext = state.src_ext.unsqueeze(1).expand(-1, o.size(1), -1)
        specials = torch.zeros(logits.size(-1), dtype=torch.bool, device=logits.device)
        specials[[self.pad_id, self.bos_id]] = True          # never outputs
        p_vocab = torch.softmax(logits.float().masked_fill(specials, float("-inf")), dim=-1)
        p_gen = torch.sigmoid(self.copy_gate(torch.cat([context, o, emb], dim=-1)).float())   # (..., 1)
        dist = F.pad(p_gen * p_vocab, (0, state.ext_size - self.vocab_size))
        dist = dist.scatter_add(-1, src_ext, (1 - p_gen) * weights.float())
        # Zero-probability entries (specials, other sentences' unknown words) get -inf
        # after the log: clamping first keeps their gradient at 0 instead of nan.
        present = torch.zeros_like(dist, dtype=torch.bool).scatter_(-1, src_ext, True)
        extended = torch.arange(state.ext_size, device=dist.device) >= self.vocab_size
        impossible = F.pad(specials, (0, state.ext_size - self.vocab_size)) | (extended & ~present)
        return dist.clamp_min(1e-30).log().masked_fill(impossible, float("-inf"))

    def _lead(self, emb: Optional[Tensor], state: DecoderState, like: Tensor) -> Tensor:
        """The leading layer-0 inputs [e(y_{t-1}); c] (..., leading), for one step
        (emb (B, E)) or a whole target (emb (B, T, E)); ``like`` (B,) or (B, T) gives the shape."""
        parts = [emb] if self.feed_previous_output else []
        if self.context_every_step:
            c = state.row_context()
            parts.append(c if like.dim() == 1 else c.unsqueeze(1).expand(-1, like.size(1), -1))
        if not parts:
            return state.mask.new_zeros(*like.shape, 0, dtype=torch.float)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def _readout(self, o: Tensor, emb: Tensor, state: DecoderState) -> Tensor:
        """Cho et al. 2014's maxout readout when the context is fed at every step; else o.

        o: (..., H); emb: (..., E) embeddings of y_{t-1} -> (..., H).
        """
        if self.readout is None:
            return o
        c = state.row_context() if o.dim() == 2 else state.context.unsqueeze(1).expand(-1, o.size(1), -1)
        pre = self.readout(torch.cat([o, emb, c], dim=-1))
        return pre.unflatten(-1, (-1, 2)).max(-1).values

    def logits(self, o: Tensor) -> Tensor:
        """Output layer. o: (..., H) -> (..., V)."""
        if self.tied:
            return F.linear(o, self.embedding.weight, self.output_bias)
        return self.output(o)

    def _attentional(self, h: Tensor, weights: Tensor, state: DecoderState, w_ch: Tensor) -> Tensor:
        """o = tanh(W_ch h + b + sum_j a_j W_cc h_j). h: (B, T, H), weights: (B, T, S) -> (B, T, H)."""
        return logistic_tanh(F.linear(h, w_ch, self.combine.bias) + torch.bmm(weights, state.memory_proj))

    def _w_ch(self) -> Optional[Tensor]:
        """W_ch, the h half of W_c (a view), or None without attention."""
        return self.combine.weight[:, :self.hidden_size] if self.combine is not None else None

    def _step_weights(self) -> tuple[CellWeights, Optional[Tensor]]:
        """Weight views for a run of steps: the cell's, and W_ch cast once for autocast."""
        w_ch = self._w_ch()
        if w_ch is not None:
            w_ch = autocast_cast(w_ch)(w_ch)
        return CellWeights(self.rnn, self.leading), w_ch

    def _advance(self, gates0: Tensor, state: DecoderState, weights_: tuple[CellWeights, Optional[Tensor]]
                 ) -> tuple[Tensor, DecoderState, Optional[Tensor]]:
        """One position from layer-0 input products gates0 (rows, G).

        The ``beam`` rows of a source query its states together: (sources, beam, .)
        against (sources, src_len, .), so the source side is never copied per row.

        Returns o_t (rows, H) before dropout, the new state, weights (rows, S) or None.
        """
        cell, w_ch = weights_
        weights = None
        rows = gates0.size(0)
        grouped = lambda x: x.view(-1, state.beam, x.size(-1))  # noqa: E731  (rows, d) -> (sources, beam, d)
        coverage = grouped(state.coverage) if state.coverage is not None else None
        if self.style == "bahdanau":
            h_prev = (state.hidden[0] if isinstance(state.hidden, tuple) else state.hidden)[-1]
            weights = self.attention.probabilities(grouped(h_prev), state.keys, state.mask, coverage)  # (N, beam, S)
            context = torch.bmm(weights, state.memory).view(rows, -1)
            top, hidden = cell_step(cell, gates0, context, state.hidden)
            o = self._attentional(grouped(top), weights, state, w_ch).view(rows, -1)
        else:
            top, hidden = cell_step(cell, gates0, state.feed if self.input_feeding else None, state.hidden)
            if self.attention is not None:
                weights = self.attention.probabilities(grouped(top), state.keys, state.mask, coverage)
                o = self._attentional(grouped(top), weights, state, w_ch).view(rows, -1)
            else:
                o = top
        weights = weights.view(rows, -1) if weights is not None else None
        new = DecoderState(hidden, None, state.memory, state.keys, state.memory_proj, state.mask, state.context,
                           state.beam, state.coverage + weights if self.coverage else None, state.src_ext,
                           state.ext_size, state.input_table, state.weights)
        return o, new, weights

    # ------------------------------------------------------------------ API
    def step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Optional[Tensor]]:
        """Advance one target position.

        Args:
            prev_tokens: (batch,) the previous output y_{t-1} (``<bos>`` at t=1).
            state: the state after y_{t-1}.

        Returns:
            logits: (batch, V) unnormalised scores of y_t (copy: log-probabilities over
                the extended vocabulary, (batch, ext_size)).
            state: the new state.
            attention: (batch, src_len) weights a_t, or None without attention.

        In inference (eval mode, no gradients) with a small target vocabulary, the
        layer-0 input gates W e(y) + b of all V tokens are computed once and each
        step looks its rows up (:attr:`DecoderState.input_table`) instead of a
        (rows x E) x (E x G) product per step.
        """
        prev_tokens = self._known(prev_tokens)
        if state.weights is None:
            state.weights = self._step_weights()
        step_weights = state.weights
        if self._lookup_gates(prev_tokens, state):
            if state.input_table is None:
                state.input_table = step_weights[0].input_gates(self.embedding.weight)      # (V, G)
            gates0 = state.input_table.index_select(0, prev_tokens)
            emb = self.embedding(prev_tokens) if self.readout is not None or self.copy else None
        else:
            emb = self._embed(prev_tokens)
            gates0 = step_weights[0].input_gates(self._lead(emb, state, prev_tokens))
        o, state, weights = self._advance(gates0, state, step_weights)
        o = self.dropout(o)
        if self.input_feeding:
            state.feed = o
        return self._output(o, emb, weights, state), state, weights

    def _fusable(self) -> bool:
        """Whether the teacher-forced loop can run as :class:`InputFeedingLoop`: an LSTM
        (any number of layers) with input feeding and Luong attention, without coverage."""
        return (isinstance(self.rnn, nn.LSTM) and self.input_feeding and self.attention is not None
                and not self.coverage)

    def _input_feeding_loop(self, lead: Tensor, state: DecoderState, step_weights: tuple[CellWeights, Tensor],
                            keep: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """The teacher-forced steps through :class:`~seq2seq.modules.input_feeding.InputFeedingLoop`.

        lead: (B, T, leading) the cell inputs [e(y_{t-1}); c]; keep: (B, T, H) dropout
        mask of o_t or None.  Returns o: (B, T, H) after dropout and the weights (B, T, S).
        """
        cell, w_ch = step_weights
        cast = autocast_cast(w_ch)
        dtype = cell.w_hh_t[0].dtype
        layers = cell.layers
        if layers == 1:
            w_hh, w_up, b_up = cell.w_hh_t[0].t().unsqueeze(0), None, None
        else:
            w_hh = torch.stack([w.t() for w in cell.w_hh_t])                  # (N, 4H, H)
            w_up = torch.stack([w.t() for w in cell.w_in_t[1:]])             # (N - 1, 4H, H)
            b_up = cast(torch.stack(cell.b_in[1:]))                          # (N - 1, 4H)
        keep_up = None                                                       # dropout between layers
        if layers > 1 and cell.training and cell.dropout > 0:
            keep_up = dropout_mask((layers - 1, lead.size(0), lead.size(1), self.hidden_size), cell.dropout, lead)
        att = self.attention
        if isinstance(att, AdditiveAttention):
            scorer = (cast(att.query_layer.weight), cast(att.query_layer.bias), cast(att.energy.weight[0]))
        else:
            scorer = (None, None, None)
        neg_mask = torch.zeros(state.mask.shape, dtype=torch.promote_types(dtype, torch.float32),
                               device=state.mask.device).masked_fill_(~state.mask, float("-inf"))
        h0, c0 = state.hidden
        return input_feeding_loop(lead.to(dtype), cast(cell.w_lead), cast(cell.b_lead), h0, c0, cell.w_in_t[0].t(),
                                  w_hh, w_up, b_up, state.keys.to(dtype), state.memory_proj.to(dtype), w_ch,
                                  cast(self.combine.bias), *scorer, neg_mask, keep, keep_up, self.workspace)

    def _lookup_gates(self, prev_tokens: Tensor, state: DecoderState) -> bool:
        """Whether :meth:`step` reads its input gates from the per-token table: in
        inference only (embedding dropout and gradients need the product), when the
        cell's leading input is just e(y), and when the table (V rows) costs less
        than a few steps' products (rows each)."""
        return (not self.training and not torch.is_grad_enabled() and self.feed_previous_output
                and not self.context_every_step
                and (state.input_table is not None or self.embedding.num_embeddings <= 4 * prev_tokens.numel()))

    def forward(self, tgt_in: Tensor, state: DecoderState, return_attention: bool = False
                ) -> tuple[Tensor, Optional[Tensor]]:
        """Teacher-forced pass over a whole target.

        Args:
            tgt_in: (batch, tgt_len) ``<bos> y_1 .. y_{n}`` padded.
            state: from :meth:`init_state`.
            return_attention: also return the attention weights.

        Returns:
            logits: (batch, tgt_len, V) (copy: log-probabilities, (batch, tgt_len, ext_size)).
            attention: (batch, tgt_len, src_len) or None.
        """
        tgt_in = self._known(tgt_in)
        emb = self._embed(tgt_in)                                      # (B, T, E)
        lead = self._lead(emb, state, tgt_in)                          # (B, T, leading)
        weights = None
        if self.can_run_parallel:
            out, _ = run_rnn(self.rnn, lead, state.hidden)             # (B, T, H), one call
            if self.attention is not None:
                weights = self.attention.probabilities(out, state.keys, state.mask)
                o = self._attentional(out, weights, state, self._w_ch())
            else:
                o = out
            o = self.dropout(o)
        else:
            step_weights = self._step_weights()
            bsz, steps = tgt_in.shape
            keep = None                                                # one dropout mask for all steps
            if self.training and self.dropout.p > 0:
                keep = dropout_mask((bsz, steps, self.hidden_size), self.dropout.p, lead)
            if self.fused_loop and self._fusable():
                o, weights = self._input_feeding_loop(lead, state, step_weights, keep)
                return self._output(o, emb, weights, state), (weights if return_attention else None)
            gates0 = step_weights[0].input_gates(lead)                # (B, T, G), one product
            outs, ws = [], []
            for t, gates0_t in enumerate(gates0.unbind(1)):
                o_t, state, w_t = self._advance(gates0_t, state, step_weights)
                if keep is not None:
                    o_t = o_t * keep[:, t]
                if self.input_feeding:
                    state.feed = o_t
                outs.append(o_t)
                ws.append(w_t)
            o = torch.stack(outs, dim=1)
            if ws[0] is not None:
                weights = torch.stack(ws, dim=1)
        # The loop's last state carries the same source-side tensors (memory, c, src_ext).
        return self._output(o, emb, weights, state), (weights if return_attention else None)
