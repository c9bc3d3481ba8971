"""Shapes, masks and equivalences of the encoder, bridge, attention and decoder."""

import itertools

import pytest
import torch

from seq2seq.config import ModelConfig
from seq2seq.data.batching import ParallelDataset
from seq2seq.data.vocab import Vocabulary
from seq2seq.errors import Seq2SeqError
from seq2seq.criteria import sequence_cross_entropy
from seq2seq.models.encoder_decoder import EncoderDecoder
from seq2seq.search import DecodeOptions, greedy_search

VOCAB = Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>"] + list("abcdefgh"))
ATTENTIONS = ["none", "bahdanau", "luong_dot", "luong_general", "luong_concat"]


def build(cell="lstm", attention="luong_general", bridge="projection", input_feeding=False, layers=1,
          bidirectional=True, dec_cell=None, tie=False, context="last", every_step=False, prev_output=True,
          reverse=False, enc_type="rnn", dec_type="rnn"):
    enc_h = 8 if bidirectional else 16
    cfg = ModelConfig.model_validate({
        "encoder": {"cell": cell, "embedding_size": 16 if tie else 12, "hidden_size": enc_h, "layers": layers,
                    "bidirectional": bidirectional, "dropout": 0.0, "type": enc_type},
        "decoder": {"type": dec_type, "cell": dec_cell or cell, "embedding_size": 16 if tie else 12, "hidden_size": 16,
                    "layers": layers, "dropout": 0.0, "attention": attention, "input_feeding": input_feeding,
                    "tie_embeddings": tie, "context_every_step": every_step, "feed_previous_output": prev_output},
        "bridge": bridge, "context": context, "reverse_source": reverse})
    torch.manual_seed(0)
    return EncoderDecoder.from_config(cfg, len(VOCAB), len(VOCAB)).eval()


def data():
    g = torch.Generator().manual_seed(1)
    src = [torch.randint(4, 12, (n,), generator=g).tolist() for n in (5, 2, 7, 3)]
    tgt = [torch.randint(4, 12, (n,), generator=g).tolist() for n in (4, 6, 1, 3)]
    return ParallelDataset(src, tgt, VOCAB, VOCAB)


VARIANTS = [dict(cell=c, attention=a) for c, a in itertools.product(["rnn", "gru", "lstm"], ATTENTIONS)] + [
    dict(attention="luong_concat", input_feeding=True),
    dict(cell="gru", attention="luong_dot", input_feeding=True, layers=2),
    dict(attention="bahdanau", layers=2),
    dict(attention="luong_general", layers=2, bridge="last"),
    dict(cell="gru", dec_cell="lstm", attention="none", bridge="last"),
    dict(cell="lstm", dec_cell="gru", attention="luong_general", bridge="none"),
    dict(attention="luong_general", tie=True),
    dict(attention="bahdanau", bidirectional=False, bridge="last"),
    # the seeds' decoder inputs and contexts (issue: encoder-decoder family)
    dict(cell="gru", attention="none", every_step=True),                       # Cho et al. 2014
    dict(cell="lstm", attention="none", every_step=True, layers=2, context="mean"),
    dict(cell="gru", attention="none", every_step=True, prev_output=False, context="max"),
    dict(attention="luong_general", every_step=True, input_feeding=True),
    dict(attention="bahdanau", every_step=True, prev_output=False),
    dict(attention="luong_dot", context="mean", bridge="last"),
    dict(attention="none", context="max", bridge="projection", dec_cell="lstm", cell="gru"),
    dict(attention="luong_general", reverse=True, input_feeding=True),
    dict(cell="lstm", attention="none", reverse=True, bridge="last", bidirectional=False, layers=2),
    # Transformer encoder and/or decoder (Vaswani et al. 2017)
    dict(enc_type="transformer", dec_type="transformer", layers=2),
    dict(enc_type="transformer", dec_type="transformer", bidirectional=False, tie=True),
    dict(enc_type="transformer", attention="bahdanau"),
    dict(enc_type="transformer", attention="none", bridge="projection", cell="gru"),
    dict(dec_type="transformer", bidirectional=False, reverse=True),
]


def vid(v):
    return "-".join(f"{k}={val}" for k, val in v.items())


