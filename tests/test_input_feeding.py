"""The hand-written input-feeding loop against autograd and finite differences."""

import pytest
import torch

from seq2seq.modules import decoders, rnn
from seq2seq.modules.decoders import RNNDecoder
from seq2seq.modules.encoders import EncoderOutput
from seq2seq.modules.input_feeding import LoopWeights, input_feeding_loop

B, S, T, H, V = 5, 7, 6, 16, 20
LENGTHS = torch.tensor([7, 3, 5, 1, 7])


def fixed_layer_dropout(monkeypatch, layers):
    """Give both paths the same masks between layers: the fused loop draws them for all
    positions at once, the autograd loop one position and layer at a time."""
    masks = (torch.rand(layers - 1, B, T, H, generator=torch.Generator().manual_seed(3)) > 0.3).float() / 0.7
    order = iter([masks[k, :, t] for t in range(T) for k in range(layers - 1)])
    real = decoders.dropout_mask
    monkeypatch.setattr(rnn, "dropout_mask", lambda shape, p, like: next(order))
    monkeypatch.setattr(decoders, "dropout_mask",
                        lambda shape, p, like: masks if tuple(shape) == tuple(masks.shape) else real(shape, p, like))


def decoder_pass(attention, fused, train=True, copy=False, every_step=False, precision=None,
                 dtype=torch.float32, layers=1):
    """Logits, attention and every gradient of one teacher-forced pass of a small
    input-feeding decoder (dropout 0.3), with fixed inputs and random output weights."""
    torch.manual_seed(0)
    dec = RNNDecoder(V, "lstm", 8, H, layers, 0.3, attention, 16, input_feeding=True, copy=copy,
                     context_every_step=every_step).to(dtype)
    dec.fused_loop = fused
    dec.train(train)
    g = torch.Generator().manual_seed(1)
    memory = torch.randn(B, S, 16, generator=g, dtype=dtype, requires_grad=True)
    mask = torch.arange(S)[None] < LENGTHS[:, None]
    h0 = torch.randn(layers, B, H, generator=g, dtype=dtype, requires_grad=True)
    c0 = torch.randn(layers, B, H, generator=g, dtype=dtype, requires_grad=True)
    tgt = torch.randint(3, V, (B, T), generator=g)
    context = torch.randn(B, 16, generator=g, dtype=dtype) if every_step else None
    src_ext = torch.randint(3, V + 4, (B, S), generator=g) if copy else None
    torch.manual_seed(5)                                      # the same dropout masks on both paths
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        state = dec.init_state(EncoderOutput(memory, None, mask), (h0, c0), context, src_ext)
        logits, weights = dec(tgt, state, return_attention=True)
    finite = torch.isfinite(logits.float())
    loss = (logits.float()[finite] * torch.randn(int(finite.sum()), generator=g)).sum() \
        + (weights.float() * torch.randn(weights.shape, generator=g)).sum()
    loss.backward()
    grads = {n: p.grad for n, p in dec.named_parameters() if p.grad is not None}
    grads.update(memory=memory.grad, h0=h0.grad, c0=c0.grad)
    return logits.detach().float(), weights.detach().float(), grads


def rel(a, b):
    return float((a.float() - b.float()).abs().max() / (b.float().abs().max() + 1e-12))


@pytest.mark.parametrize("attention", ["luong_concat", "luong_dot", "luong_general"])
@pytest.mark.parametrize("extra", [{}, {"train": False}, {"copy": True}, {"every_step": True}, {"layers": 3},
                                   {"layers": 2, "train": False}],
                         ids=["dropout", "eval", "copy", "context_every_step", "3_layers", "2_layers_eval"])
def test_fused_loop_equals_autograd_loop(attention, extra, monkeypatch):
    if extra.get("layers", 1) > 1 and extra.get("train", True):
        fixed_layer_dropout(monkeypatch, extra["layers"])
    fused, plain = decoder_pass(attention, True, **extra), decoder_pass(attention, False, **extra)
    finite = torch.isfinite(plain[0])
    assert torch.equal(finite, torch.isfinite(fused[0]))
    assert torch.allclose(fused[0][finite], plain[0][finite], atol=1e-5)
    assert torch.allclose(fused[1], plain[1], atol=1e-6)
    assert fused[2].keys() == plain[2].keys()
    for name, grad in plain[2].items():
        assert rel(fused[2][name], grad) < 1e-4, name


@pytest.mark.parametrize("attention", ["luong_concat", "luong_dot"])
def test_fused_loop_under_bf16_autocast(attention):
    fused, plain = decoder_pass(attention, True, precision="bf16"), decoder_pass(attention, False, precision="bf16")
    assert (fused[0] - plain[0]).abs().max() < 0.05
    for name, grad in plain[2].items():
        assert rel(fused[2][name], grad) < 0.1, name


def loop_inputs(additive: bool, dropout: bool, layers=1, L=3, h=4, s=5, b=3, t=4):
    """Float64 arguments of :func:`input_feeding_loop` (the last source position of row 1
    padded): lead, h0, c0, keys, memory_proj, neg_mask, keep, keep_up, then the LoopWeights."""
    g = torch.Generator().manual_seed(2)
    r = lambda *shape: (torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5).requires_grad_()  # noqa: E731
    a = h + 1 if additive else h
    neg_mask = torch.zeros(b, s, dtype=torch.float64)
    neg_mask[1, -1] = float("-inf")
    mask = lambda *shape: (torch.rand(*shape, generator=g) > 0.3).double() / 0.7  # noqa: E731
    keep = mask(b, t, h) if dropout else None
    keep_up = mask(layers - 1, b, t, h) if dropout and layers > 1 else None
    up = (r(layers - 1, 4 * h, h), r(layers - 1, 4 * h)) if layers > 1 else (None, None)
    scorer = (r(a, h), r(a), r(a)) if additive else (None, None, None)
    weights = LoopWeights(r(4 * h, L), r(4 * h), r(4 * h, h), r(layers, 4 * h, h), *up, r(h, h), r(h), *scorer)
    return (r(b, t, L), r(layers, b, h), r(layers, b, h), r(b, s, a), r(b, s, h), neg_mask, keep, keep_up, weights)


