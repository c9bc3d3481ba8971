"""Python API: load a trained run and use it.

    >>> from seq2seq import Seq2Seq
    >>> model = Seq2Seq.load("runs/g2p_cmudict")
    >>> model.predict(["hello", "world"])
    ['HH EH L OW', 'W ER L D']
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import Config, load_config
from seq2seq.data.batching import ParallelDataset
from seq2seq.data.corpus import Corpus
from seq2seq.data.tsv import read_tsv
from seq2seq.errors import Seq2SeqError
from seq2seq.models.encoder_decoder import EncoderDecoder
from seq2seq.search import decode_dataset
from seq2seq.training import evaluate_split, resolve_device


class Seq2Seq:
    """A trained encoder-decoder with its vocabularies and config.

    Args:
        config: the run's config.
        corpus: tokenizers and vocabularies.
        model: the network (eval mode).
        device: where it runs.
    """

    def __init__(self, config: Config, corpus: Corpus, model: EncoderDecoder, device: torch.device):
        self.config, self.corpus, self.model, self.device = config, corpus, model, device

    @classmethod
    def load(cls, run_dir: str | Path, checkpoint: str = "best", device: str = "auto") -> "Seq2Seq":
        """Load a run directory written by ``seq2seq train``.

        Args:
            run_dir: the run directory.
            checkpoint: ``best`` or ``last``.
            device: ``auto``, ``cpu`` or ``cuda``.

        Raises:
            Seq2SeqError: not a run directory, or a missing/corrupt checkpoint.
        """
        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").exists():
            raise Seq2SeqError(f"{run_dir}: not a run directory (no config.yaml)")
        if checkpoint not in ("best", "last"):
            raise Seq2SeqError(f"checkpoint must be 'best' or 'last', not {checkpoint!r}")
        config = load_config(run_dir / "config.yaml")
        corpus = Corpus.load(config.data, run_dir)
        stem = run_dir / "checkpoints" / checkpoint
        if checkpoint == "best" and not stem.with_suffix(".json").exists():
            stem = run_dir / "checkpoints" / "last"   # a run without validation has no best
        tensors, _ = load_checkpoint(stem)
        dev = resolve_device(device)
        model = EncoderDecoder.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        model.to(dev).eval()
        return cls(config, corpus, model, dev)

    def predict(self, sources: list[str], batch_size: Optional[int] = None,
                return_attention: bool = False) -> list[str] | tuple[list[str], list[Optional[torch.Tensor]]]:
        """Greedy-decode each source text.

        Empty or whitespace-only sources give empty outputs, so outputs stay
        aligned with inputs.

        Args:
            sources: source texts.
            batch_size: sentences per batch (default ``decoding.batch_size``).
            return_attention: also return, per source, its (out_len + 1, src_len)
                attention weights (the last row is the ``<eos>`` step), or None.

        Returns:
            The outputs, detokenised; with ``return_attention``, (outputs, attention).
        """
        keep = [i for i, s in enumerate(sources) if self.corpus.src_tokenizer.encode(s)]
        outputs = [""] * len(sources)
        attention: list[Optional[torch.Tensor]] = [None] * len(sources)
        if keep:
            ids = self.corpus.encode_sources([sources[i] for i in keep])
            dataset = ParallelDataset(ids, None, self.corpus.src_vocab, self.corpus.tgt_vocab)
            d = self.config.decoding
            v = self.corpus.tgt_vocab
            hyp = decode_dataset(self.model, dataset, v.bos_id, v.eos_id, batch_size or d.batch_size,
                                 d.max_len_a, d.max_len_b, self.device, return_attention)
            for j, i in enumerate(keep):
                outputs[i] = self.corpus.detokenize(hyp.tokens[j])
                if return_attention and hyp.attention is not None:
                    attention[i] = hyp.attention[j]
        return (outputs, attention) if return_attention else outputs

    def evaluate(self, path: str | Path, metrics: Optional[list[str]] = None) -> dict:
        """Score a TSV file (``source<TAB>ref1[<TAB>ref2...]``).

        Args:
            path: the file.
            metrics: metric names (default: the config's ``evaluation.metrics``).

        Returns:
            ``loss``, ``ppl`` and each metric (percent), plus ``sentences``.

        Raises:
            Seq2SeqError: unreadable or malformed file.
        """
        examples = read_tsv(path, multi_reference=True)
        split = self.corpus.split(examples)
        results, _ = evaluate_split(self.model, self.corpus, split, metrics or self.config.evaluation.metrics,
                                    self.config, self.device)
        results["sentences"] = len(examples)
        return results
