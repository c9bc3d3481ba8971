"""The papers' equations written out in the test, one scalar at a time, on tiny tensors,
against the modules that implement them: attention scores (Bahdanau et al. 2015; Luong
et al. 2015 eq. 8), a whole decoder step in both placements (Luong eq. 5, Bahdanau A.2.2),
the tanh(W s + b) bridge, Cho et al. 2014's maxout readout, See et al. 2017's
pointer-generator mixture and GNMT's length and coverage penalties (Wu et al. 2016 sec. 7).
The oracles use only the modules' parameters, never their code paths."""

import math

import pytest
import torch

from seq2seq.modules.attention import AdditiveAttention, DotAttention, GeneralAttention
from seq2seq.modules.bridge import Bridge
from seq2seq.modules.heads import MaxoutReadout, PointerGenerator
from seq2seq.search import beam_search

from test_model import build
from test_search import BOS, EOS, A, B, FakeModel, batch_of, opts


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def matvec(W, x, b=None):
    """W x (+ b) with W a nested list (rows) and x a list."""
    return [dot(row, x) + (b[i] if b is not None else 0.0) for i, row in enumerate(W)]


def softmax_real(scores, n_real):
    """Softmax over the first n_real positions; padded positions get exactly 0."""
    m = max(scores[:n_real])
    e = [math.exp(s - m) for s in scores[:n_real]]
    return [x / sum(e) for x in e] + [0.0] * (len(scores) - n_real)


def L(t):
    return t.detach().double().tolist()


# ---------------------------------------------------------------- attention scores

def score_oracle(kind, att, q, h):
    """score(q, h_j) from the papers' formulas and the module's parameters."""
    if kind == "dot":                                   # Luong: q^T h_j
        return dot(q, h)
    if kind == "general":                               # Luong: q^T W_a h_j
        return dot(q, matvec(L(att.key_layer.weight), h))
    W_q, b_q, U_a = L(att.query_layer.weight), L(att.query_layer.bias), L(att.key_layer.weight)
    v = L(att.energy.weight)[0]
    if kind == "additive":                              # Bahdanau: v_a^T tanh(W_a s + U_a h_j)
        pre = [x + y for x, y in zip(matvec(W_q, q, b_q), matvec(U_a, h))]
    else:                                               # Luong concat: v_a^T tanh(W_a [q; h_j])
        W = [wq + ua for wq, ua in zip(W_q, U_a)]       # W_a = [W_q, U_a] side by side
        pre = matvec(W, q + h, b_q)
    return dot(v, [math.tanh(x) for x in pre])


@pytest.mark.parametrize("grad", [True, False], ids=["training", "decoding"])  # additive: two energy paths
@pytest.mark.parametrize("kind", ["dot", "general", "additive", "concat"])
def test_attention_scores_weights_and_context_follow_the_papers(kind, grad):
    torch.manual_seed(0)
    Q, M = 4, (4 if kind == "dot" else 3)
    att = {"dot": lambda: DotAttention(Q, M), "general": lambda: GeneralAttention(Q, M),
           "additive": lambda: AdditiveAttention(Q, M, 5), "concat": lambda: AdditiveAttention(Q, M, 5)}[kind]()
    memory = torch.randn(2, 3, M)
    query = torch.randn(2, 2, Q)                                      # two query positions per sentence
    mask = torch.tensor([[True, True, True], [True, True, False]])   # sentence 2 has 2 real tokens
    with torch.set_grad_enabled(grad):
        keys = att.precompute(memory)
        context, weights = att(query, keys, memory, mask)
    for b, n_real in enumerate((3, 2)):
        for t in range(2):
            q = L(query[b, t])
            scores = [score_oracle(kind, att, q, L(memory[b, j])) for j in range(3)]
            a = softmax_real(scores, n_real)
            assert L(weights[b, t]) == pytest.approx(a, abs=1e-6)
            assert weights[b, t, n_real:].eq(0).all()                 # exactly zero, not tiny
            c = [sum(a[j] * L(memory[b, j])[k] for j in range(3)) for k in range(M)]
            assert L(context[b, t]) == pytest.approx(c, abs=1e-6)


# ---------------------------------------------------------------- a whole decoder step

