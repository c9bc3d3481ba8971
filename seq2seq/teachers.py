"""A student's teachers: loading them (one run, or an ensemble) for a student's config, the
checks that they read the data as the student does, their per-step distributions under
teacher forcing, and those distributions' k most probable tokens computed once over the
training set (:class:`TeacherTopK`) for a student that reads them instead of running the
teachers in every step (:mod:`seq2seq.distill` trains the student;
:class:`~seq2seq.criteria.DistillationCriterion` is the token-level loss)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from seq2seq.criteria import teacher_log_probs
from seq2seq.errors import Seq2SeqError

TOKENIZATION_KEYS = ("src_tokenizer", "tgt_tokenizer", "lowercase", "autoencoder")


def check_run_data(config, run: Path, key: str) -> Path:
    """Check that the run ``run`` (named by the config key ``key`` in messages) reads its data
    as ``config.data`` says, from its ``config.yaml`` alone: a new run that takes that run's
    vocabularies and sentencepiece models (a student from its first teacher, a run started
    from ``training.init_from``) must tokenize as it did.

    Returns:
        ``run`` (where the new run's vocabularies come from).

    Raises:
        Seq2SeqError: ``run`` is not a run directory, or its tokenization differs (naming the key).
    """
    from seq2seq.config import Config, load_config

    if not (run / "config.yaml").is_file():
        raise Seq2SeqError(f"{key} {run}: not a run directory (no config.yaml)")
    theirs = load_config(run / "config.yaml", schema=Config).data
    for name in TOKENIZATION_KEYS:
        if getattr(config.data, name) != getattr(theirs, name):
            raise Seq2SeqError(f"{key} {run}: its data.{name} is {getattr(theirs, name)!r}, "
                               f"this config's is {getattr(config.data, name)!r}; a run that takes its vocabularies "
                               "reads its data as it does")
    uses_pieces = "sentencepiece" in (config.data.src_tokenizer, config.data.tgt_tokenizer)
    if uses_pieces and config.data.sentencepiece.joint != theirs.sentencepiece.joint:
        raise Seq2SeqError(f"{key} {run}: data.sentencepiece.joint differs; a run that takes its vocabularies "
                           "uses its sentencepiece model(s)")
    return run


def check_teacher_data(config) -> Path:
    """:func:`check_run_data` for the first teacher of ``config.distillation`` (a student
    takes that teacher's vocabularies).  Returns its run directory."""
    return check_run_data(config, Path(config.distillation.teachers[0]), "distillation.teachers[0]")


def load_teachers(config):
    """The teachers of ``config.distillation`` as one :class:`~seq2seq.api.Seq2Seq` (an
    ensemble when there are several), on ``config.training.device``, after
    :func:`check_teacher_data`.

    Raises:
        Seq2SeqError: a teacher that is not a text run directory, a missing checkpoint,
            teachers that cannot form an ensemble (naming the first difference), or a teacher
            whose tokenization differs from ``config.data`` (naming the key).
    """
    from seq2seq.api import Seq2Seq

    check_teacher_data(config)
    d = config.distillation
    paths = d.teachers[0] if len(d.teachers) == 1 else d.teachers
    return Seq2Seq.load(paths, checkpoint=d.checkpoint, device=config.training.device)


def check_vocabularies(teacher, corpus, where: str = "the student") -> None:
    """Token-level distillation compares distributions id by id: every teacher must share the
    student's target vocabulary and (reading the student's batches) its source vocabulary.

    Raises:
        Seq2SeqError: naming the teacher, the side and the first id that differs.
    """
    for member in teacher.members or [teacher]:
        for side, ours, theirs in (("target", corpus.tgt_vocab.itos, member.corpus.tgt_vocab.itos),
                                   ("source", corpus.src_vocab.itos, member.corpus.src_vocab.itos)):
            if ours == theirs:
                continue
            at = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y), min(len(ours), len(theirs)))
            raise Seq2SeqError(
                f"distillation teacher {member.run_dir}: its {side} vocabulary differs from {where}'s at id {at} "
                f"({len(theirs)} vs {len(ours)} tokens); token-level distillation needs one vocabulary "
                "(a new student takes its first teacher's; set distillation.weight: 0 for sequence level only)")


