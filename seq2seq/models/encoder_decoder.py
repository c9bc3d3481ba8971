"""The assembled RNN encoder-decoder: encoder -> bridge -> decoder."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from seq2seq.config import ModelConfig
from seq2seq.data.batching import Batch
from seq2seq.modules.bridge import Bridge
from seq2seq.modules.decoders import DecoderState, RNNDecoder
from seq2seq.modules.encoders import EncoderOutput, RNNEncoder


class EncoderDecoder(nn.Module):
    """p(y | x) = prod_t p(y_t | y_<t, x) with an RNN encoder and decoder
    (Sutskever et al. 2014; Cho et al. 2014), optionally with attention
    (Bahdanau et al. 2015; Luong et al. 2015).

    Args:
        encoder: the source encoder.
        bridge: encoder final state -> decoder initial state.
        decoder: the target decoder.
    """

    def __init__(self, encoder: RNNEncoder, bridge: Bridge, decoder: RNNDecoder):
        super().__init__()
        self.encoder, self.bridge, self.decoder = encoder, bridge, decoder

    @classmethod
    def from_config(cls, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int,
                    pad_id: int = 0) -> "EncoderDecoder":
        """Build the model a :class:`ModelConfig` describes.

        Raises:
            Seq2SeqError: incompatible sizes (bridge ``last``, ``luong_dot``).
        """
        e, d = cfg.encoder, cfg.decoder
        encoder = RNNEncoder(src_vocab_size, e.cell, e.embedding_size, e.hidden_size, e.layers,
                             e.bidirectional, e.dropout, pad_id)
        bridge = Bridge(cfg.bridge, e.cell, d.cell, encoder.output_size, e.layers, d.hidden_size, d.layers)
        decoder = RNNDecoder(tgt_vocab_size, d.cell, d.embedding_size, d.hidden_size, d.layers, d.dropout,
                             d.attention, encoder.output_size, d.attention_size, d.input_feeding,
                             d.tie_embeddings, pad_id)
        return cls(encoder, bridge, decoder)

    def encode(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor) -> tuple[EncoderOutput, DecoderState]:
        """Encode a source batch and build the decoder's start state.

        Args:
            src: (batch, src_len) ids; src_lengths: (batch,); src_mask: (batch, src_len).
        """
        encoded = self.encoder(src, src_lengths, src_mask)
        hidden = self.bridge(encoded.final, src.size(0))
        return encoded, self.decoder.init_state(encoded, hidden)

    def forward(self, batch: Batch, return_attention: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        """Teacher-forced logits.

        Returns:
            logits: (batch, tgt_len, V); attention: (batch, tgt_len, src_len) or None.
        """
        _, state = self.encode(batch.src, batch.src_lengths, batch.src_mask)
        return self.decoder(batch.tgt_in, state, return_attention)

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
