"""RNN helpers shared by the encoder and decoder.

The decoder's step-by-step path (input feeding, Bahdanau attention, search) does
not call ``nn.LSTM`` once per position: on CPU each such call carries a large
fixed cost.  Instead it reads the same ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``
weights and applies the cell equations directly (:func:`cell_step`), with the
input-to-hidden products of the whole target computed in one matrix product
beforehand (:meth:`CellWeights.input_gates`).  Parameters and results are those of the torch
module, so a model trained on one path decodes identically on the other.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.modules.activations import logistic_tanh
from seq2seq.modules.dropout import dropout_mask

# An RNN state: a tensor (layers, batch, hidden) for RNN/GRU, or the pair (h, c) for LSTM.
RNNState = Union[Tensor, tuple[Tensor, Tensor]]

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def make_rnn(cell: str, input_size: int, hidden_size: int, layers: int, dropout: float,
             bidirectional: bool = False) -> nn.RNNBase:
    """A batch-first ``nn.RNN`` (tanh) / ``nn.GRU`` / ``nn.LSTM``; dropout between layers only."""
    return CELLS[cell](input_size, hidden_size, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)


def _weights(rnn: nn.RNNBase, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return (getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}"),
            getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}"))


def _input_bias(rnn: nn.RNNBase, layer: int) -> Tensor:
    # LSTM and tanh-RNN add both biases outside any gate product, so they merge;
    # GRU keeps b_hn inside r * (W_hn h + b_hn), so only b_ih moves to the input side.
    _, _, b_ih, b_hh = _weights(rnn, layer)
    return b_ih if isinstance(rnn, nn.GRU) else b_ih + b_hh


def autocast_cast(like: Tensor):
    """Under autocast, a function casting weights to the autocast dtype once per pass
    (instead of once per step inside every matrix product); otherwise identity."""
    device = like.device.type
    if not torch.is_autocast_enabled(device):
        return lambda w: w
    dtype = torch.get_autocast_dtype(device)
    return lambda w: w.to(dtype)


def run_rnn(rnn: nn.RNNBase, inputs, hx=None):
    """Call ``rnn`` on a tensor or PackedSequence; under autocast, in the autocast dtype.

    Autocast does not lower torch's RNN kernels, so under autocast the weights and
    inputs are cast here (once per call).  Measured on a 2-core AVX512-BF16 CPU, a
    packed bidirectional LSTM then runs torch's per-step (non-oneDNN) bf16 path and
    is no faster than fp32; the unpacked decoder LSTM does gain.  Without autocast:
    ``rnn(inputs, hx)``.
    """
    device = rnn.weight_hh_l0.device.type
    if not torch.is_autocast_enabled(device):
        return rnn(inputs, hx)
    from torch.func import functional_call
    from torch.nn.utils.rnn import PackedSequence

    dtype = torch.get_autocast_dtype(device)
    params = {name: p.to(dtype) for name, p in rnn.named_parameters()}
    if isinstance(inputs, PackedSequence):
        inputs = inputs._replace(data=inputs.data.to(dtype))
    else:
        inputs = inputs.to(dtype)
    if hx is not None:
        hx = tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple) else hx.to(dtype)
    with torch.autocast(device, enabled=False):
        return functional_call(rnn, params, (inputs, hx))


def _cell(kind: type, gates: Tensor, h: Tensor, c: Optional[Tensor], w_hh_t: Optional[Tensor], b_hh: Tensor):
    """One cell update from precomputed input gates (PyTorch's gate order and equations;
    tanh as :func:`~seq2seq.modules.activations.logistic_tanh`).  ``w_hh_t`` None: ``gates``
    already hold the recurrent product ``W_hh h`` (LSTM and tanh RNN; see
    :meth:`CellWeights.joint_t`)."""
    recurrent = (lambda g: g) if w_hh_t is None else (lambda g: torch.addmm(g, h, w_hh_t))  # noqa: E731
    if kind is nn.LSTM:
        gates = recurrent(gates).float()
        hidden = h.size(1)
        # One sigmoid for all four gates: tanh(g) = 2 sigmoid(2g) - 1.  (In an ONNX export a
        # Mul by a constant [1, 1, 2, 1] per gate, not the in-place slice, which exports as ScatterND.)
        if torch.onnx.is_in_onnx_export():
            gates = gates * torch.ones(4, 1).index_fill_(0, torch.tensor([2]), 2.0).expand(4, hidden).reshape(-1)
        else:
            gates[:, 2 * hidden:3 * hidden].mul_(2)
        i, f, g, o = gates.sigmoid_().chunk(4, dim=1)
        c = torch.addcmul(f * c, i, g * 2 - 1)
        return o * logistic_tanh(c), c
    if kind is nn.GRU:
        gh = torch.addmm(b_hh, h, w_hh_t).float()
        gates = gates.float()
        hidden = h.size(1)
        rz = torch.sigmoid(gates[:, :2 * hidden] + gh[:, :2 * hidden])
        r, z = rz.chunk(2, dim=1)
        n = logistic_tanh(gates[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        return n + z * (h - n), None
    return logistic_tanh(recurrent(gates).float()), None


class CellWeights:
    """Views of a torch RNN's weights, sliced and transposed once per pass.

    Slicing a parameter inside the step loop would make autograd build a
    full-size zero gradient per step; slicing once lets the steps' gradients
    accumulate on the views.

    Args:
        rnn: the batch-first torch RNN.
        leading: layer-0 input columns handled by :meth:`input_gates` (the rest,
            if any, are the ``extra`` input of :func:`cell_step`).
    """

    def __init__(self, rnn: nn.RNNBase, leading: int):
        self.kind, self.layers = type(rnn), rnn.num_layers
        self.dropout, self.training = rnn.dropout, rnn.training
        self.w_in_t, self.b_in, self.w_hh_t, self.b_hh = [], [], [], []
        cast = autocast_cast(rnn.weight_hh_l0)
        # One split (not two slices) of W_ih: its backward concatenates the two
        # gradients instead of filling a full-size zero tensor per slice.
        w_ih0 = rnn.weight_ih_l0
        self.w_lead, w_rest = w_ih0.split([leading, w_ih0.size(1) - leading], dim=1)
        self.b_lead = _input_bias(rnn, 0)
        for layer in range(rnn.num_layers):
            w_ih, w_hh, _, b_hh = _weights(rnn, layer)
            self.w_in_t.append(cast((w_rest if layer == 0 else w_ih).t()))
            self.b_in.append(None if layer == 0 else _input_bias(rnn, layer))
            self.w_hh_t.append(cast(w_hh.t()))
            self.b_hh.append(b_hh)
        self._joint_t: dict[int, Tensor] = {}

    def joint_t(self, layer: int) -> Optional[Tensor]:
        """``[W_in; W_hh]^T`` of ``layer`` ((inputs + hidden) x gates * hidden, for layer 0 the
        ``extra`` input columns), built once: in inference the cell's input and recurrent
        products are then one ``[x; h] W^T`` (one larger product, one pass over the gates
        fewer).  None for a GRU (its recurrent product is gated by r) and in training, whose
        gradients keep the two products apart."""
        if self.kind is nn.GRU or self.training or torch.is_grad_enabled():
            return None
        if layer not in self._joint_t:
            self._joint_t[layer] = torch.cat([self.w_in_t[layer], self.w_hh_t[layer]], 0)
        return self._joint_t[layer]

    def input_gates(self, x: Tensor) -> Tensor:
        """Layer-0 input products of the leading input columns, for all positions at once.

        Args:
            x: (..., leading) the leading features of layer 0's input (e.g. the embeddings).

        Returns:
            (..., gates * hidden): ``W_ih[:, :leading] x + bias`` (see :func:`_input_bias`).
        """
        return F.linear(x, self.w_lead, self.b_lead)


def cell_step(weights: CellWeights, gates0: Tensor, extra: Optional[Tensor], state: RNNState
              ) -> tuple[Tensor, RNNState]:
    """Advance a (multi-layer) RNN by one position.

    Args:
        weights: the RNN's :class:`CellWeights`.
        gates0: (batch, gates * hidden) layer-0 input products of the leading input
            columns, from :meth:`CellWeights.input_gates`.
        extra: (batch, m) the remaining layer-0 input columns (input feeding, context),
            or None.
        state: (layers, batch, hidden), or (h, c) for LSTM.

    Returns:
        top: (batch, hidden) the top layer's new state; the new full state.
    """
    is_lstm = weights.kind is nn.LSTM
    h_all, c_all = state if is_lstm else (state, None)
    hs, cs = [], []
    x = None
    for layer in range(weights.layers):
        h_prev, w_hh_t = h_all[layer], weights.w_hh_t[layer]
        if layer > 0 and weights.training and weights.dropout > 0:
            x = x * dropout_mask(x.shape, weights.dropout, x)
        inputs, start = (extra, gates0) if layer == 0 else (x, weights.b_in[layer])
        if inputs is not None and (joint := weights.joint_t(layer)) is not None:     # [x; h] in one product
            gates, w_hh_t = torch.addmm(start, torch.cat([inputs, h_prev.to(inputs.dtype)], 1), joint), None
        else:
            gates = start if inputs is None else torch.addmm(start, inputs, weights.w_in_t[layer])
        h, c = _cell(weights.kind, gates, h_prev, c_all[layer] if is_lstm else None, w_hh_t, weights.b_hh[layer])
        hs.append(h)
        cs.append(c)
        x = h
    stack = (lambda ts: ts[0].unsqueeze(0)) if len(hs) == 1 else torch.stack  # noqa: E731
    h_new = stack(hs)
    return x, ((h_new, stack(cs)) if is_lstm else h_new)
