"""Decoding strategies, driven (as fairseq tests its beam) by a fake decoder whose
step probabilities are fixed, so every expected hypothesis and score is exact."""

import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from seq2seq.errors import Seq2SeqError
from seq2seq.search import DecodeOptions, beam_search, decode_batch, greedy_search, sample
from seq2seq.search.common import block_repeated_ngrams, coverage_penalty, filter_logits, length_penalty

PAD, UNK, BOS, EOS, A, B, C = range(7)
V = 7


class FakeState:
    """Step counter + per-row sentence ids; reorder selects rows."""

    def __init__(self, t: int, rows: torch.Tensor):
        self.t, self.rows = t, rows

    def reorder(self, index, beam=None):
        return FakeState(self.t, self.rows[index])


class FakeModel:
    """p(y_t | y_{t-1}) from ``table``: {prev: {token: prob}} for every step, or a
    list of such dicts, one per step (the last repeats).  ``attention(t)``
    optionally gives the step's weights over the source."""

    def __init__(self, table, attention=None):
        self.tables = table if isinstance(table, list) else [table]
        self.attention = attention
        self.decoder = self

    def encode(self, src, src_lengths, src_mask):
        return None, FakeState(0, torch.arange(src.size(0)))

    def step(self, prev, state):
        table = self.tables[min(state.t, len(self.tables) - 1)]
        probs = torch.zeros(prev.size(0), V)
        for i, p in enumerate(prev.tolist()):
            for tok, pr in table.get(p, {EOS: 1.0}).items():
                probs[i, tok] = pr
        weights = None
        if self.attention is not None:
            weights = self.attention(state.t).expand(prev.size(0), -1)
        return probs.log(), FakeState(state.t + 1, state.rows), weights


def batch_of(n=1, src_len=2):
    return SimpleNamespace(src=torch.full((n, src_len), 4), src_lengths=torch.full((n,), src_len),
                           src_mask=torch.ones(n, src_len, dtype=torch.bool))


def opts(**kw):
    base = dict(strategy="beam", beam_size=2, nbest=1, max_len_a=0.0, max_len_b=10)
    base.update(kw)
    return DecodeOptions(**base)


def run_beam(table, n=1, **kw):
    return beam_search(FakeModel(table), batch_of(n), BOS, EOS, opts(**kw))


# Lengths and penalties: [] p=.3; [A] p=.7*.45=.315; [A A] p=.7*.55*.6=.231; [A A A] p=.7*.55*.4=.154
LENGTHS = [{BOS: {A: 0.7, EOS: 0.3}}, {A: {A: 0.55, EOS: 0.45}}, {A: {A: 0.4, EOS: 0.6}}, {A: {EOS: 1.0}}]


def test_early_finished_hypothesis_is_beaten_later():
    table = [{BOS: {A: 0.5, EOS: 0.4, B: 0.1}}, {A: {EOS: 0.9, A: 0.05, B: 0.05}, B: {EOS: 1.0}}]
    (best, second), = run_beam(table, nbest=2)
    assert best.tokens == [A] and best.score == pytest.approx(math.log(0.45), abs=1e-6)
    assert second.tokens == [] and second.score == pytest.approx(math.log(0.4), abs=1e-6)


def test_length_penalty_off_gnmt_and_average():
    (off,), = run_beam(LENGTHS)
    assert off.tokens == [A] and off.score == pytest.approx(math.log(0.315), abs=1e-6)
    (gnmt,), = run_beam(LENGTHS, length_penalty=2.0)
    assert gnmt.tokens == [A, A]
    assert gnmt.log_prob == pytest.approx(math.log(0.231), abs=1e-6)
    assert gnmt.score == pytest.approx(math.log(0.231) / (8 / 6) ** 2, abs=1e-6)
    (avg,), = run_beam(LENGTHS, length_penalty=1.0, length_normalization="average")
    assert avg.tokens == [A, A, A] and avg.score == pytest.approx(math.log(0.154) / 4, abs=1e-6)


def test_max_length_finalises_open_hypotheses_without_eos():
    (h,), = run_beam(LENGTHS, max_len=2)
    assert h.tokens == [A, A] and h.log_prob == pytest.approx(math.log(0.7 * 0.55), abs=1e-6)
    (g,), = greedy_search(FakeModel(LENGTHS), batch_of(), BOS, EOS, opts(strategy="greedy", max_len=2))
    assert g.tokens == [A, A]


def test_min_length_forbids_early_eos():
    (h,), = run_beam(LENGTHS, min_len=2)
    assert h.tokens == [A, A] and h.log_prob == pytest.approx(math.log(0.231), abs=1e-6)
    (g,), = greedy_search(FakeModel(LENGTHS), batch_of(), BOS, EOS, opts(strategy="greedy", min_len=3))
    assert g.tokens == [A, A, A]


