"""Helpers shared by the RNN encoder and decoder."""

from __future__ import annotations

from typing import Union

from torch import Tensor, nn

# An RNN state: a tensor (layers, batch, hidden) for RNN/GRU, or the pair (h, c) for LSTM.
RNNState = Union[Tensor, tuple[Tensor, Tensor]]

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def make_rnn(cell: str, input_size: int, hidden_size: int, layers: int, dropout: float,
             bidirectional: bool = False) -> nn.RNNBase:
    """A batch-first ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``; dropout between layers only."""
    return CELLS[cell](input_size, hidden_size, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)
