"""Knowledge distillation: a student trained from teacher runs (one run, or an ensemble).

- Sequence level (Kim & Rush 2016, sec. 3.2): the teachers beam-decode the training sources
  (:func:`teacher_targets`, batched, resumable, written atomically beside the student's run)
  and the student trains on those targets, alone or beside the references.
- Token level (Hinton et al. 2015; Kim & Rush 2016, eq. 4-5; Sun et al. 2019 for G2P): the
  loss mixes cross-entropy on the references with the KL divergence to the teachers'
  per-step distribution under teacher forcing
  (:class:`~seq2seq.criteria.DistillationCriterion`; the trainer does not know about it).

Both are set in the config's ``distillation`` section (:class:`~seq2seq.config.DistillationConfig`);
:func:`distill` (``seq2seq distill``) makes the teachers' targets when asked and then trains
like ``seq2seq train``, so ``seq2seq train --resume STUDENT`` continues a student exactly.
A student uses its first teacher's vocabularies (and sentencepiece models).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from seq2seq.checkpoint import atomic_write_text
from seq2seq.errors import Seq2SeqError
from seq2seq.teachers import load_teachers, targets_record

CHUNK = 4096                    # sources per part file of the teachers' decoding (the unit of resumption)


def teacher_targets_path(run_dir: Path) -> Path:
    """Where the teachers' outputs for a student in ``run_dir`` go: ``RUN.teacher.tsv``, beside it."""
    return run_dir.parent / f"{run_dir.name}.teacher.tsv"


def _fingerprint(config, train: Path) -> dict:
    """What the teachers' outputs depend on; a mismatch makes old parts unusable."""
    d = config.distillation
    stat = train.stat()
    return {"teachers": [str(Path(t).resolve()) for t in d.teachers], "checkpoint": d.checkpoint,
            "beam_size": d.beam_size, "nbest": d.nbest, "references": d.references,
            "train": str(train.resolve()), "train_bytes": stat.st_size,
            "train_sha1": hashlib.sha1(train.read_bytes()).hexdigest()}


def teacher_targets(config, out: Path, teacher=None) -> Path:
    """The teachers' beam outputs for the sources of ``config.data.train``, as a training TSV.

    Decodes ``distillation.batch_size`` sources per batch (beam ``beam_size``, the ``nbest``
    best hypotheses of each source) in parts of :data:`CHUNK` sources, each written
    atomically to ``OUT.parts/``; a decoding that stops (killed, out of time) continues from
    the parts already written when called again with the same settings.  At the end ``OUT``
    (``source<TAB>target``: the reference pairs first when ``references``, then the teachers'
    pairs not already among them) and ``OUT.json`` (what it was made from) are written
    atomically and the parts removed.

    Args:
        config: the student's config (``data.train``, ``data.max_bad_lines``, ``distillation``).
        out: the TSV to write.
        teacher: the loaded teachers (default :func:`load_teachers`).

    Returns:
        ``out``.

    Raises:
        Seq2SeqError: unreadable training data (naming file and line), a teacher that
            cannot be loaded.
    """
    from seq2seq.data.tsv import read_tsv_skipping

    d, train = config.distillation, Path(config.data.train)
    if not train.is_file():
        raise Seq2SeqError(f"data.train {train}: sequence-level distillation decodes a TSV file's sources "
                           "(not a preprocessed directory)")
    meta = _fingerprint(config, train)
    done = targets_record(out)
    if out.is_file() and done.is_file() and json.loads(done.read_text(encoding="utf-8")) == meta:
        print(f"[distill] reusing the teachers' outputs in {out}", file=sys.stderr)
        return out
    examples, _ = read_tsv_skipping(train, config.data.max_bad_lines, autoencoder=config.data.autoencoder)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    stamp = parts / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) != meta:
        shutil.rmtree(parts)                           # made with other teachers, beam or data: start over
        parts.mkdir(parents=True)
    atomic_write_text(stamp, json.dumps(meta, indent=1))
    teacher = teacher or load_teachers(config)
    sources = [e.source for e in examples]
    for start in range(0, len(sources), CHUNK):
        part = parts / f"{start // CHUNK:06d}.tsv"
        if part.is_file():
            continue
        chunk = sources[start:start + CHUNK]
        nbest = teacher.predict(chunk, batch_size=d.batch_size, beam=d.beam_size, nbest=d.nbest, with_scores=True)
        lines = [f"{s}\t{h.text}\n" for s, hyps in zip(chunk, nbest) for h in hyps if h.text.strip()]
        atomic_write_text(part, "".join(lines))
        print(f"[distill] teachers decoded {min(start + CHUNK, len(sources)):,}/{len(sources):,} sources "
              f"(beam {d.beam_size}, {d.nbest}-best)", file=sys.stderr)
    pairs: dict[str, None] = {}                         # ordered and without repeats
    if d.references:
        pairs.update((f"{e.source}\t{e.references[0]}\n", None) for e in examples)
    for part in sorted(parts.glob("[0-9]*.tsv")):
        pairs.update((line, None) for line in part.read_text(encoding="utf-8").splitlines(keepends=True))
    atomic_write_text(out, "".join(pairs))
    atomic_write_text(done, json.dumps(meta, indent=1))
    shutil.rmtree(parts)
    print(f"[distill] {len(pairs):,} training pairs in {out}", file=sys.stderr)
    return out


