"""The Transformer's own blocks against torch.nn's, and incremental decoding (the
key/value cache) against full recomputation of the prefix at every step."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.data.batching import ParallelDataset
from seq2seq.data.vocab import Vocabulary
from seq2seq.models.encoder_decoder import EncoderDecoder
from seq2seq.modules.transformer import MultiHeadAttention, TransformerEncoder, TransformerState
from seq2seq.search import DecodeOptions, decode_batch

VOCAB = Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>"] + list("abcdefghijkl"))


def test_multi_head_attention_equals_torch_with_padding_and_causal_masks():
    torch.manual_seed(0)
    ours, theirs = MultiHeadAttention(16, 4, 0.0).eval(), nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ours.load_state_dict(theirs.state_dict())                     # the same parameter names
    x, memory = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    pad = torch.tensor([[False] * 7, [False] * 4 + [True] * 3, [False] * 2 + [True] * 5])
    expected, expected_w = theirs(x, memory, memory, key_padding_mask=pad)
    q = ours.project(x, 0, 1)[0]
    k, v = ours.project(memory, 1, 2)
    for want in (False, True):
        got, w = ours.attend(q, k, v, ~pad[:, None, None, :], want_weights=want)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        if want:
            torch.testing.assert_close(w, expected_w, atol=1e-6, rtol=1e-5)
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    expected = theirs(x, x, x, attn_mask=causal, need_weights=False)[0]
    q, k, v = ours.project(x, 0, 3)
    for want in (False, True):
        torch.testing.assert_close(ours.attend(q, k, v, causal=True, want_weights=want)[0], expected,
                                   atol=1e-5, rtol=1e-5)


def test_encoder_loads_torch_transformer_encoder_checkpoints_and_computes_the_same():
    """Checkpoints of the commit before (torch.nn.TransformerEncoder's layout) still load."""
    torch.manual_seed(0)
    ours = TransformerEncoder(len(VOCAB), 8, 16, 4, 2, 32, 0.0).eval()
    layer = nn.TransformerEncoderLayer(16, 4, 32, 0.0, batch_first=True, norm_first=True)
    theirs = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16), enable_nested_tensor=False).eval()
    for p in theirs.parameters():
        nn.init.normal_(p, 0.0, 0.3)
    old = {f"layers.{k}": v for k, v in theirs.state_dict().items()}
    old.update({k: v for k, v in ours.state_dict().items() if k.startswith("embed.")})
    ours.load_state_dict(old)
    src = torch.randint(4, len(VOCAB), (3, 6))
    mask = torch.arange(6).unsqueeze(0) < torch.tensor([[6], [3], [1]])
    src = src.masked_fill(~mask, VOCAB.pad_id)
    with torch.no_grad():
        expected = theirs(ours.embed(src), src_key_padding_mask=~mask)
        got = ours(src, mask.sum(1), mask).outputs
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-5, rtol=1e-5)


def build(enc_type: str, layers: int = 2, tie: bool = False) -> EncoderDecoder:
    cfg = ModelConfig.model_validate({
        "encoder": {"type": enc_type, "cell": "gru", "embedding_size": 12, "hidden_size": 16 if enc_type ==
                    "transformer" else 10, "layers": layers, "heads": 4, "dropout": 0.0},
        "decoder": {"type": "transformer", "embedding_size": 16, "hidden_size": 16, "layers": layers, "heads": 4,
                    "dropout": 0.0, "tie_embeddings": tie}})
    torch.manual_seed(3)
    model = EncoderDecoder.from_config(cfg, len(VOCAB), len(VOCAB)).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():           # sharper distributions: outputs of many lengths
            p.mul_(2.0)
    return model


def sources(n: int = 12) -> ParallelDataset:
    g = torch.Generator().manual_seed(5)
    src = [torch.randint(4, len(VOCAB), (int(k),), generator=g).tolist() for k in torch.randint(1, 9, (n,),
                                                                                                   generator=g)]
    return ParallelDataset(src, None, VOCAB, VOCAB)


@dataclass
class PrefixState:
    prefix: torch.Tensor            # (rows, t)
    start: TransformerState         # the empty-cache start state, its rows following the prefix's

    def reorder(self, index, beam=None):
        return PrefixState(self.prefix.index_select(0, index), self.start.reorder(index, beam))


class FullRecomputation:
    """The same model, each step rerunning the teacher-forced pass over the whole prefix."""

    def __init__(self, model):
        self.model, self.decoder = model, self

    def encode(self, src, src_lengths, src_mask):
        encoded, state = self.model.encode(src, src_lengths, src_mask)
        return encoded, PrefixState(torch.zeros(src.size(0), 0, dtype=torch.long), state)

    def step(self, prev, state):
        prefix = torch.cat([state.prefix, prev.unsqueeze(1)], 1)
        logits, attention = self.model.decoder(prefix, state.start, return_attention=True)
        return logits[:, -1], PrefixState(prefix, state.start), attention[:, -1]


