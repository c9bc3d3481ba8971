"""Tensorised datasets and length-bucketed batches.

A :class:`ParallelDataset` holds every sentence of a split as rows of padded id
tensors, built once; a batch is then an index into those rows plus a slice to the
batch's longest sentence (no per-example Python work per batch).  The
:class:`BucketSampler` groups sentences of similar length so that padding is
small, with an order that depends only on ``(seed, epoch)``: a resumed run sees
exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import torch
from torch import Tensor

from seq2seq.data.vocab import Vocabulary


@dataclass
class Batch:
    """One padded batch.  Masks are booleans with True = real token.

    Attributes:
        src: (batch, src_len) source ids, padded with ``pad_id``.
        src_lengths: (batch,) true source lengths, in tokens.
        src_mask: (batch, src_len) True on real source tokens.
        tgt_in: (batch, tgt_len) ``<bos> y_1 .. y_n`` (decoder inputs), or None.
        tgt_out: (batch, tgt_len) ``y_1 .. y_n <eos>`` (decoder targets), or None.
        tgt_mask: (batch, tgt_len) True on real target positions, or None.
        indices: (batch,) row of each sentence in its dataset.
        src_ext: (batch, src_len) the source in the target vocabulary extended by
            each sentence's unknown source words (copy attention), or None.
        tgt_out_ext: (batch, tgt_len) targets in that extended vocabulary, or None.
        members: for an ensemble, each member's batch of the same sentences (its own
            source tokenization; :mod:`seq2seq.models.ensemble`), else None.
    """

    src: Tensor
    src_lengths: Tensor
    src_mask: Tensor
    tgt_in: Optional[Tensor]
    tgt_out: Optional[Tensor]
    tgt_mask: Optional[Tensor]
    indices: Tensor
    src_ext: Optional[Tensor] = None
    tgt_out_ext: Optional[Tensor] = None
    members: Optional[tuple["Batch", ...]] = None

    @property
    def num_tgt_tokens(self) -> int:
        """Target tokens including ``<eos>``, excluding padding."""
        return int(self.tgt_mask.sum()) if self.tgt_mask is not None else 0

    def to(self, device: torch.device) -> "Batch":
        """Move every tensor to ``device``."""
        move = lambda t: t.to(device, non_blocking=True) if t is not None else None  # noqa: E731
        tensors = [move(getattr(self, f)) for f in self.__dataclass_fields__ if f != "members"]
        members = tuple(b.to(device) for b in self.members) if self.members is not None else None
        return Batch(*tensors, members=members)


def _pad_rows(seqs: Sequence[list[int]], prefix: list[int], suffix: list[int], pad: int) -> Tensor:
    width = max((len(s) for s in seqs), default=0) + len(prefix) + len(suffix)
    out = torch.full((len(seqs), max(width, 1)), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = prefix + s + suffix
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


class ParallelDataset:
    """Id sequences of one split, stored as padded tensors.

    Args:
        src_ids: source id lists (no specials).
        tgt_ids: target id lists (no specials), or None for source-only data.
        src_vocab, tgt_vocab: vocabularies (for pad/bos/eos ids).
        src_ext_ids, tgt_ext_ids: for copy attention, the sources and targets in the
            target vocabulary extended per sentence (:meth:`Vocabulary.extend`), or None.
    """

    def __init__(self, src_ids: Sequence[list[int]], tgt_ids: Optional[Sequence[list[int]]],
                 src_vocab: Vocabulary, tgt_vocab: Vocabulary,
                 src_ext_ids: Optional[Sequence[list[int]]] = None,
                 tgt_ext_ids: Optional[Sequence[list[int]]] = None):
        pad = src_vocab.pad_id
        self.src_ext = _pad_rows(src_ext_ids, [], [], tgt_vocab.pad_id) if src_ext_ids is not None else None
        self.tgt_out_ext = (_pad_rows(tgt_ext_ids, [], [tgt_vocab.eos_id], tgt_vocab.pad_id)
                            if tgt_ext_ids is not None else None)
        self.src = _pad_rows(src_ids, [], [], pad)                      # (N, S_max)
        self.src_lengths = torch.tensor([len(s) for s in src_ids], dtype=torch.long)
        if tgt_ids is not None:
            self.tgt_in = _pad_rows(tgt_ids, [tgt_vocab.bos_id], [], tgt_vocab.pad_id)    # (N, T_max+1)
            self.tgt_out = _pad_rows(tgt_ids, [], [tgt_vocab.eos_id], tgt_vocab.pad_id)   # (N, T_max+1)
            self.tgt_lengths = torch.tensor([len(t) + 1 for t in tgt_ids], dtype=torch.long)
        else:
            self.tgt_in = self.tgt_out = self.tgt_lengths = None
        self.pad_id = pad

    def __len__(self) -> int:
        return self.src.size(0)

    def batch(self, indices: Tensor | list[int]) -> Batch:
        """Gather rows ``indices`` and trim padding to the longest of them."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        src_len = self.src_lengths[idx]
        s = max(int(src_len.max()), 1)
        src = self.src[idx, :s]
        src_mask = torch.arange(s).unsqueeze(0) < src_len.unsqueeze(1)
        tgt_in = tgt_out = tgt_mask = None
        if self.tgt_in is not None:
            tgt_len = self.tgt_lengths[idx]
            t = int(tgt_len.max())
            tgt_in, tgt_out = self.tgt_in[idx, :t], self.tgt_out[idx, :t]
            tgt_mask = torch.arange(t).unsqueeze(0) < tgt_len.unsqueeze(1)
        src_ext = self.src_ext[idx, :s] if self.src_ext is not None else None
        tgt_out_ext = self.tgt_out_ext[idx, :tgt_out.size(1)] if self.tgt_out_ext is not None and tgt_out is not None \
            else None
        return Batch(src, src_len, src_mask, tgt_in, tgt_out, tgt_mask, idx, src_ext, tgt_out_ext)

    def sort_key(self) -> Tensor:
        """(N,) :func:`length_sort_key` of the split."""
        return length_sort_key(self.src_lengths, self.tgt_lengths)

    def lengths(self) -> Tensor:
        """(N,) :func:`footprint` of each sentence."""
        return footprint(self.src_lengths, self.tgt_lengths)