def distill(config, run_dir: str | Path, overwrite: bool = False) -> Path:
    """Train the student ``config`` describes (its ``distillation.teachers`` set) into ``run_dir``.

    With ``distillation.sequence_level`` the teachers first decode the training sources
    (:func:`teacher_targets`, into ``RUN.teacher.tsv`` beside the run) and the student's
    ``data.train`` becomes that file (the resolved ``config.yaml`` says so, so a resume
    trains on the same pairs); with ``distillation.weight > 0`` the loss adds the token-level
    KL term (:class:`~seq2seq.criteria.DistillationCriterion`), and with ``distillation.top_k``
    the teachers' top-k are computed once into ``distillation.top_k_file`` (default
    ``RUN.teacher-topk.safetensors`` beside the run; reused by a resume and by any student
    with the same teachers, settings and training rows).  Otherwise this is
    :func:`seq2seq.training.train`.

    Raises:
        Seq2SeqError: no teachers, an existing run directory (before any decoding), a teacher
            that cannot be loaded or does not share the student's data settings or
            vocabularies, everything :func:`~seq2seq.training.train` raises.
    """
    from seq2seq.training import run_dir_problem, train

    if getattr(config, "task", "text") != "text":
        raise Seq2SeqError("distillation applies to text runs (task: text)")
    run_dir = Path(run_dir)
    d = config.distillation
    if not d.teachers:
        raise Seq2SeqError("distillation.teachers is empty: name the teacher run(s) (seq2seq distill CONFIG "
                           "--teacher RUN [RUN ...])")
    if problem := run_dir_problem(run_dir, overwrite):
        raise Seq2SeqError(problem)
    if d.sequence_level:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise Seq2SeqError("sequence-level distillation decodes the training sources in one process: run "
                               "`seq2seq distill` without torchrun")
        out = teacher_targets(config, teacher_targets_path(run_dir))
        config = config.model_copy(update={"data": config.data.model_copy(update={"train": str(out)})})
    if d.top_k and d.weight > 0 and d.top_k_file is None:
        top_k_file = str(run_dir.parent / f"{run_dir.name}.teacher-topk.safetensors")
        config = config.model_copy(update={"distillation": d.model_copy(update={"top_k_file": top_k_file})})
    return train(config, run_dir, overwrite=overwrite)


def top_k_store(config) -> Path:
    """Compute the teachers' top-k distributions over ``config``'s training rows into
    ``distillation.top_k_file`` (or find them there) before any student trains, so that
    several students of the same teachers, settings and data share one computation (each
    then reads the file; :func:`seq2seq.teachers.teacher_top_k`).

    Returns:
        The file.

    Raises:
        Seq2SeqError: no teachers, ``weight`` 0, ``top_k`` 0 or no ``top_k_file``; what
            :func:`distill` raises for the teachers and the data.
    """
    from seq2seq.tasks import build_task

    d = config.distillation
    if not (d.teachers and d.weight > 0 and d.top_k and d.top_k_file):
        raise Seq2SeqError("a top-k store needs distillation.teachers, weight > 0, top_k > 0 and top_k_file")
    build_task(config)
    return Path(d.top_k_file)


__all__ = ["distill", "teacher_targets", "teacher_targets_path", "top_k_store"]
