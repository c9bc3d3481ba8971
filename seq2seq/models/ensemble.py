"""Ensemble decoding: several trained encoder-decoders that share a target vocabulary
decode as one model.

At each step every member reads its own source (members may differ in architecture
and in source tokenization) and gives p_i(y | y_<t, x); the ensemble's distribution is
their weighted mean, p(y | y_<t, x) = sum_i w_i p_i(y | y_<t, x) with sum_i w_i = 1,
computed in log space as logsumexp_i(log w_i + log p_i).  This is fairseq's
``EnsembleModel`` (``forward_decoder`` averages probabilities, not log-probabilities),
a mixture of experts rather than a product of experts: the mixture is a proper
distribution at every step (so beam scores stay log-probabilities and length
penalties keep their meaning), and a token that one member rules out is not vetoed by
it.  The attention of a step is the weighted mean of the members' attention, defined
when all members tokenize the source alike (same positions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from seq2seq.data.batching import Batch, ParallelDataset
from seq2seq.errors import Seq2SeqError
from seq2seq.models.encoder_decoder import Seq2SeqOutput


@dataclass(frozen=True)
class EnsembleState:
    """The members' decoder states, reordered together (beam search sees one state)."""

    states: tuple

    def reorder(self, index: Tensor, beam: Optional[int] = None) -> "EnsembleState":
        """Select / reorder / repeat rows of every member's state (see ``DecoderState.reorder``)."""
        return EnsembleState(tuple(s.reorder(index, beam=beam) for s in self.states))


class EnsembleDecoder(nn.Module):
    """The ensemble's ``step``: the members' steps, mixed."""

    def __init__(self, ensemble: "Ensemble"):
        super().__init__()
        self._ensemble = [ensemble]            # a plain list: not a submodule (no cycle in the module tree)

    def step(self, prev: Tensor, state: EnsembleState) -> tuple[Tensor, EnsembleState, Optional[Tensor]]:
        """One step of every member.

        Args:
            prev: (rows,) previous target ids.
            state: the members' states.

        Returns:
            log_probs: (rows, tgt_vocab) log of the weighted mean of the members' probabilities.
            state: the members' next states.
            attention: (rows, src_len) weighted mean of the members' attention, or None when
                the members tokenize the source differently (or one has no attention).
        """
        ens = self._ensemble[0]
        log_probs, states, attention = [], [], []
        for member, s in zip(ens.members, state.states):
            logits, s, a = member.decoder.step(prev, s)
            log_probs.append(torch.log_softmax(logits.float(), dim=-1))
            states.append(s)
            attention.append(a)
        mixed = torch.logsumexp(torch.stack(log_probs) + ens.log_weights.view(-1, 1, 1), dim=0)
        weights = None
        if ens.shared_source and all(a is not None for a in attention):
            weights = sum(w * a.float() for w, a in zip(ens.weights.tolist(), attention))
        return mixed, EnsembleState(tuple(states)), weights


class Ensemble(nn.Module):
    """Several :class:`~seq2seq.models.encoder_decoder.EncoderDecoder` decoding as one
    (the model interface of :mod:`seq2seq.search`: ``encode`` and ``decoder.step``).

    Args:
        members: the models (eval mode), sharing one target vocabulary.
        weights: one non-negative weight per member (normalised to sum 1; default equal).
        shared_source: whether all members tokenize the source alike, so that their
            attention can be averaged.

    Raises:
        Seq2SeqError: no member, a weight count that does not match, a negative or
            all-zero weight, or a member with copy attention (its extended vocabulary
            is per member).
    """

    def __init__(self, members: Sequence[nn.Module], weights: Optional[Sequence[float]] = None,
                 shared_source: bool = True):
        super().__init__()
        if not members:
            raise Seq2SeqError("an ensemble needs at least one run")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members):
            raise Seq2SeqError(f"--ensemble-weights: {len(weights)} weight(s) for {len(members)} runs")
        if min(weights) < 0 or sum(weights) <= 0 or not all(math.isfinite(w) for w in weights):
            raise Seq2SeqError(f"--ensemble-weights: weights must be >= 0 with a positive sum (got {weights})")
        for i, m in enumerate(members):
            if getattr(m.decoder, "copy", False):
                raise Seq2SeqError(f"ensemble member {i + 1} uses copy attention, which ensembles do not support")
        self.members = nn.ModuleList(members)
        w = torch.tensor(weights, dtype=torch.float32) / sum(weights)
        self.register_buffer("weights", w, persistent=False)
        self.register_buffer("log_weights", w.log(), persistent=False)
        self.shared_source = shared_source
        self.decoder = EnsembleDecoder(self)

    @property
    def search_threads(self) -> Optional[int]:
        """The search's torch threads (:func:`seq2seq.search.decode_batch`): the fewest any
        member asks for when every member runs its steps outside torch (exported graphs,
        1), else None (torch's own count, which the members' products need)."""
        asked = [getattr(m, "search_threads", None) for m in self.members]
        return None if None in asked else min(asked)

    def encode(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor, src_ext: Optional[Tensor] = None,
               members: Optional[tuple[Batch, ...]] = None) -> tuple[None, EnsembleState]:
        """Each member encodes its own batch of the same sentences.

        Args:
            src: (batch, src_len) the first member's source ids (used when ``members`` is None).
            src_lengths: (batch,) its lengths, in tokens.
            src_mask: (batch, src_len) True at real tokens.
            members: one :class:`Batch` per member (:attr:`Batch.members`).

        Returns:
            (None, the members' start states).
        """
        if members is None:
            return None, EnsembleState(tuple(m.encode(src, src_lengths, src_mask)[1] for m in self.members))
        return None, EnsembleState(tuple(m.encode(b.src, b.src_lengths, b.src_mask)[1]
                                         for m, b in zip(self.members, members)))

    def forward(self, batch: Batch, return_attention: bool = False) -> Seq2SeqOutput:
        """Teacher-forced pass of every member on its own batch: ``logits`` are the
        mixture's log-probabilities (batch, tgt_len, tgt_vocab), so the cross-entropy of
        their softmax is the ensemble's negative log-likelihood."""
        batches = batch.members or (batch,) * len(self.members)
        log_probs = torch.stack([torch.log_softmax(m(b).logits.float(), dim=-1)
                                 for m, b in zip(self.members, batches)])
        return Seq2SeqOutput(torch.logsumexp(log_probs + self.log_weights.view(-1, 1, 1, 1), dim=0), None, None)


class EnsembleDataset:
    """The same sentences as each member reads them: row i of every member's
    :class:`ParallelDataset` is sentence i.  Batches are cut by the first member's
    lengths and carry every member's batch of the same rows (:attr:`Batch.members`).

    Args:
        members: one dataset per ensemble member, equal in length.
    """

    def __init__(self, members: Sequence[ParallelDataset]):
        if len({len(d) for d in members}) != 1:
            raise ValueError("ensemble member datasets differ in length")
        self.members = list(members)
        first = self.members[0]
        self.src_lengths, self.tgt_in = first.src_lengths, first.tgt_in

    def __len__(self) -> int:
        return len(self.members[0])

    def batch(self, indices: Tensor | list[int]) -> Batch:
        """The first member's batch of rows ``indices``, with every member's in ``members``."""
        batches = tuple(d.batch(indices) for d in self.members)
        return replace(batches[0], members=batches)

    def sort_key(self) -> Tensor:
        return self.members[0].sort_key()

    def lengths(self) -> Tensor:
        return self.members[0].lengths()
