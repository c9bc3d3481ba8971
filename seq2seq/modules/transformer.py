"""Transformer encoder and decoder (Vaswani et al. 2017) on torch.nn layers, with the
same interfaces as the recurrent ones, so the two families swap by a config line.

- :class:`MultiHeadAttention`: scaled dot-product attention per head (sec. 3.2) through
  ``torch.nn.functional.scaled_dot_product_attention`` (a fused kernel), written out
  only where the weights themselves are wanted (the last decoder layer's
  cross-attention, returned like the RNN decoder's attention).  Its parameters carry
  ``nn.MultiheadAttention``'s names, so checkpoints of either load.
- :class:`TransformerEncoder`: token embedding (scaled by sqrt(d), sec. 3.4) plus
  sinusoidal positions (sec. 3.5), then pre-norm blocks (layer norm before each
  sub-layer, which trains stably on small data; Xiong et al. 2020).  Its
  :class:`EncoderOutput` has ``final`` = the mean of the states over real positions,
  so a recurrent decoder's bridge can start from it.
- :class:`TransformerDecoder`: masked self-attention, cross-attention over the encoder
  states and a feed-forward block per layer (sec. 3.1).  Search decodes it
  incrementally: each step writes one position's self-attention keys and values into
  the state's buffers (:class:`KeyValueCache`, in place: no copy of the cache per step)
  and attends over them, so a step costs O(t) attention work and O(1) products, not a
  rerun of the prefix; beam search's reorder copies the cache once per step, as it
  must.  The cross-attention keys and values are projected once per source
  (:class:`TransformerMemory`) and shared by all hypotheses of that source.

Padding: source padding is masked out of every attention; the causal mask keeps
each target position from seeing later ones, so target padding (always at the
end) never changes a real position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.modules.decoders import reselect_sources
from seq2seq.modules.encoders import EncoderOutput


def sinusoidal_positions(positions: Tensor, size: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (Vaswani et al. 2017, sec. 3.5).

    Args:
        positions: (length,) positions (any integer or float dtype).
        size: d, the encoding width.

    Returns:
        (length, size) float32; the same values for a position whether it comes alone
        (an incremental step) or inside a whole sequence.
    """
    pos = positions.float().unsqueeze(1)
    rate = torch.exp(torch.arange(0, size, 2, dtype=torch.float, device=positions.device)
                     * (-math.log(10000.0) / size))
    angles = pos * rate                                                 # (length, ceil(size / 2))
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, :size]


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

    def forward(self, tokens: Tensor, offset: int | Tensor = 0) -> Tensor:
        """tokens: (batch, len) at positions offset ... offset + len - 1 -> (batch, len, d_model)."""
        x = self.embedding(tokens)
        if self.proj is not None:
            x = self.proj(x)
        positions = torch.arange(tokens.size(1), device=tokens.device) + offset
        return self.dropout(x * self.scale + sinusoidal_positions(positions, self.d_model))


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1..h) W^O, head_i = softmax(Q_i K_i^T / sqrt(d_k)) V_i
    (Vaswani et al. 2017, sec. 3.2.2), with d_k = d_model / heads.

    The parameters are those of ``nn.MultiheadAttention`` (``in_proj_weight`` (3d, d)
    holding W^Q, W^K, W^V; ``in_proj_bias`` (3d,); ``out_proj``), initialised the same way.

    Args:
        d_model: d; heads: h (d must divide by it); dropout: on the attention weights.
    """

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_size, self.dropout = heads, d_model // heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def project(self, x: Tensor, first: int, count: int) -> Tensor:
        """Rows [first d, (first + count) d) of ``in_proj`` applied to x: 0 = Q, 1 = K, 2 = V.

        Args:
            x: (batch, len, d).

        Returns:
            (count, batch, heads, len, d_k): the projections split into heads.
        """
        d = self.in_proj_weight.size(1)
        y = F.linear(x, self.in_proj_weight[first * d:(first + count) * d],
                     self.in_proj_bias[first * d:(first + count) * d])
        b, t = x.shape[:2]
        return y.view(b, t, count, self.heads, self.head_size).permute(2, 0, 3, 1, 4)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None, causal: bool = False,
               want_weights: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        """softmax(q k^T / sqrt(d_k) + mask) v, then W^O.

        Args:
            q: (batch, heads, T, d_k); k, v: (batch, heads, S, d_k).
            mask: broadcastable to (batch, heads, T, S), True where a query may attend, or None.
            causal: query t sees keys 0..t only (T == S).
            want_weights: also return the weights averaged over heads.

        Returns:
            (batch, T, d), and (batch, T, S) weights or None.
        """
        p = self.dropout if self.training else 0.0
        if want_weights:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size)
            if causal:
                mask = torch.ones(q.size(2), k.size(2), dtype=torch.bool, device=q.device).tril()
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            out = F.dropout(weights, p, self.training) @ v
            weights = weights.mean(1)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
            weights = None
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1)), weights


def _feed_forward(d_model: int, ff_size: int, dropout: float) -> nn.Sequential:
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 (sec. 3.3), dropout on the hidden layer."""
    return nn.Sequential(nn.Linear(d_model, ff_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_size, d_model))