ALTERNATE = {BOS: {A: 0.9, EOS: 0.1}, A: {B: 0.9, EOS: 0.1}, B: {A: 0.9, EOS: 0.1}}


def test_ngram_blocking():
    (free,), = run_beam(ALTERNATE, min_len=3, max_len=6)
    assert free.tokens == [A, B, A, B, A, B]
    (blocked,), = run_beam(ALTERNATE, min_len=3, max_len=6, no_repeat_ngram=2)
    assert blocked.tokens == [A, B, A] and blocked.log_prob == pytest.approx(math.log(0.9 ** 3 * 0.1), abs=1e-6)
    (g,), = greedy_search(FakeModel(ALTERNATE), batch_of(), BOS, EOS, opts(strategy="greedy", no_repeat_ngram=2))
    assert g.tokens == [A, B, A]
    logp = torch.zeros(1, V)
    block_repeated_ngrams(logp, torch.tensor([[A, B, C, A]]), 2)   # "A B" seen: B is blocked after A
    assert logp[0].tolist() == [0, 0, 0, 0, 0, -math.inf, 0]
    logp = torch.zeros(1, V)
    block_repeated_ngrams(logp, torch.tensor([[A, C]]), 1)          # unigrams: A and C blocked
    assert torch.isinf(logp[0, [A, C]]).all() and not torch.isinf(logp[0, B])


def test_coverage_penalty_prefers_covering_the_source():
    table = [{BOS: {EOS: 0.6, A: 0.4}}, {A: {EOS: 1.0}}]
    model = FakeModel(table, attention=lambda t: torch.eye(2)[min(t, 1)].unsqueeze(0))
    (plain,), = beam_search(model, batch_of(), BOS, EOS, opts())
    assert plain.tokens == []                                        # covers source position 0 only
    (covered,), = beam_search(model, batch_of(), BOS, EOS, opts(coverage_penalty=0.2))
    assert covered.tokens == [A] and covered.score == pytest.approx(math.log(0.4), abs=1e-6)
    cp = coverage_penalty(torch.tensor([[0.5, 2.0, 0.0]]), torch.tensor([[True, True, False]]), 1.0)
    assert cp.item() == pytest.approx(math.log(0.5))
    with pytest.raises(Seq2SeqError):
        beam_search(FakeModel(table), batch_of(), BOS, EOS, opts(coverage_penalty=0.2))


def test_length_penalty_values():
    lengths = torch.tensor([1.0, 4.0])
    assert length_penalty(lengths, 0.0, "gnmt").tolist() == [1.0, 1.0]
    assert length_penalty(lengths, 1.0, "gnmt").tolist() == pytest.approx([1.0, 1.5])
    assert length_penalty(lengths, 0.6, "average").tolist() == [1.0, 4.0]


def test_beam_nbest_is_sorted_and_sentences_are_independent():
    table = [{BOS: {A: 0.5, B: 0.3, EOS: 0.2}}, {A: {EOS: 0.8, A: 0.2}, B: {EOS: 0.9, B: 0.1}}]
    nbest = run_beam(table, n=3, beam_size=4, nbest=4)
    assert len(nbest) == 3
    expect = [([A], 0.4), ([B], 0.27), ([], 0.2), ([A, A], 0.5 * 0.2 * 0.8)]
    for hyps in nbest:
        assert [h.tokens for h in hyps] == [t for t, _ in expect]
        assert [h.score for h in hyps] == pytest.approx([math.log(p) for _, p in expect], abs=1e-6)


SAMPLING = [{BOS: {A: 0.5, B: 0.3, C: 0.15, EOS: 0.05}}, {}]


def draw(n=2000, seed=3, **kw):
    options = DecodeOptions(strategy="sample", num_samples=n, seed=seed, max_len_a=0.0, max_len_b=5, **kw)
    (hyps,) = sample(FakeModel(SAMPLING), batch_of(), BOS, EOS, options)
    return Counter(tuple(h.tokens) for h in hyps)


def test_sampling_top_k_and_top_p_low_settings_are_greedy():
    assert draw(top_k=1) == Counter({(A,): 2000})
    assert draw(top_p=0.1) == Counter({(A,): 2000})


def test_sampling_top_k_top_p_high_settings():
    two = draw(top_k=2)
    assert set(two) == {(A,), (B,)} and two[(A,)] / 2000 == pytest.approx(0.5 / 0.8, abs=0.04)
    nucleus = draw(top_p=0.75)                                       # A (0.5) + B reaches 0.8 >= 0.75
    assert set(nucleus) == {(A,), (B,)}
    everything = draw(top_p=1.0)
    assert set(everything) == {(A,), (B,), (C,), ()}
    assert everything[(A,)] / 2000 == pytest.approx(0.5, abs=0.04)
    assert everything[()] / 2000 == pytest.approx(0.05, abs=0.02)
    hot = draw(temperature=100.0)                                     # almost uniform over the 4
    assert all(abs(hot[k] / 2000 - 0.25) < 0.04 for k in [(A,), (B,), (C,), ()])


