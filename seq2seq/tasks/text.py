"""The text task: token sequences to token sequences (G2P, translation, dialog,
transduction), trained by maximum likelihood with teacher forcing or scheduled
sampling (Bengio et al. 2015) and validated on decoded outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch

from seq2seq.checkpoint import atomic_write_text
from seq2seq.config import Config
from seq2seq.criteria import SequenceCriterion
from seq2seq.data.batching import Batch, BucketSampler
from seq2seq.data.corpus import Corpus, Split
from seq2seq.data.tsv import read_tsv, read_tsv_skipping
from seq2seq.errors import Seq2SeqError
from seq2seq.evaluation import evaluate_split, evaluation_split
from seq2seq.metrics import HIGHER_IS_BETTER
from seq2seq.models.encoder_decoder import EncoderDecoder, Seq2SeqOutput
from seq2seq.scheduled_sampling import scheduled_sampling_forward


class TextTask:
    """Parallel text: a corpus (tokenizers + vocabularies) and its training and
    validation splits.

    Args:
        config: the run's config.
        corpus: tokenizers and vocabularies.
        train_split, valid_split: encoded data (None when only predicting).
        train_data: the training dataset when it is not an in-memory split: a
            :class:`~seq2seq.data.mapped.MappedDataset` (default ``train_split.dataset``).
    """

    unit = "tokens"

    def __init__(self, config: Config, corpus: Corpus, train_split: Optional[Split] = None,
                 valid_split: Optional[Split] = None, train_data=None):
        self.config, self.corpus = config, corpus
        self.train_split, self.valid_split = train_split, valid_split
        self.train_data = train_data if train_data is not None else (train_split.dataset if train_split else None)
        t = config.training
        self.criterion = SequenceCriterion(
            corpus.tgt_vocab.pad_id, t.label_smoothing,
            t.coverage_loss_weight if config.model.decoder.coverage else 0.0,
            t.kl_weight, t.kl_anneal, t.kl_anneal_steps)
        self._sampler: Optional[BucketSampler] = None
        self._sampler_world = 1
        self.dropped = 0                      # training pairs left out by the length limits
        self.skipped: list[str] = []          # "file:line: reason" of malformed lines left out (data.max_bad_lines)

    @classmethod
    def for_training(cls, config: Config, run_dir: Optional[Path] = None) -> "TextTask":
        """Read the training and validation TSVs; build the corpus from the training
        data (training sentencepiece models if asked), or load it from ``run_dir``.

        The training split drops pairs over ``data.max_src_len`` / ``max_tgt_len``
        (``long_source`` policies); the validation split keeps every example.  A
        ``data.train`` directory written by ``seq2seq preprocess`` is memory-mapped
        instead (its vocabularies are the run's).  A student (``distillation.teachers``)
        takes its first teacher's vocabularies (a run with ``training.init_from``, that
        run's; the teachers must share them) and, with ``distillation.weight > 0``, the
        token-level :class:`~seq2seq.criteria.DistillationCriterion` over its teachers (or,
        with ``distillation.top_k``, over their top-k computed once: read from
        ``distillation.top_k_file`` when it holds them).

        Raises:
            Seq2SeqError: unreadable or malformed files (naming file and line), a
                preprocessed corpus built with other data settings, teachers that cannot
                be loaded or whose data settings or vocabularies differ from the student's, a
                ``training.init_from`` that is not a run or tokenizes otherwise.
        """
        from seq2seq.teachers import check_run_data, check_teacher_data, is_teacher_targets

        dist = config.distillation
        if dist.sequence_level and not is_teacher_targets(config.data.train):
            raise Seq2SeqError(f"distillation.sequence_level: data.train {config.data.train} is not the teachers' "
                               "outputs; train the student with `seq2seq distill CONFIG` (it decodes data.train first)")
        vocab_dir, init_from = run_dir, config.training.init_from
        if vocab_dir is None and init_from:                      # a run started from another: that run's vocabularies
            vocab_dir = check_run_data(config, Path(init_from), "training.init_from")
        elif vocab_dir is None and dist.teachers:                # a new student: its first teacher's vocabularies
            vocab_dir = check_teacher_data(config)
        task = cls._read(config, run_dir, vocab_dir)
        if dist.teachers and dist.weight > 0:                    # only the token level needs the teachers' weights
            from seq2seq.criteria import DistillationCriterion
            from seq2seq.teachers import check_vocabularies, load_teachers

            teacher = load_teachers(config)
            check_vocabularies(teacher, task.corpus, where=f"run {run_dir}" if run_dir else "the student")
            source = teacher.model
            if dist.top_k:                                       # computed once (or read), not in every step
                from seq2seq.teachers import teacher_top_k

                path = Path(dist.top_k_file) if dist.top_k_file else None
                source = teacher_top_k(config, teacher.model, task.train_data, path)
            task.criterion = DistillationCriterion(task.criterion, source, dist.weight, dist.temperature)
        return task

    @classmethod
    def _read(cls, config: Config, run_dir: Optional[Path], vocab_dir: Optional[Path]) -> "TextTask":
        """The task's data, with the corpus of ``vocab_dir`` (a run) or, when None, one built
        from the training data (see :meth:`for_training`)."""
        from seq2seq.data.mapped import is_mapped_corpus, open_mapped_corpus

        d = config.data
        copy = config.model.decoder.copy_attention
        valid_ex = read_tsv(d.valid, multi_reference=True, autoencoder=d.autoencoder) if d.valid else None
        if is_mapped_corpus(d.train):
            corpus, mapped, manifest = open_mapped_corpus(d.train, d, run_dir, copy)
            valid_split = evaluation_split(corpus, d, valid_ex, d.valid) if valid_ex else None
            task = cls(config, corpus, None, valid_split, train_data=mapped)
            task.dropped = manifest["dropped"]
            listed = Path(d.train) / "bad_lines.txt"
            task.skipped = listed.read_bytes().decode("utf-8").splitlines() if listed.is_file() else []
            return task
        train_ex, skipped = read_tsv_skipping(d.train, d.max_bad_lines, autoencoder=d.autoencoder)
        corpus = Corpus.load(d, vocab_dir, copy=copy) if vocab_dir else Corpus.from_config(d, train_ex, copy=copy)
        train_split = corpus.split(train_ex, max_src_len=d.max_src_len, max_tgt_len=d.max_tgt_len,
                                   long_source=d.long_source, where=d.train)
        valid_split = evaluation_split(corpus, d, valid_ex, d.valid) if valid_ex else None
        task = cls(config, corpus, train_split, valid_split)
        task.dropped = len(train_ex) - len(train_split.examples)
        task.skipped = skipped
        return task

    def save(self, run_dir: Path) -> None:
        """Vocabularies and sentencepiece models into a new run directory, and the
        malformed training lines skipped under ``data.max_bad_lines`` in ``bad_lines.txt``."""
        self.corpus.save(run_dir)
        if self.skipped:
            atomic_write_text(Path(run_dir) / "bad_lines.txt", "".join(f"{line}\n" for line in self.skipped))

    def build_model(self) -> EncoderDecoder:
        """The encoder-decoder of ``model`` for this corpus's vocabularies."""
        return EncoderDecoder.from_config(self.config.model, len(self.corpus.src_vocab), len(self.corpus.tgt_vocab))

    def summary(self) -> str:
        """The data line printed when training starts."""
        n = len(self.train_data)
        left_out = ([f"{self.dropped} too long, dropped"] if self.dropped else []) + (
            [f"{len(self.skipped)} malformed lines skipped, listed in bad_lines.txt"] if self.skipped else [])
        left_out = f" ({'; '.join(left_out)})" if left_out else ""
        return (f"train {n} pairs{left_out}, "
                f"valid {len(self.valid_split.examples) if self.valid_split else 0}; "
                f"vocab src {len(self.corpus.src_vocab)} tgt {len(self.corpus.tgt_vocab)}")

    # ------------------------------------------------------------------ training
    def epoch_batches(self, epoch: int, world_size: int = 1) -> list[torch.Tensor]:
        """Row indices of each global batch of ``epoch`` (``batch_size x world_size``
        sentences or tokens): length buckets, shuffled by (seed, epoch)."""
        if self._sampler is None or self._sampler_world != world_size:
            t, ds = self.config.training, self.train_data
            self._sampler = BucketSampler(ds.lengths(), t.batch_size * world_size, t.batch_type, shuffle=True,
                                          seed=self.config.seed, sort_key=ds.sort_key())
            self._sampler_world = world_size
        return self._sampler.batches(epoch)

    def batch(self, index: torch.Tensor) -> Batch:
        """The training batch of rows ``index``."""
        return self.train_data.batch(index)

    def word_dropout(self, batch: Batch) -> Batch:
        """Replace decoder inputs after ``<bos>`` by ``<unk>`` at rate ``training.word_dropout``
        (Bowman et al. 2016, sec. 3.2), so the decoder leans on the source state."""
        p = self.config.training.word_dropout
        drop = (torch.rand(batch.tgt_in.shape, device=batch.tgt_in.device) < p) & batch.tgt_mask
        drop[:, 0] = False
        return dataclasses.replace(batch, tgt_in=batch.tgt_in.masked_fill(drop, self.corpus.tgt_vocab.unk_id))

    def forward(self, model: EncoderDecoder, batch: Batch, teacher_forcing: float) -> Seq2SeqOutput:
        """The training pass: teacher forcing at eps = 1, else scheduled sampling with
        gold-token probability ``teacher_forcing``; word dropout first when configured."""
        t = self.config.training
        if t.word_dropout > 0:
            batch = self.word_dropout(batch)
        if teacher_forcing >= 1.0:
            return model(batch, return_attention=self.criterion.needs_attention)
        return scheduled_sampling_forward(model, batch, teacher_forcing, t.teacher_forcing)

    def log_values(self, step: int) -> dict:
        """The KL weight of a variational model at ``step``."""
        if self.config.model.latent_size is None:
            return {}
        return {"kl_weight": round(self.criterion.kl_weight_at(step), 6)}

    # ------------------------------------------------------------------ validation
    def validate(self, model: EncoderDecoder, device: torch.device) -> Optional[dict]:
        """Loss, perplexity and ``evaluation.metrics`` on the validation split (None without one)."""
        if self.valid_split is None:
            return None
        results, _ = evaluate_split(model, self.corpus, self.valid_split, self.config.evaluation.metrics,
                                    self.config, device)
        return results

    @staticmethod
    def higher_is_better(metric: str) -> bool:
        return HIGHER_IS_BETTER[metric]

    def plot(self, records: list[dict], run_dir: Path) -> None:
        """``curves.png``, and ``teacher_forcing.png`` under scheduled sampling."""
        from seq2seq.plotting import plot_curves, plot_teacher_forcing

        plot_curves(records, run_dir / "curves.png", self.config.training.early_stopping_metric)
        if any("teacher_forcing" in r for r in records):
            plot_teacher_forcing(records, run_dir / "teacher_forcing.png")

    def attention_example(self, model: EncoderDecoder, device: torch.device):
        """The greedy output and attention of the first validation example, or None."""
        if self.valid_split is None or self.config.model.decoder.attention == "none":
            return None
        from seq2seq.search import greedy_search

        batch = self.valid_split.dataset.batch(torch.tensor([0])).to(device)
        v = self.corpus.tgt_vocab
        model.eval()
        with torch.no_grad():
            hyp = greedy_search(model, batch, v.bos_id, v.eos_id, self.config.decoding.replace(
                strategy="greedy", nbest=1, return_attention=True))[0][0]
        if hyp.attention is None:
            return None
        oovs = self.valid_split.oovs[0] if self.valid_split.oovs else None
        return hyp.attention, self.valid_split.source_tokens[0], v.decode(hyp.tokens, oovs)
