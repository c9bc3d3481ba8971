"""The forecasting encoder-decoder: the text model's encoder, bridge and attention
with continuous inputs and outputs.

- Encoder: :class:`~seq2seq.modules.encoders.RNNEncoder` with a linear input
  projection in place of the embedding, over the past window's values and
  calendar features.
- Bridge: :class:`~seq2seq.modules.bridge.Bridge` from the encoder's final state.
- Decoder (:class:`ForecastDecoder`): an RNN whose input at step t is a projection of
  the previous value y_{t-1} and the calendar features of step t; optional Luong
  attention over the encoder states (Luong et al. 2015, eq. 5); a linear regression
  head with one output per value column and quantile.
- Generation is autoregressive (each forecast is the next step's input); training
  uses teacher forcing (the true y_{t-1}, one RNN call over the horizon) or
  scheduled sampling (Bengio et al. 2015: the model's own forecast at rate 1 - eps).

With ``window_normalization`` each window is expressed relative to its last
observed value and in units of its own standard deviation (per column), and the
output is mapped back: a reversible per-window (instance) normalisation in the
spirit of RevIN (Kim et al. 2022), shifted by the last value where RevIN uses the
window mean, and without RevIN's learned affine.  The network then sees the shape
of the recent past, not its level.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from seq2seq.config.forecast import ForecastModelConfig
from seq2seq.modules.attention import build_attention
from seq2seq.modules.bridge import Bridge
from seq2seq.modules.dropout import Dropout
from seq2seq.modules.encoders import EncoderOutput, RNNEncoder
from seq2seq.modules.rnn import RNNState, make_rnn, run_rnn

MIN_WINDOW_SCALE = 1e-2     # in scaled units: a flat window is not blown up


class ForecastDecoder(nn.Module):
    """RNN decoder with a regression head.

    Args:
        input_features: F_in per step (previous values and/or calendar features; 0
            means a constant input of 1).
        outputs: V * Q values per step.
        cell, input_size, hidden_size, layers, dropout: as in the config.
        attention: score function name (``none`` for none).
        memory_size: encoder output size M.
        attention_size: additive attention's size (default hidden_size).
    """

    def __init__(self, input_features: int, outputs: int, cell: str, input_size: int, hidden_size: int,
                 layers: int, dropout: float, attention: str, memory_size: int, attention_size: Optional[int]):
        super().__init__()
        self.input_features = input_features
        self.input_proj = nn.Linear(max(input_features, 1), input_size)
        self.rnn = make_rnn(cell, input_size, hidden_size, layers, dropout)
        self.attention = build_attention(attention, hidden_size, memory_size, attention_size)
        self.combine = nn.Linear(hidden_size + memory_size, hidden_size) if self.attention is not None else None
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(hidden_size, outputs)

    def forward(self, inputs: Tensor, hidden: RNNState, encoded: EncoderOutput, keys: Optional[Tensor]
                ) -> tuple[Tensor, RNNState]:
        """Run the decoder over ``steps`` positions (all of the horizon, or one).

        Args:
            inputs: (batch, steps, F_in) decoder inputs.
            hidden: (layers, batch, H) or (h, c): the state before the first position.
            encoded: the encoder's output (states and mask for attention).
            keys: attention keys from ``attention.precompute`` or None.

        Returns:
            outputs: (batch, steps, V * Q); the state after the last position.
        """
        if self.input_features == 0:
            inputs = inputs.new_ones(inputs.shape[:2] + (1,))
        out, hidden = run_rnn(self.rnn, self.input_proj(inputs), hidden)
        if self.attention is not None:
            context, _ = self.attention(out, keys, encoded.outputs, encoded.mask)
            out = torch.tanh(self.combine(torch.cat([out, context], -1)))
        return self.head(self.dropout(out)), hidden


class ForecastModel(nn.Module):
    """Seq2seq forecaster.

    Args:
        values: V, value columns.
        calendar: C, calendar features per step (known in the past and future).
        cfg: the ``model`` section.

    Shapes (B batch, L input_len, H horizon, Q quantiles, 1 without quantiles):
        past: (B, L, V) scaled values; past_cal: (B, L, C); future_cal: (B, H, C);
        future: (B, H, V) true scaled values (teacher forcing and scheduled sampling).
        Output: (B, H, V, Q) forecasts in scaled units.
    """

    def __init__(self, values: int, calendar: int, cfg: ForecastModelConfig):
        super().__init__()
        e, d = cfg.encoder, cfg.decoder
        self.values, self.calendar = values, calendar
        self.quantiles = list(cfg.quantiles) or [0.5]
        self.median = self.quantiles.index(0.5)
        self.window_normalization = cfg.window_normalization
        self.feed_previous = d.feed_previous_output
        self.encoder = RNNEncoder(0, e.cell, e.input_size, e.hidden_size, e.layers, e.bidirectional, e.dropout,
                                  embedding=nn.Linear(values + calendar, e.input_size))
        self.bridge = Bridge(cfg.bridge, e.cell, d.cell, self.encoder.output_size, e.layers, d.hidden_size,
                             d.layers)
        self.decoder = ForecastDecoder((values if self.feed_previous else 0) + calendar,
                                       values * len(self.quantiles), d.cell, d.input_size, d.hidden_size,
                                       d.layers, d.dropout, d.attention, self.encoder.output_size,
                                       d.attention_size)

    @classmethod
    def from_config(cls, cfg: ForecastModelConfig, values: int, calendar: int) -> "ForecastModel":
        """Build from the ``model`` section for V value columns and C calendar features."""
        return cls(values, calendar, cfg)

    def _normalizer(self, past: Tensor) -> tuple[Tensor, Tensor]:
        """Per window and column: shift (last value) and scale (std): each (B, 1, V)."""
        if not self.window_normalization:
            zero = past.new_zeros(past.size(0), 1, past.size(2))
            return zero, torch.ones_like(zero)
        scale = past.std(1, keepdim=True, unbiased=False).clamp_min(MIN_WINDOW_SCALE) if past.size(1) > 1 \
            else past.new_ones(past.size(0), 1, past.size(2))
        return past[:, -1:], scale

    def _inputs(self, prev: Tensor, cal: Tensor) -> Tensor:
        parts = ([prev] if self.feed_previous else []) + [cal]
        return torch.cat(parts, -1)

    def encode(self, x: Tensor) -> tuple[RNNState, EncoderOutput, Optional[Tensor]]:
        """Encode a window and build the decoder's start state.

        Args:
            x: (B, L, V + C) the normalised past values and their calendar features.

        Returns:
            The decoder's initial state (layers, B, H) (or the LSTM pair), the encoder
            output (states (B, L, M), mask all True) and the attention keys (B, L, K) or None.
        """
        batch, length = x.shape[:2]
        lengths = torch.full((batch,), length, dtype=torch.long)
        encoded = self.encoder(x, lengths, torch.ones(batch, length, dtype=torch.bool, device=x.device))
        hidden = self.bridge(encoded.final, batch)
        keys = self.decoder.attention.precompute(encoded.outputs) if self.decoder.attention is not None else None
        return hidden, encoded, keys

    def forward(self, past: Tensor, past_cal: Tensor, future_cal: Tensor, future: Optional[Tensor] = None,
                teacher_forcing: float = 1.0, steps: Optional[int] = None) -> Tensor:
        """Forecast the horizon.

        Args:
            past, past_cal, future_cal, future: see the class docstring; ``future``
                None generates freely (inference).
            teacher_forcing: eps, the probability of reading the true previous value
                at each step (1 = teacher forcing, 0 = free running).
            steps: horizon length when ``future`` is None (default future_cal's length).

        Returns:
            (B, H, V, Q) forecasts in scaled units; without ``future``, the Q quantiles in
            increasing order.

        Raises:
            ValueError: inconsistent shapes.
        """
        batch, _, v = past.shape
        horizon = future_cal.size(1) if steps is None else steps
        if v != self.values or past_cal.shape[:2] != past.shape[:2] or future_cal.size(1) != horizon:
            raise ValueError(f"past {tuple(past.shape)}, past_cal {tuple(past_cal.shape)}, future_cal "
                             f"{tuple(future_cal.shape)} do not fit V={self.values} values, horizon {horizon}")
        shift, scale = self._normalizer(past)
        hidden, encoded, keys = self.encode(torch.cat([(past - shift) / scale, past_cal], -1))
        start = (past[:, -1:] - shift) / scale                            # y_{o-1}, normalised
        gold = None if future is None else (future - shift) / scale
        if not self.feed_previous or (gold is not None and teacher_forcing >= 1.0):
            prev = start if gold is None else torch.cat([start, gold[:, :-1]], 1)
            out, _ = self.decoder(self._inputs(prev, future_cal), hidden, encoded, keys)
        else:
            outs, prev = [], start
            for t in range(horizon):
                o, hidden = self.decoder(self._inputs(prev, future_cal[:, t:t + 1]), hidden, encoded, keys)
                outs.append(o)
                pred = o.view(batch, 1, v, -1)[..., self.median].detach()
                if gold is not None and teacher_forcing > 0.0:
                    coin = torch.rand(batch, 1, 1, device=past.device) < teacher_forcing
                    pred = torch.where(coin, gold[:, t:t + 1], pred)
                prev = pred
            out = torch.cat(outs, 1)
        out = out.view(batch, horizon, v, len(self.quantiles))
        if future is None:            # a forecast: quantiles sorted, so intervals never cross (the
            out = out.sort(-1).values   # rearrangement of Chernozhukov et al. 2010; training sees them raw)
        return out * scale.unsqueeze(-1) + shift.unsqueeze(-1)
