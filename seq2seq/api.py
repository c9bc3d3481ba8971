"""Python API: load a trained run and use it.

    >>> from seq2seq import Seq2Seq
    >>> model = Seq2Seq.load("runs/g2p_cmudict")
    >>> model.predict(["hello", "world"])
    ['HH EH L OW', 'W ER L D']
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from seq2seq.checkpoint import load_model_weights
from seq2seq.config import Config, DecodeOptions, load_config
from seq2seq.data.corpus import Corpus
from seq2seq.data.tsv import read_tsv
from seq2seq.errors import Seq2SeqError
from seq2seq.evaluation import evaluate_split, evaluation_split
from seq2seq.export.manifest import is_export, read_manifest
from seq2seq.models.encoder_decoder import EncoderDecoder
from seq2seq.models.ensemble import Ensemble, EnsembleDataset
from seq2seq.search import decode_dataset
from seq2seq.device import resolve_device


@dataclass
class Prediction:
    """One hypothesis for one source.

    Attributes:
        text: detokenised output.
        tokens: output tokens (no ``<bos>`` / ``<eos>``).
        score: ranking score s(Y, X) (log-probability with any length/coverage penalty).
        log_prob: log P(Y | X) in nats.
        attention: (steps, src_len) weights (the ``<eos>`` step last), or None.
        source_tokens: the source as the model saw it (attention's columns).
    """

    text: str
    tokens: list[str]
    score: float
    log_prob: float
    attention: Optional[torch.Tensor]
    source_tokens: list[str]


class Seq2Seq:
    """A trained encoder-decoder with its vocabularies and config, or an ensemble of
    several (:meth:`ensemble`).

    Args:
        config: the run's config (an ensemble's: the first run's).
        corpus: tokenizers and vocabularies (an ensemble's: the first run's).
        model: the network (eval mode): an EncoderDecoder or an :class:`Ensemble`.
        device: where it runs.
        members: an ensemble's runs, each a single-model Seq2Seq; empty otherwise.
        run_dir: where the run was loaded from (None if built in memory).
    """

    def __init__(self, config: Config, corpus: Corpus, model: EncoderDecoder | Ensemble, device: torch.device,
                 members: Sequence["Seq2Seq"] = (), run_dir: Optional[Path] = None):
        self.config, self.corpus, self.model, self.device = config, corpus, model, device
        self.members, self.run_dir = list(members), run_dir

    @classmethod
    def load(cls, run_dir: str | Path | Sequence[str | Path], checkpoint: str = "best", device: str = "auto",
             weights: Optional[Sequence[float]] = None) -> "Seq2Seq":
        """Load a run directory written by ``seq2seq train``, or a list of them as an
        ensemble (:meth:`ensemble`).

        Args:
            run_dir: the run directory, or several; or a directory written by ``seq2seq
                export`` (decoded through onnxruntime; ``checkpoint`` and ``device`` do
                not apply: the export holds one checkpoint and runs on the CPU).
            checkpoint: ``best``, ``last`` or ``averaged`` (``seq2seq average``).
            device: ``auto``, ``cpu`` or ``cuda``.
            weights: an ensemble's member weights (default equal).

        Raises:
            Seq2SeqError: not a run directory, a missing/corrupt checkpoint, weights
                that do not fit the run's config or vocabularies (naming the tensor,
                both shapes and the key to check), or runs that cannot form an ensemble.
        """
        if not isinstance(run_dir, (str, Path)):
            return cls.ensemble([cls.load(r, checkpoint, device) for r in run_dir], weights)
        run_dir = Path(run_dir)
        if is_export(run_dir):
            return cls._load_export(run_dir)
        if not (run_dir / "config.yaml").exists():
            raise Seq2SeqError(f"{run_dir}: not a run directory (no config.yaml)")
        config = load_config(run_dir / "config.yaml", schema=Config)
        corpus = Corpus.load(config.data, run_dir, copy=config.model.decoder.copy_attention)
        model = EncoderDecoder.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab))
        load_model_weights(model, run_dir, checkpoint)
        dev = resolve_device(device)
        return cls(config, corpus, model.to(dev).eval(), dev, run_dir=run_dir)

    @classmethod
    def _load_export(cls, folder: Path) -> "Seq2Seq":
        """An exported directory (``seq2seq export``), decoding through onnxruntime on the CPU.

        Raises:
            Seq2SeqError: a file that is missing or differs from manifest.json's checksum.
        """
        from seq2seq.export.runtime import OnnxEncoderDecoder

        manifest = read_manifest(folder)
        config = load_config(folder / "config.yaml", schema=Config)
        corpus = Corpus.load(config.data, folder)
        model = OnnxEncoderDecoder.from_manifest(folder, manifest).eval()
        return cls(config, corpus, model, torch.device("cpu"), run_dir=folder)

    @classmethod
    def ensemble(cls, runs: Sequence["Seq2Seq"], weights: Optional[Sequence[float]] = None) -> "Seq2Seq":
        """Several loaded runs decoding as one: at each step the weighted mean of their
        probabilities (:mod:`seq2seq.models.ensemble`).  Decoding defaults, data limits
        and the output side come from the first run; each run reads the source with its
        own tokenizer.  An ensemble of one decodes as its run does.

        Raises:
            Seq2SeqError: target vocabularies or tokenizers that differ (naming the
                first difference), bad weights, or a run with copy attention.
        """
        first = runs[0]
        for r in runs[1:]:
            _check_same_target(first, r)
        source = _tokenization(first.corpus.src_tokenizer)
        shared = all(_tokenization(r.corpus.src_tokenizer) == source for r in runs[1:])
        model = Ensemble([r.model for r in runs], weights, shared_source=shared).eval()
        return cls(first.config, first.corpus, model, first.device, runs)

    def decode_options(self, beam: Optional[int] = None, **overrides) -> DecodeOptions:
        """The run's ``decoding`` settings with overrides (names of :class:`DecodeOptions`;
        ``beam=N`` is shorthand for ``strategy='beam', beam_size=N``, ``beam=1``: greedy).

        Raises:
            Seq2SeqError: an unknown option or an invalid combination.
        """
        options = self.config.decode_options(beam=beam, **overrides)
        if isinstance(self.model, Ensemble) and not self.model.shared_source and (
                options.return_attention or options.replace_unk or options.coverage_penalty):
            raise Seq2SeqError("attention output, replace_unk and the coverage penalty need ensemble runs that "
                               "tokenize the source alike; these runs do not")
        return options

    def _with_members(self, split, member_dataset):
        """``split`` whose dataset also holds each ensemble member's reading of the same
        sentences (``member_dataset(run)``); unchanged for a single model."""
        if not self.members:
            return split
        datasets = [split.dataset] + [member_dataset(m) for m in self.members[1:]]
        return dataclasses.replace(split, dataset=EnsembleDataset(datasets))

    def predict(self, sources: list[str], batch_size: Optional[int] = None, *, beam: Optional[int] = None,
                with_scores: bool = False, return_attention: bool = False, **options
                ) -> list[str] | list[list["Prediction"]]:
        """Decode each source text.

        Empty or whitespace-only sources give empty outputs, so outputs stay
        aligned with inputs.  A source longer than ``data.max_src_len`` tokens
        follows ``data.long_source``: ``truncate`` (decoded from its first
        max_src_len tokens), ``drop`` (an empty output, with a warning) or
        ``reject`` (Seq2SeqError).  With ``replace_unk=True`` each ``<unk>`` output
        becomes its most attended source token (Luong et al. 2015).

        Args:
            sources: source texts.
            batch_size: sentences per batch (default ``decoding.batch_size``).
            beam: beam size (shorthand for ``strategy='beam', beam_size=beam``).
            with_scores: return :class:`Prediction` lists even for one hypothesis.
            return_attention: keep each hypothesis's attention (implies Prediction lists).
            **options: any :class:`~seq2seq.search.DecodeOptions` field: ``nbest``,
                ``length_penalty``, ``length_normalization``, ``coverage_penalty``,
                ``min_len``, ``max_len``, ``no_repeat_ngram``, ``strategy='sample'`` with
                ``temperature``, ``top_k``, ``top_p``, ``num_samples``, ``seed``, ...

        Returns:
            One string per source when a single hypothesis is asked for without
            scores or attention; otherwise, per source, its :class:`Prediction` list
            best first (``nbest`` of them, or ``num_samples`` when sampling).

        Raises:
            Seq2SeqError: an unknown or invalid decoding option, or a long source
                under ``long_source: reject`` (naming its 1-based position).
        """
        opts = self.decode_options(beam=beam, return_attention=return_attention, **options)
        if opts.replace_unk:
            opts = opts.replace(return_attention=True)
        d = self.config.data
        src_tokens = [self.corpus.src_tokenizer.encode(s) for s in sources]
        keep = [i for i, t in enumerate(src_tokens) if t]
        if d.max_src_len and d.long_source == "drop":
            long = [i for i in keep if len(src_tokens[i]) > d.max_src_len]
            if long:
                warnings.warn(f"{len(long)} source(s) longer than data.max_src_len={d.max_src_len} tokens get empty "
                              f"outputs (data.long_source: drop), the first on input line {long[0] + 1}",
                              stacklevel=2)
                keep = [i for i in keep if len(src_tokens[i]) <= d.max_src_len]
        nbest: list[list[Prediction]] = [[Prediction("", [], 0.0, 0.0, None, [])] for _ in sources]
        if keep:
            texts, lines = [sources[i] for i in keep], [i + 1 for i in keep]
            split = self._with_members(self.corpus.sources(texts, lines, d.max_src_len, d.long_source),
                                       lambda m: m.corpus.sources(texts, lines, m.config.data.max_src_len).dataset)
            v = self.corpus.tgt_vocab
            hyps = decode_dataset(self.model, split.dataset, v.bos_id, v.eos_id,
                                  batch_size or self.config.decoding.batch_size, opts, self.device)
            oovs = split.oovs or [None] * len(keep)
            for j, i in enumerate(keep):
                src = split.source_tokens[j]
                nbest[i] = []
                for h in hyps[j]:
                    tokens = self.corpus.output_tokens(h, src, oovs[j], opts.replace_unk)
                    nbest[i].append(Prediction(self.corpus.tgt_tokenizer.decode(tokens), tokens, h.score,
                                               h.log_prob, h.attention, src))
        plain = not (with_scores or return_attention) and max(len(p) for p in nbest) <= 1
        return [p[0].text for p in nbest] if plain else nbest

    def sample_prior(self, n: int, *, beam: Optional[int] = None, **options) -> list[str]:
        """New sequences from a variational model: z ~ N(0, I), then decode
        (Bowman et al. 2016, sec. 4).  Options as for :meth:`predict` (e.g.
        ``strategy='sample', temperature=0.8``; ``seed`` also fixes the z draws).

        Returns:
            ``n`` texts.

        Raises:
            Seq2SeqError: the run has no latent variable (``model.latent_size``), or a bad option.
        """
        from seq2seq.data.batching import Batch
        from seq2seq.search import decode_batch

        if self.model.latent is None:
            raise Seq2SeqError("sample_prior needs a variational run (model.latent_size in its config)")
        opts = self.decode_options(beam=beam, **options)
        generator = torch.Generator(device=self.device)
        if opts.seed is not None:
            generator.manual_seed(opts.seed)
        else:
            generator.seed()
        model = self.model
        ones = torch.ones(n, 1, dtype=torch.long, device=self.device)
        batch = Batch(ones, ones[:, 0], ones.bool(), None, None, None, torch.arange(n))

        class Prior:                           # the search's model interface, started from the prior
            decoder = model.decoder

            @staticmethod
            def encode(src, src_lengths, src_mask):
                return None, model.prior_state(src.size(0), src.device, generator)

        v = self.corpus.tgt_vocab
        with torch.no_grad():
            hyps = decode_batch(Prior, batch, v.bos_id, v.eos_id, opts)
        return [self.corpus.detokenize(h[0].tokens) for h in hyps]

    def evaluate(self, path: str | Path, metrics: Optional[list[str]] = None, *, beam: Optional[int] = None,
                 **options) -> dict:
        """Score a TSV file (``source<TAB>ref1[<TAB>ref2...]``).

        Args:
            path: the file.
            metrics: metric names (default: the config's ``evaluation.metrics``).
            beam: beam size (a shorthand, as for :meth:`predict`).
            **options: decoding overrides, as for :meth:`predict`.

        Returns:
            ``loss``, ``ppl`` and each metric (percent) of the top hypothesis, plus
            ``sentences``; with ``nbest > 1`` also ``oracle_wer`` and ``oracle_per``.

        Raises:
            Seq2SeqError: unreadable or malformed file, or an invalid decoding option.
        """
        opts = self.decode_options(beam=beam, **options)
        examples = read_tsv(path, multi_reference=True, autoencoder=self.config.data.autoencoder)
        split = self._with_members(evaluation_split(self.corpus, self.config.data, examples, str(path)),
                                   lambda m: evaluation_split(m.corpus, m.config.data, examples, str(path)).dataset)
        results, _ = evaluate_split(self.model, self.corpus, split, metrics or self.config.evaluation.metrics,
                                    self.config, self.device, opts)
        results["sentences"] = len(examples)
        return results


def _tokenization(tokenizer) -> tuple:
    """What decides how a tokenizer cuts a text: its kind, lower-casing and, for
    sentencepiece, the model itself."""
    return type(tokenizer).__name__, tokenizer.lowercase, getattr(tokenizer, "model_proto", None)


def _check_same_target(first: Seq2Seq, other: Seq2Seq) -> None:
    """Raise :class:`Seq2SeqError` naming the first difference between two runs' target sides."""
    a, b = first.corpus, other.corpus
    names = f"{first.run_dir} and {other.run_dir}"
    if _tokenization(a.tgt_tokenizer) != _tokenization(b.tgt_tokenizer):
        raise Seq2SeqError(f"{names}: target tokenizers differ ({first.config.data.tgt_tokenizer} vs "
                           f"{other.config.data.tgt_tokenizer}); an ensemble needs one target side")
    va, vb = a.tgt_vocab.itos, b.tgt_vocab.itos
    for i, (x, y) in enumerate(zip(va, vb)):
        if x != y:
            raise Seq2SeqError(f"{names}: target vocabularies differ at id {i} ({x!r} vs {y!r}); an ensemble "
                               "needs one target vocabulary (train the runs on the same data and vocabulary settings)")
    if len(va) != len(vb):
        raise Seq2SeqError(f"{names}: target vocabularies differ in size ({len(va)} vs {len(vb)} tokens)")
