"""A student's teachers: loading them (one run, or an ensemble) for a student's config, and
the checks that they read the data as the student does (:mod:`seq2seq.distill` trains the
student; :class:`~seq2seq.criteria.DistillationCriterion` is the token-level loss)."""

from __future__ import annotations

from pathlib import Path

from seq2seq.errors import Seq2SeqError

TOKENIZATION_KEYS = ("src_tokenizer", "tgt_tokenizer", "lowercase", "autoencoder")


def check_teacher_data(config) -> Path:
    """Check that the first teacher reads its data as ``config.data`` says (a student takes that
    teacher's vocabularies and sentencepiece models), from the teacher's ``config.yaml`` alone.

    Returns:
        The first teacher's run directory (where the student's vocabularies come from).

    Raises:
        Seq2SeqError: the first teacher is not a run directory, or its tokenization differs
            (naming the key).
    """
    from seq2seq.config import Config, load_config

    first = Path(config.distillation.teachers[0])
    if not (first / "config.yaml").is_file():
        raise Seq2SeqError(f"distillation.teachers[0] {first}: not a run directory (no config.yaml)")
    theirs = load_config(first / "config.yaml", schema=Config).data
    for key in TOKENIZATION_KEYS:
        if getattr(config.data, key) != getattr(theirs, key):
            raise Seq2SeqError(f"distillation.teachers[0] {first}: its data.{key} is {getattr(theirs, key)!r}, "
                               f"this config's is {getattr(config.data, key)!r}; a student reads its data as its "
                               "teacher does")
    uses_pieces = "sentencepiece" in (config.data.src_tokenizer, config.data.tgt_tokenizer)
    if uses_pieces and config.data.sentencepiece.joint != theirs.sentencepiece.joint:
        raise Seq2SeqError(f"distillation.teachers[0] {first}: data.sentencepiece.joint differs; a student "
                           "uses its teacher's sentencepiece model(s)")
    return first


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


__all__ = ["check_teacher_data", "load_teachers", "check_vocabularies", "is_teacher_targets", "targets_record"]
