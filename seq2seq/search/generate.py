"""Entry points: decode a batch or a whole dataset with any strategy."""

from __future__ import annotations

import torch

from seq2seq.data.batching import Batch, BucketSampler
from seq2seq.search.beam import beam_search
from seq2seq.search.common import NBest, DecodeOptions
from seq2seq.search.greedy import greedy_search, sample


@torch.no_grad()
def decode_batch(model, batch: Batch, bos_id: int, eos_id: int, options: DecodeOptions) -> NBest:
    """Decode one batch with ``options.strategy`` (greedy, beam or sample).

    Beam search with ``beam_size == 1`` is greedy decoding and runs as such.

    Returns:
        Per sentence of the batch, its hypotheses best first.
    """
    if options.precision == "bf16":
        with torch.autocast(batch.src.device.type, dtype=torch.bfloat16):
            return _decode(model, batch, bos_id, eos_id, options)
    return _decode(model, batch, bos_id, eos_id, options)


def _decode(model, batch: Batch, bos_id: int, eos_id: int, options: DecodeOptions) -> NBest:
    if options.strategy == "sample":
        return sample(model, batch, bos_id, eos_id, options)
    if options.strategy == "beam" and options.beam_size > 1:
        return beam_search(model, batch, bos_id, eos_id, options)
    return greedy_search(model, batch, bos_id, eos_id, options)


@torch.no_grad()
def decode_dataset(model, dataset, bos_id: int, eos_id: int, batch_size: int, options: DecodeOptions,
                   device: torch.device) -> NBest:
    """Decode every source of a :class:`~seq2seq.data.batching.ParallelDataset`.

    Sentences are decoded in batches of ``batch_size`` ordered by source length
    (least padding; most batches then need no packing); results come back in
    dataset order.

    Returns:
        Per dataset row, its hypotheses best first.
    """
    was_training = model.training
    model.eval()
    results: NBest = [[] for _ in range(len(dataset))]
    try:
        for idx in BucketSampler(dataset.src_lengths, batch_size, shuffle=False).batches():
            batch = dataset.batch(idx).to(device)
            for row, hyps in zip(idx.tolist(), decode_batch(model, batch, bos_id, eos_id, options)):
                results[row] = hyps
    finally:
        model.train(was_training)
    return results