def targets_record(path: str | Path) -> Path:
    """The JSON beside a TSV of teachers' outputs that says what it was made from (``OUT.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def is_teacher_targets(path: str | Path) -> bool:
    """Whether ``path`` is a TSV :func:`teacher_targets` completed (its ``.json`` beside it)."""
    path = Path(path)
    return path.is_file() and targets_record(path).is_file()


class TeacherTopK:
    """The teachers' k most probable tokens at every target position of a training set, with
    their log-probabilities renormalised over those k (the "top-K distillation" of Tan et al.
    2019), computed once before training so that a student's step reads them instead of
    running the teachers: the teachers' distributions under teacher forcing on the references
    do not change over epochs.

    Stored flat over the training set's target positions (``<eos>`` included): row ``i`` of
    the dataset owns positions ``offsets[i] .. offsets[i + 1] - 1``.  The reference token of
    every position is kept too, so a batch from other data (or other rows) is an error, not a
    silently wrong target.

    Attributes:
        log_probs: (positions, k) float32 log q~ over the k tokens (logsumexp over k = 0).
        ids: (positions, k) int32 those tokens' target-vocabulary ids.
        targets: (positions,) int32 the reference token at each position.
        offsets: (N + 1,) int64 row starts.
        meta: what it was computed from (teachers, checkpoint, temperature, k).
    """

    def __init__(self, log_probs: Tensor, ids: Tensor, targets: Tensor, offsets: Tensor, meta: dict):
        self.log_probs, self.ids, self.targets, self.offsets, self.meta = log_probs, ids, targets, offsets, meta

    @classmethod
    def compute(cls, teacher: nn.Module, dataset, k: int, temperature: float, meta: dict,
                batch_tokens: int = 8192, device: Optional[torch.device] = None) -> "TeacherTopK":
        """Run ``teacher`` (:func:`teacher_log_probs`) over every row of ``dataset`` in
        length-sorted batches of at most ``batch_tokens`` padded tokens and keep each
        position's top ``k``.

        Args:
            dataset: a :class:`~seq2seq.data.batching.ParallelDataset` or
                :class:`~seq2seq.data.mapped.MappedDataset` with targets.
            k: tokens kept per position (at most the target vocabulary).
            meta: stored with the result (see :meth:`load`).

        Raises:
            Seq2SeqError: ``k`` larger than the teachers' target vocabulary.
        """
        from seq2seq.data.batching import BucketSampler

        tgt_lengths = dataset.tgt_lengths.long()
        offsets = torch.zeros(len(tgt_lengths) + 1, dtype=torch.long)
        torch.cumsum(tgt_lengths, 0, out=offsets[1:])
        total = int(offsets[-1])
        log_probs = torch.empty(total, k, dtype=torch.float32)
        ids = torch.empty(total, k, dtype=torch.int32)
        targets = torch.empty(total, dtype=torch.int32)
        device = device or next(teacher.parameters()).device
        teacher.eval()
        sampler = BucketSampler(dataset.lengths(), batch_tokens, "tokens", shuffle=False, sort_key=dataset.sort_key())
        start, done = time.time(), 0
        for index in sampler.batches():
            batch = dataset.batch(index)
            log_q = teacher_log_probs(teacher, batch.to(device), temperature).cpu()
            if k > log_q.size(-1):
                raise Seq2SeqError(f"distillation.top_k {k} exceeds the teachers' {log_q.size(-1)} target tokens")
            top, top_ids = log_q.topk(k, dim=-1)                            # (B, T, k)
            mask = batch.tgt_mask
            pos = (offsets[batch.indices].unsqueeze(1) + torch.arange(mask.size(1)))[mask]
            log_probs[pos] = (top - top.logsumexp(-1, keepdim=True))[mask]
            ids[pos] = top_ids[mask].int()
            targets[pos] = batch.tgt_out[mask].int()
            done += len(index)
        print(f"[distill] teachers' top-{k} at {total:,} target positions of {done:,} pairs in "
              f"{time.time() - start:.0f} s", file=sys.stderr)
        return cls(log_probs, ids, targets, offsets, meta)

    def save(self, path: Path) -> None:
        """Write atomically as one safetensors file (``meta`` in its header)."""
        from safetensors.torch import save

        from seq2seq.checkpoint import atomic_write_bytes

        tensors = {"log_probs": self.log_probs, "ids": self.ids, "targets": self.targets, "offsets": self.offsets}
        atomic_write_bytes(Path(path), save(tensors, metadata={"meta": json.dumps(self.meta, sort_keys=True)}))

    @classmethod
    def load(cls, path: Path, meta: dict, dataset) -> Optional["TeacherTopK"]:
        """The store at ``path`` when it was made with ``meta`` for ``dataset``'s rows (their
        target lengths), else None (absent, made from other teachers, settings or data).

        Raises:
            Seq2SeqError: a file that is not such a store.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), "pt") as f:
                stored = json.loads((f.metadata() or {}).get("meta", "null"))
                if stored != meta:
                    return None
                tensors = {name: f.get_tensor(name) for name in ("log_probs", "ids", "targets", "offsets")}
        except (SafetensorError, OSError, ValueError, KeyError) as e:
            raise Seq2SeqError(f"{path}: not a store of the teachers' top-k distributions ({e}); delete it to "
                               "compute them again") from None
        lengths = tensors["offsets"].diff()
        if not torch.equal(lengths, dataset.tgt_lengths.long()):
            return None
        return cls(**tensors, meta=stored)

    def lookup(self, batch) -> tuple[Tensor, Tensor]:
        """The stored top-k of ``batch``'s rows (``batch.indices``) at its target positions.

        Returns:
            log_probs: (batch, tgt_len, k) float32, zeros at padding; ids: (batch, tgt_len, k)
            int64, zeros at padding (on the batch's device).

        Raises:
            Seq2SeqError: the batch's targets differ from those the store was computed on.
        """
        mask = batch.tgt_mask.cpu()
        rows = batch.indices.cpu()
        pos = (self.offsets[rows].unsqueeze(1) + torch.arange(mask.size(1))).masked_fill(~mask, 0)
        if not torch.equal(self.targets[pos][mask].long(), batch.tgt_out.cpu()[mask]):
            raise Seq2SeqError("the teachers' top-k distributions were computed on other training data "
                               f"({self.meta}); delete the store to compute them again")
        log_probs = self.log_probs[pos].masked_fill(~mask.unsqueeze(-1), 0.0)
        ids = self.ids[pos].long().masked_fill(~mask.unsqueeze(-1), 0)
        device = batch.tgt_out.device
        return log_probs.to(device), ids.to(device)


