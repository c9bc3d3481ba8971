"""Decoding: the search loops over the decoder's ``step``, apart from the model.

The model only offers ``encode``, ``decoder.step`` and a state that can be
reordered (fairseq's split); the strategies live here:

- :mod:`~seq2seq.search.greedy`: greedy decoding and sampling (temperature, top-k, top-p);
- :mod:`~seq2seq.search.beam`: beam search with length and coverage penalties;
- :mod:`~seq2seq.search.common`: options, results and the shared constraints
  (min/max length, n-gram blocking);
- :mod:`~seq2seq.search.generate`: one call for any strategy, on a batch or a dataset.
"""

from seq2seq.search.beam import beam_search
from seq2seq.search.common import DecodeOptions, Hypothesis, NBest, length_caps
from seq2seq.search.generate import decode_batch, decode_dataset
from seq2seq.search.greedy import greedy_search, sample

__all__ = ["DecodeOptions", "Hypothesis", "NBest", "beam_search", "decode_batch", "decode_dataset",
           "greedy_search", "length_caps", "sample"]
