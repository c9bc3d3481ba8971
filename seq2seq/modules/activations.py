"""tanh through the logistic function, for the decoder's hot loops on CPU.

tanh(x) = 2 sigma(2x) - 1 exactly.  torch's CPU tanh kernel is several times
slower than its sigmoid: measured with torch 2.13 on a 2-core AMD EPYC (AVX-512),
655k floats took 895 us in tanh and 125 us in sigmoid; 82k floats (a decoder
step's LSTM cell) 118 us in tanh and 35 us through this identity.  The identity
is within 2e-7 of tanh in absolute terms (float32), which is below the rounding
of the recurrences that use it.  In an ONNX export the native ``Tanh`` op is used
instead: onnxruntime's is vectorised, and one op runs faster than the identity's four.
"""

from __future__ import annotations

import torch
from torch import Tensor


def logistic_tanh(x: Tensor) -> Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1 (same shape; differentiable).

    Args:
        x: any tensor.

    Returns:
        A new tensor, |result - tanh(x)| <= 2e-7 in float32.
    """
    if torch.onnx.is_in_onnx_export():
        return torch.tanh(x)
    y = (x * 2).sigmoid_()
    # sigmoid's backward reads its output: scale a copy when autograd records the graph.
    return (y.mul(2) if y.requires_grad else y.mul_(2)).sub_(1)
