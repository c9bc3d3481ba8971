"""Building blocks of the encoder-decoder family: encoders, bridge, attention, decoders, heads."""

from torch import nn


def num_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model`` (the number every log and benchmark reports)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