def length_sort_key(src_lengths: Tensor, tgt_lengths: Optional[Tensor]) -> Tensor:
    """(N,) a key ordering by source length, then target length (with ``<eos>``).

    Batches cut from this order mostly share one source length, and a batch
    whose sources all have the same length is encoded without packing (one
    fused RNN call; see :class:`~seq2seq.modules.encoders.RNNEncoder`).
    """
    if tgt_lengths is None:
        return src_lengths
    key = src_lengths.long() * (int(tgt_lengths.max()) + 1) + tgt_lengths
    fits = key.numel() == 0 or int(key.max()) <= torch.iinfo(src_lengths.dtype).max
    return key.to(src_lengths.dtype) if fits else key      # int32 lengths keep an int32 key when they can


def footprint(src_lengths: Tensor, tgt_lengths: Optional[Tensor]) -> Tensor:
    """(N,) the padded footprint of each sentence: max(src_len, tgt_len), what
    ``batch_type: tokens`` counts."""
    if tgt_lengths is None:
        return src_lengths
    return torch.maximum(src_lengths, tgt_lengths)


class BucketSampler:
    """Length-bucketed batches of sentence indices.

    Training order: shuffle all sentences (seeded by ``seed`` and the epoch),
    sort them by ``sort_key`` (stable, so sentences with equal keys stay in
    random order) within pools of ``pool_batches`` batches (default: one pool,
    as fairseq does), cut batches, then shuffle the batches.  Evaluation order
    (``shuffle=False``): sorted by ``sort_key``, for the least padding.

    Args:
        lengths: (N,) per-sentence padded footprint, counted by ``batch_type='tokens'``.
        batch_size: sentences per batch, or padded tokens per batch
            (``batch_type='tokens'``: batch rows * longest length <= batch_size).
        batch_type: ``sentences`` or ``tokens``.
        shuffle: training order (True) or sorted order (False).
        seed: base seed of the shuffling.
        pool_batches: how many batches' worth of sentences are sorted together
            (None: all of them).
        sort_key: (N,) the bucketing order (default ``lengths``), e.g.
            :meth:`ParallelDataset.sort_key`.
    """

    def __init__(self, lengths: Tensor, batch_size: int,
                 batch_type: Literal["sentences", "tokens"] = "sentences",
                 shuffle: bool = True, seed: int = 1, pool_batches: Optional[int] = None,
                 sort_key: Optional[Tensor] = None):
        self.lengths = lengths
        self.batch_size = batch_size
        self.batch_type = batch_type
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.sort_key = lengths if sort_key is None else sort_key
        if self.sort_key.shape != lengths.shape:
            raise ValueError(f"sort_key {tuple(self.sort_key.shape)} and lengths {tuple(lengths.shape)} differ")

    def _cut(self, order: Tensor) -> list[Tensor]:
        if self.batch_type == "sentences":
            return list(torch.split(order, self.batch_size))
        batches, start, longest = [], 0, 0
        lens = self.lengths[order].tolist()
        for i, n in enumerate(lens):
            longest_if = max(longest, n)
            if i > start and longest_if * (i - start + 1) > self.batch_size:
                batches.append(order[start:i])
                start, longest_if = i, n
            longest = longest_if
        if start < len(lens):
            batches.append(order[start:])
        return batches

    def batches(self, epoch: int = 0) -> list[Tensor]:
        """The batches of ``epoch``: a list of (batch,) index tensors."""
        n = len(self.lengths)
        if not self.shuffle:
            order = torch.sort(self.sort_key, stable=True).indices
            return self._cut(order)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen)
        per_batch = self.batch_size if self.batch_type == "sentences" else max(
            1, self.batch_size // max(1, int(self.lengths.float().mean())))
        pool = n if self.pool_batches is None else max(1, per_batch * self.pool_batches)
        batches: list[Tensor] = []
        for start in range(0, n, pool):
            chunk = perm[start:start + pool]
            chunk = chunk[torch.sort(self.sort_key[chunk], stable=True).indices]
            batches.extend(self._cut(chunk))
        shuffle = torch.randperm(len(batches), generator=gen).tolist()
        return [batches[i] for i in shuffle]