OPTIONS = {
    "greedy": dict(strategy="greedy"),
    "beam": dict(strategy="beam", beam_size=4, nbest=3, length_penalty=0.6, coverage_penalty=0.2),
    "sampling": dict(strategy="sample", num_samples=3, temperature=1.2, top_k=6, seed=11),
}


@pytest.mark.parametrize("enc_type,tie", [("transformer", False), ("transformer", True), ("rnn", False)])
@pytest.mark.parametrize("strategy", list(OPTIONS))
def test_incremental_decoding_equals_full_recomputation(strategy, enc_type, tie):
    model, ds = build(enc_type, tie=tie), sources()
    options = DecodeOptions(max_len_a=1.5, max_len_b=4, return_attention=True, **OPTIONS[strategy])
    batch = ds.batch(list(range(len(ds))))
    with torch.no_grad():
        cached = decode_batch(model, batch, VOCAB.bos_id, VOCAB.eos_id, options)
        full = decode_batch(FullRecomputation(model), batch, VOCAB.bos_id, VOCAB.eos_id, options)
    lengths = {len(h.tokens) for hyps in cached for h in hyps}
    assert len(lengths) > 2                                  # rows finish at different steps
    for mine, reference in zip(cached, full):
        assert [h.tokens for h in mine] == [h.tokens for h in reference]
        # scores are sums of up to ~30 fp32 log-probabilities: agree to 1e-6 relative
        assert [h.score for h in mine] == pytest.approx([h.score for h in reference], rel=1e-6, abs=1e-5)
        for a, b in zip(mine, reference):
            torch.testing.assert_close(a.attention, b.attention, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_incremental_decoding_is_batch_invariant(strategy):
    model, ds = build("transformer"), sources()
    options = DecodeOptions(max_len_a=1.5, max_len_b=4, **OPTIONS[strategy])
    together = decode_batch(model, ds.batch(list(range(len(ds)))), VOCAB.bos_id, VOCAB.eos_id, options)
    for i in range(len(ds)):
        alone = decode_batch(model, ds.batch([i]), VOCAB.bos_id, VOCAB.eos_id, options)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in together[i]], abs=1e-5)


def test_the_cache_grows_one_position_per_step_and_the_source_memory_is_shared():
    model, ds = build("transformer", layers=3), sources(4)
    batch = ds.batch([0, 1, 2, 3])
    _, state = model.encode(batch.src, batch.src_lengths, batch.src_mask)
    assert state.source.keys.shape == (3, 4, 4, batch.src.size(1), 4)       # (layers, sources, heads, S, d_k)
    state = state.reorder(torch.arange(4).repeat_interleave(5), beam=5)
    prev = torch.full((20,), VOCAB.bos_id)
    for t in range(1, 4):
        _, state, _ = model.decoder.step(prev, state)
        assert state.keys.shape == (3, 20, 4, t, 4) and state.values.shape == state.keys.shape
        assert state.source.keys.size(1) == 4                                # once per source, not per row


def test_extending_a_state_twice_leaves_the_first_extension_intact():
    # steps write the new position into the cache's buffers in place; a second step from
    # the same state (sampling several continuations, say) must copy, not overwrite
    model, ds = build("transformer", layers=2), sources(4)
    batch = ds.batch([0, 1, 2, 3])
    with torch.no_grad():
        _, state = model.encode(batch.src, batch.src_lengths, batch.src_mask)
        _, parent, _ = model.decoder.step(torch.full((4,), VOCAB.bos_id), state)
        logits_a, child_a, _ = model.decoder.step(torch.full((4,), 5), parent)
        keys_a, values_a = child_a.keys.clone(), child_a.values.clone()
        logits_b, child_b, _ = model.decoder.step(torch.full((4,), 6), parent)
        assert torch.equal(child_a.keys, keys_a) and torch.equal(child_a.values, values_a)
        assert not torch.allclose(child_b.keys[:, :, :, -1], keys_a[:, :, :, -1])
        assert torch.equal(child_b.keys[:, :, :, :1], keys_a[:, :, :, :1])           # the shared prefix
        # each child goes on as if it had been the only one
        after_a, _, _ = model.decoder.step(torch.full((4,), 7), child_a)
        _, parent2, _ = model.decoder.step(torch.full((4,), VOCAB.bos_id), state)
        _, only_a, _ = model.decoder.step(torch.full((4,), 5), parent2)
        alone, _, _ = model.decoder.step(torch.full((4,), 7), only_a)
        assert torch.allclose(after_a, alone, atol=1e-6)