def test_sampling_seed_reproduces_and_scores_are_model_log_probs():
    assert draw(n=50, seed=7) == draw(n=50, seed=7)
    options = DecodeOptions(strategy="sample", num_samples=20, seed=1, top_k=2, max_len_a=0.0, max_len_b=5)
    (hyps,) = sample(FakeModel(SAMPLING), batch_of(), BOS, EOS, options)
    probs = {(A,): 0.5, (B,): 0.3}
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:
        assert h.log_prob == pytest.approx(math.log(probs[tuple(h.tokens)]), abs=1e-6)


def test_filter_logits():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, 2, 1.0)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.5)).tolist() == [[False, True, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.81)).tolist() == [[False, False, False, True]]


@pytest.mark.parametrize("bad", [dict(nbest=3, beam_size=2), dict(top_p=0.0), dict(temperature=0.0),
                                 dict(strategy="greedy", nbest=2), dict(beam_size=0)])
def test_invalid_options_are_user_errors(bad):
    base = dict(strategy="beam")
    base.update(bad)
    with pytest.raises(Seq2SeqError):
        DecodeOptions(**base)


# ---------------------------------------------------------------- the real model

def real_model_and_data():
    from seq2seq.config import ModelConfig
    from seq2seq.data.batching import ParallelDataset
    from seq2seq.data.vocab import Vocabulary
    from seq2seq.models.encoder_decoder import EncoderDecoder

    vocab = Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>"] + list("abcdefgh"))
    cfg = ModelConfig.model_validate({
        "encoder": {"cell": "lstm", "embedding_size": 12, "hidden_size": 8, "dropout": 0.0},
        "decoder": {"cell": "lstm", "embedding_size": 12, "hidden_size": 16, "dropout": 0.0,
                    "attention": "bahdanau"},
        "bridge": "projection"})
    torch.manual_seed(0)
    model = EncoderDecoder.from_config(cfg, len(vocab), len(vocab)).eval()
    g = torch.Generator().manual_seed(2)
    src = [torch.randint(4, 12, (int(n),), generator=g).tolist() for n in torch.randint(1, 9, (64,), generator=g)]
    return model, ParallelDataset(src, None, vocab, vocab), vocab


def test_beam_one_equals_greedy():
    model, ds, v = real_model_and_data()
    batch = ds.batch(list(range(20)))
    o = dict(max_len_a=1.0, max_len_b=3)
    greedy = greedy_search(model, batch, v.bos_id, v.eos_id, DecodeOptions(**o))
    beam1 = decode_batch(model, batch, v.bos_id, v.eos_id, DecodeOptions(strategy="beam", beam_size=1, **o))
    beam_k1 = beam_search(model, batch, v.bos_id, v.eos_id, DecodeOptions(strategy="beam", beam_size=1, **o))
    for (g,), (b,), (k,) in zip(greedy, beam1, beam_k1):
        assert g.tokens == b.tokens == k.tokens
        assert g.score == pytest.approx(k.score, abs=1e-5)


def test_nbest_does_not_depend_on_batch_size_or_padding():
    model, ds, v = real_model_and_data()
    options = DecodeOptions(strategy="beam", beam_size=5, nbest=3, length_penalty=0.6, max_len_a=1.5, max_len_b=3,
                            return_attention=True)
    alone = decode_batch(model, ds.batch([5]), v.bos_id, v.eos_id, options)[0]
    for size in (7, 64):
        idx = list(range(size))
        if 5 not in idx:
            idx[-1] = 5
        out = decode_batch(model, ds.batch(idx), v.bos_id, v.eos_id, options)[idx.index(5)]
        assert ds.batch(idx).src.size(1) > int(ds.src_lengths[5])       # it really is padded
        assert [h.tokens for h in out] == [h.tokens for h in alone]
        assert [h.score for h in out] == pytest.approx([h.score for h in alone], abs=1e-5)
        for a, b in zip(out, alone):
            torch.testing.assert_close(a.attention, b.attention, atol=1e-5, rtol=1e-5)
    assert len(alone) == 3 and alone[0].score >= alone[1].score >= alone[2].score
    for h in alone:
        assert h.attention.shape[1] == int(ds.src_lengths[5])
        torch.testing.assert_close(h.attention.sum(-1), torch.ones(h.attention.shape[0]))
