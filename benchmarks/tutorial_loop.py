"""The identical G2P model written as the usual tutorial loop, for the speed benchmark.

Same architecture as ``train_speed.IDENTICAL`` (bi-LSTM encoder 128 per
direction, LSTM decoder 256 with input feeding, additive attention, tanh bridge,
embeddings 128, dropout 0.1), written the way tutorials write it: an
``nn.LSTMCell`` called once per target position, attention, output layer and
loss computed inside that Python loop.  Not part of the package.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class TutorialSeq2Seq(nn.Module):
    """Encoder-decoder with attention, one Python step per target token."""

    def __init__(self, src_vocab: int, tgt_vocab: int, emb: int = 128, enc_hidden: int = 128,
                 dec_hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.src_emb = nn.Embedding(src_vocab, emb, padding_idx=0)
        self.tgt_emb = nn.Embedding(tgt_vocab, emb, padding_idx=0)
        self.encoder = nn.LSTM(emb, enc_hidden, batch_first=True, bidirectional=True)
        self.bridge_h = nn.Linear(2 * enc_hidden, dec_hidden)
        self.bridge_c = nn.Linear(2 * enc_hidden, dec_hidden)
        self.cell = nn.LSTMCell(emb + dec_hidden, dec_hidden)
        self.att_keys = nn.Linear(2 * enc_hidden, dec_hidden, bias=False)
        self.att_query = nn.Linear(dec_hidden, dec_hidden)
        self.att_v = nn.Linear(dec_hidden, 1, bias=False)
        self.att_out = nn.Linear(2 * enc_hidden + dec_hidden, dec_hidden)
        self.generator = nn.Linear(dec_hidden, tgt_vocab)
        self.dropout = nn.Dropout(dropout)

    def loss(self, src, src_lengths, tgt_in, tgt_out, pad_id: int):
        """Teacher-forced summed cross-entropy / tokens; returns (loss, tokens)."""
        emb = self.dropout(self.src_emb(src))
        packed = pack_padded_sequence(emb, src_lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        mask = src != pad_id
        h = torch.tanh(self.bridge_h(torch.cat([h[0], h[1]], -1)))
        c = torch.tanh(self.bridge_c(torch.cat([c[0], c[1]], -1)))
        keys = self.att_keys(memory)
        feed = memory.new_zeros(src.size(0), h.size(1))
        total, n = 0.0, 0
        for t in range(tgt_in.size(1)):
            x = torch.cat([self.dropout(self.tgt_emb(tgt_in[:, t])), feed], -1)
            h, c = self.cell(x, (h, c))
            scores = self.att_v(torch.tanh(keys + self.att_query(h).unsqueeze(1))).squeeze(-1)
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
            context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
            feed = self.dropout(torch.tanh(self.att_out(torch.cat([context, h], -1))))
            logits = self.generator(feed)
            total = total + F.cross_entropy(logits, tgt_out[:, t], ignore_index=pad_id, reduction="sum")
            n += int((tgt_out[:, t] != pad_id).sum())
        return total / n, n
