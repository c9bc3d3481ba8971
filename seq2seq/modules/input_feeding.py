"""The input-feeding LSTM decoder loop with a hand-written backward through time.

Luong et al. 2015 (sec. 3.3) feed the attentional state o_{t-1} into the next
cell input, so a teacher-forced pass must run one step per target position.
Written with autograd, each step records some thirty small operations whose
backward replays them one by one and computes every weight gradient as a small
per-step product.  :class:`InputFeedingLoop` runs the same equations with the
graph kept by hand, as cuDNN does for its RNNs:

- forward: the gates' part from the leading inputs (the embeddings e(y_{t-1}))
  for all positions in one product; then per step the products of o_{t-1} (none
  at t = 0, where it is 0) and h_{t-1}, the LSTM cell (and the layers above,
  each fed the dropped-out state of the one below), attention with the top
  layer's new state h_t and
  ``o_t = tanh(W_ch h_t + b_c + sum_j a_tj P_j)`` (eq. 5), where the caller has
  applied the context half of W_c to the source states once: P_j = W_cc h_j;
- backward: per step only the products that carry the gradient back in time;
  the derivative factors of the nonlinearities are formed for all positions at
  once before the loop, and the gradients of every weight, of the keys and of P
  are each one large product over all positions after it.

Equations, per step t (PyTorch's LSTM gate order i, f, g, o):

    gates = G0_t + W_feed o_{t-1} + W_hh h_{t-1}    G0_t = W_lead [e(y_{t-1}); c] + b
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    e_tj = score(h_t, k_j),      a_t = softmax_j(e_tj)  (0 on padding)
    o_t = tanh(W_ch h_t + b_c + sum_j a_tj P_j)
    fed back and returned: o_t * dropout mask

with ``score = v^T tanh(W_q h_t + b_q + k_j)`` (additive: ``luong_concat``,
k_j = U_a h_j) or ``h_t^T k_j`` (``luong_dot``: k_j = h_j; ``luong_general``:
k_j = W_a h_j).

Every tanh is computed as 2 sigmoid(2x) - 1 (torch's CPU sigmoid is several
times faster than its tanh, see :mod:`seq2seq.modules.activations`), with the
factor 2 carried by the products' alpha and beta, and the additive score drops the
constant -sum(v), which the softmax cancels.  Matrix products run in the dtype of
the weights passed in (the autocast dtype under mixed precision); the cell, the
softmax and all element-wise gradients in float32.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor


def _add_mm(acc: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """acc + a @ b, the product in b's dtype. acc: (n, m); a: (n, k); b: (k, m) -> acc's dtype."""
    if b.dtype == acc.dtype:
        return torch.addmm(acc, a, b)
    return acc + torch.mm(a.to(b.dtype), b).to(acc.dtype)


class LoopWeights(NamedTuple):
    """The weights :class:`InputFeedingLoop` reads, all in ``cd``, the dtype of the
    products (the autocast dtype under mixed precision); H the decoder size, L the
    leading input size, A the attention size, N layers."""

    w_lead: Tensor              # (4H, L) layer 0's W_ih columns of the leading inputs [e(y_{t-1}); c]
    b_lead: Tensor              # (4H,) its two biases: G0_t = W_lead lead_t + b_lead, one product for all t
    w_feed: Tensor              # (4H, H) layer 0's W_ih columns of the fed o_{t-1}
    w_hh: Tensor                # (N, 4H, H) every layer's W_hh
    w_up: Optional[Tensor]      # (N - 1, 4H, H) W_ih of layers 1..N-1, or None for one layer
    b_up: Optional[Tensor]      # (N - 1, 4H) their two biases, or None
    w_ch: Tensor                # (H, H) the state half of W_c
    b_c: Tensor                 # (H,) the bias of W_c
    w_q: Optional[Tensor]       # (A, H) the additive scorer's query weight, or None (dot / general)
    b_q: Optional[Tensor]       # (A,) its bias, or None
    v: Optional[Tensor]         # (A,) its energy vector, or None


class InputFeedingLoop(torch.autograd.Function):
    """Teacher-forced input-feeding LSTM decoder with Luong attention, N stacked layers.

    ``apply(lead, h0, c0, keys, memory_proj, neg_mask, keep, keep_up, *weights)``
    with the fields of a :class:`LoopWeights` last (autograd tracks only tensors
    passed one by one; call it through :func:`input_feeding_loop`).  B batch,
    T target positions, S source positions, cd the weights' dtype:

        lead: (B, T, L) the leading cell inputs [e(y_{t-1}); c] of every position.
        h0, c0: (N, B, H) initial LSTM state.
        keys: (B, S, A) attention keys (A = H for dot / general).
        memory_proj: (B, S, H) P_j = W_cc h_j.
        neg_mask: (B, S) 0 on real source positions and -inf on padding (float32).
        keep: (B, T, H) inverted-dropout mask of o_t, or None.
        keep_up: (N - 1, B, T, H) inverted-dropout masks of the inputs of layers 1..N-1
            (dropout between layers), or None.

    Returns:
        outputs: (B, T, H) o_t after dropout, in cd.
        weights: (B, T, S) attention weights a_t, float32.

    Raises:
        ValueError: inconsistent shapes.
    """

    @staticmethod
    def forward(ctx, lead: Tensor, h0: Tensor, c0: Tensor, keys: Tensor, memory_proj: Tensor, neg_mask: Tensor,
                keep: Optional[Tensor], keep_up: Optional[Tensor], *weights: Optional[Tensor]
                ) -> tuple[Tensor, Tensor]:
        ctx.dtypes = [None if y is None else y.dtype for y in (lead, h0, c0, keys, memory_proj, *weights)]
        with torch.autocast(lead.device.type, enabled=False), torch.no_grad():
            return InputFeedingLoop._forward(ctx, lead, h0, c0, keys, memory_proj, neg_mask, keep, keep_up,
                                             LoopWeights(*weights))

    @staticmethod
    def _forward(ctx, lead, h0, c0, keys, memory_proj, neg_mask, keep, keep_up, weights_: LoopWeights):
        w_lead, b_lead, w_feed, w_hh, w_up, b_up, w_ch, b_c, w_q, b_q, v = weights_
        B, T, L = lead.shape
        G = w_lead.size(0)
        H, S, A, N = G // 4, keys.size(1), keys.size(2), w_hh.size(0)
        if (w_lead.shape != (G, L) or w_feed.shape != (G, H) or w_hh.shape != (N, G, H) or h0.shape != (N, B, H)
                or c0.shape != (N, B, H) or memory_proj.shape != (B, S, H) or neg_mask.shape != (B, S)
                or w_ch.shape != (H, H) or (keep is not None and keep.shape != (B, T, H))
                or (N > 1 and (w_up is None or w_up.shape != (N - 1, G, H) or b_up.shape != (N - 1, G)))
                or (keep_up is not None and keep_up.shape != (N - 1, B, T, H))):
            raise ValueError(f"InputFeedingLoop: inconsistent shapes: lead {tuple(lead.shape)}, w_lead "
                             f"{tuple(w_lead.shape)}, w_feed {tuple(w_feed.shape)}, w_hh {tuple(w_hh.shape)}, "
                             f"w_up {None if w_up is None else tuple(w_up.shape)}, h0 {tuple(h0.shape)}, "
                             f"memory_proj {tuple(memory_proj.shape)}, neg_mask {tuple(neg_mask.shape)}")
        cd, dev = w_hh.dtype, lead.device
        f32 = torch.promote_types(cd, torch.float32)            # element-wise dtype (float64 in gradcheck)
        additive = w_q is not None
        take = lambda *shape, dtype=f32: torch.empty(shape, dtype=dtype, device=dev)  # noqa: E731
        lead_t = take(T, B, L, dtype=cd)                            # position-major copy of lead
        lead_t.copy_(lead.transpose(0, 1))
        g0 = take(T, B, G, dtype=cd)                                # G0 of every position, one product
        torch.addmm(b_lead, lead_t.view(T * B, L), w_lead.t(), out=g0.view(T * B, G))
        w_feed_t, w_hh_t, w_ch_t = w_feed.t(), w_hh.transpose(1, 2), w_ch.t()
        w_up_t = w_up.transpose(1, 2) if N > 1 else None
        # The factor 2 of tanh(x) = 2 sigmoid(2x) - 1 rides on the products' alpha and beta.
        keys, memory_proj = keys.to(cd), memory_proj.to(cd)
        if additive:
            w_q_t, v2 = w_q.t(), (2 * v).to(f32).unsqueeze(1)       # (H, A), (A, 1)
        else:
            keys_t = keys.transpose(1, 2)                           # (B, A, S)
        keep2, neg_keep = take(T, B, H), take(T, B, H)              # o_t = keep (2 s - 1)
        if keep is not None:
            torch.mul(keep.transpose(0, 1), 2, out=keep2)
            torch.neg(keep.transpose(0, 1), out=neg_keep)
        else:
            keep2.fill_(2)
            neg_keep.fill_(-1)
        keep_up_t = keep_up.transpose(1, 2) if keep_up is not None else None   # (N - 1, T, B, H)

        o_all = take(T + 1, B, H, dtype=cd)                         # o_{t-1} at row t (o_0 = 0)
        o_all[0] = 0
        hs = take(N, T + 1, B, H, dtype=cd)                         # h^l_{t-1} at row t
        hs[:, 0] = h0
        x_up = take(N - 1, T, B, H, dtype=cd) if N > 1 else None    # inputs of layers 1..N-1 after dropout
        acts = take(N, T, B, G)                                     # sigmoid(i, f, 2g, o), then g = tanh
        cs = take(N, T + 1, B, H)
        cs[:, 0] = c0
        tcs = take(N, T, B, H)                                      # tanh(c_t)
        so = take(T, B, H)                                          # sigmoid(2 pre_t): o_t = 2 so - 1
        weights = take(T, B, S)
        energy = take(T, B, S, A) if additive else None             # sigmoid(2 (W_q h + b_q + k_j))
        same = cd == f32
        for t in range(T):
            for layer in range(N):
                a = acts[layer, t]
                if layer == 0:
                    gates = g0[t] if t == 0 else torch.addmm(g0[t], o_all[t], w_feed_t)   # o_0 = 0: no product
                else:
                    x = x_up[layer - 1, t]                           # h of the layer below, dropped out
                    if keep_up_t is None:
                        x.copy_(h)
                    elif same:
                        torch.mul(h, keep_up_t[layer - 1, t], out=x)
                    else:
                        x.copy_(h * keep_up_t[layer - 1, t])
                    gates = torch.addmm(b_up[layer - 1], x, w_up_t[layer - 1])
                if same:
                    torch.addmm(gates, hs[layer, t], w_hh_t[layer], out=a)
                else:
                    a.copy_(torch.addmm(gates, hs[layer, t], w_hh_t[layer]))
                a[:, 2 * H:3 * H].mul_(2)
                a.sigmoid_()
                i, f, g, o = a.chunk(4, dim=1)
                g.mul_(2).sub_(1)
                c = torch.addcmul(f * cs[layer, t], i, g, out=cs[layer, t + 1])
                tc = torch.mul(c, 2, out=tcs[layer, t]).sigmoid_().mul_(2).sub_(1)
                h_slot = hs[layer, t + 1]
                h = torch.mul(o, tc, out=h_slot) if same else h_slot.copy_(o * tc)
            if additive:
                q = torch.addmm(b_q, h, w_q_t, beta=2, alpha=2)      # 2 (W_q h + b_q): (B, A)
                z = energy[t]
                if same:
                    torch.add(q.unsqueeze(1), keys, alpha=2, out=z)
                else:
                    z.copy_(torch.add(q.unsqueeze(1), keys, alpha=2))
                e = torch.matmul(z.sigmoid_(), v2).squeeze(2)        # (B, S), up to a constant
            else:
                e = torch.bmm(h.unsqueeze(1), keys_t).squeeze(1).to(f32)
            w = weights[t]
            w.copy_(torch.softmax(e.add_(neg_mask), dim=-1))
            pre2 = torch.baddbmm(torch.addmm(b_c, h, w_ch_t, beta=2, alpha=2).unsqueeze(1), w.to(cd).unsqueeze(1),
                                 memory_proj, alpha=2)                  # 2 pre_t: (B, 1, H)
            s = so[t]
            s.copy_(pre2.squeeze(1)).sigmoid_()
            if same:
                torch.addcmul(neg_keep[t], s, keep2[t], out=o_all[t + 1])
            else:
                o_all[t + 1].copy_(torch.addcmul(neg_keep[t], s, keep2[t]))
        outputs = o_all[1:].transpose(0, 1).contiguous()
        attention = weights.transpose(0, 1).contiguous()
        if ctx is not None:
            ctx.additive = additive
            ctx.save_for_backward(lead_t, o_all, hs, x_up, acts, cs, tcs, so, weights, energy, w_lead, keys,
                                  memory_proj, w_feed, w_hh, w_up, w_ch, w_q, v, keep, keep_up)
        return outputs, attention

    @staticmethod
    def backward(ctx, d_out: Optional[Tensor], d_weights: Optional[Tensor]):
        like = d_out if d_out is not None else d_weights
        with torch.autocast(like.device.type, enabled=False):
            grads = InputFeedingLoop._backward(ctx, d_out, d_weights)
        grads = tuple(None if g is None else g.to(d) for g, d in zip(grads, ctx.dtypes))
        return grads[:5] + (None,) * 3 + grads[5:]                # nothing for neg_mask, keep, keep_up

    @staticmethod
    def _backward(ctx, d_out: Optional[Tensor], d_weights: Optional[Tensor]):
        (lead_t, o_all, hs, x_up, acts, cs, tcs, so, weights, energy, w_lead, keys, memory_proj, w_feed, w_hh, w_up,
         w_ch, w_q, v, keep, keep_up) = ctx.saved_tensors
        additive = ctx.additive
        N, T, B, G = acts.shape
        H, S = G // 4, weights.size(2)
        cd, f32, dev = w_hh.dtype, acts.dtype, acts.device
        take = lambda *shape: torch.empty(shape, dtype=f32, device=dev)  # noqa: E731

        # Derivative factors for all layers and positions at once.
        i, f, g, o = acts.chunk(4, dim=3)                                      # (N, T, B, H) views
        tc = tcs                                                               # tanh(c_t)
        fac = take(N, T, B, 4, H)             # d gates / d c_t for i, f, g;  d gates_o / d h_t
        torch.mul(g, i - i * i, out=fac[..., 0, :])                            # g i (1 - i)
        torch.mul(cs[:, :-1], f - f * f, out=fac[..., 1, :])                   # c_{t-1} f (1 - f)
        torch.mul(i, 1 - g * g, out=fac[..., 2, :])                            # i (1 - g^2)
        torch.mul(tc, o - o * o, out=fac[..., 3, :])                           # tanh(c_t) o (1 - o)
        dc_dh = take(N, T, B, H)
        torch.mul(o, 1 - tc * tc, out=dc_dh)                                   # d c_t / d h_t
        d_pre_d_o = take(T, B, H)                                              # (1 - o_t^2) * keep
        torch.mul(so - so * so, 4, out=d_pre_d_o)
        if keep is not None:
            d_pre_d_o.mul_(keep.transpose(0, 1))
        d_pre = take(T, B, H)
        if d_out is not None:
            torch.mul(d_out.transpose(0, 1), d_pre_d_o, out=d_pre)             # the outputs' own part
        else:
            d_pre.zero_()
        d_w_in = d_weights.transpose(0, 1).to(f32) if d_weights is not None else None
        keep_up_t = keep_up.transpose(1, 2) if keep_up is not None else None   # (N - 1, T, B, H)

        d_gates = take(N, T, B, G)
        d_e = take(T, B, S)
        if additive:
            d_q = take(T, B, keys.size(2))
            d_keys = torch.zeros(keys.shape, dtype=f32, device=dev)
            dz = take(B, S, keys.size(2))
            v4 = (4 * v).to(f32)
        d_h_next = [acts.new_zeros(B, H) for _ in range(N)]
        d_c = acts.new_zeros(N, B, H)
        d_feed = acts.new_zeros(B, H)
        # (B, H, S): a (1 x H)(H x S) product per row runs several times faster here
        # than the (S x H)(H x 1) one (benchmarks/input_feeding_micro.py times both).
        mp_t = memory_proj.to(cd).transpose(1, 2)
        keys_c = keys.to(cd)
        for t in range(T - 1, -1, -1):
            dp = d_pre[t].addcmul_(d_feed, d_pre_d_o[t])                       # d pre_t
            dp_cd = dp.to(cd)
            d_h = _add_mm(d_h_next[N - 1], dp_cd, w_ch)
            d_a = torch.bmm(dp_cd.unsqueeze(1), mp_t).squeeze(1).to(f32)       # (B, S)
            if d_w_in is not None:
                d_a.add_(d_w_in[t])
            a = weights[t]
            de = torch.mul(a, d_a - (a * d_a).sum(-1, keepdim=True), out=d_e[t])  # softmax backward
            if additive:
                s = energy[t]                                                  # sigmoid(2z)
                torch.mul(s, s, out=dz)
                torch.sub(s, dz, out=dz).mul_(de.unsqueeze(2)).mul_(v4)        # d e / d z = 4 v s (1 - s)
                d_keys.add_(dz)
                dq = torch.sum(dz, dim=1, out=d_q[t])
                d_h = _add_mm(d_h, dq, w_q)
            else:
                d_h.add_(torch.bmm(de.to(cd).unsqueeze(1), keys_c).squeeze(1).to(f32))
            for layer in range(N - 1, -1, -1):
                if layer < N - 1:
                    d_h = d_below.add_(d_h_next[layer])
                dcl = d_c[layer]
                dcl.addcmul_(d_h, dc_dh[layer, t])
                dg = d_gates[layer, t].view(B, 4, H)
                torch.mul(dcl.unsqueeze(1), fac[layer, t, :, :3], out=dg[:, :3])
                torch.mul(d_h, fac[layer, t, :, 3], out=dg[:, 3])
                dcl.mul_(f[layer, t])
                dg_cd = d_gates[layer, t].to(cd)
                d_h_next[layer] = torch.mm(dg_cd, w_hh[layer]).to(f32)
                if layer > 0:                                                  # to the layer below, same t
                    d_below = torch.mm(dg_cd, w_up[layer - 1]).to(f32)
                    if keep_up_t is not None:
                        d_below.mul_(keep_up_t[layer - 1, t])
                elif t > 0:                                                    # o_0 is a constant
                    d_feed = torch.mm(dg_cd, w_feed).to(f32)                   # (B, H)

        # Weight gradients: one product each over all T * B positions.
        h_top = hs[N - 1, 1:]                                                  # (T, B, H) in cd
        flat = lambda y: y.reshape(-1, y.size(-1))  # noqa: E731
        d_pre_cd = d_pre.to(cd)
        d_gates_cd = d_gates.to(cd).view(N, T * B, G)
        d_w_feed = torch.mm(d_gates_cd[0, B:].t(), flat(o_all[1:T]))          # o_0 = 0 adds nothing
        d_w_hh = torch.bmm(d_gates_cd.transpose(1, 2), hs[:, :T].reshape(N, T * B, H))
        d_w_up = d_b_up = None
        if N > 1:
            d_w_up = torch.bmm(d_gates_cd[1:].transpose(1, 2), x_up.reshape(N - 1, T * B, H))
            d_b_up = d_gates[1:].sum((1, 2))
        d_w_lead = torch.mm(d_gates_cd[0].t(), flat(lead_t))
        d_b_lead = d_gates[0].sum((0, 1))
        d_lead = torch.mm(d_gates_cd[0], w_lead).view(T, B, -1).transpose(0, 1)         # (B, T, L)
        d_w_ch = torch.mm(flat(d_pre_cd).t(), flat(h_top))
        d_b_c = d_pre.sum((0, 1))
        d_mp = torch.bmm(weights.permute(1, 2, 0).to(cd), d_pre_cd.transpose(0, 1))      # (B, S, H)
        d_w_q = d_b_q = d_v = None
        if additive:
            d_q_cd = d_q.to(cd)
            d_w_q = torch.mm(flat(d_q_cd).t(), flat(h_top))
            d_b_q = d_q.sum((0, 1))
            # d v = sum de * tanh(z) = 2 sum de s - sum de
            d_v = 2 * torch.mm(d_e.reshape(1, -1), energy.reshape(T * B * S, -1)).squeeze(0) - d_e.sum()
        else:
            d_keys = torch.bmm(d_e.permute(1, 2, 0).to(cd), h_top.transpose(0, 1))      # (B, S, H)
        return (d_lead, torch.stack(d_h_next), d_c, d_keys, d_mp, d_w_lead, d_b_lead, d_w_feed, d_w_hh, d_w_up,
                d_b_up, d_w_ch, d_b_c, d_w_q, d_b_q, d_v)


def input_feeding_loop(lead: Tensor, h0: Tensor, c0: Tensor, keys: Tensor, memory_proj: Tensor, neg_mask: Tensor,
                       keep: Optional[Tensor], keep_up: Optional[Tensor], weights: LoopWeights
                       ) -> tuple[Tensor, Tensor]:
    """Run :class:`InputFeedingLoop` (arguments and results as there, the weights as one
    :class:`LoopWeights`); without autograd (no gradient enabled or needed) the
    forward runs alone and saves nothing.

    Raises:
        ValueError: inconsistent shapes.
    """
    args = (lead, h0, c0, keys, memory_proj, neg_mask, keep, keep_up, *weights)
    if torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args):
        return InputFeedingLoop.apply(*args)
    with torch.autocast(lead.device.type, enabled=False):
        return InputFeedingLoop._forward(None, lead, h0, c0, keys, memory_proj, neg_mask, keep, keep_up, weights)