def gru_oracle(x, h, rnn):
    """torch's GRU cell as written in its documentation (gates r, z, n)."""
    W_ih, W_hh, b_ih, b_hh = (L(getattr(rnn, n)) for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    H = len(h)
    gi, gh = matvec(W_ih, x, b_ih), matvec(W_hh, h, b_hh)
    r = [sig(gi[i] + gh[i]) for i in range(H)]
    z = [sig(gi[H + i] + gh[H + i]) for i in range(H)]
    n = [math.tanh(gi[2 * H + i] + r[i] * gh[2 * H + i]) for i in range(H)]
    return [(1 - z[i]) * n[i] + z[i] * h[i] for i in range(H)]


ATT_KIND = {"luong_dot": "dot", "luong_general": "general", "luong_concat": "concat", "bahdanau": "additive"}


@pytest.mark.parametrize("attention", list(ATT_KIND))
def test_decoder_step_follows_luong_and_bahdanau(attention):
    """Two steps of a GRU decoder: Luong runs the cell, attends with h_t and outputs
    W_out tanh(W_c [h_t; c_t] + b_c) + b_out; Bahdanau attends with h_{t-1} and feeds
    c_t into the cell with e(y_{t-1})."""
    from seq2seq.data.batching import ParallelDataset
    from test_model import VOCAB

    model = build(cell="gru", attention=attention)
    dec = model.decoder
    ds = ParallelDataset([[4, 5, 6], [7, 8]], [[4], [5]], VOCAB, VOCAB)
    batch = ds.batch([0, 1])
    with torch.no_grad():
        _, state = model.encode(batch.src, batch.src_lengths, batch.src_mask)
        memory, mask = state.source.states, state.source.mask
        h = [L(state.hidden[0, b]) for b in range(2)]
        prev = torch.tensor([VOCAB.bos_id, VOCAB.bos_id])
        for _ in range(2):
            logits, state, weights = dec.step(prev, state)
            for b in range(2):
                n_real = int(mask[b].sum())
                mem = [L(memory[b, j]) for j in range(memory.size(1))]
                e = L(dec.embedding.weight[prev[b]])
                query = h[b] if attention == "bahdanau" else None
                if attention != "bahdanau":
                    h[b] = gru_oracle(e, h[b], dec.rnn)
                    query = h[b]
                a = softmax_real([score_oracle(ATT_KIND[attention], dec.attention, query, m) for m in mem], n_real)
                c = [sum(a[j] * mem[j][k] for j in range(len(mem))) for k in range(len(mem[0]))]
                if attention == "bahdanau":
                    h[b] = gru_oracle(e + c, h[b], dec.rnn)
                o = [math.tanh(x) for x in matvec(L(dec.combine.weight), h[b] + c, L(dec.combine.bias))]
                expected = matvec(L(dec.output.weight), o, L(dec.output.bias))
                assert L(weights[b]) == pytest.approx(a, abs=1e-5)
                assert L(state.hidden[0, b]) == pytest.approx(h[b], abs=1e-5)
                assert L(logits[b]) == pytest.approx(expected, abs=1e-5)
            prev = logits.argmax(-1)


# ---------------------------------------------------------------- bridge, readout, copy

@pytest.mark.parametrize("dec_cell", ["gru", "lstm"])
def test_projection_bridge_is_tanh_of_w_s_plus_b(dec_cell):
    """s = the encoder's final states of every layer concatenated; each decoder layer l
    starts from its slice of tanh(W s + b) (c_0 from the cell states for an LSTM)."""
    torch.manual_seed(0)
    bridge = Bridge("projection", "lstm", dec_cell, enc_size=4, enc_layers=2, dec_size=3, dec_layers=2)
    h_enc, c_enc = torch.randn(2, 2, 4), torch.randn(2, 2, 4)
    out = bridge((h_enc, c_enc), 2)
    pairs = [(out if dec_cell == "gru" else out[0], bridge.proj_h, h_enc)]
    if dec_cell == "lstm":
        pairs.append((out[1], bridge.proj_c, c_enc))
    for got, layer, final in pairs:
        for b in range(2):
            s = L(final[0, b]) + L(final[1, b])
            y = [math.tanh(x) for x in matvec(L(layer.weight), s, L(layer.bias))]
            for lay in range(2):
                assert L(got[lay, b]) == pytest.approx(y[3 * lay:3 * lay + 3], abs=1e-6)


def test_maxout_readout_pools_pairs_of_units():
    """Cho et al. 2014, A.1.2: s_i = max(t~_{2i-1}, t~_{2i}) with t~ = O_h h + O_y e(y) + O_c c."""
    torch.manual_seed(0)
    readout = MaxoutReadout(hidden_size=3, embedding_size=2, context_size=4)
    o, emb, c = torch.randn(5, 3), torch.randn(5, 2), torch.randn(5, 4)
    got = readout(o, emb, c)
    assert got.shape == (5, 3)
    for r in range(5):
        t = matvec(L(readout.weight), L(o[r]) + L(emb[r]) + L(c[r]), L(readout.bias))
        assert L(got[r]) == pytest.approx([max(t[2 * i], t[2 * i + 1]) for i in range(3)], abs=1e-6)


def test_pointer_generator_mixture_follows_see_et_al():
    """P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{j: x_j = w} a_j, with P_vocab a softmax
    over the vocabulary without the never-output ids, p_gen = sigmoid(w^T [c; o; e] + b),
    and source words outside the vocabulary at ids V, V+1, ..."""
    torch.manual_seed(0)
    V, M, H, E = 6, 3, 2, 2
    gen = PointerGenerator(M, H, E, V, never=(0, 2))
    logits, context, o, emb = torch.randn(2, V), torch.randn(2, M), torch.randn(2, H), torch.randn(2, E)
    weights = torch.tensor([[0.5, 0.2, 0.3, 0.0], [0.1, 0.6, 0.2, 0.1]])
    src_ext = torch.tensor([[4, 6, 4, 0], [5, 7, 3, 6]])     # row 0: word 4 twice, unknown word 6; padding last
    ext_size = 8
    got = gen(logits, context, o, emb, weights, src_ext, ext_size).exp()
    for r in range(2):
        p_gen = sig(dot(L(gen.weight)[0], L(context[r]) + L(o[r]) + L(emb[r])) + L(gen.bias)[0])
        allowed = [w for w in range(V) if w not in (0, 2)]
        z = sum(math.exp(L(logits[r])[w]) for w in allowed)
        p_vocab = [math.exp(L(logits[r])[w]) / z if w in allowed else 0.0 for w in range(V)] + [0.0] * (ext_size - V)
        copy = [sum(a for a, x in zip(L(weights[r]), src_ext[r].tolist()) if x == w) for w in range(ext_size)]
        expected = [p_gen * p_vocab[w] + (1 - p_gen) * copy[w] for w in range(ext_size)]
        expected[0] = 0.0     # padding never output, even where padded source positions point
        assert L(got[r]) == pytest.approx(expected, abs=1e-6)
        assert sum(L(got[r])) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- GNMT penalties in beam search

def test_beam_scores_are_gnmt_length_and_coverage_penalised_log_probabilities():
    """s(Y, X) = log P(Y|X) / ((5 + |Y|) / 6)^alpha + beta * sum_i log(min(sum_j a_ij, 1)),
    |Y| counting <eos>, computed for each returned hypothesis from the fake model's tables."""
    table = [{BOS: {A: 0.5, B: 0.3, EOS: 0.2}}, {A: {EOS: 0.6, A: 0.4}, B: {EOS: 0.9, B: 0.1}},
             {A: {EOS: 1.0}, B: {EOS: 1.0}}]
    steps = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6]]          # attention over 3 source words
    model = FakeModel(table, attention=lambda t: torch.tensor([steps[min(t, 2)]]))
    alpha, beta = 0.6, 0.3
    hyps, = beam_search(model, batch_of(1, src_len=3), BOS, EOS,
                        opts(beam_size=4, nbest=4, length_penalty=alpha, coverage_penalty=beta))
    assert len(hyps) == 4
    for h in hyps:
        p, prev = 1.0, BOS
        for t, tok in enumerate(h.tokens + [EOS]):
            p *= table[min(t, 2)][prev][tok]
            prev = tok
        n = len(h.tokens) + 1                                        # every hypothesis here ends in <eos>
        cov = [sum(steps[min(t, 2)][i] for t in range(n)) for i in range(3)]
        expected = math.log(p) / ((5 + n) / 6) ** alpha + beta * sum(math.log(min(c, 1.0)) for c in cov)
        assert h.log_prob == pytest.approx(math.log(p), abs=1e-5)
        assert h.score == pytest.approx(expected, abs=1e-5), h.tokens
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
