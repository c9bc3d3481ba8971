"""The assembled encoder-decoder: encoder -> (context, bridge) -> decoder; RNN or
Transformer on either side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from seq2seq.config import ModelConfig
from seq2seq.data.batching import Batch
from seq2seq.modules.bridge import Bridge, EncoderContext
from seq2seq.modules.decoders import DecoderState, RNNDecoder
from seq2seq.modules.encoders import EncoderOutput, RNNEncoder
from seq2seq.modules.latent import GaussianLatent
from seq2seq.modules.transformer import TransformerDecoder, TransformerEncoder


@dataclass
class Seq2SeqOutput:
    """What a teacher-forced (or scheduled-sampling) pass returns; the criterion
    (:class:`~seq2seq.criteria.SequenceCriterion`) turns it into the loss.

    Attributes:
        logits: (batch, tgt_len, V) scores of y_t; with copy attention, log-probabilities
            over the extended vocabulary (batch, tgt_len, ext_size).
        attention: (batch, tgt_len, src_len) weights a_t, or None (no attention).
        kl: with a latent variable, KL(q(z | x) || N(0, I)) summed over the batch (nats); else None.
    """

    logits: Tensor
    attention: Optional[Tensor] = None
    kl: Optional[Tensor] = None


class EncoderDecoder(nn.Module):
    """p(y | x) = prod_t p(y_t | y_<t, x) with an RNN encoder and decoder
    (Sutskever et al. 2014; Cho et al. 2014), optionally with attention
    (Bahdanau et al. 2015; Luong et al. 2015).

    Args:
        encoder: the source encoder.
        bridge: source summary -> decoder initial state.
        decoder: the target decoder.
        context: the source summary c (default: the final states, ``last``).
        reverse_source: encode the source backwards (Sutskever et al. 2014, sec. 3.3).
        latent: a Gaussian z between the context and the bridge (variational
            seq2seq, Bowman et al. 2016), or None.
    """

    def __init__(self, encoder: nn.Module, bridge: Optional[Bridge], decoder: nn.Module,
                 context: Optional[EncoderContext] = None, reverse_source: bool = False,
                 latent: Optional[GaussianLatent] = None):
        super().__init__()
        self.encoder, self.bridge, self.decoder = encoder, bridge, decoder
        if context is None and bridge is not None:
            context = EncoderContext("last", encoder.output_size)
        self.context = context
        self.reverse_source = reverse_source
        self.latent = latent

    @classmethod
    def from_config(cls, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int,
                    pad_id: int = 0) -> "EncoderDecoder":
        """Build the model a :class:`ModelConfig` describes.

        Raises:
            Seq2SeqError: incompatible sizes (bridge ``last``, ``luong_dot``).
        """
        e, d = cfg.encoder, cfg.decoder
        if e.type == "transformer":
            encoder = TransformerEncoder(src_vocab_size, e.embedding_size, e.hidden_size, e.heads, e.layers,
                                         e.ff_size or 4 * e.hidden_size, e.dropout, pad_id)
        else:
            encoder = RNNEncoder(src_vocab_size, e.cell, e.embedding_size, e.hidden_size, e.layers,
                                 e.bidirectional, e.dropout, pad_id)
        if d.type == "transformer":
            decoder = TransformerDecoder(tgt_vocab_size, d.embedding_size, d.hidden_size, d.heads, d.layers,
                                         d.ff_size or 4 * d.hidden_size, d.dropout, encoder.output_size,
                                         d.tie_embeddings, pad_id)
            return cls(encoder, None, decoder, None, cfg.reverse_source)
        # A pooled context, a Transformer encoder's mean state or a latent z reaches the
        # bridge as one layer without a cell state.
        one_layer = cfg.context != "last" or e.type == "transformer" or cfg.latent_size is not None
        latent = GaussianLatent(encoder.output_size, cfg.latent_size) if cfg.latent_size is not None else None
        bridge = Bridge(cfg.bridge, "gru" if one_layer else e.cell, d.cell,
                        cfg.latent_size or encoder.output_size, 1 if one_layer else e.layers, d.hidden_size,
                        d.layers)
        decoder = RNNDecoder(tgt_vocab_size, d.cell, d.embedding_size, d.hidden_size, d.layers, d.dropout,
                             d.attention, encoder.output_size, d.attention_size, d.input_feeding,
                             d.tie_embeddings, pad_id, d.context_every_step, d.feed_previous_output,
                             d.copy_attention, d.coverage)
        return cls(encoder, bridge, decoder, EncoderContext(cfg.context, encoder.output_size), cfg.reverse_source,
                   latent)

    def encode(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor, src_ext: Optional[Tensor] = None
               ) -> tuple[EncoderOutput, DecoderState]:
        """Encode a source batch and build the decoder's start state (what search needs).

        Args:
            src: (batch, src_len) ids; src_lengths: (batch,); src_mask: (batch, src_len);
            src_ext: (batch, src_len) the source in the extended target vocabulary
                (copy attention), or None.
        """
        encoded, state, _ = self._encode(src, src_lengths, src_mask, src_ext)
        return encoded, state

    def _encode(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor, src_ext: Optional[Tensor]
                ) -> tuple[EncoderOutput, DecoderState, Optional[Tensor]]:
        """:meth:`encode`, plus the KL term of a latent z summed over the batch (or None)."""
        if self.reverse_source:
            src = reverse_padded(src, src_lengths)
        encoded = self.encoder(src, src_lengths, src_mask)
        if self.reverse_source:     # attention and its weights refer to source positions in reading order
            encoded.outputs = reverse_padded(encoded.outputs, src_lengths)
        if self.bridge is None:                      # a Transformer decoder reads the encoder states only
            return encoded, self.decoder.init_state(encoded), None
        context, summary = self.context(encoded.outputs, encoded.final, encoded.mask)
        kl = None
        if self.latent is not None:
            z, kl = self.latent(context)
            kl = kl.sum()
            summary = z.unsqueeze(0)
        hidden = self.bridge(summary, src.size(0))
        return encoded, self.decoder.init_state(encoded, hidden, context, src_ext), kl

    def start(self, batch: Batch) -> tuple[DecoderState, Optional[Tensor]]:
        """The decoder's start state for a batch and the latent's KL term (None without a latent)."""
        _, state, kl = self._encode(batch.src, batch.src_lengths, batch.src_mask, getattr(batch, "src_ext", None))
        return state, kl

    def forward(self, batch: Batch, return_attention: bool = False) -> Seq2SeqOutput:
        """Teacher-forced pass: the logits of every target position, the KL term and,
        when asked (the coverage loss reads it), the attention.

        Args:
            batch: src (batch, src_len), tgt_in (batch, tgt_len) starting with ``<bos>``.
        """
        state, kl = self.start(batch)
        logits, attention = self.decoder(batch.tgt_in, state, return_attention)
        return Seq2SeqOutput(logits, attention, kl)

    def prior_state(self, n: int, device: torch.device, generator: Optional[torch.Generator] = None):
        """Decoder start states for ``n`` sequences from the prior, z ~ N(0, I)
        (a variational model's way to generate new sequences, Bowman et al. 2016 sec. 4).

        Raises:
            ValueError: the model has no latent variable.
        """
        if self.latent is None:
            raise ValueError("sampling from the prior needs a variational model (model.latent_size)")
        z = torch.randn(n, self.latent.latent_size, generator=generator, device=device)
        hidden = self.bridge(z.unsqueeze(0), n)
        encoded = EncoderOutput(z.new_zeros(n, 1, self.encoder.output_size), None,
                                torch.ones(n, 1, dtype=torch.bool, device=device))
        return self.decoder.init_state(encoded, hidden)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first ``lengths[b]`` positions, leaving padding in place.

    Args:
        x: (batch, len, ...) a padded batch; lengths: (batch,) true lengths.

    Returns:
        Same shape: row b is x[b, lengths[b]-1], ..., x[b, 0], then its padding.
    """
    steps = torch.arange(x.size(1), device=x.device)
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)               # (batch, len)
    if x.dim() > 2:
        index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)