@pytest.mark.parametrize("variant", VARIANTS, ids=vid)
def test_shapes_and_teacher_forcing_equals_steps(variant):
    model = build(**variant)
    batch = data().batch([0, 1, 2, 3])
    out = model(batch, return_attention=True)
    logits, attn = out.logits, out.attention
    B, T = batch.tgt_in.shape
    assert logits.shape == (B, T, len(VOCAB))
    if variant.get("attention", "luong_general") != "none" or variant.get("dec_type") == "transformer":
        assert attn.shape == (B, T, batch.src.size(1))
    # the one-call teacher-forced pass and the step API compute the same thing
    _, state = model.encode(batch.src, batch.src_lengths, batch.src_mask)
    for t in range(T):
        step_logits, state, w = model.decoder.step(batch.tgt_in[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], atol=1e-5, rtol=1e-5)
        if w is not None:
            torch.testing.assert_close(w, attn[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS, ids=vid)
def test_padding_never_changes_a_result(variant):
    model = build(**variant)
    ds = data()
    full = model(ds.batch([0, 1, 2, 3])).logits
    for i in range(4):
        alone = model(ds.batch([i])).logits
        n = alone.size(1)
        torch.testing.assert_close(full[i, :n], alone[0], atol=1e-5, rtol=1e-5)
    opts = DecodeOptions(max_len_a=2.0, max_len_b=3)
    together = greedy_search(model, ds.batch([0, 1, 2, 3]), VOCAB.bos_id, VOCAB.eos_id, opts)
    for i in range(4):
        single = greedy_search(model, ds.batch([i]), VOCAB.bos_id, VOCAB.eos_id, opts)
        assert single[0][0].tokens == together[i][0].tokens
        assert single[0][0].score == pytest.approx(together[i][0].score, abs=1e-4)


@pytest.mark.parametrize("attention", ATTENTIONS[1:])
def test_attention_sums_to_one_and_is_zero_on_padding(attention):
    model = build(attention=attention)
    batch = data().batch([0, 1, 2, 3])
    attn = model(batch, return_attention=True).attention
    torch.testing.assert_close(attn.sum(-1), torch.ones(attn.shape[:2]))
    pad = ~batch.src_mask.unsqueeze(1).expand_as(attn)
    assert (attn[pad] == 0).all()
    opts = DecodeOptions(max_len_a=2.0, max_len_b=3, return_attention=True)
    for i, (h,) in enumerate(greedy_search(model, batch, VOCAB.bos_id, VOCAB.eos_id, opts)):
        a = h.attention
        assert a.shape[0] in (len(h.tokens), len(h.tokens) + 1) and a.shape[1] == int(batch.src_lengths[i])
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[0]))


def test_loss_ignores_padding():
    model = build()
    ds = data()
    batch = ds.batch([0, 1, 2, 3])
    logits = model(batch).logits
    loss, n = sequence_cross_entropy(logits, batch.tgt_out, VOCAB.pad_id)
    assert n == int(batch.tgt_mask.sum())
    # garbage logits on padded positions change nothing
    noisy = logits.clone()
    noisy[~batch.tgt_mask] = 1e3 * torch.randn(int((~batch.tgt_mask).sum()), len(VOCAB))
    loss2, _ = sequence_cross_entropy(noisy, batch.tgt_out, VOCAB.pad_id)
    assert loss.item() == pytest.approx(loss2.item())
    # equals the sum of per-sentence losses
    total = 0.0
    for i in range(4):
        lo = model(ds.batch([i])).logits
        total += sequence_cross_entropy(lo, ds.batch([i]).tgt_out, VOCAB.pad_id)[0].item()
    assert loss.item() == pytest.approx(total, rel=1e-5)


def test_state_reorder_matches_recomputation():
    model = build(attention="luong_concat", input_feeding=True)
    batch = data().batch([0, 1, 2, 3])
    _, state = model.encode(batch.src, batch.src_lengths, batch.src_mask)
    logits, state, _ = model.decoder.step(batch.tgt_in[:, 0], state)
    idx = torch.tensor([2, 2, 0])
    reordered = state.reorder(idx)
    nxt = batch.tgt_in[idx, 1]
    a, _, _ = model.decoder.step(nxt, reordered)
    b, _, _ = model.decoder.step(batch.tgt_in[:, 1], state)
    torch.testing.assert_close(a, b[idx])


def test_greedy_respects_length_cap():
    model = build()
    batch = data().batch([0, 1, 2, 3])
    nbest = greedy_search(model, batch, VOCAB.bos_id, VOCAB.eos_id, DecodeOptions(max_len_a=0.0, max_len_b=2))
    assert all(len(h.tokens) <= 2 for (h,) in nbest)
    assert all(VOCAB.eos_id not in h.tokens for (h,) in nbest)


def test_incompatible_sizes_are_user_errors():
    with pytest.raises(Seq2SeqError, match="bridge 'last'"):
        build(bridge="last", layers=1, bidirectional=True, attention="none").bridge.__class__(
            "last", "lstm", "lstm", 16, 1, 32, 1)
    with pytest.raises(Seq2SeqError, match="luong_dot"):
        cfg = ModelConfig.model_validate({"encoder": {"hidden_size": 8}, "decoder": {"hidden_size": 32,
                                          "attention": "luong_dot"}})
        EncoderDecoder.from_config(cfg, 10, 10)