@pytest.mark.parametrize("additive,dropout,layers", [(True, True, 1), (False, False, 1), (False, True, 1),
                                                     (True, True, 2), (False, False, 3)])
def test_backward_matches_finite_differences(additive, dropout, layers):
    args = loop_inputs(additive, dropout, layers)
    flat = [*args[:5], *args[-1]]                               # the differentiable inputs, None where unused
    grads = [k for k, x in enumerate(flat) if x is not None]

    def loop(*xs):
        full = list(flat)
        for k, x in zip(grads, xs):
            full[k] = x
        return input_feeding_loop(*full[:5], *args[5:8], LoopWeights(*full[5:]))

    assert torch.autograd.gradcheck(loop, [flat[k] for k in grads])


def test_inconsistent_shapes_are_named():
    args = list(loop_inputs(False, False))
    args[-1] = args[-1]._replace(w_feed=torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="w_feed"):
        input_feeding_loop(*args)


@pytest.mark.parametrize("cell,attention,train,layers", [("lstm", "luong_general", True, 1),
                                                         ("gru", "none", True, 1), ("lstm", "luong_concat", False, 2),
                                                         ("rnn", "luong_dot", True, 1)])
def test_one_call_path_equals_the_reference_step(cell, attention, train, layers, monkeypatch):
    """The teacher-forced one-call kernel (no input feeding) against the same pass run
    position by position through the reference step (dropout masks drawn alike)."""

    def run(parallel):
        monkeypatch.setattr(RNNDecoder, "can_run_parallel", property(lambda self: parallel))
        torch.manual_seed(0)
        dec = RNNDecoder(V, cell, 8, H, layers, 0.3, attention, 16, context_every_step=True).train(train)
        g = torch.Generator().manual_seed(1)
        memory = torch.randn(B, S, 16, generator=g, requires_grad=True)
        h0 = torch.randn(layers, B, H, generator=g, requires_grad=True)
        hidden = (h0, torch.zeros(layers, B, H)) if cell == "lstm" else h0
        tgt, context = torch.randint(3, V, (B, T), generator=g), torch.randn(B, 16, generator=g)
        torch.manual_seed(5)
        state = dec.init_state(EncoderOutput(memory, None, torch.arange(S)[None] < LENGTHS[:, None]), hidden, context)
        logits, weights = dec(tgt, state, return_attention=True)
        (logits * torch.randn(logits.shape, generator=g)).sum().backward()
        grads = dict(dec.named_parameters(), memory=memory, h0=h0)
        return logits.detach(), weights, {n: p.grad for n, p in grads.items() if p.grad is not None}

    one_call, stepped = run(True), run(False)
    assert torch.allclose(one_call[0], stepped[0], atol=1e-5)
    if attention != "none":
        assert torch.allclose(one_call[1], stepped[1], atol=1e-6)
    assert one_call[2].keys() == stepped[2].keys()
    for name, grad in stepped[2].items():
        assert rel(one_call[2][name], grad) < 1e-4, name


@pytest.mark.parametrize("cell,layers,extra", [("lstm", 1, 6), ("lstm", 2, 0), ("lstm", 2, 6), ("rnn", 2, 6),
                                               ("gru", 2, 6)])
def test_inference_step_with_one_joint_product_equals_torchs_rnn(cell, layers, extra):
    """In inference :func:`~seq2seq.modules.rnn.cell_step` computes ``[x; h] [W_in; W_hh]^T``
    as one product (LSTM and tanh RNN): one position through it equals the torch RNN's own
    step, as the two-product training path does, and the joint weight exists only there."""
    torch.manual_seed(0)
    leading = 5
    module = {"lstm": torch.nn.LSTM, "rnn": torch.nn.RNN, "gru": torch.nn.GRU}[cell]
    net = module(leading + extra, H, layers, batch_first=True).eval()
    x = torch.randn(B, 1, leading + extra)
    h0 = torch.randn(layers, B, H)
    state = (h0, torch.randn(layers, B, H)) if cell == "lstm" else h0
    with torch.no_grad():
        want, want_state = net(x, state)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            weights = rnn.CellWeights(net, leading)
            joint = weights.joint_t(layers - 1)
            assert (joint is not None) == (cell != "gru" and not grad)
            if joint is not None:
                assert joint.shape == (H + (extra if layers == 1 else H), 4 * H if cell == "lstm" else H)
            gates0 = weights.input_gates(x[:, :, :leading])[:, 0]
            top, new_state = rnn.cell_step(weights, gates0, x[:, 0, leading:] if extra else None, state)
        torch.testing.assert_close(top, want[:, 0], atol=2e-6, rtol=1e-5)
        pairs = zip(new_state, want_state) if cell == "lstm" else [(new_state, want_state)]
        for got, ref in pairs:
            torch.testing.assert_close(got, ref, atol=2e-6, rtol=1e-5)
    assert rnn.CellWeights(net.train(), leading).joint_t(0) is None