def top_k_meta(config) -> dict:
    """What a :class:`TeacherTopK` for ``config``'s student depends on besides its data rows."""
    d = config.distillation
    return {"teachers": [str(Path(t).resolve()) for t in d.teachers], "checkpoint": d.checkpoint,
            "temperature": d.temperature, "top_k": d.top_k}


def teacher_top_k(config, teacher, dataset, path: Optional[Path]) -> TeacherTopK:
    """The teachers' top-k over ``dataset`` for ``config``'s student: read from ``path`` when it
    holds them for these teachers, settings and rows, else computed (and written to ``path``
    atomically when one is given; :attr:`DistillationConfig.top_k_file`).

    Raises:
        Seq2SeqError: an unreadable store, a ``top_k`` over the vocabulary, a failed write.
    """
    meta = top_k_meta(config)
    if path is not None and (store := TeacherTopK.load(path, meta, dataset)) is not None:
        print(f"[distill] reusing the teachers' top-{meta['top_k']} distributions in {path}", file=sys.stderr)
        return store
    store = TeacherTopK.compute(teacher, dataset, meta["top_k"], meta["temperature"], meta)
    if path is not None:
        if path.exists():
            print(f"[distill] {path} holds other teachers' top-k, settings or data; replacing it", file=sys.stderr)
        store.save(path)
    return store


__all__ = ["check_run_data", "check_teacher_data", "load_teachers", "check_vocabularies", "is_teacher_targets",
           "targets_record",
           "TeacherTopK", "teacher_top_k", "top_k_meta"]
