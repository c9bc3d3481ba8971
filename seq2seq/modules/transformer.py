"""Transformer encoder and decoder (Vaswani et al. 2017) on torch.nn layers, with the
same interfaces as the recurrent ones, so the two families swap by a config line.

- :class:`TransformerEncoder`: token embedding (scaled by sqrt(d), sec. 3.4) plus
  sinusoidal positions (sec. 3.5), then ``nn.TransformerEncoderLayer`` blocks
  (pre-norm: layer norm before each sub-layer, which trains stably without
  warm-up on small data; Xiong et al. 2020).  Its :class:`EncoderOutput` has
  ``final`` = the mean of the states over real positions, so a recurrent decoder's
  bridge can start from it.
- :class:`TransformerDecoder`: masked self-attention, cross-attention over the
  encoder states and a feed-forward block per layer (sec. 3.1), written with
  ``nn.MultiheadAttention`` so the cross-attention weights (averaged over heads,
  last layer) can be returned like the RNN decoder's attention.  ``step`` re-runs
  the decoder over the prefix (no key/value cache): O(t^2) per sentence, fine for
  the short outputs of G2P and word-level tasks.

Padding: source padding is masked out of every attention; the causal mask keeps
each target position from seeing later ones, so target padding (always at the
end) never changes a real position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from seq2seq.modules.encoders import EncoderOutput


def sinusoidal_positions(length: int, size: int, device=None) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (Vaswani et al. 2017, sec. 3.5).

    Returns:
        (length, size).
    """
    pos = torch.arange(length, dtype=torch.float, device=device).unsqueeze(1)
    rate = torch.exp(torch.arange(0, size, 2, dtype=torch.float, device=device) * (-math.log(10000.0) / size))
    pe = torch.zeros(length, size, device=device)
    pe[:, 0::2] = torch.sin(pos * rate)
    pe[:, 1::2] = torch.cos(pos * rate)[:, :size // 2]
    return pe


class _Embed(nn.Module):
    """Token embedding (projected to d_model when the sizes differ), scaled, plus positions."""

    def __init__(self, vocab_size: int, embedding_size: int, d_model: int, dropout: float, pad_id: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
        # N(0, 1/E) so that after the sqrt(d) scale tokens and positions have similar
        # magnitudes (torch's default N(0, 1) would drown the positions).
        nn.init.normal_(self.embedding.weight, 0.0, embedding_size ** -0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.proj = nn.Linear(embedding_size, d_model, bias=False) if embedding_size != d_model else None
        self.scale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout)
        self.d_model = d_model

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens: (batch, len) -> (batch, len, d_model)."""
        x = self.embedding(tokens)
        if self.proj is not None:
            x = self.proj(x)
        x = x * self.scale + sinusoidal_positions(tokens.size(1), self.d_model, tokens.device)
        return self.dropout(x)


class TransformerEncoder(nn.Module):
    """Self-attention encoder.

    Args:
        vocab_size: source vocabulary size.
        embedding_size: E (projected to d_model when different).
        d_model: model width (the config's ``hidden_size``).
        heads: attention heads (d_model must divide by it).
        layers: encoder blocks.
        ff_size: feed-forward width.
        dropout: on embeddings, attention weights and sub-layer outputs.
        pad_id: padding id.

    Raises:
        ValueError: d_model not divisible by heads.
    """

    def __init__(self, vocab_size: int, embedding_size: int, d_model: int, heads: int, layers: int,
                 ff_size: int, dropout: float, pad_id: int = 0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"hidden_size {d_model} must be divisible by heads {heads}")
        self.embed = _Embed(vocab_size, embedding_size, d_model, dropout, pad_id)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff_size, dropout, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.output_size = d_model

    def forward(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor) -> EncoderOutput:
        """Args:
            src: (batch, src_len) ids; src_lengths: (batch,); src_mask: (batch, src_len) True on real tokens.

        Returns:
            :class:`EncoderOutput`: outputs (batch, src_len, d_model), zero on padding;
            final (1, batch, d_model), the mean over real positions.
        """
        out = self.layers(self.embed(src), src_key_padding_mask=~src_mask)
        out = out.masked_fill(~src_mask.unsqueeze(-1), 0.0)
        mean = out.sum(1) / src_mask.sum(1, keepdim=True).clamp_min(1).to(out.dtype)
        return EncoderOutput(out, mean.unsqueeze(0), src_mask)


class _DecoderLayer(nn.Module):
    """Pre-norm block: masked self-attention, cross-attention, feed-forward (sec. 3.1)."""

    def __init__(self, d_model: int, heads: int, ff_size: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_size), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(ff_size, d_model))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, causal: Tensor, memory_pad: Tensor, want_weights: bool
                ) -> tuple[Tensor, Optional[Tensor]]:
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, h, attn_mask=causal, need_weights=False)[0])
        h = self.norm2(x)
        y, w = self.cross_attn(h, memory, memory, key_padding_mask=memory_pad, need_weights=want_weights)
        x = x + self.dropout(y)
        return x + self.dropout(self.ff(self.norm3(x))), w


@dataclass
class TransformerState:
    """Decoder state for search: the output prefix and the encoder side.

    Attributes:
        prefix: (rows, t) tokens fed so far (``<bos>`` first).
        memory: (sources, src_len, d_model) encoder states (projected).
        mask: (sources, src_len) True on real source tokens.
        beam: rows per source.
    """

    prefix: Tensor
    memory: Tensor
    mask: Tensor
    beam: int = 1

    def reorder(self, index: Tensor, beam: Optional[int] = None) -> "TransformerState":
        """Select / reorder / repeat rows (see :meth:`DecoderState.reorder`)."""
        beam = self.beam if beam is None else beam
        sources = index[::beam] // self.beam
        return TransformerState(self.prefix.index_select(0, index), self.memory.index_select(0, sources),
                                self.mask.index_select(0, sources), beam)


class TransformerDecoder(nn.Module):
    """Causal self-attention decoder with cross-attention over the encoder states.

    Args:
        vocab_size: V; embedding_size: E; d_model: width; heads; layers; ff_size; dropout.
        memory_size: encoder output size (projected to d_model when different).
        tie_embeddings: output layer = target embedding (needs E == d_model).
        pad_id: padding id.
    """

    can_run_parallel = True

    def __init__(self, vocab_size: int, embedding_size: int, d_model: int, heads: int, layers: int,
                 ff_size: int, dropout: float, memory_size: int, tie_embeddings: bool = False, pad_id: int = 0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"hidden_size {d_model} must be divisible by heads {heads}")
        self.embed = _Embed(vocab_size, embedding_size, d_model, dropout, pad_id)
        self.memory_proj = nn.Linear(memory_size, d_model) if memory_size != d_model else None
        self.layers = nn.ModuleList(_DecoderLayer(d_model, heads, ff_size, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.tied = tie_embeddings
        if tie_embeddings:
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.output = nn.Linear(d_model, vocab_size)

    def init_state(self, encoded: EncoderOutput, hidden=None, context: Optional[Tensor] = None
                   ) -> TransformerState:
        """Start state: an empty prefix and the (projected) encoder states; ``hidden``
        and ``context`` (an RNN decoder's bridge inputs) are not used."""
        memory = encoded.outputs if self.memory_proj is None else self.memory_proj(encoded.outputs)
        empty = torch.zeros(memory.size(0), 0, dtype=torch.long, device=memory.device)
        return TransformerState(empty, memory, encoded.mask)

    def _run(self, tokens: Tensor, memory: Tensor, mask: Tensor, want_weights: bool
             ) -> tuple[Tensor, Optional[Tensor]]:
        """tokens (B, T), memory (B, S, d), mask (B, S) -> logits (B, T, V), weights (B, T, S) or None."""
        steps = tokens.size(1)
        causal = torch.triu(torch.ones(steps, steps, dtype=torch.bool, device=tokens.device), diagonal=1)
        x = self.embed(tokens)
        weights = None
        for i, layer in enumerate(self.layers):
            x, w = layer(x, memory, causal, ~mask, want_weights and i == len(self.layers) - 1)
            weights = w if w is not None else weights
        x = self.norm(x)
        if self.tied:
            logits = nn.functional.linear(x, self.embed.embedding.weight, self.output_bias)
        else:
            logits = self.output(x)
        return logits, weights

    def forward(self, tgt_in: Tensor, state: TransformerState, return_attention: bool = False
                ) -> tuple[Tensor, Optional[Tensor]]:
        """Teacher-forced pass. tgt_in: (batch, tgt_len) -> logits (batch, tgt_len, V),
        attention (batch, tgt_len, src_len) (last layer, mean over heads) or None."""
        return self._run(tgt_in, state.memory, state.mask, return_attention)

    def step(self, prev_tokens: Tensor, state: TransformerState) -> tuple[Tensor, TransformerState, Optional[Tensor]]:
        """Append y_{t-1} to the prefix and score y_t.

        Args:
            prev_tokens: (rows,); state: from :meth:`init_state` or the previous step.

        Returns:
            logits (rows, V), the new state, attention (rows, src_len).
        """
        prefix = torch.cat([state.prefix, prev_tokens.unsqueeze(1)], dim=1)
        memory, mask = state.memory, state.mask
        if state.beam > 1:
            memory, mask = memory.repeat_interleave(state.beam, 0), mask.repeat_interleave(state.beam, 0)
        logits, weights = self._run(prefix, memory, mask, True)
        return logits[:, -1], TransformerState(prefix, state.memory, state.mask, state.beam), weights[:, -1]
