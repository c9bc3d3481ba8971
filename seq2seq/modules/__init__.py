"""Building blocks: encoders, bridge, attention, decoders."""
