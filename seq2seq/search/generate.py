"""Entry points: decode a batch or a whole dataset with any strategy."""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

from seq2seq.data.batching import Batch, BucketSampler
from seq2seq.search.beam import beam_search
from seq2seq.search.common import NBest, DecodeOptions
from seq2seq.search.greedy import greedy_search, sample


@contextlib.contextmanager
def torch_threads(threads: Optional[int]):
    """Run the block with at most ``threads`` torch intra-op threads (None: unchanged),
    then restore the previous count."""
    before = torch.get_num_threads()
    if threads is None or threads >= before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def decode_batch(model, batch: Batch, bos_id: int, eos_id: int, options: DecodeOptions) -> NBest:
    """Decode one batch with ``options.strategy`` (greedy, beam or sample).

    Beam search with ``beam_size == 1`` is greedy decoding and runs as such.  A model
    whose steps run outside torch says how many threads the search's own torch
    operations should take in its ``search_threads`` attribute (onnxruntime graphs: 1,
    so that the runtime's threads keep the cores); others leave torch's count alone.

    Returns:
        Per sentence of the batch, its hypotheses best first.
    """
    with torch_threads(getattr(model, "search_threads", None)):
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