class _EncoderLayer(nn.Module):
    """Pre-norm block: x + SelfAttn(LN(x)), then x + FFN(LN(x)) (sec. 3.1; Xiong et al. 2020)."""

    def __init__(self, d_model: int, heads: int, ff_size: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = _feed_forward(d_model, ff_size, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        """x: (batch, len, d); key_mask: (batch, 1, 1, len) True on real tokens -> (batch, len, d)."""
        q, k, v = self.self_attn.project(self.norm1(x), 0, 3)
        x = x + self.dropout(self.self_attn.attend(q, k, v, key_mask)[0])
        return x + self.dropout(self.ff(self.norm2(x)))


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
        self.layers = nn.ModuleList(_EncoderLayer(d_model, heads, ff_size, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.output_size = d_model
        self._register_load_state_dict_pre_hook(_rename_torch_encoder_keys)

    def forward(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor) -> EncoderOutput:
        """Args:
            src: (batch, src_len) ids; src_lengths: (batch,); src_mask: (batch, src_len) True on real tokens.

        Returns:
            :class:`EncoderOutput`: outputs (batch, src_len, d_model), zero on padding;
            final (1, batch, d_model), the mean over real positions.
        """
        x = self.embed(src)
        key_mask = src_mask[:, None, None, :]
        for layer in self.layers:
            x = layer(x, key_mask)
        out = self.norm(x).masked_fill(~src_mask.unsqueeze(-1), 0.0)
        mean = out.sum(1) / src_mask.sum(1, keepdim=True).clamp_min(1).to(out.dtype)
        return EncoderOutput(out, mean.unsqueeze(0), src_mask)


def _rename_torch_encoder_keys(state_dict: dict, prefix: str, *args) -> None:
    """Checkpoints written before this encoder had its own blocks hold ``nn.TransformerEncoder``'s
    names (``layers.layers.i.linear1``, ``layers.norm``): map them onto these."""
    renames = {"linear1": "ff.0", "linear2": "ff.3"}
    for key in [k for k in state_dict if k.startswith(prefix + "layers.")]:
        rest = key[len(prefix + "layers."):]
        if rest.startswith("norm."):
            state_dict[prefix + rest] = state_dict.pop(key)
        elif rest.startswith("layers."):
            parts = rest[len("layers."):].split(".")
            parts[1] = renames.get(parts[1], parts[1])
            state_dict[prefix + "layers." + ".".join(parts)] = state_dict.pop(key)


@dataclass(frozen=True)
class TransformerMemory:
    """What the decoder reads of each source, shared by all its hypotheses: the
    cross-attention keys and values of every layer, projected once per source.

    Attributes:
        mask: (sources, src_len) True on real source tokens.
        keys, values: (layers, sources, heads, src_len, d_k).
    """

    mask: Tensor
    keys: Tensor
    values: Tensor

    def select(self, sources: Tensor) -> "TransformerMemory":
        """The memory of the sources at ``sources`` (new_sources,), in that order."""
        return TransformerMemory(self.mask.index_select(0, sources), self.keys.index_select(1, sources),
                                 self.values.index_select(1, sources))


class KeyValueCache:
    """Each decoder layer's self-attention keys and values of a batch of prefixes, in
    buffers with room for later positions, so a step writes one position in place
    instead of copying the whole cache (``torch.cat``).

    Args:
        keys: per layer (rows, heads, capacity, d_k); positions 0 .. filled-1 written.
        values: per layer, the same shape as keys.
        filled: positions written so far (t).
        exact: buffers hold exactly ``filled`` positions and each step makes new ones by
            concatenation (states built from tensors, as the exported step's: its graph
            has no buffers to write into).

    A state of length t writes position t into these buffers only while ``filled == t``
    (no other state has extended the same prefix); otherwise, or without room, the step
    copies the t positions into new buffers first (with room doubled), so a state is
    never changed by extending it twice.
    """

    def __init__(self, keys: list[Tensor], values: list[Tensor], filled: int, exact: bool = False):
        self.keys, self.values, self.filled, self.exact = keys, values, filled, exact

    def writable(self, length: int, new: int) -> "KeyValueCache":
        """Buffers in which positions ``length`` .. ``length + new - 1`` may be written:
        these, or copies of their first ``length`` positions with room for 2 x (length + new);
        an ``exact`` cache is returned as it is (its steps concatenate)."""
        if self.exact or (self.filled == length and self.keys[0].size(2) >= length + new):
            return self
        capacity = max(16, 2 * (length + new))

        def grown(b: Tensor) -> Tensor:
            out = b.new_empty(b.size(0), b.size(1), capacity, b.size(3))
            out[:, :, :length] = b[:, :, :length]
            return out

        return KeyValueCache([grown(k) for k in self.keys], [grown(v) for v in self.values], length)

    def select(self, index: Tensor, length: int) -> "KeyValueCache":
        """The first ``length`` positions of the rows ``index`` (new_rows,), in new buffers
        with room for one more (beam search reorders after every step)."""
        if self.exact:
            pick = lambda b: b[:, :, :length].index_select(0, index)  # noqa: E731
        else:
            def pick(b: Tensor) -> Tensor:
                out = b.new_empty(index.numel(), b.size(1), length + 1, b.size(3))
                torch.index_select(b[:, :, :length], 0, index, out=out[:, :, :length])
                return out
        return KeyValueCache([pick(k) for k in self.keys], [pick(v) for v in self.values], length, self.exact)


@dataclass(frozen=True)
class TransformerState:
    """The state of each hypothesis (row) after a target prefix of t tokens: the
    self-attention keys and values of the prefix (the cache), and its source's memory.

    Attributes:
        cache: the layers' keys and values of positions 0 .. t-1 (``<bos>`` first).
        length: t.
        source: the rows' sources (sources = rows / beam).
        beam: rows per source (consecutive rows share a source).
    """

    cache: KeyValueCache
    length: int
    source: TransformerMemory
    beam: int = 1

    @classmethod
    def from_tensors(cls, keys: Tensor, values: Tensor, source: TransformerMemory, beam: int = 1
                     ) -> "TransformerState":
        """A state with the cache given as tensors keys, values: (layers, rows, heads, t, d_k)
        (the exported step's inputs); its steps concatenate (:class:`KeyValueCache` ``exact``)."""
        return cls(KeyValueCache(list(keys.unbind(0)), list(values.unbind(0)), keys.size(3), exact=True),
                   keys.size(3), source, beam)

    @property
    def keys(self) -> Tensor:
        """(layers, rows, heads, t, d_k) the cached self-attention keys (a copy)."""
        return torch.stack([k[:, :, :self.length] for k in self.cache.keys])

    @property
    def values(self) -> Tensor:
        """(layers, rows, heads, t, d_k) the cached self-attention values (a copy)."""
        return torch.stack([v[:, :, :self.length] for v in self.cache.values])

    def reorder(self, index: Tensor, beam: Optional[int] = None) -> "TransformerState":
        """Select / reorder / repeat rows (see :meth:`DecoderState.reorder`): the cache
        moves by row, the source memory is re-selected only when the set of sources changes."""
        beam = self.beam if beam is None else beam
        source = reselect_sources(self.source, index, self.beam, beam)
        return TransformerState(self.cache.select(index, self.length), self.length, source, beam)


class _DecoderLayer(nn.Module):
    """Pre-norm block: masked self-attention, cross-attention, feed-forward (sec. 3.1)."""

    def __init__(self, d_model: int, heads: int, ff_size: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = _feed_forward(d_model, ff_size, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, past: Optional[tuple[Tensor, Tensor]], memory: tuple[Tensor, Tensor],
                memory_mask: Tensor, want_weights: bool
                ) -> tuple[Tensor, tuple[Tensor, Tensor], Optional[Tensor]]:
        """One block over new positions.

        Args:
            x: (rows, T, d) the new positions' inputs.
            past: (keys, values, t): buffers (rows, heads, capacity, d_k) holding the t
                positions before them (one step of search, T == 1), written in place at
                t .. t+T-1 when capacity >= t + T, else concatenated; or None (the whole
                target, causal).
            memory: the cross-attention keys and values (sources, heads, S, d_k), with
                rows = sources x beam consecutive rows per source.
            memory_mask: (sources, S) True on real source tokens.
            want_weights: return the cross-attention weights.

        Returns:
            (rows, T, d); the buffers (rows, heads, >= t + T, d_k) holding the keys and values
            of all positions so far; the cross-attention weights (rows, T, S) averaged over
            heads, or None.
        """
        q, k, v = self.self_attn.project(self.norm1(x), 0, 3)
        if past is not None:
            past_k, past_v, t = past
            if past_k.size(2) >= t + k.size(2):                  # room: write the new positions in place
                past_k[:, :, t:t + k.size(2)], past_v[:, :, t:t + k.size(2)] = k, v
                buffers = past_k, past_v
                k, v = past_k[:, :, :t + k.size(2)], past_v[:, :, :t + k.size(2)]
            else:                                                 # an exact cache (the exported step)
                k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
                buffers = k, v
        else:
            buffers = k, v
        x = x + self.dropout(self.self_attn.attend(q, k, v, causal=past is None)[0])
        q = self.cross_attn.project(self.norm2(x), 0, 1)[0]                     # (rows, heads, T, d_k)
        rows, heads, steps, size = q.shape
        sources = memory[0].size(0)
        # the rows of a source as extra query positions: (sources, heads, beam * T, d_k)
        q = q.view(sources, rows // sources, heads, steps, size).transpose(1, 2).reshape(sources, heads, -1, size)
        y, w = self.cross_attn.attend(q, memory[0], memory[1], memory_mask[:, None, None, :],
                                      want_weights=want_weights)
        y = y.view(sources, rows // sources, steps, -1).reshape(rows, steps, -1)
        if w is not None:
            w = w.reshape(rows, steps, -1)
        x = x + self.dropout(y)
        return x + self.dropout(self.ff(self.norm3(x))), buffers, w


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
        self.vocab_size = vocab_size
        self.tied = tie_embeddings
        if tie_embeddings:
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.output = nn.Linear(d_model, vocab_size)

    def init_state(self, encoded: EncoderOutput, hidden=None, context: Optional[Tensor] = None
                   ) -> TransformerState:
        """Start state: an empty cache and every layer's cross-attention keys and values of
        the (projected) encoder states; ``hidden`` and ``context`` (an RNN decoder's
        bridge inputs) are not used.

        Args:
            encoded: outputs (sources, src_len, M), mask (sources, src_len).
        """
        memory = encoded.outputs if self.memory_proj is None else self.memory_proj(encoded.outputs)
        kv = torch.stack([layer.cross_attn.project(memory, 1, 2) for layer in self.layers], dim=1)
        keys, values = kv[0], kv[1]                                # (layers, sources, heads, S, d_k)
        empty = [keys.new_empty(*keys.shape[1:3], 0, keys.size(-1)) for _ in self.layers]
        return TransformerState(KeyValueCache(empty, list(empty), 0), 0, TransformerMemory(encoded.mask, keys, values))

    def _run(self, tokens: Tensor, state: TransformerState, incremental: bool, want_weights: bool
             ) -> tuple[Tensor, TransformerState, Optional[Tensor]]:
        """tokens (rows, T) after the state's t positions -> logits (rows, T, V); with
        ``incremental`` the state after them (else None: a teacher-forced pass keeps no
        cache); the last layer's cross-attention weights (rows, T, S) or None."""
        t, new = state.length, tokens.size(1)
        x = self.embed(tokens, t)
        cache = state.cache.writable(t, new) if incremental else state.cache
        keys, values, weights = [], [], None
        for i, layer in enumerate(self.layers):
            past = (cache.keys[i], cache.values[i], t) if incremental else None
            last = i == len(self.layers) - 1
            x, (k, v), w = layer(x, past, (state.source.keys[i], state.source.values[i]), state.source.mask,
                                 want_weights and last)
            keys.append(k)
            values.append(v)
            weights = w if last else weights
        x = self.norm(x)
        logits = (F.linear(x, self.embed.embedding.weight, self.output_bias) if self.tied else self.output(x))
        if not incremental:
            return logits, None, weights
        if cache.exact:
            cache = KeyValueCache(keys, values, t + new, exact=True)
        else:
            cache.filled = t + new                                 # written in place: these buffers hold t + new
        return logits, TransformerState(cache, t + new, state.source, state.beam), weights

    def forward(self, tgt_in: Tensor, state: TransformerState, return_attention: bool = False
                ) -> tuple[Tensor, Optional[Tensor]]:
        """Teacher-forced pass over a whole target (causal self-attention).

        Args:
            tgt_in: (batch, tgt_len) starting with ``<bos>``; state: from :meth:`init_state`.

        Returns:
            logits (batch, tgt_len, V); attention (batch, tgt_len, src_len) (last layer,
            mean over heads) or None.
        """
        logits, _, weights = self._run(tgt_in, state, False, return_attention)
        return logits, weights

    def step(self, prev_tokens: Tensor, state: TransformerState) -> tuple[Tensor, TransformerState, Tensor]:
        """Score y_t given y_{t-1}: one position through every layer, attending over the
        cached keys and values of the t earlier positions and its own.

        Args:
            prev_tokens: (rows,) y_{t-1}; state: from :meth:`init_state` or the previous
                step, rows = sources x beam.

        Returns:
            logits (rows, V); the state with t + 1 cached positions; attention
            (rows, src_len), the last layer's cross-attention weights averaged over heads.
        """
        logits, state, weights = self._run(prev_tokens.unsqueeze(1), state, True, True)
        return logits[:, -1], state, weights[:, -1]