def test_dropout_mask_rate_scale_and_seed():
    from seq2seq.modules.dropout import Dropout, dropout_mask

    like = torch.empty(0)
    torch.manual_seed(5)
    m = dropout_mask((200, 500), 0.3, like)
    assert m.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]
    assert (m == 0).float().mean().item() == pytest.approx(0.3, abs=0.005)
    torch.manual_seed(5)
    assert torch.equal(m, dropout_mask((200, 500), 0.3, like))        # reproducible from the seed
    assert torch.equal(dropout_mask((3, 4), 0.0, like), torch.ones(3, 4))
    with pytest.raises(ValueError):
        Dropout(1.0)
    drop = Dropout(0.5)
    x = torch.randn(4, 6)
    assert torch.equal(drop.eval()(x), x)
    y = drop.train()(x)
    assert torch.all((y == 0) | torch.isclose(y, 2 * x))


# The decoder's parameter names and shapes, which trained checkpoints rely on.
PINNED_KEYS = {
    (("attention", "luong_concat"), ("input_feeding", True), ("layers", 2)): {
        "embedding.weight": (40, 12), "rnn.weight_ih_l0": (64, 28), "rnn.weight_hh_l0": (64, 16),
        "rnn.bias_ih_l0": (64,), "rnn.bias_hh_l0": (64,), "rnn.weight_ih_l1": (64, 16), "rnn.weight_hh_l1": (64, 16),
        "rnn.bias_ih_l1": (64,), "rnn.bias_hh_l1": (64,), "attention.key_layer.weight": (16, 16),
        "attention.query_layer.weight": (16, 16), "attention.query_layer.bias": (16,),
        "attention.energy.weight": (1, 16), "combine.weight": (16, 32), "combine.bias": (16,),
        "output.weight": (40, 16), "output.bias": (40,)},
    (("attention", "bahdanau"), ("copy_attention", True), ("coverage", True), ("context_every_step", True)): {
        "embedding.weight": (40, 12), "rnn.weight_ih_l0": (64, 44), "rnn.weight_hh_l0": (64, 16),
        "rnn.bias_ih_l0": (64,), "rnn.bias_hh_l0": (64,), "attention.coverage_weight": (16,),
        "attention.key_layer.weight": (16, 16), "attention.query_layer.weight": (16, 16),
        "attention.query_layer.bias": (16,), "attention.energy.weight": (1, 16), "combine.weight": (16, 32),
        "combine.bias": (16,), "readout.weight": (32, 44), "readout.bias": (32,), "copy_gate.weight": (1, 44),
        "copy_gate.bias": (1,), "output.weight": (40, 16), "output.bias": (40,)},
    (("attention", "none"), ("tie_embeddings", True), ("cell", "gru"), ("embedding_size", 16)): {
        "output_bias": (40,), "embedding.weight": (40, 16), "rnn.weight_ih_l0": (48, 16),
        "rnn.weight_hh_l0": (48, 16), "rnn.bias_ih_l0": (48,), "rnn.bias_hh_l0": (48,)},
}


@pytest.mark.parametrize("options", list(PINNED_KEYS), ids=lambda o: "-".join(f"{k}={v}" for k, v in o))
def test_decoder_state_dict_keys_are_pinned(options):
    dec = {"hidden_size": 16, "embedding_size": 12, **dict(options)}
    cfg = ModelConfig.model_validate({"encoder": {"hidden_size": 8, "embedding_size": 12}, "decoder": dec})
    model = EncoderDecoder.from_config(cfg, 30, 40)
    assert {k: tuple(v.shape) for k, v in model.decoder.state_dict().items()} == PINNED_KEYS[options]


def test_step_leaves_its_state_argument_unchanged():
    model = build(attention="luong_concat", input_feeding=True)
    batch = data().batch([0, 1, 2, 3])
    _, start = model.encode(batch.src, batch.src_lengths, batch.src_mask)
    prev = batch.tgt_in[:, 0]
    with torch.no_grad():                           # inference: the step builds its per-token table
        for state in (start, model.decoder.step(prev, start)[1]):
            fields = dict(vars(state))
            values = [t.clone() for t in (*state.hidden, state.feed)]
            first, second = model.decoder.step(prev, state), model.decoder.step(prev, state)
            torch.testing.assert_close(first[0], second[0], atol=0, rtol=0)
            torch.testing.assert_close(first[1].hidden, second[1].hidden, atol=0, rtol=0)
            assert first[1].cache.input_table is not None
            assert vars(state) == fields             # the same objects ...
            assert all(torch.equal(a, b) for a, b in zip(values, (*state.hidden, state.feed)))   # ... unchanged
    assert start.cache is None
