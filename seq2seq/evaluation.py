"""Scoring a text model on a split: teacher-forced loss and perplexity, and metrics of
decoded outputs (accuracy, WER / PER, BLEU / chrF, n-best oracle).  No plotting, no
training imports: validation and ``seq2seq evaluate`` both call this."""

from __future__ import annotations

import math
from typing import Optional

import torch

from seq2seq.config import Config, DecodeOptions
from seq2seq.criteria import sequence_cross_entropy, targets_of
from seq2seq.data.batching import BucketSampler
from seq2seq.data.corpus import Corpus, Split
from seq2seq.metrics import compute_metrics, oracle_error_rates
from seq2seq.search import NBest, decode_dataset


def evaluation_split(corpus: Corpus, d, examples: list, where: str) -> Split:
    """Encode a validation or test file: every example is kept (scores cover every
    reference); a source over ``data.max_src_len`` is truncated or rejected under
    those ``long_source`` policies and decoded whole under ``drop``."""
    limit = d.max_src_len if d.long_source != "drop" else None
    return corpus.split(examples, max_src_len=limit, long_source=d.long_source, where=where)


def evaluate_split(model, corpus: Corpus, split: Split, metrics: list[str], config: Config,
                   device: torch.device, options: Optional[DecodeOptions] = None) -> tuple[dict, NBest]:
    """Teacher-forced loss/perplexity on the first reference, and decoded metrics.

    Args:
        model: an :class:`~seq2seq.models.encoder_decoder.EncoderDecoder` (left in eval mode).
        options: how to decode (default: the config's ``decoding`` section).  With
            n-best lists (nbest > 1) the results add ``oracle_wer`` / ``oracle_per``
            (each example scored by its best hypothesis).

    Returns:
        results: ``loss`` (nats per token), ``ppl`` and each metric (percent) of the
            top hypothesis.
        hyps: per example, its hypotheses best first, in split order.
    """
    model.eval()
    loss_sum, tokens = 0.0, 0
    pad = corpus.tgt_vocab.pad_id
    with torch.no_grad():
        if split.dataset.tgt_in is not None:
            for idx in BucketSampler(split.dataset.lengths(), config.decoding.batch_size, shuffle=False,
                                     sort_key=split.dataset.sort_key()).batches():
                batch = split.dataset.batch(idx).to(device)
                ls, nt = sequence_cross_entropy(model(batch).logits, targets_of(batch), pad)
                loss_sum += float(ls)
                tokens += nt
    options = options or config.decoding
    if options.replace_unk:
        options = options.replace(return_attention=True)
    v = corpus.tgt_vocab
    nbest = decode_dataset(model, split.dataset, v.bos_id, v.eos_id, config.decoding.batch_size, options, device)
    results: dict = {}
    if tokens:
        results["loss"] = loss_sum / tokens
        results["ppl"] = math.exp(min(results["loss"], 50.0))
    oovs = split.oovs or [None] * len(nbest)
    hyp_tokens = [corpus.output_tokens(h[0], s, o, options.replace_unk)
                  for h, s, o in zip(nbest, split.source_tokens, oovs)]
    ref_tokens = [[corpus.tgt_tokenizer.encode(r) for r in e.references] for e in split.examples]
    hyp_text = [corpus.tgt_tokenizer.decode(t) for t in hyp_tokens]
    ref_text = [e.references for e in split.examples]
    results.update(compute_metrics(metrics, hyp_tokens, ref_tokens, hyp_text, ref_text,
                                   lowercase=corpus.tgt_tokenizer.lowercase))
    if any(len(h) > 1 for h in nbest) and ("wer" in metrics or "per" in metrics):
        lists = [[v.decode(x.tokens, o) for x in h] for h, o in zip(nbest, oovs)]
        results["oracle_wer"], results["oracle_per"] = oracle_error_rates(lists, ref_tokens)
    return results, nbest
